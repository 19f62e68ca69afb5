"""The field a surface is fitted as: :class:`SDFGrid`, signed distance and colour on a dense voxel grid
(values at grid nodes, trilinearly interpolated, as in DVGO / Voxurf), and its starting point, the SDF of
the views' visual hull (:func:`initial_field`).

Points are ``(P, 3)`` in the head frame of :mod:`gen3dface.core.cameras`; grids are ``(1, C, R, R, R)``
indexed ``[z, y, x]`` (``grid_sample``'s order).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.errors import InputError
from gen3dface.recon.views import ViewSet


class SDFGrid(torch.nn.Module):
    """Signed distance (positive outside) and colour on a dense ``R^3`` grid of nodes over [-1, 1]^3.

    Values between nodes are trilinear (``grid_sample`` with ``align_corners=True``); outside the cube the
    border values are repeated. Colour is stored as logits (``sigmoid`` gives RGB in [0, 1]).
    """

    def __init__(self, sdf: torch.Tensor, rgb_logits: torch.Tensor, blur: float = 0.0):
        super().__init__()
        self.sdf = torch.nn.Parameter(sdf.reshape(1, 1, *sdf.shape[-3:]).float().contiguous())
        self.rgb = torch.nn.Parameter(rgb_logits.reshape(1, 3, *rgb_logits.shape[-3:]).float().contiguous())
        self.blur = float(blur)

    def sdf_volume(self) -> torch.Tensor:
        """The SDF grid ``(1, 1, R, R, R)`` as rendered: the parameters, smoothed by a 3x3x3 Gaussian of
        standard deviation ``blur`` voxels when ``blur > 0`` (a grid SDF otherwise picks up voxel noise)."""
        if self.blur <= 0:
            return self.sdf
        k = torch.exp(-0.5 * (torch.arange(-1.0, 2.0, device=self.sdf.device) / self.blur) ** 2)
        k = k / k.sum()
        x = self.sdf
        for dim in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + dim] = 3
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = 1
            x = F.conv3d(F.pad(x, pad, mode="replicate"), k.view(shape))
        return x

    @property
    def R(self) -> int:
        return self.sdf.shape[-1]

    @property
    def voxel(self) -> float:
        """Distance between neighbouring nodes (head-frame units)."""
        return 2.0 / (self.R - 1)

    @staticmethod
    def nodes(R: int, device=None) -> torch.Tensor:
        """Node positions ``(R, R, R, 3)`` (x, y, z), indexed ``[z, y, x]``."""
        t = torch.linspace(-1, 1, R, device=device)
        z, y, x = torch.meshgrid(t, t, t, indexing="ij")
        return torch.stack([x, y, z], -1)

    @classmethod
    def sphere(cls, R: int, radius: float = 0.7, device=None) -> SDFGrid:
        sdf = cls.nodes(R, device).norm(dim=-1) - radius
        return cls(sdf, torch.zeros(3, R, R, R, device=device))

    def query(self, points: torch.Tensor, rgb: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """SDF ``(...)`` and colour ``(..., 3)`` (``None`` when ``rgb=False``) at ``points (..., 3)``."""
        shape = points.shape[:-1]
        g = points.reshape(1, -1, 1, 1, 3)
        sdf = self.sdf_volume()
        vol = torch.cat([sdf, self.rgb], 1) if rgb else sdf
        out = F.grid_sample(vol, g, mode="bilinear", padding_mode="border", align_corners=True)
        out = out.reshape(vol.shape[1], -1)
        sdf = out[0].reshape(shape)
        return sdf, (torch.sigmoid(out[1:].T).reshape(*shape, 3) if rgb else None)

    def normals(self, points: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """Unit SDF gradients ``(..., 3)`` at ``points (..., 3)`` by central differences."""
        eps = eps or 0.5 * self.voxel
        offs = torch.eye(3, device=points.device) * eps

        def f(q):
            return self.query(q, rgb=False)[0]

        g = torch.stack([f(points + offs[i]) - f(points - offs[i]) for i in range(3)], -1)
        return F.normalize(g, dim=-1, eps=1e-9)

    def resized(self, R: int) -> SDFGrid:
        """The same field on an ``R^3`` grid (trilinear resampling)."""

        def up(x):
            return F.interpolate(x.detach(), size=(R, R, R), mode="trilinear", align_corners=True)

        return SDFGrid(up(self.sdf_volume()), up(self.rgb), self.blur)

    def eikonal_loss(self, band: float) -> torch.Tensor:
        """Mean ``(|grad f| - 1)^2`` over grid cells within ``band`` of the zero level (forward
        differences)."""
        d = self.sdf_volume()[0, 0]
        gx = d[:-1, :-1, 1:] - d[:-1, :-1, :-1]
        gy = d[:-1, 1:, :-1] - d[:-1, :-1, :-1]
        gz = d[1:, :-1, :-1] - d[:-1, :-1, :-1]
        norm = torch.sqrt(gx**2 + gy**2 + gz**2 + 1e-12) / self.voxel
        near = (d[:-1, :-1, :-1].detach().abs() < band).float()
        return ((norm - 1) ** 2 * near).sum() / near.sum().clamp(min=1)

    def smooth_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Discrete Laplacian energy of the SDF (in voxels) and total variation of the colour logits."""
        d = self.sdf_volume()[0, 0] / self.voxel
        lap = (
            d[2:, 1:-1, 1:-1]
            + d[:-2, 1:-1, 1:-1]
            + d[1:-1, 2:, 1:-1]
            + d[1:-1, :-2, 1:-1]
            + d[1:-1, 1:-1, 2:]
            + d[1:-1, 1:-1, :-2]
            - 6 * d[1:-1, 1:-1, 1:-1]
        )
        c = self.rgb[0]
        tv = (
            (c[:, 1:] - c[:, :-1]).abs().mean()
            + (c[:, :, 1:] - c[:, :, :-1]).abs().mean()
            + (c[:, :, :, 1:] - c[:, :, :, :-1]).abs().mean()
        )
        return (lap**2).mean(), tv


