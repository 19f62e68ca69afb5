"""gen3dface.mesh: the face geometry prior (alignment and pose, mediapipe mesh, FLAME layer, ground truth, the
synthetic measurement) and `gen3dface mesh`; DECA is in tests/test_deca.py."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from gen3dface.core.cameras import orbit_cameras
from gen3dface.app.cli import main
from gen3dface.core.errors import BackendUnavailable, InputError, NoFaceError
from gen3dface.faces.detect import MultipleFacesWarning
from gen3dface.mesh.align import pose_from_rotation, robust_umeyama, rotation_from_pose, umeyama
from gen3dface.mesh.estimate import estimate_mesh
from gen3dface.mesh.facemesh import MESH_POINTS, FaceMesh, face_template, tesselation_triangles
from gen3dface.mesh.flame import FlameLayer, fit_flame, load_flame
from gen3dface.mesh.synthetic_eval import evaluate_on_synthetic, format_table, render_synthetic_view


# ------------------------------------------------------------------------------------------- tools
def test_tesselation_is_a_manifold_face_with_three_holes():
    tri = tesselation_triangles()
    assert tri.shape == (852, 3) and tri.dtype == np.int64 and tri.max() == MESH_POINTS - 1
    edges = np.sort(tri[:, [[0, 1], [1, 2], [0, 2]]], axis=-1).reshape(-1, 2)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 2
    m = FaceMesh(face_template(), tri, {}, 1.0, "x").to_trimesh()
    assert m.is_winding_consistent and m.euler_number == -2  # a disk with eyes and mouth open
    assert (m.face_normals[:, 2] > 0).mean() > 0.95  # outward: the face looks along +Z


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    R = Rotation.from_euler("xyz", [20, -35, 10], degrees=True).as_matrix()
    dst = 2.5 * src @ R.T + np.array([0.3, -1.0, 4.0])
    s, R_got, t = umeyama(src, dst)
    assert (
        s == pytest.approx(2.5, abs=1e-9)
        and np.allclose(R_got, R, atol=1e-9)
        and np.allclose(t, [0.3, -1, 4])
    )
    dst[:5] += 3.0  # outliers: the robust fit ignores them
    s, R_got, t, w = robust_umeyama(src, dst)
    assert (
        s == pytest.approx(2.5, abs=1e-2) and np.allclose(R_got, R, atol=1e-2) and w[:5].max() < w[5:].min()
    )


def test_pose_convention_matches_orbit_cameras():
    for az, el in [(0, 0), (30, 0), (-50, 20), (120, -40)]:
        R = orbit_cameras([az], el)[0].c2w[:3, :3].double().numpy()
        assert np.allclose(rotation_from_pose(az, el, 0), R, atol=1e-6)
        pose = pose_from_rotation(R)
        assert pose["yaw"] == pytest.approx(az, abs=1e-4) and pose["pitch"] == pytest.approx(el, abs=1e-4)
    pose = pose_from_rotation(rotation_from_pose(-70, 35, 25))
    assert [pose[k] for k in ("yaw", "pitch", "roll")] == pytest.approx([-70, 35, 25], abs=1e-6)


# ------------------------------------------------------------------------------------------- mediapipe
@pytest.mark.parametrize("name", ["astronaut_path", "hopper_path"])
def test_mediapipe_mesh_on_sample_photos(name, request):
    mesh = estimate_mesh(request.getfixturevalue(name))
    assert (
        mesh.vertices.shape == (468, 3) and mesh.vertices.dtype == np.float32 and mesh.faces.shape == (852, 3)
    )
    assert np.abs(mesh.vertices).max() < 1 and mesh.vertices[:, 2].min() > 0  # the face, in front
    assert 0.3 < mesh.confidence <= 1 and abs(mesh.pose["yaw"]) < 20 and abs(mesh.pose["roll"]) < 10
    # the estimated camera puts the mesh back onto the photo's landmarks
    from gen3dface.faces.detect import find_face

    uv, depth = mesh.camera.project(torch.tensor(mesh.vertices))
    assert (depth > 0).all()
    assert np.abs(uv.numpy() - find_face(request.getfixturevalue(name)).landmarks[:468, :2]).max() < 0.05


def test_pose_signs_on_renders():
    img, _, _ = render_synthetic_view(1, azimuth=30, image_size=256)
    assert estimate_mesh(img).pose["yaw"] == pytest.approx(30, abs=6)
    img, _, _ = render_synthetic_view(1, azimuth=0, image_size=256)
    rolled = np.asarray(Image.fromarray(img).rotate(15, fillcolor=(255, 255, 255)))  # counter-clockwise
    assert estimate_mesh(rolled).pose["roll"] == pytest.approx(15, abs=4)


def test_synthetic_measurement_threshold():
    r = evaluate_on_synthetic(
        n_identities=2, azimuths=(-40, 0, 40), elevations=(0,), image_size=256, seed=100
    )
    o = r["overall"]
    assert o["n"] == 6 and o["missed"] == 0
    assert o["raw_err"] < 0.045 and o["shape_err"] < 0.03  # measured ~0.027 and ~0.018 head widths
    assert o["yaw_err"] < 8 and o["roll_err"] < 5  # measured ~2 and ~1 degrees
    assert "|az| <= 20" in format_table(r)


def test_hard_inputs_fail_clearly_or_work(astronaut, astronaut_path, odd_inputs):
    tiny = np.asarray(Image.fromarray(astronaut).resize((40, 40)))
    with pytest.raises(NoFaceError, match="no face found"):
        estimate_mesh(tiny)
    with pytest.warns(MultipleFacesWarning):
        estimate_mesh(odd_inputs["several_faces"])
    blocked = astronaut.copy()
    blocked[90:260, 120:330] = 0  # eyes to mouth covered
    try:
        mesh = estimate_mesh(blocked)
        assert 0 <= mesh.confidence <= 1
    except NoFaceError as e:
        assert "\n" not in str(e)


# ------------------------------------------------------------------------------------------- ground truth
def test_ground_truth_backend():
    cam = orbit_cameras([25.0], -10.0)[0]
    mesh = estimate_mesh(None, "ground_truth", head=3, camera=cam)
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.head_params import sample_head_params

    assert np.allclose(mesh.vertices, build_head(sample_head_params(3)).vertices.numpy())
    assert mesh.pose["yaw"] == pytest.approx(25, abs=1e-3) and mesh.pose["pitch"] == pytest.approx(
        -10, abs=1e-3
    )
    assert mesh.confidence == 1.0
    with pytest.raises(InputError, match="head="):
        estimate_mesh(None, "ground_truth")


# ------------------------------------------------------------------------------------------- FLAME
N, J, F = 5023, 5, 9976


def test_flame_refuses_untrusted_and_missing(flame_file, tmp_path):
    with pytest.raises(BackendUnavailable, match="trust_pickle"):
        load_flame(flame_file)
    with pytest.raises(BackendUnavailable, match="flame.is.tue.mpg.de"):
        load_flame(tmp_path / "absent.pkl", trust_pickle=True)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    with pytest.raises(InputError, match="refusing"):
        load_flame(evil, trust_pickle=True)
    assert not (tmp_path / "pwned").exists()


def test_flame_forward_pass(flame_file):
    layer = FlameLayer.from_file(flame_file, trust_pickle=True)
    assert layer.n_shape == 300 and layer.n_expression == 100 and layer.faces.shape == (F, 3)
    rest = layer()[0]
    assert torch.allclose(rest, layer.v_template, atol=1e-6)
    shape = torch.zeros(1, 10)
    shape[0, 3] = 2.0
    assert torch.allclose(layer(shape=shape)[0], layer.v_template + 2.0 * layer.shapedirs[:, :, 3], atol=1e-5)
    # a root rotation alone moves every vertex rigidly about the root joint (no pose correctives)
    pose = torch.zeros(1, 3 * J)
    pose[0, :3] = torch.tensor([0.1, 0.4, -0.2])
    R = torch.tensor(Rotation.from_rotvec([0.1, 0.4, -0.2]).as_matrix(), dtype=torch.float32)
    j0 = layer.J_regressor[0] @ layer.v_template
    assert torch.allclose(layer(pose=pose)[0], (layer.v_template - j0) @ R.T + j0, atol=1e-5)


def test_flame_backend_fits_the_mediapipe_mesh(flame_file, astronaut_path, tmp_path):
    mesh = estimate_mesh(astronaut_path, "flame", flame_model=flame_file, trust_pickle=True, fit_steps=40)
    assert mesh.vertices.shape == (N, 3) and np.isfinite(mesh.vertices).all() and mesh.backend == "flame"
    assert 0 <= mesh.confidence <= 1
    observed = estimate_mesh(astronaut_path)
    _, info = fit_flame(FlameLayer.from_file(flame_file, trust_pickle=True), observed.vertices, steps=40)
    assert info["loss"][-1] < 0.5 * info["loss"][0]
    with pytest.raises(
        BackendUnavailable, match="deca_model.tar"
    ):  # DECA's encoder is wired: tests/test_deca.py
        estimate_mesh(
            astronaut_path,
            "flame",
            flame_model=flame_file,
            trust_pickle=True,
            deca_model=tmp_path / "deca_model.tar",
        )
    with pytest.raises(BackendUnavailable, match="GEN3DFACE_FLAME_MODEL"):
        estimate_mesh(astronaut_path, "flame")


# ------------------------------------------------------------------------------------------- saving and CLI
@pytest.mark.parametrize("ext", [".obj", ".ply", ".glb"])
def test_save_formats(astronaut_path, tmp_path, ext):
    import trimesh

    mesh = estimate_mesh(astronaut_path)
    path = mesh.save(tmp_path / f"face{ext}")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.vertices) == 468 and len(loaded.faces) == 852
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"face{ext}"]  # no temporary left behind


def test_cli_mesh_writes_mesh_and_json(astronaut_path, tmp_path, capsys):
    assert main(["mesh", str(astronaut_path), "-o", str(tmp_path / "a.ply")]) == 0
    rec = json.loads((tmp_path / "a.json").read_text())
    assert set(rec["pose_deg"]) == {"yaw", "pitch", "roll"} and 0 < rec["confidence"] <= 1
    assert rec["n_vertices"] == 468 and (tmp_path / "a.ply").stat().st_size > 1000


@pytest.mark.parametrize("kind", ["missing", "text_as_jpg", "no_face", "bad_extension", "untrusted_flame"])
def test_cli_mesh_bad_inputs(kind, bad_inputs, astronaut_path, flame_file, tmp_path, capsys):
    out = tmp_path / "out" / ("face.stl" if kind == "bad_extension" else "face.obj")
    photo = astronaut_path if kind in ("bad_extension", "untrusted_flame") else bad_inputs[kind]
    extra = ["--backend", "flame", "--flame-model", str(flame_file)] if kind == "untrusted_flame" else []
    assert main(["mesh", str(photo), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gen3dface: error: "), err
    assert not out.parent.exists() or not any(out.parent.iterdir())
