"""Rigid and similarity alignment, and the head-pose convention: Umeyama fits, yaw/pitch/roll to and from
rotation matrices, axis-angle rotations.

Pose convention (degrees), the pose of the *camera* in the canonical head frame, so it reads like
:mod:`gen3dface.core.cameras`' orbit angles:
    ``yaw`` = the camera's azimuth: positive when the camera sits towards the subject's left, i.e. the
    face is turned towards the subject's own right (it then looks towards the image's left);
    ``pitch`` = the camera's elevation: positive when the camera looks down on the face (head tilted
    forward, chin down);
    ``roll`` = rotation of the camera about its viewing axis relative to the upright orbit camera of
    :func:`gen3dface.core.cameras.look_at`; positive when the head appears turned counter-clockwise in the
    image (``PIL.Image.rotate(+a)`` of an upright photo gives roll ≈ +a).
The rotation is ``R = R_lookat(yaw, pitch) @ R_z(roll)`` (camera-to-world, :func:`rotation_from_pose`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gen3dface.core.cameras import look_at, orbit_position

#: Robust alignment: residuals are down-weighted beyond this multiple of their median (Cauchy weights).
_ROBUST_C = 3.0


def umeyama(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991), optionally weighted.

    Args:
        src, dst: ``(P, 3)`` corresponding points; weights: ``(P,)`` non-negative, or ``None``.
    Returns:
        scale ``s``, rotation ``R (3, 3)`` (det +1), translation ``t (3,)``.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0])
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (w @ (a**2).sum(1)))
    return s, R, mu_d - s * R @ mu_s


def robust_umeyama(
    src: np.ndarray, dst: np.ndarray, rounds: int = 3
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`umeyama` re-weighted ``rounds`` times with Cauchy weights on the residuals, so a few bad
    points (occlusion, a wrong contour) do not tilt the fit. Returns ``s, R, t`` and the weights ``(P,)``."""
    w = np.ones(len(src))
    for _ in range(rounds):
        s, R, t = umeyama(src, dst, w)
        r = np.linalg.norm(s * src @ R.T + t - dst, axis=1)
        w = 1.0 / (1.0 + (r / (_ROBUST_C * np.median(r) + 1e-12)) ** 2)
    return s, R, t, w


def _lookat_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world rotation ``(3, 3)`` of the upright orbit camera at azimuth ``yaw``, elevation ``pitch``."""
    eye = orbit_position(
        torch.tensor(float(yaw), dtype=torch.float64), torch.tensor(float(pitch), dtype=torch.float64), 1.0
    )
    return look_at(
        eye.double(), torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    )[:3, :3].numpy()


def rotation_from_pose(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation ``(3, 3)``: ``R_lookat(yaw, pitch) @ R_z(roll)`` (degrees; module doc)."""
    r = math.radians(roll)
    Rz = np.array([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]])
    return _lookat_rotation(yaw, pitch) @ Rz


def pose_from_rotation(R: np.ndarray) -> dict[str, float]:
    """Inverse of :func:`rotation_from_pose`: camera-to-world ``R (3, 3)`` to yaw, pitch, roll degrees.

    The camera looks along its third column, so the direction from the head to the camera is ``-R[:, 2]``:
    its azimuth and elevation are yaw and pitch; what is left, ``R_lookat^T R``, turns about the optical
    axis by the roll. Pitch is clamped to ±89.9 degrees (yaw and roll are not separable straight above).
    """
    R = np.asarray(R, np.float64)
    d = -R[:, 2]
    yaw = math.degrees(math.atan2(d[0], d[2]))
    pitch = float(np.clip(math.degrees(math.asin(np.clip(d[1], -1.0, 1.0))), -89.9, 89.9))
    Rz = _lookat_rotation(yaw, pitch).T @ R
    return {"yaw": yaw, "pitch": pitch, "roll": math.degrees(math.atan2(Rz[1, 0], Rz[0, 0]))}


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis-angle ``(..., 3)`` (radians) to rotation matrices ``(..., 3, 3)``; smooth at 0."""
    angle = torch.sqrt((v * v).sum(-1, keepdim=True) + 1e-16)
    k = v / angle
    zero = torch.zeros_like(k[..., 0])
    K = torch.stack(
        [zero, -k[..., 2], k[..., 1], k[..., 2], zero, -k[..., 0], -k[..., 1], k[..., 0], zero], -1
    ).reshape(*v.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return eye + s * K + (1 - c) * K @ K
