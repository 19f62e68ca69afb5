"""Checkers for notebook 03's exercises (the face geometry prior): each takes the student's function,
compares it with :mod:`gen3dface.mesh.geometry` on random cases, prints PASS/FAIL and returns a bool."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from gen3dface.teaching.exercises import _close, _run


def check_umeyama(fn: Callable[[np.ndarray, np.ndarray], tuple]) -> bool:
    """``fn(src (P, 3), dst (P, 3)) -> (s, R (3, 3), t (3,))`` with ``dst ≈ s R src + t`` (least squares)."""
    from gen3dface.mesh.geometry import umeyama

    def body():
        rng = np.random.default_rng(7)
        for case in range(10):
            src = rng.normal(size=(int(rng.integers(4, 60)), 3))
            R = Rotation.random(random_state=case).as_matrix()
            dst = rng.uniform(0.2, 5) * src @ R.T + rng.normal(size=3) + 0.05 * rng.normal(size=src.shape)
            s, R_got, t = fn(src, dst)
            s_want, R_want, t_want = umeyama(src, dst)
            why = (_close(s, s_want, 1e-6) or _close(R_got, R_want, 1e-6) or _close(t, t_want, 1e-6)
                   or (None if np.linalg.det(R_got) > 0 else "R is a reflection (det -1)"))
            if why:
                return f"case {case}: {why}"
        return None
    return _run("exercise: umeyama", body)


def check_pose_from_rotation(fn: Callable[[np.ndarray], tuple]) -> bool:
    """``fn(R (3, 3) camera-to-world) -> (yaw, pitch, roll)`` degrees in the convention of
    :mod:`gen3dface.mesh.geometry`."""
    from gen3dface.mesh.geometry import pose_from_rotation, rotation_from_pose

    def body():
        rng = np.random.default_rng(8)
        for yaw, pitch, roll in [(0, 0, 0), (90, 0, 0), (-30, 20, 10)] + [tuple(rng.uniform([-180, -80, -90], [180, 80, 90]))
                                                                         for _ in range(20)]:
            want = pose_from_rotation(rotation_from_pose(yaw, pitch, roll))
            why = _close(fn(rotation_from_pose(yaw, pitch, roll)), [want["yaw"], want["pitch"], want["roll"]], 1e-4)
            if why:
                return f"yaw {yaw:.1f}, pitch {pitch:.1f}, roll {roll:.1f}: {why}"
        return None
    return _run("exercise: pose_from_rotation", body)
