"""gen3dface.mesh.deca: DECA's coarse encoder (checkpoint layout, crop, codes) and the ``deca_model=`` mesh path.

The checkpoint here has DECA's exact key names and shapes with random weights; its last Linear layer is
zero, so the encoder returns its bias whatever the photo, which lets the tests choose DECA's codes.
"""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gen3dface.mesh import deca as d
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.faces.detect import find_face
from gen3dface.core.images import as_photo
from gen3dface.mesh.estimate import estimate_mesh
from gen3dface.mesh.facemesh import face_template
from gen3dface.mesh.flame import FlameLayer
from gen3dface.mesh.synthetic_eval import render_synthetic_view

FLAME_N = 5023  # vertices of the flame_file fixture (tests/conftest.py), as in FLAME 2020


def codes(rotvec=(0.0, 0.0, 0.0), cam=(8.0, 0.0, 0.0), jaw=(0.05, 0.0, 0.0), seed=0) -> torch.Tensor:
    """A DECA code vector ``(236,)``: small random shape/exp/tex/light, the given global rotation, jaw, cam."""
    rng = np.random.default_rng(seed)
    v = 0.3 * rng.normal(size=d.N_PARAMS)
    v[200:203], v[203:206], v[206:209] = rotvec, jaw, cam  # shape 100, tex 50, exp 50 come first
    return torch.tensor(v, dtype=torch.float32)


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """DECA-shaped ``E_flame`` state with random weights and BatchNorm statistics, last layer zero."""
    torch.manual_seed(seed)
    state = d.DecaEncoder().state_dict()
    for k, v in state.items():
        if k.endswith("running_var"):
            v.uniform_(0.5, 1.5)
        elif k.endswith("running_mean") or k.endswith(".bias"):
            v.normal_(0.0, 0.05)
    state["layers.2.weight"].zero_()
    state["layers.2.bias"].copy_(codes())
    return state


@pytest.fixture(scope="module")
def deca_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("deca") / "deca_model.tar"
    torch.save({"E_flame": random_state(), "opt": {"lr": 1e-4}}, path)
    return path


@pytest.fixture(scope="module")
def layer(flame_file):
    return FlameLayer.from_file(flame_file, trust_pickle=True)


@pytest.fixture(scope="module")
def encoder(deca_file):
    return d.load_deca(deca_file)


def with_codes(encoder: d.DecaEncoder, vec: torch.Tensor) -> d.DecaEncoder:
    with torch.no_grad():
        encoder.layers[2].bias.copy_(vec)
    return encoder


# ------------------------------------------------------------------------------------------- layout
def test_checkpoint_layout_matches_deca():
    """Names and shapes from DECA's decalib/models/encoders.py (ResnetEncoder: ``encoder`` + ``layers``),
    decalib/models/resnet.py (torchvision ResNet-50 names, stride on the 3x3 conv) and
    decalib/utils/config.py (236 = 100 + 50 + 50 + 6 + 3 + 27)."""
    model = d.DecaEncoder()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == 322 and sum(p.numel() for p in model.parameters()) == 25_848_108
    assert shapes["encoder.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["encoder.layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["encoder.layer2.0.conv2.weight"] == (128, 128, 3, 3)
    assert shapes["encoder.layer4.2.bn3.running_var"] == (2048,)
    assert shapes["layers.0.weight"] == (1024, 2048) and shapes["layers.2.weight"] == (236, 1024)
    assert model.encoder.layer2[0].conv2.stride == (2, 2) and model.encoder.layer2[0].conv1.stride == (1, 1)
    assert list(d.PARAM_SIZES) == ["shape", "tex", "exp", "pose", "cam", "light"] and d.N_PARAMS == 236
    out = model.eval()(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 236) and torch.isfinite(out).all()


def test_decode_params_splits_in_deca_order():
    vec = torch.arange(236, dtype=torch.float32)
    c = d.decode_params(vec)
    assert {k: tuple(v.shape) for k, v in c.items()} == {
        "shape": (1, 100),
        "tex": (1, 50),
        "exp": (1, 50),
        "pose": (1, 6),
        "cam": (1, 3),
        "light": (1, 9, 3),
    }
    assert (
        c["exp"][0, 0] == 150
        and c["pose"][0, 0] == 200
        and c["cam"][0, 0] == 206
        and c["light"][0, 0, 0] == 209
    )
    with pytest.raises(InputError, match="236"):
        d.decode_params(torch.zeros(3, 235))


def test_load_strict_and_equal(deca_file, encoder):
    state = torch.load(deca_file, weights_only=True)["E_flame"]
    assert set(encoder.state_dict()) == set(state)
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in state.items())
    assert not encoder.training and all(p.dtype == torch.float32 for p in encoder.parameters())


