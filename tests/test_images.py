import numpy as np
import pytest
import torch
from PIL import Image

from gen3dface.core.errors import InputError
from gen3dface.core.images import as_photo, load_image, save_png, to_tensor, to_uint8, to_uint8_tensor

BAD = ["missing", "directory", "empty", "text_as_jpg", "truncated_png", "one_pixel", "huge_header"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_files_raise_one_line_input_errors(bad_inputs, kind):
    with pytest.raises(InputError) as e:
        load_image(bad_inputs[kind])
    msg = str(e.value)
    assert "\n" not in msg and str(bad_inputs[kind].name) in msg


def test_messages_say_what_is_wrong(bad_inputs):
    reasons = {
        "missing": "not found",
        "directory": "directory",
        "empty": "empty",
        "text_as_jpg": "not an image",
        "truncated_png": "truncated",
        "one_pixel": "1x1",
        "huge_header": "60000x60000",
    }
    for kind, words in reasons.items():
        with pytest.raises(InputError, match=words):
            load_image(bad_inputs[kind])


def test_odd_but_valid_images_load(odd_inputs, astronaut):
    gray = load_image(odd_inputs["grayscale"])
    assert gray.rgb.shape == astronaut.shape and gray.rgb.dtype == np.uint8
    assert np.array_equal(gray.rgb[..., 0], gray.rgb[..., 2])
    rgba = load_image(odd_inputs["rgba"])
    assert rgba.alpha is not None and rgba.alpha[:, :40].max() == 0 and rgba.alpha[:, 40:].min() == 1
    assert (rgba.rgb[:, :40] == 255).all()  # transparent pixels become white
    g16 = load_image(odd_inputs["16bit"])
    ref = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert g16.rgb.dtype == np.uint8 and np.abs(g16.rgb[..., 0].astype(int) - ref).max() <= 1
    for kind in ("palette", "cmyk_jpeg"):
        p = load_image(odd_inputs[kind])
        assert p.rgb.shape == astronaut.shape
        assert np.abs(p.rgb.astype(int) - astronaut).mean() < 25


def test_a_side_too_long_for_the_face_models_is_refused(tmp_path):
    # under the pixel limit, but OpenCV's warps and mediapipe take no side of 32767 px (mediapipe aborts)
    Image.new("RGB", (33000, 40), (90, 90, 90)).save(tmp_path / "strip.png")
    with pytest.raises(InputError, match="33000x40 pixels, over the 32000 px limit on a side"):
        load_image(tmp_path / "strip.png")
    with pytest.raises(InputError, match="over the 32000 px limit"):
        as_photo(np.zeros((40, 33000, 3), np.uint8))


def test_heic_photos_load(tmp_path, astronaut):
    # a phone camera's default format, read through pillow-heif (a dependency); lossy, so compared loosely
    from pillow_heif import from_bytes

    heif = from_bytes(mode="RGB", size=(512, 512), data=np.ascontiguousarray(astronaut).tobytes())
    heif.save(tmp_path / "photo.heic", quality=90)
    p = load_image(tmp_path / "photo.heic")
    assert p.rgb.shape == astronaut.shape and np.abs(p.rgb.astype(int) - astronaut).mean() < 10


def test_exif_orientation_is_applied(tmp_path, astronaut):
    img = Image.fromarray(astronaut[:, :300])  # 512 x 300, portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rot.jpg").size == (300, 512)


def test_arrays_and_tensors(astronaut, tmp_path):
    assert as_photo(astronaut).rgb is not None
    with pytest.raises(InputError):
        as_photo(np.zeros((10, 10, 7), np.uint8))
    t = to_tensor(astronaut[None])
    assert t.shape == (1, 3, 512, 512) and float(t.min()) >= -1 and float(t.max()) <= 1
    assert np.array_equal(to_uint8(t)[0], astronaut)
    q = to_uint8_tensor(t)
    assert (
        q.dtype == torch.uint8
        and q.shape == t.shape
        and np.array_equal(q[0].permute(1, 2, 0).numpy(), astronaut)
    )
    assert to_uint8_tensor(torch.tensor([-2.0, -1.0, 0.0, 0.003, 1.0, 2.0])).tolist() == [
        0,
        0,
        128,
        128,
        255,
        255,
    ]
    save_png(tmp_path / "x.png", astronaut)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), astronaut)
    assert not list(tmp_path.glob(".*part*"))
    assert to_tensor(np.zeros((2, 4, 4, 3), np.uint8)).shape == torch.Size([2, 3, 4, 4])
