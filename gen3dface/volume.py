"""3D feature volumes (paper Sec. 3.2, "Joint conditioning of appearance and geometry"): the geometric core.

The volume spans the head cube [-1, 1]^3 of :mod:`gen3dface.cameras` with ``V`` voxels per side, its
vertices "extracted by linear sampling along each dimension". Layout ``(B, C, V_z, V_y, V_x)``: the last
three axes are world z, y, x, so ``torch.nn.functional.grid_sample`` with world coordinates divided by the
extent (``align_corners=False``) reads it directly; voxel ``i`` has its centre at ``(i + 0.5) / V * 2 - 1``.

This module holds the pure geometry: voxel centres, unprojecting per-view feature maps into the volume
(each voxel averages the features at its projections, over the views that see it), frustum sample points
along every pixel's ray, and trilinear sampling of a volume at any points. The learned parts (per-view
encoder, sparse mesh ConvNet, frustum 3D U-Net, depth-wise attention) build on these.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .cameras import Cameras


def voxel_centers(V: int, extent: float = 1.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """World coordinates ``(V, V, V, 3)`` (indexed z, y, x; last axis x, y, z) of the voxel centres."""
    c = (torch.arange(V, device=device, dtype=dtype) + 0.5) / V * 2 - 1
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    return torch.stack([x, y, z], -1) * extent


def pixel_grid(points_uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates ``(..., 2)`` (centre of pixel i at i + 0.5) to ``grid_sample``'s [-1, 1]
    (``align_corners=False``)."""
    return torch.stack([points_uv[..., 0] / width * 2 - 1, points_uv[..., 1] / height * 2 - 1], -1)


def unproject_features(features: torch.Tensor, cameras: Cameras, V: int, extent: float = 1.0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp per-view feature maps into a voxel grid.

    Args:
        features: ``(B, N, C, h, w)`` one feature map per view (any resolution: the cameras' intrinsics
            are rescaled to it).
        cameras: ``(B, N)`` or ``(N,)`` cameras of the views.
        V: voxels per side; extent: half-size of the cube.
    Returns:
        ``volume (B, C, V, V, V)``: the mean over the views that see each voxel centre (in front of the
        camera and inside the image), 0 where none does; ``count (B, 1, V, V, V)``: how many views see it.
    """
    B, N, C, h, w = features.shape
    cams = cameras.resized(h, w)
    if len(cams.shape) == 1:
        cams = Cameras(cams.K.expand(B, N, 3, 3), cams.c2w.expand(B, N, 4, 4), h, w)
    cams = cams.to(device=features.device, dtype=features.dtype)
    pts = voxel_centers(V, extent, features.device, features.dtype).reshape(1, 1, -1, 3).expand(B, N, -1, 3)
    uv, depth = cams.project(pts)  # (B, N, V^3, 2), (B, N, V^3)
    grid = pixel_grid(uv, h, w)
    valid = (depth > 1e-6) & (grid.abs() <= 1).all(-1)
    sampled = F.grid_sample(features.reshape(B * N, C, h, w), grid.reshape(B * N, 1, -1, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=False).reshape(B, N, C, -1)
    weight = valid.to(features.dtype)[:, :, None]  # (B, N, 1, V^3)
    count = weight.sum(1)  # (B, 1, V^3)
    volume = (sampled * weight).sum(1) / count.clamp(min=1)
    return volume.reshape(B, C, V, V, V), count.reshape(B, 1, V, V, V)


def near_far(cameras: Cameras, extent: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth range ``(...)`` of the cube's bounding sphere along each camera's axis (camera z)."""
    r = cameras.radius
    rad = math.sqrt(3.0) * extent
    return (r - rad).clamp(min=1e-3), r + rad


def frustum_points(cameras: Cameras, height: int, width: int, depths: int, extent: float = 1.0) -> torch.Tensor:
    """World points ``(..., D, h, w, 3)`` at ``depths`` camera-z values linearly spaced between
    :func:`near_far`, through the centre of every pixel of an ``h x w`` map of each camera ``(...)``."""
    cams = cameras.resized(height, width)
    near, far = near_far(cams, extent)
    t = torch.linspace(0, 1, depths, device=cams.K.device, dtype=cams.K.dtype)
    z = near[..., None] + (far - near)[..., None] * t  # (..., D)
    uv = cams.pixel_centers(cams.K.dtype).reshape(-1, 2)  # (h*w, 2)
    P = uv.shape[0]
    uv_all = uv.expand(*cams.shape, depths, P, 2).reshape(*cams.shape, depths * P, 2)
    z_all = z[..., None].expand(*cams.shape, depths, P).reshape(*cams.shape, depths * P)
    flat = Cameras(cams.K, cams.c2w, height, width)
    pts = flat.unproject(uv_all, z_all)
    return pts.reshape(*cams.shape, depths, height, width, 3)


def sample_volume(volume: torch.Tensor, points: torch.Tensor, extent: float = 1.0) -> torch.Tensor:
    """Trilinear samples of ``volume (B, C, V, V, V)`` at world ``points (B, ..., 3)``: ``(B, C, ...)``;
    0 outside the cube."""
    B, C = volume.shape[:2]
    rest = points.shape[1:-1]
    grid = (points / extent).reshape(B, -1, 1, 1, 3).to(volume.dtype)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(B, C, *rest)
