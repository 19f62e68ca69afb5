"""Learned modules of the volume conditioning (paper Sec. 3.2): appearance volume, hybrid volume F_H,
frustum volumes and depth-wise attention. The geometry they rest on is in :mod:`gen3dface.volume.grid`.

Shapes: noisy target views ``x_t (B, N, C, h, w)``; time embedding ``temb (B, E)``; camera embedding per
view ``cemb (B, N, E)``; volumes ``(B, C, V, V, V)``; frustum features ``(B, N, C, D, h, w)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gen3dface.core.cameras import Cameras
from gen3dface.volume.grid import (
    SparseMeshNet,
    frustum_points,
    mesh_voxel_features,
    sample_volume,
    unproject_features,
)


def camera_embedding(cameras: Cameras) -> torch.Tensor:
    """Per-view camera description ``(..., 6)``: sin/cos of azimuth and elevation, radius, focal / size."""
    az, el = torch.deg2rad(cameras.azimuth_deg), torch.deg2rad(cameras.elevation_deg)
    focal = cameras.K[..., 1, 1] / cameras.height
    return torch.stack([az.sin(), az.cos(), el.sin(), el.cos(), cameras.radius / 4.0, focal], -1)


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class ViewEncoder(nn.Module):
    """Per-view features of the noisy target views, conditioned on time and camera (added after the stem).

    ``x (B, N, C, h, w)``, ``temb (B, E)``, ``cemb (B, N, 6)`` -> ``(B, N, F, h, w)``.
    """

    def __init__(self, cin: int, feat: int, temb_dim: int):
        super().__init__()
        self.stem = nn.Conv2d(cin, feat, 3, padding=1)
        self.cond = nn.Sequential(nn.Linear(temb_dim + 6, feat), nn.SiLU(), nn.Linear(feat, feat))
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(feat), feat), nn.SiLU(), nn.Conv2d(feat, feat, 3, padding=1)
        )

    def forward(self, x, temb, cemb):
        B, N = x.shape[:2]
        h = self.stem(x.flatten(0, 1))
        c = self.cond(torch.cat([temb[:, None].expand(B, N, -1), cemb], -1)).flatten(0, 1)
        h = h + c[:, :, None, None]
        return (h + self.body(h)).unflatten(0, (B, N))


class HybridVolume(nn.Module):
    """F_A from the views, mesh features from :class:`gen3dface.volume.grid.SparseMeshNet`, fused into F_H.

    ``forward(x_t, temb, cameras, mesh_voxels)`` with ``mesh_voxels`` a list of ``(n_b, 3)`` voxel indices
    (one per sample, from :func:`gen3dface.volume.grid.voxelize_mesh`) -> ``F_H (B, F, V, V, V)``.
    """

    def __init__(self, cin: int, feat: int, temb_dim: int, V: int):
        super().__init__()
        self.V = V
        self.encoder = ViewEncoder(cin, feat, temb_dim)
        self.refine = nn.Sequential(
            nn.Conv3d(feat + 1, feat, 3, padding=1),
            nn.GroupNorm(_groups(feat), feat),
            nn.SiLU(),
            nn.Conv3d(feat, feat, 3, padding=1),
        )
        self.mesh_net = SparseMeshNet(feat, feat, feat, layers=3)
        self.fuse = nn.Conv3d(2 * feat, feat, 1)

    def forward(self, x_t, temb, cameras: Cameras, mesh_voxels: list[torch.Tensor]):
        B = x_t.shape[0]
        feats = self.encoder(x_t, temb, camera_embedding(cameras).to(x_t))
        views, count = unproject_features(feats, cameras, self.V)
        appearance = self.refine(torch.cat([views, (count > 0).to(views)], 1))  # F_A
        mf, idx = mesh_voxel_features(feats, cameras, mesh_voxels, self.V, volume=views)
        mesh = self.mesh_net(mf, idx, B, self.V)
        return self.fuse(torch.cat([appearance, mesh], 1))  # F_H


class FrustumNet(nn.Module):
    """Frustum volumes: F_H sampled along every pixel's ray of each target view (D depths), refined by a
    light 3D U-Net that takes the time and view embeddings (SyncDreamer's FrustumTV3DNet role).

    ``forward(F_H, temb, cameras, size)`` -> list of frustum features ``(B, N, F, D_s, h_s, w_s)`` at the
    UNet's resolutions ``size, size/2, size/4`` (each level halves h, w and D).
    """

    def __init__(self, feat: int, temb_dim: int, depth: int):
        super().__init__()
        self.depth = depth
        self.cond = nn.Sequential(nn.Linear(temb_dim + 6, feat), nn.SiLU(), nn.Linear(feat, feat))
        self.down1 = nn.Conv3d(feat, feat, 3, stride=2, padding=1)
        self.down2 = nn.Conv3d(feat, feat, 3, stride=2, padding=1)
        self.mid = nn.Sequential(
            nn.GroupNorm(_groups(feat), feat), nn.SiLU(), nn.Conv3d(feat, feat, 3, padding=1)
        )
        self.up2 = nn.Conv3d(2 * feat, feat, 3, padding=1)
        self.up1 = nn.Conv3d(2 * feat, feat, 3, padding=1)

    def forward(self, volume, temb, cameras: Cameras, size: int):
        B, Fc = volume.shape[:2]
        N = cameras.shape[-1]
        pts = frustum_points(cameras, size, size, self.depth).to(volume)  # (B, N, D, s, s, 3)
        f0 = sample_volume(volume, pts.reshape(B, N * self.depth, size, size, 3))  # (B, F, N*D, s, s)
        f0 = f0.reshape(B, Fc, N, self.depth, size, size).transpose(1, 2).flatten(0, 1)  # (B*N, F, D, s, s)
        c = self.cond(torch.cat([temb[:, None].expand(B, N, -1), camera_embedding(cameras).to(volume)], -1))
        f0 = f0 + c.flatten(0, 1)[:, :, None, None, None]
        f1 = F.silu(self.down1(f0))
        f2 = self.mid(F.silu(self.down2(f1)))
        u1 = F.silu(self.up2(torch.cat([F.interpolate(f2, size=f1.shape[2:]), f1], 1)))
        u0 = self.up1(torch.cat([F.interpolate(u1, size=f0.shape[2:]), f0], 1))
        return [t.unflatten(0, (B, N)) for t in (u0, u1, f2)]


class DepthWiseAttention(nn.Module):
    """Inject frustum features into UNet features: each pixel's query attends over its own D depth samples.

    ``x (B', C, h, w)`` UNet features of B' = B*N views, ``ctx (B', F, D, h, w)`` frustum features at the
    same resolution -> ``x + attention (B', C, h, w)``. The output projection starts at zero, so a
    pretrained UNet is unchanged at initialisation.
    """

    def __init__(self, dim: int, ctx_dim: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(dim), dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(ctx_dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, ctx):
        Bp, C, h, w = x.shape
        Fc, D = ctx.shape[1], ctx.shape[2]
        H = self.heads
        q = self.q(self.norm(x).permute(0, 2, 3, 1).reshape(-1, C)).reshape(
            -1, H, C // H
        )  # (P, H, c), P = B' h w
        # Keys and values are linear in the context (no bias): q . (W_k f) = (W_k^T q) . f and
        # sum_d a_d W_v f_d = W_v (sum_d a_d f_d). So the query is pulled back to the context's F channels and the
        # D samples are averaged there, instead of lifting all P x D samples to C channels: the same attention,
        # with F/C (here 16/320 at SD's widths) of the memory traffic.
        w_k, w_v = (w.reshape(H, C // H, Fc) for w in self.kv.weight.chunk(2, 0))  # (H, c, F) each
        f = ctx.permute(0, 3, 4, 2, 1).reshape(-1, D, Fc)  # (P, D, F)
        q_f = torch.einsum("phc,hcf->phf", q, w_k.to(q.dtype)) * (C // H) ** -0.5
        attn = torch.softmax(torch.einsum("phf,pdf->phd", q_f, f), -1)  # (P, H, D)
        a = torch.einsum("phf,hcf->phc", torch.einsum("phd,pdf->phf", attn, f), w_v.to(q.dtype))
        a = self.out(a.reshape(-1, C))
        return x + a.reshape(Bp, h, w, C).permute(0, 3, 1, 2)
