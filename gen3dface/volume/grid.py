"""3D feature volumes (paper Sec. 3.2, "Joint conditioning of appearance and geometry"): the geometric core.

The volume spans the head cube [-1, 1]^3 of :mod:`gen3dface.core.cameras` with ``V`` voxels per side, its
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

from gen3dface.core.cameras import Cameras


def voxel_centers(V: int, extent: float = 1.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """World coordinates ``(V, V, V, 3)`` (indexed z, y, x; last axis x, y, z) of the voxel centres."""
    c = (torch.arange(V, device=device, dtype=dtype) + 0.5) / V * 2 - 1
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    return torch.stack([x, y, z], -1) * extent


def pixel_grid(points_uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates ``(..., 2)`` (centre of pixel i at i + 0.5) to ``grid_sample``'s [-1, 1]
    (``align_corners=False``)."""
    return torch.stack([points_uv[..., 0] / width * 2 - 1, points_uv[..., 1] / height * 2 - 1], -1)


def unproject_features(
    features: torch.Tensor, cameras: Cameras, V: int, extent: float = 1.0
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
        cams = cams.batched(B)
    cams = cams.to(device=features.device, dtype=features.dtype)
    pts = voxel_centers(V, extent, features.device, features.dtype).reshape(1, 1, -1, 3).expand(B, N, -1, 3)
    uv, depth = cams.project(pts)  # (B, N, V^3, 2), (B, N, V^3)
    grid = pixel_grid(uv, h, w)
    valid = (depth > 1e-6) & (grid.abs() <= 1).all(-1)
    sampled = F.grid_sample(
        features.reshape(B * N, C, h, w),
        grid.reshape(B * N, 1, -1, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    ).reshape(B, N, C, -1)
    weight = valid.to(features.dtype)[:, :, None]  # (B, N, 1, V^3)
    count = weight.sum(1)  # (B, 1, V^3)
    volume = (sampled * weight).sum(1) / count.clamp(min=1)
    return volume.reshape(B, C, V, V, V), count.reshape(B, 1, V, V, V)


def near_far(cameras: Cameras, extent: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth range ``(...)`` of the cube's bounding sphere along each camera's axis (camera z)."""
    r = cameras.radius
    rad = math.sqrt(3.0) * extent
    return (r - rad).clamp(min=1e-3), r + rad


def frustum_points(
    cameras: Cameras, height: int, width: int, depths: int, extent: float = 1.0
) -> torch.Tensor:
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


# --------------------------------------------------------------------------------------- mesh voxels
def voxelize_mesh(
    vertices: torch.Tensor, faces: torch.Tensor, V: int, extent: float = 1.0, samples: int = 6
) -> torch.Tensor:
    """Voxels ``(n, 3)`` int64 (z, y, x indices, sorted, unique) that the mesh surface passes through.

    Every triangle is sampled on a barycentric grid of ``samples`` steps per edge (its vertices included);
    triangles are assumed no larger than a few voxels (true for face meshes at V <= 64).
    """
    ar = torch.arange(samples + 1, device=vertices.device)
    i, j = torch.meshgrid(ar, ar, indexing="ij")
    keep = (i + j) <= samples
    b = torch.stack([i[keep], j[keep]], 1).to(vertices.dtype) / samples  # (S, 2)
    tri = vertices[faces]  # (F, 3, 3)
    pts = (
        tri[:, None, 0]
        + b[None, :, :1] * (tri[:, None, 1] - tri[:, None, 0])
        + b[None, :, 1:] * (tri[:, None, 2] - tri[:, None, 0])
    )
    pts = pts.reshape(-1, 3)
    idx = ((pts / extent + 1) / 2 * V).floor().long()
    idx = idx[((idx >= 0) & (idx < V)).all(1)]
    return torch.unique(idx.flip(1), dim=0)  # x, y, z -> z, y, x


def _spconv():
    """spconv's torch module, or ``None`` where it cannot load (then the dense path is used)."""
    try:
        import spconv.pytorch as sp

        return sp
    except Exception:  # noqa: BLE001 - any import failure means "no spconv here"
        return None


class _DenseSubMConv(torch.nn.Module):
    """Parameters laid out like spconv 2's ``SubMConv3d`` (weight ``(out, kz, ky, kx, in)``) for the dense path."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(cout, k, k, k, cin))
        self.bias = torch.nn.Parameter(torch.zeros(cout))
        torch.nn.init.kaiming_uniform_(self.weight.view(cout, -1), a=math.sqrt(5))


class SparseMeshNet(torch.nn.Module):
    """A submanifold sparse 3D ConvNet over the mesh's voxels (the paper's sparse 3D ConvNet, Graham et al.).

    Submanifold convolutions compute outputs only at active voxels, from active neighbours, so features
    stay on the surface. With spconv installed the convolutions run sparse; otherwise (or with
    ``dense=True``) an equivalent masked dense ``conv3d`` runs with the same parameters and gives the same
    numbers.

    Args:
        cin: input channels per voxel; hidden: channels of the hidden layers; cout: output channels.
        layers: number of 3x3x3 submanifold convolutions.
    """

    def __init__(self, cin: int, hidden: int, cout: int, layers: int = 3):
        super().__init__()
        sp = _spconv()
        chans = [cin] + [hidden] * (layers - 1) + [cout]
        self.sparse_available = sp is not None
        if sp is not None:
            self.convs = torch.nn.ModuleList(
                sp.SubMConv3d(a, b, 3, padding=1, bias=True, indice_key="mesh")
                for a, b in zip(chans[:-1], chans[1:])
            )
        else:
            self.convs = torch.nn.ModuleList(_DenseSubMConv(a, b, 3) for a, b in zip(chans[:-1], chans[1:]))

    def forward(
        self,
        features: torch.Tensor,
        indices: torch.Tensor,
        batch_size: int,
        V: int,
        dense: bool | None = None,
    ) -> torch.Tensor:
        """Active-voxel ``features (n, cin)`` at ``indices (n, 4)`` int (batch, z, y, x) -> a dense volume
        ``(B, cout, V, V, V)``, zero away from the mesh.

        ``dense=None`` picks spconv on a GPU and the dense path on the CPU: spconv 2.3.8's CPU build has no
        backward pass (it calls into CUDA) and races with several threads (see :meth:`_sparse`)."""
        if dense is None:
            dense = features.device.type != "cuda"
        if dense or not self.sparse_available:
            return self._dense(features, indices, batch_size, V)
        return self._sparse(features, indices, batch_size, V)

    def _sparse(self, features: torch.Tensor, indices: torch.Tensor, batch_size: int, V: int) -> torch.Tensor:
        sp = _spconv()
        # spconv 2.3.8's CPU kernels race when several threads scatter into one output voxel (measured:
        # results differ from call to call by up to 0.03 with 2 threads, never with 1), so on the CPU the
        # sparse convolutions run single-threaded.
        threads = torch.get_num_threads()
        if features.device.type == "cpu":
            torch.set_num_threads(1)
        try:
            x = sp.SparseConvTensor(features.contiguous(), indices.int(), [V, V, V], batch_size)  # raw memory
            for k, conv in enumerate(self.convs):
                x = conv(x)
                if k < len(self.convs) - 1:
                    x = x.replace_feature(F.silu(x.features))
            return x.dense()
        finally:
            torch.set_num_threads(threads)

    def _dense(self, features: torch.Tensor, indices: torch.Tensor, batch_size: int, V: int) -> torch.Tensor:
        idx = indices.long()
        grid = features.new_zeros(batch_size, features.shape[1], V, V, V)
        grid[idx[:, 0], :, idx[:, 1], idx[:, 2], idx[:, 3]] = features
        mask = features.new_zeros(batch_size, 1, V, V, V)
        mask[idx[:, 0], :, idx[:, 1], idx[:, 2], idx[:, 3]] = 1
        x = grid
        for k, conv in enumerate(self.convs):
            x = F.conv3d(x, conv.weight.permute(0, 4, 1, 2, 3), conv.bias, padding=1) * mask
            if k < len(self.convs) - 1:
                x = F.silu(x)
        return x


def mesh_voxel_features(
    features: torch.Tensor,
    cameras: Cameras,
    voxels: list[torch.Tensor],
    V: int,
    extent: float = 1.0,
    volume: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of each sample's mesh voxels sampled from its views: ``(n, C)`` and indices ``(n, 4)``
    (batch, z, y, x), from per-view ``features (B, N, C, h, w)`` and ``voxels`` (one ``(n_b, 3)`` per sample).
    ``volume``: :func:`unproject_features` of the same features when the caller already has it."""
    if volume is None:
        volume, _ = unproject_features(features, cameras, V, extent)
    feats, inds = [], []
    for b, vox in enumerate(voxels):
        feats.append(volume[b, :, vox[:, 0], vox[:, 1], vox[:, 2]].T.contiguous())
        inds.append(torch.cat([torch.full((len(vox), 1), b, dtype=vox.dtype, device=vox.device), vox], 1))
    return torch.cat(feats), torch.cat(inds)
