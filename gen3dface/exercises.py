"""Checkers for the notebooks' exercises: each takes the student's function, tests it against the
package's reference on random cases, prints a clear pass/fail line and returns ``True``/``False``."""

from __future__ import annotations

import traceback
from typing import Callable

import numpy as np
import torch


def _report(name: str, ok: bool, detail: str = "") -> bool:
    print(("PASS  " if ok else "FAIL  ") + name + (f": {detail}" if detail else ""))
    return ok


def _run(name: str, body: Callable[[], str | None]) -> bool:
    """Run a checker body; it returns None on success or a reason string."""
    try:
        reason = body()
    except NotImplementedError:
        return _report(name, False, "not implemented yet")
    except Exception as e:  # noqa: BLE001 - a student's bug is a failed check, not a crash
        last = traceback.extract_tb(e.__traceback__)[-1]
        return _report(name, False, f"raised {e.__class__.__name__}: {e} (line {last.lineno})")
    return _report(name, reason is None, reason or "")


def _close(got, want, atol: float) -> str | None:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    err = float(np.abs(got - want).max())
    return None if err <= atol else f"largest error {err:.4g} (allowed {atol:g})"


# ------------------------------------------------------------------------------------- notebook 00
def check_orbit_position(fn: Callable[[float, float, float], np.ndarray]) -> bool:
    """``fn(azimuth_deg, elevation_deg, radius) -> (3,)`` camera centre in the canonical head frame."""
    from .cameras import orbit_position

    def body():
        rng = np.random.default_rng(0)
        for az, el, r in [(0, 0, 4), (90, 0, 2), (180, 10, 3)] + [tuple(rng.uniform([-180, -80, 1], [180, 80, 5]))
                                                                  for _ in range(20)]:
            why = _close(fn(float(az), float(el), float(r)), orbit_position(az, el, r).numpy(), 1e-4)
            if why:
                return f"azimuth {az:.1f}, elevation {el:.1f}, radius {r:.1f}: {why}"
        return None
    return _run("exercise: orbit_position", body)


def check_project(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """``fn(K (3,3), w2c (4,4), points (P,3)) -> (P,2)`` pixel coordinates."""
    from .cameras import orbit_cameras

    def body():
        rng = np.random.default_rng(1)
        for _ in range(10):
            cam = orbit_cameras([rng.uniform(-180, 180)], [rng.uniform(-60, 60)], fov_deg=rng.uniform(15, 60),
                                image_size=int(rng.integers(32, 512)))
            pts = rng.uniform(-1, 1, (25, 3))
            want, _ = cam.project(torch.tensor(pts, dtype=torch.float64)[None])
            why = _close(fn(cam.K[0].double().numpy(), cam.w2c[0].double().numpy(), pts), want[0].numpy(), 1e-3)
            if why:
                return why
        return None
    return _run("exercise: project", body)


def check_pixel_ray(fn: Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]) -> bool:
    """``fn(K, c2w, column, row) -> (3,)`` unit world direction of the ray through that pixel's centre."""
    from .cameras import orbit_cameras

    def body():
        rng = np.random.default_rng(2)
        for _ in range(10):
            size = int(rng.integers(8, 40))
            cam = orbit_cameras([rng.uniform(-180, 180)], [rng.uniform(-60, 60)], image_size=size)
            _, dirs = cam.rays()
            col, row = int(rng.integers(0, size)), int(rng.integers(0, size))
            why = _close(fn(cam.K[0].double().numpy(), cam.c2w[0].double().numpy(), col, row),
                         dirs[0, row, col].numpy(), 1e-4)
            if why:
                return f"pixel (column {col}, row {row}) of a {size}x{size} image: {why}"
        return None
    return _run("exercise: pixel_ray", body)
