"""Checkers for notebook 00 (setup and conventions): exercises ``orbit_position`` (a camera centre on the orbit),
``project`` (world points to pixels), ``pixel_ray`` (the ray through a pixel's centre) and ``fov_fill`` (a field
of view that frames the head as asked)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from gen3dface.core.cameras import DEFAULT_RADIUS, orbit_cameras, orbit_position
from gen3dface.teaching.checking import ExerciseFailed, expect_close, require, require_function, run_check

#: the share of the image width the head must span in exercise ``fov_fill``
FILL_RANGE = (0.45, 0.55)


def check_orbit_position(fn: Callable[[float, float, float], np.ndarray]) -> bool:
    """``fn(azimuth_deg, elevation_deg, radius) -> (3,)`` camera centre in the canonical head frame."""

    def body():
        require_function(fn, "my_orbit_position")
        rng = np.random.default_rng(0)
        cases = [(0, 0, 4), (90, 0, 2), (180, 10, 3)] + [
            tuple(rng.uniform([-180, -80, 1], [180, 80, 5])) for _ in range(20)
        ]
        for az, el, r in cases:
            expect_close(
                fn(float(az), float(el), float(r)),
                orbit_position(az, el, r).numpy(),
                1e-4,
                f"azimuth {az:.1f}, elevation {el:.1f}, radius {r:.1f}",
            )
        return f"{len(cases)} camera centres match gen3dface.core.cameras.orbit_position"

    return run_check("orbit_position", body)


def check_project(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """``fn(K (3,3), w2c (4,4), points (P,3)) -> (P,2)`` pixel coordinates."""

    def body():
        require_function(fn, "my_project")
        rng = np.random.default_rng(1)
        for case in range(10):
            cam = orbit_cameras(
                [rng.uniform(-180, 180)],
                [rng.uniform(-60, 60)],
                fov_deg=rng.uniform(15, 60),
                image_size=int(rng.integers(32, 512)),
            )
            pts = rng.uniform(-1, 1, (25, 3))
            want, _ = cam.project(torch.tensor(pts, dtype=torch.float64)[None])
            expect_close(
                fn(cam.K[0].double().numpy(), cam.w2c[0].double().numpy(), pts),
                want[0].numpy(),
                1e-3,
                f"camera {case}",
            )
        return "25 points through each of 10 random cameras land on Cameras.project's pixels"

    return run_check("project", body)


def check_pixel_ray(fn: Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]) -> bool:
    """``fn(K, c2w, column, row) -> (3,)`` unit world direction of the ray through that pixel's centre."""

    def body():
        require_function(fn, "my_pixel_ray")
        rng = np.random.default_rng(2)
        for _ in range(10):
            size = int(rng.integers(8, 40))
            cam = orbit_cameras([rng.uniform(-180, 180)], [rng.uniform(-60, 60)], image_size=size)
            _, dirs = cam.rays()
            col, row = int(rng.integers(0, size)), int(rng.integers(0, size))
            expect_close(
                fn(cam.K[0].double().numpy(), cam.c2w[0].double().numpy(), col, row),
                dirs[0, row, col].numpy(),
                1e-4,
                f"pixel (column {col}, row {row}) of a {size}x{size} image",
            )
        return "10 random pixels' rays match Cameras.rays"

    return run_check("pixel_ray", body)


def head_fill(fov_deg: float, points: np.ndarray, image_size: int = 128) -> float:
    """The share of the image width that ``points (P, 3)`` span, seen from the front (azimuth 0, elevation 0)
    at the default radius through a camera of vertical field of view ``fov_deg``."""
    cam = orbit_cameras([0.0], [0.0], DEFAULT_RADIUS, float(fov_deg), image_size)
    uv, _ = cam.project(torch.as_tensor(np.asarray(points), dtype=torch.float32)[None])
    return float(uv[0, :, 0].max() - uv[0, :, 0].min()) / image_size


def check_fov_fill(fov_deg: float | None, points: np.ndarray) -> bool:
    """``fov_deg``: a field of view (degrees) at which the toy head ``points (P, 3)`` spans between 45 % and 55 %
    of the image width from the front."""

    def body():
        fov = float(require(fov_deg, "fov_deg", "set a field of view in degrees and re-run the cell"))
        if not 1.0 < fov < 179.0:
            raise ExerciseFailed(f"a field of view of {fov:g} degrees is not one a pinhole camera can have")
        fill = head_fill(fov, points)
        lo, hi = FILL_RANGE
        if not lo <= fill <= hi:
            way = "widen" if fill > hi else "narrow"
            raise ExerciseFailed(
                f"at {fov:g} degrees the head spans {fill:.0%} of the width, not {lo:.0%} to {hi:.0%}: {way} the field of view"
            )
        return f"at {fov:g} degrees the head spans {fill:.0%} of the image width"

    return run_check("fov_fill", body)