def visual_hull(views: ViewSet, R: int, device=None, tolerance: int = 0) -> torch.Tensor:
    """Occupancy ``(R, R, R)`` bool of the grid nodes: inside the mask of every view that sees them
    (``tolerance`` views may disagree). Nodes outside a view's image are not carved by it."""
    device = device or views.rgb.device
    pts = SDFGrid.nodes(R, device).reshape(-1, 3)
    cams = views.cameras.to(device)
    masks = views.mask.to(device)[:, None]  # (V, 1, H, W)
    carved = torch.zeros(len(pts), dtype=torch.int32, device=device)
    for v in range(len(cams)):
        uv, z = cams[v].project(pts)
        grid = torch.stack([uv[:, 0] / cams.width * 2 - 1, uv[:, 1] / cams.height * 2 - 1], -1)
        m = F.grid_sample(masks[v : v + 1], grid[None, None], align_corners=False)[0, 0, 0]
        inside = (grid.abs() <= 1).all(-1) & (z > 0)
        carved += (inside & (m < 0.5)).int()
    return (carved <= tolerance).reshape(R, R, R)


def sdf_from_occupancy(occ: torch.Tensor) -> torch.Tensor:
    """Signed distance ``(R, R, R)`` (head-frame units, positive outside) of an occupancy grid."""
    from scipy.ndimage import distance_transform_edt

    o = occ.cpu().numpy()
    voxel = 2.0 / (occ.shape[-1] - 1)
    if not o.any():
        raise InputError("the masks leave nothing of the head (the visual hull is empty); check the cameras")
    out = distance_transform_edt(~o) - distance_transform_edt(o)
    out = np.where(o, out + 0.5, out - 0.5) * voxel
    return torch.from_numpy(out.astype(np.float32)).to(occ.device)


def initial_field(views: ViewSet, R: int, init: str = "hull", device=None) -> SDFGrid:
    """The starting field: the visual hull's SDF (``init="hull"``) or a sphere; grey colour."""
    if init == "sphere":
        return SDFGrid.sphere(R, device=device)
    sdf = sdf_from_occupancy(visual_hull(views, R, device))
    return SDFGrid(sdf, torch.zeros(3, R, R, R, device=sdf.device))
