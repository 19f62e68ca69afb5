"""How good a reconstruction is: Chamfer distance of its mesh to the true one (the PSNR of its re-rendered views
is :func:`gen3dface.evaluation.image_metrics.psnr` with ``pooled=True``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gen3dface.core.cameras import Cameras


def as_trimesh(mesh):
    """``mesh`` as a ``trimesh.Trimesh``: a trimesh as it is, a mesh file (path) read, or anything with
    ``vertices (N, 3)`` and ``faces (F, 3)`` (e.g. :class:`gen3dface.synth.render.Mesh`)."""
    import trimesh

    if isinstance(mesh, trimesh.Trimesh):
        return mesh
    if isinstance(mesh, (str, Path)):
        return trimesh.load(mesh, force="mesh", process=False)
    v, f = mesh.vertices, mesh.faces  # gen3dface.synth.render.Mesh
    v = v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    f = f.cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
    return trimesh.Trimesh(v, f, process=False)


def _visible_points(mesh, points: np.ndarray, cameras: Cameras, tol: float) -> np.ndarray:
    """Which ``points (P, 3)`` of ``mesh`` some camera sees (depth test against the mesh rendered there)."""
    from gen3dface.synth.render import Mesh, render

    tm = as_trimesh(mesh)
    m = Mesh(
        torch.as_tensor(tm.vertices, dtype=torch.float32),
        torch.as_tensor(tm.faces, dtype=torch.int64),
        torch.full((len(tm.vertices), 3), 0.5),
        two_sided=torch.ones(len(tm.faces), dtype=torch.bool),
    )
    depth = render(m, cameras)["depth"][0, :, 0]  # (V, H, W)
    pts = torch.as_tensor(points, dtype=torch.float32)
    uv, z = cameras.project(pts[None].expand(len(cameras), -1, -1))
    i, j = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    ok = (i >= 0) & (i < cameras.width) & (j >= 0) & (j < cameras.height) & (z > 0)
    dz = depth[
        torch.arange(len(cameras))[:, None], j.clamp(0, cameras.height - 1), i.clamp(0, cameras.width - 1)
    ]
    return (ok & (z <= dz + tol)).any(0).numpy()


def chamfer_distance(pred, gt, n_points: int = 30000, cameras: Cameras | None = None, seed: int = 0) -> dict:
    """Chamfer distance between two meshes, in head-frame units and in head widths.

    Both surfaces are sampled uniformly (``n_points`` each). With ``cameras``, only points some camera can
    see are kept on both (the scalp under the hair, the inside of the eyeballs and the bottom of the
    neck cannot be reconstructed from images). Head width = x extent of ``gt``.

    Returns ``accuracy`` (mean distance pred -> gt), ``completeness`` (gt -> pred), ``chamfer`` (their
    mean), the same three ``*_hw`` divided by the head width, and ``head_width``.
    """
    import trimesh
    from scipy.spatial import cKDTree

    a, b = as_trimesh(pred), as_trimesh(gt)
    pa, _ = trimesh.sample.sample_surface(a, n_points, seed=seed)
    pb, _ = trimesh.sample.sample_surface(b, n_points, seed=seed + 1)
    if cameras is not None:
        pa = pa[_visible_points(a, pa, cameras, 0.02)]
        pb = pb[_visible_points(b, pb, cameras, 0.02)]
    acc = float(cKDTree(pb).query(pa)[0].mean())
    comp = float(cKDTree(pa).query(pb)[0].mean())
    width = float(np.ptp(b.vertices[:, 0]))
    ch = 0.5 * (acc + comp)
    return {
        "accuracy": acc,
        "completeness": comp,
        "chamfer": ch,
        "head_width": width,
        "accuracy_hw": acc / width,
        "completeness_hw": comp / width,
        "chamfer_hw": ch / width,
    }
