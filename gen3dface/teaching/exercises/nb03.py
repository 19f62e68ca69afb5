"""Checkers for notebook 03 (the face geometry prior): exercises ``umeyama`` (the least-squares similarity
transform), ``pose_from_rotation`` (yaw, pitch and roll of a camera rotation) and ``outlier_fit`` (how many
guessed landmarks tilt a plain least-squares fit but not the re-weighted one)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from gen3dface.mesh.align import pose_from_rotation, robust_umeyama, rotation_from_pose, umeyama
from gen3dface.mesh.facemesh import face_template
from gen3dface.teaching.checking import (
    ExerciseFailed,
    answered,
    expect_close,
    require,
    require_function,
    run_check,
)

#: the true pose of exercise ``outlier_fit``'s face (yaw, pitch, roll in degrees)
CHEEK_POSE = (30.0, 10.0, 0.0)


def check_umeyama(fn: Callable[[np.ndarray, np.ndarray], tuple]) -> bool:
    """``fn(src (P, 3), dst (P, 3)) -> (s, R (3, 3), t (3,))`` with ``dst ≈ s R src + t`` (least squares)."""

    def body():
        require_function(fn, "my_umeyama")
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
        require_function(fn, "my_pose_from_rotation")
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


def cheek_guess_case(
    n_bad: int, shift: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The template face (``src (468, 3)``), the same face turned to :data:`CHEEK_POSE` with a little noise
    (``dst``), its ``n_bad`` points furthest on the subject's left pushed ``shift`` away from the camera, as
    guessed landmarks of a far cheek are; and the true rotation ``R (3, 3)``."""
    src = face_template()
    if not 0 <= int(n_bad) <= len(src):
        raise ValueError(f"n_bad must lie between 0 and {len(src)}, got {n_bad}")
    R = rotation_from_pose(*CHEEK_POSE)
    dst = src @ R.T + 0.003 * np.random.default_rng(seed).normal(size=src.shape)
    far = np.argsort(-src[:, 0])[: int(n_bad)]
    dst[far] += np.array([0.0, 0.0, -shift]) @ R.T
    return src, dst, R


def rotation_error(R_est: np.ndarray, R_true: np.ndarray) -> float:
    """The angle (degrees) of the rotation between ``R_est`` and ``R_true``."""
    c = (np.trace(np.asarray(R_est).T @ np.asarray(R_true)) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def check_outlier_fit(n_bad: int | None) -> bool:
    """``n_bad``: a number of guessed far-cheek landmarks (:func:`cheek_guess_case`) at which the plain
    least-squares fit is off by more than 5 degrees while the re-weighted fit stays within 1 degree."""

    def body():
        n = int(require(n_bad, "n_bad", "set how many landmarks to corrupt and re-run the cell"))
        if not 0 <= n <= 468:
            raise ExerciseFailed(f"n_bad = {n} is not a number of the template's 468 landmarks")
        src, dst, R = cheek_guess_case(n)
        plain = rotation_error(umeyama(src, dst)[1], R)
        robust = rotation_error(robust_umeyama(src, dst)[1], R)
        if plain <= 5:
            raise ExerciseFailed(
                f"with {n} guessed landmarks the plain fit is only {plain:.1f} degrees off: corrupt more"
            )
        if robust > 1:
            raise ExerciseFailed(
                f"with {n} guessed landmarks the re-weighted fit is off too ({robust:.1f} degrees): corrupt fewer"
            )
        return f"{n} guessed landmarks tilt the plain fit by {plain:.1f} degrees, the re-weighted one by {robust:.2f}"

    return run_check("outlier_fit", body)