def test_load_without_batch_counters_and_in_half_precision(tmp_path):
    state = {
        k: (v.half() if v.is_floating_point() else v)
        for k, v in random_state(1).items()
        if not k.endswith("num_batches_tracked")
    }
    torch.save({"E_flame": state}, tmp_path / "old.tar")
    enc = d.load_deca(tmp_path / "old.tar")
    assert enc.encoder.conv1.weight.dtype == torch.float32
    assert torch.equal(enc.encoder.conv1.weight, state["encoder.conv1.weight"].float())


def test_load_errors(tmp_path, astronaut_path):
    with pytest.raises(BackendUnavailable, match="not found"):
        d.load_deca(tmp_path / "deca_model.tar")
    cases = {
        "text.tar": ("text", "not a DECA checkpoint"),
        "photo.tar": ("photo", "not a DECA checkpoint"),
        "other.tar": ({"model": {"w": torch.zeros(2)}}, "no 'E_flame'"),
        "partial.tar": ({"E_flame": {"encoder.conv1.weight": torch.zeros(64, 3, 3, 3)}}, "wrong shape"),
        "extra.tar": ({"E_flame": {"encoder.fc.weight": torch.zeros(1000, 2048)}}, "unexpected"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content == "text":
            path.write_text("not a checkpoint\n")
        elif content == "photo":
            path.write_bytes(astronaut_path.read_bytes())
        else:
            torch.save(content, path)
        with pytest.raises(InputError, match=message) as info:
            d.load_deca(path)
        assert "\n" not in str(info.value), name


# ------------------------------------------------------------------------------------------- preprocessing
def test_crop_follows_decas_68_point_rule(astronaut_path, hopper_path):
    for path in (astronaut_path, hopper_path):
        (c_mp, s_mp), (c_dl, s_dl) = d.crop_square(find_face(path)), d.crop_square(find_face(path, "dlib"))
        # measured: side 0.8 and 3.8 %, centre 0.2 and 2.0 % of the side
        assert abs(s_mp - s_dl) < 0.05 * s_dl and np.abs(c_mp - c_dl).max() < 0.03 * s_dl
        box = find_face(path, "dlib").landmarks[:, :2]
        assert s_dl == int(1.25 * 1.1 * (np.ptp(box[:, 0]) + np.ptp(box[:, 1])) / 2)
    images, M = d.preprocess(astronaut_path)
    assert images.shape == (1, 3, 224, 224) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.1
    centre, side = d.crop_square(find_face(astronaut_path))
    assert np.allclose(M[:, :2] @ (centre - 0.5) + M[:, 2], 111.5) and M[0, 0] == pytest.approx(223 / side)
    # the crop is the photo's pixels: sample one crop pixel back in the photo
    rgb = as_photo(astronaut_path).rgb
    x, y = np.linalg.solve(M[:, :2], np.array([100.0, 120.0]) - M[:, 2])
    assert np.allclose(images[0, :, 120, 100].numpy() * 255, rgb[int(round(y)), int(round(x))], atol=25)


# ------------------------------------------------------------------------------------------- FLAME, pose, camera
@pytest.mark.parametrize(
    "rotvec, expected",
    [
        ((0, math.radians(25), 0), (-25, 0, 0)),  # about +Y: the face looks to the image's right, yaw < 0
        ((math.radians(20), 0, 0), (0, 20, 0)),  # chin down: the camera looks down on the face, pitch > 0
        ((0, 0, math.radians(15)), (0, 0, 15)),  # counter-clockwise in the image: roll > 0
    ],
)
def test_global_rotation_gives_the_pose(layer, rotvec, expected):
    placed = d.flame_from_codes(d.decode_params(codes(rotvec)), layer)
    assert [placed["pose"][k] for k in ("yaw", "pitch", "roll")] == pytest.approx(expected, abs=1e-3)
    # the vertices carry no global rotation: they equal the unrotated head's, scaled and shifted
    unrotated = d.flame_from_codes(d.decode_params(codes()), layer)["vertices"]
    assert np.allclose(placed["vertices"], unrotated, atol=1e-6)
    width = np.ptp(layer.v_template[:, 0].numpy())
    assert placed["scale"] == pytest.approx(2 * 0.53 / width)
    assert np.allclose(
        placed["vertices"][int(layer.v_template[:, 2].argmax())], face_template()[1], atol=1e-5
    )


def test_camera_reproduces_decas_projection(layer, encoder, astronaut_path):
    vec = codes(Rotation.from_euler("yxz", [20, -10, 5], degrees=True).as_rotvec(), cam=(7.5, 0.01, -0.02))
    with_codes(encoder, vec)
    _, M = d.preprocess(astronaut_path)
    posed = d.flame_from_codes(d.decode_params(vec), layer)["posed"]
    target = d.deca_projection(posed, vec[206:209].numpy(), M)
    face_px = np.ptp(target, axis=0).max()
    for fov, tol in ((1.0, 0.005), (30.0, 0.15)):  # near-orthographic: exact; 30 degrees: perspective
        mesh = d.deca_mesh(astronaut_path, layer, encoder, fov_deg=fov)
        uv, depth = mesh.camera.project(torch.tensor(mesh.vertices, dtype=torch.float64))
        assert (depth > 0).all()
        assert np.abs(uv.numpy() - target).max() < tol * face_px, fov
        assert np.abs(uv.numpy().mean(0) - target.mean(0)).max() < 0.02 * face_px


def test_pose_agrees_with_mediapipe_on_a_turned_render(layer, encoder):
    """A render from azimuth 30 (mediapipe: yaw ~ +30). DECA codes turning FLAME about -Y by 30 degrees
    (face towards the image's left) must read as yaw +30 and agree with mediapipe; the opposite turn not."""
    img, _, _ = render_synthetic_view(1, azimuth=30, image_size=256)
    observed = estimate_mesh(img)
    agree = d.deca_mesh(img, layer, with_codes(encoder, codes((0, math.radians(-30), 0)))).pose
    assert agree["yaw"] == pytest.approx(30, abs=1e-3) and observed.pose["yaw"] == pytest.approx(30, abs=6)
    conf_agree = d.deca_mesh(img, layer, encoder).confidence
    conf_opposite = d.deca_mesh(img, layer, with_codes(encoder, codes((0, math.radians(30), 0)))).confidence
    assert conf_agree > 0.5 and conf_opposite < 0.05 * conf_agree


# ------------------------------------------------------------------------------------------- estimate_mesh
def test_estimate_mesh_with_deca_model(flame_file, deca_file, astronaut_path, tmp_path):
    mesh = estimate_mesh(
        astronaut_path, "flame", flame_model=flame_file, trust_pickle=True, deca_model=deca_file
    )
    assert (
        mesh.backend == "deca" and mesh.vertices.shape == (FLAME_N, 3) and mesh.vertices.dtype == np.float32
    )
    assert np.isfinite(mesh.vertices).all() and mesh.faces.shape == (9976, 3) and 0 <= mesh.confidence <= 1
    assert np.ptp(mesh.vertices[:, 0]) == pytest.approx(2 * 0.53, rel=0.1)  # canonical head width
    assert (
        set(mesh.pose) == {"yaw", "pitch", "roll"} and abs(mesh.pose["yaw"]) < 1e-3
    )  # the codes' zero rotation
    assert mesh.to_dict()["backend"] == "deca" and mesh.camera is not None
    (tmp_path / "junk.tar").write_text("junk")
    with pytest.raises(InputError, match="not a DECA checkpoint"):
        estimate_mesh(
            astronaut_path,
            "flame",
            flame_model=flame_file,
            trust_pickle=True,
            deca_model=tmp_path / "junk.tar",
        )
    with pytest.raises(BackendUnavailable, match="deca_model.tar"):
        estimate_mesh(
            astronaut_path,
            "flame",
            flame_model=flame_file,
            trust_pickle=True,
            deca_model=tmp_path / "deca_model.tar",
        )


def test_cli_mesh_with_deca_model(flame_file, deca_file, astronaut_path, tmp_path, capsys):
    from gen3dface.app.cli import main

    out = tmp_path / "deca.obj"
    args = [
        "mesh",
        str(astronaut_path),
        "-o",
        str(out),
        "--backend",
        "flame",
        "--flame-model",
        str(flame_file),
        "--trust-pickle",
    ]
    assert main([*args, "--deca-model", str(deca_file)]) == 0 and out.exists()
    missing = tmp_path / "none.obj"
    assert main([*args[:3], str(missing), *args[4:], "--deca-model", str(tmp_path / "absent.tar")]) == 2
    assert not missing.exists() and "deca" in capsys.readouterr().err.lower()
