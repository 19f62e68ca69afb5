"""Checkers for notebook 04 (volume conditioning): exercises ``voxel_index`` (the voxel holding a world point),
``grid_coords`` (pixels to ``grid_sample`` coordinates), ``depth_attention`` (one head of depth-wise attention,
Sec. 3.2) and ``depth_sweep`` (the frustum render against the number of depth samples D)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from gen3dface.teaching.checking import ExerciseFailed, answered, expect_close, expect_equal, run_check
from gen3dface.volume.grid import pixel_grid


def check_voxel_index(fn: Callable[[np.ndarray, int], tuple[int, int, int]]) -> bool:
    """``fn(point (3,), V) -> (iz, iy, ix)``: the voxel of the [-1, 1]^3 grid holding a world point."""

    def body():
        rng = np.random.default_rng(8)
        for _ in range(50):
            V = int(rng.integers(2, 64))
            p = rng.uniform(-0.999, 0.999, 3)
            want = tuple(int(i) for i in np.floor((p + 1) / 2 * V)[::-1])
            got = tuple(int(i) for i in answered(fn(p, V)))
            expect_equal(got, want, f"point {np.round(p, 3)}, V = {V} (order z, y, x)")
        return "50 random points fall in the right voxel (z, y, x)"

    return run_check("voxel_index", body)


def check_grid_coords(fn: Callable[[np.ndarray, int, int], np.ndarray]) -> bool:
    """``fn(uv (P, 2) pixels, height, width) -> (P, 2)`` grid_sample coordinates (align_corners=False)."""

    def body():
        rng = np.random.default_rng(9)
        for _ in range(10):
            h, w = (int(x) for x in rng.integers(4, 300, 2))
            uv = rng.uniform(0, 1, (20, 2)) * [w, h]
            expect_close(fn(uv, h, w), pixel_grid(torch.tensor(uv), h, w).numpy(), 1e-6, f"{h}x{w} image")
        return "pixels of 10 random image sizes map as gen3dface.volume.grid.pixel_grid"

    return run_check("grid_coords", body)


def _depth_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The textbook form: ``q (P, c)``, ``k, v (P, D, c)`` -> ``(P, c)``, softmax over the D samples."""
    a = torch.softmax(torch.einsum("pc,pdc->pd", q, k) / q.shape[-1] ** 0.5, -1)
    return torch.einsum("pd,pdc->pc", a, v)


def check_depth_attention(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(q (P, c), k (P, D, c), v (P, D, c)) -> (P, c)``: one head of depth-wise attention, each pixel's
    query attending over its own ray's D samples; then, run head by head with the weights of a
    :class:`gen3dface.volume.conditioning.DepthWiseAttention`, it must reproduce the module."""
    from gen3dface.volume.conditioning import DepthWiseAttention

    def body():
        g = torch.Generator().manual_seed(10)
        for case in range(5):
            P, D, c = 30, int(torch.randint(2, 20, (1,), generator=g)), 8
            q, k, v = (torch.randn(*s, generator=g) for s in ((P, c), (P, D, c), (P, D, c)))
            expect_close(fn(q, k, v), _depth_attention(q, k, v), 1e-5, f"random case {case} (D = {D})")
        torch.manual_seed(11)
        B, C, H, Fc, D, h, w = 2, 16, 2, 6, 7, 5, 5
        m = DepthWiseAttention(C, Fc, heads=H)
        torch.nn.init.normal_(m.out.weight, std=0.3)  # the module starts at zero: give it an output
        x, ctx = torch.randn(B, C, h, w), torch.randn(B, Fc, D, h, w)
        with torch.no_grad():
            want = m(x, ctx)
            q = m.q(m.norm(x).permute(0, 2, 3, 1).reshape(-1, C)).reshape(-1, H, C // H)
            f = ctx.permute(0, 3, 4, 2, 1).reshape(-1, D, Fc)  # (P, D, F): each pixel's ray
            k, v = (t.reshape(-1, D, H, C // H) for t in (f @ m.kv.weight.T).chunk(2, -1))
            heads = [answered(fn(q[:, i], k[:, :, i], v[:, :, i])) for i in range(H)]
            got = x + m.out(torch.cat(heads, -1)).reshape(B, h, w, C).permute(0, 3, 1, 2)
        expect_close(got, want, 1e-4, "head by head with DepthWiseAttention's weights")
        return (
            "5 random cases, and head by head it reproduces gen3dface.volume.conditioning.DepthWiseAttention"
        )

    return run_check("depth_attention", body)


def check_depth_sweep(psnr_by_depth: dict | None, frustum_psnr: Callable[[int], float]) -> bool:
    """``psnr_by_depth``: ``{D: PSNR of the frustum render with D samples per ray}`` for at least three D from
    at most 4 to at least 32, each as ``frustum_psnr(D)`` gives it."""

    def body():
        got = answered(psnr_by_depth, "no answer yet (psnr_by_depth is still None)")
        if not isinstance(got, dict) or len(got) < 3:
            raise ExerciseFailed("psnr_by_depth must be a dict {D: PSNR} with at least three depths")
        depths = sorted(int(d) for d in got)
        if depths[0] > 4 or depths[-1] < 32:
            raise ExerciseFailed(f"sweep D from at most 4 to at least 32 samples per ray (got {depths})")
        for d in depths:
            expect_close(float(got[d]), frustum_psnr(d), 1e-3, f"D = {d}")
        lo, hi = got[depths[0]], got[depths[-1]]
        return f"{lo:.1f} dB at D = {depths[0]}, {hi:.1f} dB at D = {depths[-1]}"

    return run_check("depth_sweep", body)
