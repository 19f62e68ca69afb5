"""NeuS-style volume rendering of an :class:`~gen3dface.recon.field.SDFGrid`.

How a view is rendered from the field (:func:`render_rays`):

1. each pixel's ray (``Cameras.rays``) is clipped to the head cube [-1, 1]^3 (:func:`ray_box`);
2. a cheap pass without gradients evaluates the SDF at ``~2R`` points along it and finds where the ray
   first crosses the zero level (or, if it never does, where it comes closest);
3. ``fine_samples`` points are spread over a band of a few voxels around that place; between consecutive
   points the NeuS opacity ``alpha = max(0, (Phi(f_i) - Phi(f_i+1)) / Phi(f_i))`` with
   ``Phi = sigmoid(s * sdf)`` turns the SDF into a density that peaks on the zero level set
   (:func:`neus_alpha`);
4. colours are alpha-composited front to back over the background colour of the views
   (:func:`composite_weights`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras
from gen3dface.recon.field import SDFGrid


def ray_box(
    origins: torch.Tensor, dirs: torch.Tensor, extent: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances ``(B,)`` of rays ``(B, 3)`` through the cube [-extent, extent]^3
    (``near >= far`` for rays that miss it)."""
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-extent - origins) / safe, (extent - origins) / safe
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far


def neus_alpha(sdf: torch.Tensor, s: float) -> torch.Tensor:
    """NeuS's discrete opacity of the sections between consecutive samples of ``sdf (B, S)`` along rays:
    ``alpha_i = max(0, (Phi(f_i) - Phi(f_i+1)) / Phi(f_i))`` with ``Phi(f) = sigmoid(s f)``; ``(B, S-1)``.

    Outside the surface ``Phi`` is about 1 and flat (nothing there), it falls to 0 across the zero level
    (all the opacity sits there), and inside it is about 0 and the ray has already been stopped.
    """
    phi = torch.sigmoid(s * sdf)
    return ((phi[:, :-1] - phi[:, 1:]) / (phi[:, :-1] + 1e-6)).clamp(0, 1)


def composite_weights(alpha: torch.Tensor) -> torch.Tensor:
    """Front-to-back compositing weights ``w_i = alpha_i prod_{j<i} (1 - alpha_j)`` of ``alpha (B, S)``."""
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-7], 1), 1)
    return trans * alpha


@torch.no_grad()
def _surface_guess(
    field: SDFGrid, o: torch.Tensor, d: torch.Tensor, near: torch.Tensor, far: torch.Tensor
) -> torch.Tensor:
    """Distance ``(B,)`` along each ray to its first zero crossing of the SDF, else to its closest
    approach."""
    n = math.ceil(3.5 / field.voxel) + 2
    u = torch.linspace(0, 1, n, device=o.device)
    t = near[:, None] + (far - near).clamp(min=0)[:, None] * u
    f, _ = field.query(o[:, None] + d[:, None] * t[..., None], rgb=False)
    cross = (f[:, :-1] > 0) & (f[:, 1:] <= 0)
    has = cross.any(1)
    i = cross.float().argmax(1, keepdim=True)
    f0, f1 = f.gather(1, i), f.gather(1, i + 1)
    t0, t1 = t.gather(1, i), t.gather(1, i + 1)
    tc = (t0 + (t1 - t0) * f0 / (f0 - f1).clamp(min=1e-9))[:, 0]
    tmin = t.gather(1, f.argmin(1, keepdim=True))[:, 0]
    tc = torch.where(has, tc, tmin)
    return torch.where(f[:, 0] <= 0, near, tc)


