"""Checkers for notebook 04 (volume conditioning): exercises ``voxel_index`` (the voxel holding a world point)
and ``grid_coords`` (pixels to ``grid_sample`` coordinates)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from gen3dface.teaching.checking import answered, expect_close, expect_equal, run_check
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
