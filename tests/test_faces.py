import warnings

import numpy as np
import pytest
from PIL import Image

from gen3dface.core.errors import BackendUnavailable, InputError, NoFaceError
from gen3dface.faces.detect import (
    MultipleFacesWarning,
    align_crop,
    crop_face,
    crop_quad,
    detect_faces,
    embed,
    find_face,
    identity_distance,
)
from gen3dface.core.images import load_image

# Eileen Collins' face in the astronaut photo (x0, y0, x1, y1), read off the picture
ASTRONAUT_FACE = (160, 60, 285, 190)


def inside(points, box, margin=0):
    x0, y0, x1, y1 = box
    return bool(
        (
            (points[:, 0] >= x0 - margin)
            & (points[:, 0] <= x1 + margin)
            & (points[:, 1] >= y0 - margin)
            & (points[:, 1] <= y1 + margin)
        ).all()
    )


@pytest.mark.parametrize("backend,n", [("mediapipe", 478), ("dlib", 68)])
def test_landmarks_land_on_the_face(astronaut, backend, n):
    face = find_face(astronaut, backend)
    assert face.landmarks.shape == (n, 3)
    assert inside(face.landmarks, ASTRONAUT_FACE)
    r_eye, l_eye, nose, r_mouth, l_mouth = face.keypoints
    assert r_eye[0] < nose[0] < l_eye[0]  # frontal photo: subject's right eye on the image left
    assert max(r_eye[1], l_eye[1]) < nose[1] < min(r_mouth[1], l_mouth[1])


def test_backends_agree_on_key_points(astronaut, hopper):
    for img in (astronaut, hopper):
        a, b = find_face(img, "mediapipe"), find_face(img, "dlib")
        eye_dist = np.linalg.norm(a.keypoints[1] - a.keypoints[0])
        err = np.linalg.norm(a.keypoints - b.keypoints, axis=1)
        assert err[:2].max() < 0.15 * eye_dist, err  # eye centres
        assert err.max() < 0.3 * eye_dist, err


def test_mirror_is_closer_than_another_person(astronaut, hopper):
    e_a = embed(astronaut)
    e_mirror = embed(np.ascontiguousarray(astronaut[:, ::-1]))
    e_h = embed(hopper)
    assert e_a.shape == (128,)
    same, other = identity_distance(e_a, e_mirror), identity_distance(e_a, e_h)
    assert same < 0.6 < other, (same, other)
    # an embedding from a mediapipe face goes through dlib's descriptor too
    e_mp = embed(astronaut, find_face(astronaut, "mediapipe"))
    assert identity_distance(e_a, e_mp) < 0.6


def test_crop_is_upright_centred_and_framed(astronaut):
    face = find_face(astronaut)
    crop = align_crop(astronaut, face, size=256)
    assert crop.image.shape == (256, 256, 3) and crop.mask.shape == (256, 256)
    r_eye, l_eye = crop.keypoints[0], crop.keypoints[1]
    assert abs(r_eye[1] - l_eye[1]) < 1.0  # eyes level
    assert abs((r_eye[0] + l_eye[0]) / 2 - 128) < 6  # centred
    assert 0.25 * 256 < np.linalg.norm(l_eye - r_eye) * 4 < 0.75 * 256 * 2
    assert inside(crop.landmarks, (0, 0, 256, 256))
    assert crop.mask[128, 128] > 0.5  # the face is foreground
    assert 0.15 < (crop.mask > 0.5).mean() < 0.95


@pytest.mark.parametrize("angle", [-30, 25])
def test_crop_undoes_rotation_and_scale(astronaut, angle):
    ref = align_crop(astronaut, find_face(astronaut), size=128)
    img = Image.fromarray(astronaut).rotate(angle, resample=Image.BICUBIC, fillcolor=(255, 255, 255))
    img = img.resize((384, 384), Image.LANCZOS)
    moved = np.asarray(img)
    crop = align_crop(moved, find_face(moved), size=128)
    assert np.abs(crop.keypoints - ref.keypoints).max() < 4.0
    a, b = ref.image[32:96, 32:96].astype(float), crop.image[32:96, 32:96].astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.85


def test_large_photo_is_cropped_without_aliasing(astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.BICUBIC))
    crop = align_crop(big, find_face(big), size=64)
    ref = align_crop(astronaut, find_face(astronaut), size=64)
    assert np.abs(crop.image.astype(float) - ref.image.astype(float)).mean() < 12


def test_several_faces_use_the_largest_with_a_warning(odd_inputs):
    photo = load_image(odd_inputs["several_faces"])
    faces = detect_faces(photo)
    assert len(faces) >= 2
    with pytest.warns(MultipleFacesWarning, match="using the largest"):
        face = find_face(photo)
    assert face.keypoints[:, 0].max() < 512  # Grace Hopper, the big face on the left


def test_no_face_is_a_clear_error(bad_inputs):
    with pytest.raises(NoFaceError, match="no face found"):
        find_face(load_image(bad_inputs["no_face"]))
    with pytest.raises(NoFaceError):
        find_face(np.full((200, 200, 3), 127, np.uint8), "dlib")


