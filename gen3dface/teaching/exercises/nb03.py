"""Checkers for notebook 03 (the face geometry prior): exercises ``umeyama`` (the least-squares similarity
transform) and ``pose_from_rotation`` (yaw, pitch and roll of a camera rotation)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from gen3dface.mesh.align import pose_from_rotation, rotation_from_pose, umeyama
from gen3dface.teaching.checking import ExerciseFailed, answered, expect_close, run_check


def check_umeyama(fn: Callable[[np.ndarray, np.ndarray], tuple]) -> bool:
    """``fn(src (P, 3), dst (P, 3)) -> (s, R (3, 3), t (3,))`` with ``dst ≈ s R src + t`` (least squares)."""

    def body():
        rng = np.random.default_rng(7)
        for case in range(10):
            src = rng.normal(size=(int(rng.integers(4, 60)), 3))
            R = Rotation.random(random_state=case).as_matrix()
            dst = rng.uniform(0.2, 5) * src @ R.T + rng.normal(size=3) + 0.05 * rng.normal(size=src.shape)
            s, R_got, t = answered(fn(src, dst))
            s_want, R_want, t_want = umeyama(src, dst)
            expect_close(s, s_want, 1e-6, f"case {case}, the scale s")
            expect_close(R_got, R_want, 1e-6, f"case {case}, the rotation R")
            expect_close(t, t_want, 1e-6, f"case {case}, the translation t")
            if np.linalg.det(R_got) <= 0:
                raise ExerciseFailed(f"case {case}: R is a reflection (det -1)")
        return "s, R and t of 10 noisy point sets match gen3dface.mesh.align.umeyama"

    return run_check("umeyama", body)


def check_pose_from_rotation(fn: Callable[[np.ndarray], tuple]) -> bool:
    """``fn(R (3, 3) camera-to-world) -> (yaw, pitch, roll)`` degrees in the convention of
    :mod:`gen3dface.mesh.align`."""

    def body():
        rng = np.random.default_rng(8)
        cases = [(0, 0, 0), (90, 0, 0), (-30, 20, 10)] + [
            tuple(rng.uniform([-180, -80, -90], [180, 80, 90])) for _ in range(20)
        ]
        for yaw, pitch, roll in cases:
            want = pose_from_rotation(rotation_from_pose(yaw, pitch, roll))
            expect_close(
                fn(rotation_from_pose(yaw, pitch, roll)),
                [want["yaw"], want["pitch"], want["roll"]],
                1e-4,
                f"yaw {yaw:.1f}, pitch {pitch:.1f}, roll {roll:.1f}",
            )
        return f"{len(cases)} rotations give gen3dface.mesh.align.pose_from_rotation's angles"

    return run_check("pose_from_rotation", body)
