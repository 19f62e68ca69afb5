"""gen3dface.recon.photo: the input photo painted onto a reconstructed mesh (depth test, seams, files)."""

import json

import numpy as np
import pytest
import torch
import trimesh

from gen3dface.core.cameras import Cameras, orbit_cameras
from gen3dface.core.errors import InputError
from gen3dface.recon.photo import (
    PHOTO_CAMERA_FILE,
    PHOTO_FILE,
    PhotoView,
    load_photo_view,
    paint_from_photo,
    save_photo_view,
)

SIZE = 160
BIG, SMALL, SMALL_AT = 0.8, 0.15, np.array([0.25, 0.1, 1.1])  # a head-sized sphere, a small one in front
GREY = 128


def pattern(p: np.ndarray) -> np.ndarray:
    """A colour ``(..., 3)`` in [0.1, 0.9] for each head-frame point ``(..., 3)``, about one period per unit."""
    k = 6.0
    x, y = p[..., 0], p[..., 1]
    return np.stack(
        [0.5 + 0.4 * np.sin(k * x), 0.5 + 0.4 * np.sin(k * y), 0.5 + 0.4 * np.cos(k * (x + y))], -1
    )


def ray_hits(origin: np.ndarray, dirs: np.ndarray, centre, radius: float) -> np.ndarray:
    """Distance along unit rays to a sphere's near side (``inf`` for a miss)."""
    oc = origin - centre
    b = (oc * dirs).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius**2)
    return np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)


def make_scene():
    """Grey spheres (a mesh) and an exact ray-traced "photo" of them painted with :func:`pattern`."""
    cam = orbit_cameras([20.0], 10.0, image_size=SIZE)[0]
    o, d = (x.reshape(-1, 3).double().numpy() for x in cam.rays())
    t = np.minimum(ray_hits(o, d, np.zeros(3), BIG), ray_hits(o, d, SMALL_AT, SMALL))
    hit = np.isfinite(t)
    p = o + d * np.where(hit, t, 0)[:, None]
    img = np.where(hit[:, None], pattern(p), 1.0).reshape(SIZE, SIZE, 3)
    view = PhotoView((img * 255 + 0.5).astype(np.uint8), hit.reshape(SIZE, SIZE).astype(np.float32), cam)
    big = trimesh.creation.icosphere(subdivisions=4, radius=BIG)
    small = trimesh.creation.icosphere(subdivisions=3, radius=SMALL)
    small.apply_translation(SMALL_AT)
    both = trimesh.util.concatenate([big, small])
    grey = np.full((len(both.vertices), 4), [GREY, GREY, GREY, 255], np.uint8)
    mesh = trimesh.Trimesh(both.vertices, both.faces, vertex_colors=grey, process=False)
    return mesh, view, len(big.vertices)


@pytest.fixture(scope="module")
def scene():
    return make_scene()


def classify(vertices: np.ndarray, n_big: int, camera: Cameras):
    """Big-sphere vertices that face the camera squarely, away from the small sphere's shadow; on the back;
    and well inside the small sphere's shadow (facing the camera but hidden)."""
    v = vertices[:n_big]
    eye = camera.centers.numpy().astype(np.float64)
    to_eye = (eye - v) / np.linalg.norm(eye - v, axis=1, keepdims=True)
    cos = (v / np.linalg.norm(v, axis=1, keepdims=True) * to_eye).sum(1)
    oc = eye - SMALL_AT
    b = (oc * -to_eye).sum(1)
    behind = lambda r: b * b - ((oc * oc).sum() - r**2) > 0  # noqa: E731  (the ray to v meets the sphere)
    return (cos > 0.8) & ~behind(1.6 * SMALL), cos < -0.05, behind(0.8 * SMALL) & (cos > 0)


@pytest.mark.parametrize("max_edge_px", [None, 2.0])
def test_the_photo_colours_what_it_sees_and_nothing_else(scene, max_edge_px):
    mesh, view, n_big = scene
    out, record = paint_from_photo(mesh, view, max_edge_px=max_edge_px)
    v = np.asarray(out.vertices)
    rgb = np.asarray(out.visual.vertex_colors)[:, :3] / 255.0
    assert np.allclose(v[: len(mesh.vertices)], mesh.vertices)  # the old vertices first, unmoved
    assert record["used"] and record["vertices_coloured"] > 0 and record["size"] == [SIZE, SIZE]
    front, back, hidden = classify(v, n_big, view.camera)
    if max_edge_px is not None:  # refined where the photo sees the sphere, still closed
        assert record["vertices_added"] > 0 and out.is_watertight and out.volume > 0
        extra = (np.arange(len(v)) >= len(mesh.vertices)) & (np.abs(np.linalg.norm(v, axis=1) - BIG) < 0.03)
        f2, b2, h2 = classify(np.where(extra[:, None], v, np.nan), len(v), view.camera)
        assert f2.sum() > 100  # new vertices in front: they take the photo's colours too
        new_err = np.abs(rgb[f2] - pattern(v[f2])).max(1)
        assert new_err.mean() < 0.01, new_err.mean()
    assert front.sum() > 50 and back.sum() > 500 and hidden.sum() > 10
    err = np.abs(rgb[:n_big][front] - pattern(v[:n_big][front])).max(1)
    assert err.mean() < 0.02 and np.percentile(err, 95) < 0.06, (err.mean(), np.percentile(err, 95))
    # the grey mesh is far from the pattern, so an unpainted front would fail above; back and hidden stay grey
    assert np.abs(rgb[:n_big][back] - GREY / 255).max() < 1e-6
    assert np.abs(rgb[:n_big][hidden] - GREY / 255).max() < 1e-6