def render_rays(
    field: SDFGrid,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    s: float,
    background: torch.Tensor,
    fine_samples: int = 20,
    band_voxels: float = 3.0,
    jitter: bool = False,
) -> dict[str, torch.Tensor]:
    """NeuS-style volume rendering of rays ``(B, 3)`` through the field (see the module docstring).

    Returns ``rgb (B, 3)`` composited over ``background``, ``opacity (B,)``, ``depth (B,)`` (expected
    distance along the ray, valid where opacity > 0) and ``weights (B, S-1)``.
    """
    near, far = ray_box(origins, dirs)
    hit = far > near
    far = torch.where(hit, far, near)
    tc = _surface_guess(field, origins, dirs, near, far)
    band = band_voxels * field.voxel
    lo = torch.minimum(torch.maximum(tc - band, near), far)
    hi = torch.maximum(torch.minimum(tc + band, far), lo)
    k = torch.arange(fine_samples, device=origins.device, dtype=origins.dtype)
    offs = k + (torch.rand(len(origins), fine_samples, device=origins.device) if jitter else 0.5)
    t = lo[:, None] + (hi - lo)[:, None] * offs / fine_samples
    f, rgb = field.query(origins[:, None] + dirs[:, None] * t[..., None])
    alpha = neus_alpha(f, s) * hit[:, None]
    w = composite_weights(alpha)
    opacity = w.sum(1)
    col = (w[..., None] * 0.5 * (rgb[:, :-1] + rgb[:, 1:])).sum(1) + (1 - opacity[:, None]) * background
    tm = 0.5 * (t[:, :-1] + t[:, 1:])
    depth = (w * tm).sum(1) / opacity.clamp(min=1e-6)
    return {"rgb": col, "opacity": opacity, "depth": depth, "weights": w}


@torch.no_grad()
def render_field(
    field: SDFGrid,
    cameras: Cameras,
    s: float,
    background=(1.0, 1.0, 1.0),
    fine_samples: int = 24,
    band_voxels: float = 3.0,
    chunk: int = 16384,
    light=(-0.4, -0.5, -1.0),
) -> dict[str, np.ndarray]:
    """Render the field from ``cameras (V,)``.

    Returns numpy arrays: ``rgb (V, H, W, 3)`` in [0, 1], ``opacity (V, H, W)``, ``depth (V, H, W)``
    (distance along the ray, ``inf`` where empty) and ``shaded (V, H, W, 3)``: the geometry alone, lit by a
    light that moves with the camera (``light``: direction towards it in camera coordinates, x right,
    y down, z forward; the default is above left of the viewer).
    """
    dev = field.sdf.device
    cams = cameras if len(cameras.shape) else cameras[None]
    cams = cams.to(dev)
    o, d = cams.rays()
    V, H, W = o.shape[:3]
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    bg = torch.as_tensor(background, dtype=torch.float32, device=dev)
    out = {k: [] for k in ("rgb", "opacity", "depth", "normal")}
    for i in range(0, len(o), chunk):
        r = render_rays(field, o[i : i + chunk], d[i : i + chunk], s, bg, fine_samples, band_voxels)
        p = o[i : i + chunk] + d[i : i + chunk] * r["depth"][:, None]
        out["normal"].append(field.normals(p))
        for k in ("rgb", "opacity", "depth"):
            out[k].append(r[k])
    res = {k: torch.cat(v).reshape(V, H, W, -1).squeeze(-1) for k, v in out.items()}
    res["depth"] = torch.where(res["opacity"] > 0.5, res["depth"], torch.full_like(res["depth"], math.inf))
    R = cams.c2w[:, :3, :3]  # (V, 3, 3) camera -> world
    n_cam = torch.einsum("vij,vhwi->vhwj", R, res["normal"])  # world -> camera: R^T n
    ldir = F.normalize(torch.as_tensor(light, dtype=torch.float32, device=dev), dim=0)
    lam = (n_cam * ldir).sum(-1).clamp(min=0)
    a = res["opacity"][..., None]
    shaded = (0.25 + 0.75 * lam[..., None]) * torch.tensor([0.85, 0.83, 0.8], device=dev)
    res["shaded"] = a * shaded + (1 - a) * bg
    del res["normal"]
    return {k: v.float().cpu().numpy() for k, v in res.items()}
