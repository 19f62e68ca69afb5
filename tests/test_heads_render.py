"""Procedural heads and the torch rasteriser: determinism, geometry, silhouettes, depth, faces, styles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.draw import polygon

from gen3dface.core.cameras import DEFAULT_RADIUS, orbit_cameras, synthesis_grid
from gen3dface.core.errors import InputError
from gen3dface.faces.detect import detect_faces
from gen3dface.synth.head_params import HAIR_STYLES, PARTS, sample_head_params
from gen3dface.synth.heads import build_head
from gen3dface.core.images import to_uint8
from gen3dface.synth.shading import STYLES
from gen3dface.synth.render import Mesh, render


@pytest.fixture(scope="module")
def heads():
    return {s: build_head(sample_head_params(s), resolution=64) for s in (0, 1, 2)}


def _silhouette(mesh: Mesh, cams, view: int) -> np.ndarray:
    """Union of every projected triangle, filled by skimage (pixel centres at integer + 0.5)."""
    uv, _ = cams[view].project(mesh.vertices)
    uv = uv.numpy() - 0.5
    mask = np.zeros((cams.height, cams.width), bool)
    for tri in uv[mesh.faces.numpy()]:
        rr, cc = polygon(tri[:, 1], tri[:, 0], shape=mask.shape)
        mask[rr, cc] = True
    return mask


def _ray_hit_z(mesh: Mesh) -> float:
    """Largest z where the ray x = y = 0 meets the mesh (a 2D point-in-triangle test in the xy-plane)."""
    v = mesh.vertices.double().numpy()[mesh.faces.numpy()]  # (F, 3, 3)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    d = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    w1 = ((0 - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (0 - y[:, 0])) / np.where(d == 0, 1, d)
    w2 = ((x[:, 1] - x[:, 0]) * (0 - y[:, 0]) - (0 - x[:, 0]) * (y[:, 1] - y[:, 0])) / np.where(d == 0, 1, d)
    w0 = 1 - w1 - w2
    hit = (d != 0) & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    return float((w0 * z[:, 0] + w1 * z[:, 1] + w2 * z[:, 2])[hit].max())


def test_params_and_mesh_are_deterministic_and_differ_between_seeds():
    a, b = (
        build_head(sample_head_params(11), resolution=48),
        build_head(sample_head_params(11), resolution=48),
    )
    assert sample_head_params(11) == sample_head_params(11)
    assert (
        torch.equal(a.vertices, b.vertices)
        and torch.equal(a.colors, b.colors)
        and torch.equal(a.faces, b.faces)
    )
    c = build_head(sample_head_params(12), resolution=48)
    assert sample_head_params(11) != sample_head_params(12)
    cams = orbit_cameras([0.0, 120.0], 0.0, image_size=64)
    ra, rb, rc = (render(m, cams)["rgb"] for m in (a, b, c))
    assert torch.equal(ra, rb)
    assert (ra - rc).abs().mean() > 0.02


def test_mesh_layout_fits_the_canonical_frame(heads):
    for h in heads.values():
        v = h.vertices
        assert v.dtype == torch.float32 and h.faces.dtype == torch.int64 and h.faces.shape[1] == 3
        assert float(v.abs().max()) <= 1.0
        assert h.colors.shape == v.shape and float(h.colors.min()) >= 0 and float(h.colors.max()) <= 1
        assert h.labels.shape == (len(v),) and int(h.labels.max()) < len(PARTS)
        face = v[h.labels != PARTS.index("hair")]
        depth = float(face[:, 2].max() - face[:, 2].min())
        assert 1.2 <= depth <= 1.5, depth  # nose tip to back of the skull
        nose_z = face[:, 2].argmax()
        assert abs(float(face[nose_z, 0])) < 0.05 and -0.45 < float(face[nose_z, 1]) < 0.0  # nose points +Z
    styles = {sample_head_params(s).hair_style for s in range(40)}
    assert styles == set(HAIR_STYLES)


def test_silhouette_matches_independent_polygon_fill(heads):
    cams = orbit_cameras([0.0, 90.0, -150.0], [0.0, 20.0, -40.0], image_size=96)
    out = render(heads[1], cams)
    for view in range(3):
        alpha = out["alpha"][0, view, 0].numpy() > 0.5
        ref = _silhouette(heads[1], cams, view)
        iou = (alpha & ref).sum() / (alpha | ref).sum()
        assert iou >= 0.95, (view, iou)


def test_centre_depth_is_the_face_surface(heads):
    cams = orbit_cameras([0.0], [0.0], image_size=129)  # pixel 64's centre is on the optical axis
    for h in heads.values():
        depth = float(render(h, cams)["depth"][0, 0, 0, 64, 64])
        z = _ray_hit_z(h)
        assert 0.5 < z < 0.8  # between the eyes, the face is well in front of the centre
        assert depth == pytest.approx(DEFAULT_RADIUS - z, abs=2e-3)
    out = render(heads[0], cams)
    assert torch.isinf(out["depth"][0, 0, 0, 0, 0]) and out["alpha"][0, 0, 0, 0, 0] == 0


def test_synthesis_grid_renders_every_view(heads):
    cams = synthesis_grid(image_size=48)
    out = render([heads[0], heads[2]], cams, ssaa=2)
    assert out["rgb"].shape == (2, 48, 3, 48, 48) and out["alpha"].shape == (2, 48, 1, 48, 48)
    assert out["depth"].shape == (2, 48, 1, 48, 48) and out["normals"].shape == (2, 48, 3, 48, 48)
    assert float(out["rgb"].min()) >= -1 and float(out["rgb"].max()) <= 1
    cover = out["alpha"].mean((2, 3, 4))
    assert bool((cover > 0.2).all()) and bool((cover < 0.8).all())
    inside = out["alpha"][:, :, 0] > 0.99
    d = out["depth"][:, :, 0][inside]
    reach = 3**0.5  # everything lies in the [-1, 1]^3 cube
    assert (
        bool(torch.isfinite(d).all())
        and DEFAULT_RADIUS - reach < float(d.min()) < float(d.max()) < DEFAULT_RADIUS + reach
    )
    n = out["normals"].permute(0, 1, 3, 4, 2)[inside]
    assert torch.allclose(n.norm(dim=-1), torch.ones(len(n)), atol=1e-3)
    single = render(heads[2], cams[:5], ssaa=2)["rgb"][0]
    assert torch.allclose(single, out["rgb"][1, :5], atol=1e-5)  # batching identities changes nothing


def test_frontal_parts_are_labelled(heads):
    parts = render(heads[0], orbit_cameras([0.0], [0.0], image_size=128))["parts"][0, 0]
    seen = {PARTS[i] for i in parts.unique().tolist() if i >= 0}
    assert {"skin", "eye", "lip", "brow"} <= seen


def test_frontal_renders_are_faces_and_backs_are_not():
    cams = orbit_cameras([0.0, 180.0], [0.0, 0.0], image_size=256)
    found_front, found_back = 0, 0
    seeds = (3, 4, 5, 6, 7)
    for s in seeds:
        img = to_uint8(render(build_head(sample_head_params(s)), cams, ssaa=2)["rgb"][0])
        found_front += len(detect_faces(img[0], "mediapipe")) > 0
        found_back += len(detect_faces(img[1], "mediapipe")) > 0
    assert found_front == len(seeds)
    assert found_back <= 1


def _style_stats(img: torch.Tensor, alpha: torch.Tensor) -> dict:
    """Foreground statistics of an rgb ``(3, H, W)`` render in [-1, 1]."""
    rgb = ((img + 1) / 2).permute(1, 2, 0)
    fg = alpha[0] > 0.99
    px = rgb[fg]
    chroma = px / px.sum(1, keepdim=True).clamp(min=1e-3)
    flat = (rgb[:, 1:] == rgb[:, :-1]).all(-1) & fg[:, 1:] & fg[:, :-1]
    return {
        "grey": float((px.max(1).values - px.min(1).values).mean()),
        "chroma_std": float(chroma.std(0).sum()),
        "flat": float(flat.sum() / fg.sum()),
        "mean": px.mean(0),
    }


def test_styles_differ_in_pixel_statistics():
    cams = orbit_cameras([0.0, 40.0], [0.0, 10.0], image_size=96)
    stats = {}
    for style in STYLES:
        out = render(build_head(sample_head_params(8, style), resolution=64), cams)
        stats[style] = _style_stats(out["rgb"][0, 0], out["alpha"][0, 0])
    assert stats["sketch"]["grey"] < 0.5 * stats["photo"]["grey"]  # pencil tones are nearly grey
    assert stats["clay"]["chroma_std"] < 0.6 * stats["photo"]["chroma_std"]  # one clay hue everywhere
    assert stats["toon"]["flat"] > stats["photo"]["flat"] + 0.2  # flat cel shading
    for a in STYLES:
        for b in STYLES:
            if a < b:
                assert (stats[a]["mean"] - stats[b]["mean"]).abs().sum() > 0.1, (a, b)


def test_bad_arguments_raise_input_errors(heads):
    with pytest.raises(InputError, match="style"):
        sample_head_params(0, "oil-painting")
    with pytest.raises(InputError, match="ssaa"):
        render(heads[0], orbit_cameras([0.0], 0.0, image_size=32), ssaa=5)
    with pytest.raises(InputError, match="resolution"):
        build_head(sample_head_params(0), resolution=8)
    with pytest.raises(InputError, match="meshes"):
        render([heads[0], heads[1]], orbit_cameras(torch.zeros(3, 2), 0.0, image_size=32))


def test_square_binning_rasterises_the_same_pixels():
    from gen3dface.core.cameras import orbit_cameras
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.head_params import sample_head_params
    from gen3dface.synth.raster import rasterize

    mesh = build_head(sample_head_params(3), 48)
    cams = orbit_cameras([0.0, 70.0, 180.0], [10.0, -20.0, 35.0], image_size=96)
    uv, z = cams.project(mesh.vertices.expand(3, -1, -1))
    screen = torch.cat([uv, z[..., None]], -1).reshape(-1, 3)
    n = len(mesh.vertices)
    tris = torch.cat([mesh.faces + v * n for v in range(3)])
    slots = torch.arange(3).repeat_interleave(len(mesh.faces))
    fine = rasterize(screen, tris, slots, 3, 96, 96, square_bins=False)
    square = rasterize(screen, tris, slots, 3, 96, 96, square_bins=True)
    assert (fine >= 0).sum() > 1000 and torch.equal(fine, square)