def largest_step(mesh) -> float:
    """The largest change, along one edge of ``mesh``, of the photo's share of the vertex colour (0 = grey,
    1 = the pattern), over edges whose ends are both far from grey in the pattern."""
    rgb = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(float)
    far = np.abs(pattern(np.asarray(mesh.vertices)) * 255 - GREY).max(1)
    share = np.abs(rgb - GREY).max(1) / np.maximum(far, 1)
    e = np.asarray(mesh.edges_unique)
    both = (far[e[:, 0]] > 40) & (far[e[:, 1]] > 40)
    return float(np.abs(share[e[:, 0]] - share[e[:, 1]])[both].max())


def test_the_blend_has_no_seam(scene):
    mesh, view, _ = scene
    # the photo fades in over the sphere's edge and around the small sphere's contour: no edge jumps from
    # grey to the pattern (without the feather, edges at the small sphere's contour do)
    assert largest_step(paint_from_photo(mesh, view)[0]) < 0.5
    assert largest_step(paint_from_photo(mesh, view, feather=0.0)[0]) > 0.9
    half = paint_from_photo(mesh, view, strength=0.5)[0]
    assert np.abs(np.asarray(half.visual.vertex_colors)[:, :3].astype(float) - GREY).max() < 0.55 * 128


def test_photo_view_files_round_trip_and_load_views_reads_them(scene, tmp_path):
    from gen3dface.core.images import save_png
    from gen3dface.recon.views import load_views

    _, view, _ = scene
    ring = orbit_cameras(torch.tensor([0.0, 90.0, 180.0, 270.0]), 0.0, image_size=32)
    for k in range(4):
        save_png(tmp_path / f"view_{k:02d}.png", np.full((32, 32, 3), 200, np.uint8))
    ring.save(tmp_path / "cameras.json")
    assert load_views(tmp_path).photo is None
    save_photo_view(view, tmp_path)
    back = load_views(tmp_path).photo
    assert np.array_equal(back.image, view.image)
    assert np.abs(back.mask - view.mask).max() <= 1 / 255
    assert torch.allclose(back.camera.K, view.camera.K) and torch.allclose(back.camera.c2w, view.camera.c2w)
    (tmp_path / PHOTO_FILE).unlink()
    with pytest.raises(InputError, match=PHOTO_CAMERA_FILE):
        load_photo_view(tmp_path)
    with pytest.raises(InputError, match="camera"):
        PhotoView(view.image[:, :100], view.mask[:, :100], view.camera)


def test_generate_mesh_and_reconstruct_use_the_photo(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import gen3dface.recon.config as rc
    from gen3dface.app.cli import main
    from gen3dface.core.samples import sample_photo

    real = rc.config_for
    quick = dict(
        grid_sizes=(16, 24), iters=(2, 2), rays_per_batch=256, mesh_resolution=48
    )  # seconds, not minutes
    monkeypatch.setattr(rc, "config_for", lambda profile="smoke", **kw: real(profile, **{**quick, **kw}))
    out = tmp_path / "gen"
    args = [
        "generate",
        str(sample_photo("grace_hopper")),
        "-o",
        str(out),
        "--checkpoint",
        str(tiny_checkpoint),
    ]
    assert main([*args, "--steps", "2", "--quiet", "--mesh"]) == 0
    assert {PHOTO_FILE, "input_photo_mask.png", PHOTO_CAMERA_FILE, "head.glb"} <= {
        p.name for p in out.iterdir()
    }
    rec = json.loads((out / "generate.json").read_text())["input_photo"]
    assert rec["written"] and rec["on_mesh"]["used"] and rec["on_mesh"]["vertices_coloured"] > 0
    photo = load_photo_view(out)
    assert photo.image.shape == (512, 512, 3) and 0.1 < photo.mask.mean() < 0.95
    # the photo's camera sees the face mesh that was estimated from it where the photo shows that face
    face = trimesh.load(out / "input_mesh.obj", process=False)
    uv, z = photo.camera.project(torch.as_tensor(np.asarray(face.vertices), dtype=torch.float32))
    ij = uv.numpy().astype(int)
    assert (z > 0).all() and ((ij >= 0) & (ij < 512)).all()
    assert photo.mask[ij[:, 1], ij[:, 0]].mean() > 0.9
    capsys.readouterr()
    summary = tmp_path / "recon.json"
    assert (
        main(["reconstruct", str(out), "-o", str(tmp_path / "h.glb"), "--quiet", "--summary", str(summary)])
        == 0
    )
    assert "coloured from the input photo" in capsys.readouterr().out
    assert json.loads(summary.read_text())["photo"]["used"]
    assert (
        main(
            [
                "reconstruct",
                str(out),
                "-o",
                str(tmp_path / "h.ply"),
                "--quiet",
                "--no-photo",
                "--summary",
                str(summary),
            ]
        )
        == 0
    )
    assert json.loads(summary.read_text())["photo"] == {"used": False}