def test_small_and_grayscale_faces(astronaut, odd_inputs):
    tiny = np.asarray(Image.fromarray(astronaut).resize((128, 128), Image.LANCZOS))
    assert find_face(tiny).landmarks.shape == (478, 3)
    _, face, crop = crop_face(odd_inputs["grayscale"], size=64)
    assert crop.image.shape == (64, 64, 3)


def test_alpha_becomes_the_mask(odd_inputs):
    photo, face, crop = crop_face(odd_inputs["rgba"], size=128)
    assert photo.alpha is not None
    # the transparent strip x < 40 maps into the crop's left; the mask there is 0
    x_strip = (np.array([39.0, 250.0]) @ crop.transform[:, :2].T + crop.transform[:, 2])[0]
    if x_strip > 2:
        assert crop.mask[60:68, : int(x_strip) - 1].max() < 0.05


def test_insightface_without_models_is_unavailable(tmp_path, monkeypatch, astronaut):
    from gen3dface.faces import backends as face_backends

    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    face_backends.insightface_app.cache_clear()
    with pytest.raises(BackendUnavailable, match="buffalo_l"):
        detect_faces(astronaut, "insightface")
    face_backends.insightface_app.cache_clear()


def test_bad_arguments():
    with pytest.raises(InputError):
        detect_faces(np.zeros((64, 64, 3), np.uint8), "opencv")
    with pytest.raises(InputError):
        embed(np.zeros((64, 64, 3), np.uint8), backend="mediapipe")
    with pytest.raises(NoFaceError):
        crop_quad(np.zeros((5, 2)))


def test_small_face_in_a_large_photo_is_found(astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS))  # face ~45 px wide
    canvas = np.full((1500, 2000, 3), 200, np.uint8)
    canvas[900:1156, 1500:1756] = small
    face = find_face(canvas)
    assert inside(face.landmarks, (1500 + 80, 900 + 30, 1500 + 143, 900 + 95))


@pytest.mark.parametrize("shape,at", [((200, 4000), (0, 1900)), ((3000, 300), (1400, 50))])
def test_face_in_a_panorama_or_a_tall_strip_is_found(astronaut, shape, at):
    # letterboxed whole into the detector's square thumbnail, this face would be 2-4 px high: square tiles find it
    small = np.asarray(Image.fromarray(astronaut).resize((200, 200), Image.LANCZOS))  # face ~50 px
    strip = np.full((*shape, 3), 200, np.uint8)
    y, x = at
    strip[y : y + 200, x : x + 200] = small
    face = find_face(strip)
    x0, y0, x1, y1 = (np.array(ASTRONAUT_FACE) * 200 / 512).round()
    assert inside(face.landmarks, (x + x0, y + y0, x + x1, y + y1), margin=6)
    assert face.score > 0.8


def test_arcface_loading_code_on_a_small_model_the_test_saves(tmp_path, monkeypatch, astronaut, hopper):
    """A user's insightface ArcFace model comes first and runs through insightface's loader (model_zoo
    routing, get_feat) on the five-point aligned crop: a tiny ArcFace-shaped ONNX network, 3x112x112 in,
    512 out."""
    import torch

    from gen3dface.faces.arcface import arcface_source, load_arcface

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 8, 8, 8)
            self.fc = torch.nn.Linear(8 * 14 * 14, 512)

        def forward(self, x):
            return self.fc(self.conv(x).flatten(1))

    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Tiny(),
            torch.randn(1, 3, 112, 112),
            str(pack / "w600k_r50.onnx"),
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}},
            dynamo=False,
        )
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    monkeypatch.delenv("INSIGHTFACE_ARCFACE", raising=False)
    assert arcface_source(fetch=False).kind == "insightface"
    assert arcface_source(fetch=False).path == pack / "w600k_r50.onnx"
    a1, a2 = embed(astronaut, backend="insightface"), embed(astronaut, backend="insightface")
    h = embed(hopper, backend="insightface")
    assert a1.shape == (512,) and abs(np.linalg.norm(a1) - 1) < 1e-5
    assert np.array_equal(a1, a2) and not np.allclose(a1, h)
    monkeypatch.setenv("INSIGHTFACE_ARCFACE", str(tmp_path / "missing.onnx"))
    with pytest.raises(BackendUnavailable, match="ArcFace model not found"):
        embed(astronaut, backend="insightface")
    load_arcface.cache_clear()


def test_a_face_the_segmentation_misses_keeps_its_background():
    """insightface ships a tight 112 px face crop in which the selfie segmentation finds nobody: the input view
    then keeps the photo (with a note) instead of becoming a white square; a normal portrait is unaffected."""
    from pathlib import Path

    import insightface

    from gen3dface.core.samples import sample_photo
    from gen3dface.faces.detect import BackgroundKeptNote, InputNote, MultipleFacesWarning, crop_face

    tight = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
    with pytest.warns(BackgroundKeptNote, match="background is kept"):
        _, _, crop = crop_face(tight, size=128)
    assert (crop.mask > 0.99).mean() > 0.15  # all of the photo is foreground (it was 0 everywhere)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackgroundKeptNote)
        _, _, crop = crop_face(sample_photo("astronaut"), size=128)
    assert 0.2 < crop.mask.mean() < 0.8  # the portrait's background is still removed
    assert issubclass(BackgroundKeptNote, InputNote) and issubclass(MultipleFacesWarning, InputNote)
