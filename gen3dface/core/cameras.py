"""The one camera convention of gen3dface.

Canonical head frame (world)
    Right-handed, origin at the centre of the head, units such that the head fits in the cube
    [-1, 1]^3 (the feature volume spans exactly this cube). +Y is up, +Z points out of the face (the
    face looks along +Z), so +X is the subject's *left* (which appears on the image right in a frontal
    photo).

Orbit angles
    ``azimuth`` (degrees) turns the camera about +Y: 0 is in front of the face, +90 looks at the
    subject's left ear, +-180 at the back of the head. ``elevation`` (degrees) is positive above the
    head's equator. A camera at (azimuth, elevation, radius) sits at
    ``radius * (cos(el) sin(az), sin(el), cos(el) cos(az))`` and looks at the origin with +Y up.

Camera frame and pixels (OpenCV)
    Camera x right, y down, z forward (into the scene). ``c2w`` maps camera to world coordinates,
    ``w2c`` its inverse. Intrinsics ``K`` are in pixels; pixel (u, v) has its top-left corner at
    (0, 0) and pixel (i, j) (column, row) covers [i, i+1) x [j, j+1), so its centre is (i+0.5, j+0.5).

Shapes: a :class:`Cameras` holds a batch ``(...)`` of cameras: ``K (..., 3, 3)``, ``c2w (..., 4, 4)``,
one image size for the whole batch. Points are ``(..., P, 3)``; pixels ``(..., P, 2)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from gen3dface.core.errors import InputError
from gen3dface.core.limits import MAX_FOV_DEG, MIN_FOV_DEG

#: Default orbit: at radius 4 a 30 degree field of view frames the [-1, 1]^3 head cube with a margin.
DEFAULT_RADIUS = 4.0
DEFAULT_FOV_DEG = 30.0
#: a cameras.json larger than this is not one (thousands of cameras take a few MB)
MAX_CAMERAS_BYTES = 64 * 2**20
#: image sides a cameras record may give (pixels)
MAX_IMAGE_SIDE = 16384
#: The paper's synthesis grid: azimuth -180..180, elevation -40..40 (16 azimuths x 3 elevations = 48).
SYNTHESIS_ELEVATIONS = (-40.0, 0.0, 40.0)
SYNTHESIS_AZIMUTHS = 16
#: The paper's N = 16 target views.
TARGET_VIEWS = 16


def _as_tensor(x, dtype=torch.float32) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype)


def orbit_position(azimuth_deg, elevation_deg, radius=DEFAULT_RADIUS) -> torch.Tensor:
    """Camera centre of an orbit camera. Angles broadcast; returns ``(..., 3)``."""
    az = torch.deg2rad(_as_tensor(azimuth_deg))
    el = torch.deg2rad(_as_tensor(elevation_deg))
    r = _as_tensor(radius)
    az, el, r = torch.broadcast_tensors(az, el, r)
    return torch.stack(
        [r * torch.cos(el) * torch.sin(az), r * torch.sin(el), r * torch.cos(el) * torch.cos(az)], -1
    )


def look_at(eye: torch.Tensor, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> torch.Tensor:
    """Camera-to-world matrices ``(..., 4, 4)`` of OpenCV cameras at ``eye (..., 3)`` looking at ``target``.

    Raises ``ValueError`` when the viewing direction is parallel to ``up`` (straight above or below).
    """
    eye = _as_tensor(eye)
    target = _as_tensor(target).to(eye.dtype).expand_as(eye)
    up = _as_tensor(up).to(eye.dtype).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(-up, forward, dim=-1)
    norm = right.norm(dim=-1, keepdim=True)
    if bool((norm < 1e-6).any()):
        raise ValueError(
            "look_at: viewing direction is parallel to the up vector (elevation of +-90 degrees)"
        )
    right = right / norm
    down = torch.linalg.cross(forward, right, dim=-1)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = right, down, forward, eye
    c2w[..., 3, 3] = 1.0
    return c2w


def check_fov(fov_deg: float) -> float:
    """``fov_deg`` as a float when it is a finite field of view in [:data:`MIN_FOV_DEG`, :data:`MAX_FOV_DEG`]
    degrees; else a one-line :class:`InputError` (0 or 180 degrees has no pinhole camera)."""
    try:
        fov = float(fov_deg)
    except (TypeError, ValueError):
        raise InputError(f"the field of view must be a number of degrees, got {fov_deg!r}") from None
    if not (math.isfinite(fov) and MIN_FOV_DEG <= fov <= MAX_FOV_DEG):
        raise InputError(
            f"the field of view must be between {MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} degrees, got {fov_deg}"
        )
    return fov


def intrinsics_from_fov(fov_deg: float, height: int, width: int | None = None) -> torch.Tensor:
    """Pinhole intrinsics ``(3, 3)`` in pixels for a *vertical* field of view (:func:`check_fov`), square pixels,
    centred."""
    fov_deg = check_fov(fov_deg)
    width = height if width is None else width
    fy = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[fy, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Cameras:
    """A batch of pinhole cameras in the package convention (see module docstring).

    Attributes:
        K: ``(..., 3, 3)`` intrinsics in pixels.
        c2w: ``(..., 4, 4)`` camera-to-world rigid transforms.
        height, width: image size in pixels shared by the batch.
    """

    K: torch.Tensor
    c2w: torch.Tensor
    height: int
    width: int

    def __post_init__(self):
        if self.K.shape[-2:] != (3, 3) or self.c2w.shape[-2:] != (4, 4):
            raise ValueError(
                f"Cameras: K must be (...,3,3) and c2w (...,4,4), got {tuple(self.K.shape)}, "
                f"{tuple(self.c2w.shape)}"
            )
        if self.K.shape[:-2] != self.c2w.shape[:-2]:
            raise ValueError(
                f"Cameras: batch shapes differ: {tuple(self.K.shape[:-2])} vs {tuple(self.c2w.shape[:-2])}"
            )

    # ----------------------------------------------------------------- batch helpers
    @property
    def shape(self) -> torch.Size:
        return self.c2w.shape[:-2]

    def __len__(self) -> int:
        return self.shape[0] if len(self.shape) else 1

    def __getitem__(self, idx) -> "Cameras":
        return Cameras(self.K[idx], self.c2w[idx], self.height, self.width)

    def to(self, device=None, dtype=None) -> "Cameras":
        return Cameras(
            self.K.to(device=device, dtype=dtype),
            self.c2w.to(device=device, dtype=dtype),
            self.height,
            self.width,
        )

    # ----------------------------------------------------------------- extrinsics
    @property
    def w2c(self) -> torch.Tensor:
        """World-to-camera ``(..., 4, 4)``: the rigid inverse of ``c2w``."""
        R, t = self.c2w[..., :3, :3], self.c2w[..., :3, 3:]
        Rt = R.transpose(-1, -2)
        out = torch.zeros_like(self.c2w)
        out[..., :3, :3], out[..., :3, 3:] = Rt, -Rt @ t
        out[..., 3, 3] = 1.0
        return out

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres in world coordinates ``(..., 3)``."""
        return self.c2w[..., :3, 3]

    @property
    def azimuth_deg(self) -> torch.Tensor:
        """Orbit azimuth of each camera centre, degrees in (-180, 180]; ``(...)``."""
        c = self.centers
        return torch.rad2deg(torch.atan2(c[..., 0], c[..., 2]))

    @property
    def elevation_deg(self) -> torch.Tensor:
        """Orbit elevation of each camera centre, degrees; ``(...)``."""
        c = self.centers
        return torch.rad2deg(torch.asin((c[..., 1] / c.norm(dim=-1)).clamp(-1, 1)))

    @property
    def radius(self) -> torch.Tensor:
        return self.centers.norm(dim=-1)

    # ----------------------------------------------------------------- projection
    def world_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``(..., P, 3)`` to camera coordinates ``(..., P, 3)``."""
        w2c = self.w2c.to(points.dtype)
        return points @ w2c[..., :3, :3].transpose(-1, -2) + w2c[..., None, :3, 3]

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points ``(..., P, 3)`` to pixels ``(..., P, 2)`` and depths ``(..., P)``.

        Depth is the camera-frame z (distance along the optical axis); points behind the camera have
        depth <= 0 and meaningless pixels.
        """
        cam = self.world_to_camera(points)
        z = cam[..., 2]
        uvw = cam @ self.K.to(points.dtype).transpose(-1, -2)
        safe = torch.where(z.abs() < 1e-9, torch.full_like(z, 1e-9), z)
        return uvw[..., :2] / safe[..., None], z

    def unproject(self, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`project`: pixels ``(..., P, 2)`` at depths ``(..., P)`` to world ``(..., P, 3)``."""
        K = self.K.to(uv.dtype)
        fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
        cx, cy = K[..., 0, 2, None], K[..., 1, 2, None]
        x = (uv[..., 0] - cx) / fx * depth
        y = (uv[..., 1] - cy) / fy * depth
        cam = torch.stack([x, y, depth], -1)
        c2w = self.c2w.to(uv.dtype)
        return cam @ c2w[..., :3, :3].transpose(-1, -2) + c2w[..., None, :3, 3]

    def pixel_centers(self, dtype=torch.float32) -> torch.Tensor:
        """Pixel centres ``(H, W, 2)`` as (u, v) = (column + 0.5, row + 0.5), on the cameras' device."""
        dev = self.K.device
        v, u = torch.meshgrid(
            torch.arange(self.height, dtype=dtype, device=dev) + 0.5,
            torch.arange(self.width, dtype=dtype, device=dev) + 0.5,
            indexing="ij",
        )
        return torch.stack([u, v], -1)

    def rays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through every pixel centre: origins and unit directions, each ``(..., H, W, 3)``."""
        uv = self.pixel_centers(self.c2w.dtype).reshape(-1, 2)
        uv = uv.expand(*self.shape, -1, -1)
        ones = torch.ones(uv.shape[:-1], dtype=uv.dtype, device=uv.device)
        far = self.unproject(uv, ones)
        origins = self.centers[..., None, :].expand_as(far)
        dirs = torch.nn.functional.normalize(far - origins, dim=-1)
        hw = (self.height, self.width, 3)
        return origins.reshape(*self.shape, *hw), dirs.reshape(*self.shape, *hw)

    def batched(self, batch: int) -> "Cameras":
        """These ``(N,)`` cameras shared by ``batch`` samples: batch shape ``(batch, N)`` (expanded, not copied)."""
        if len(self.shape) != 1:
            raise ValueError(f"batched() takes cameras of batch shape (N,), got {tuple(self.shape)}")
        N = self.shape[0]
        return Cameras(
            self.K[None].expand(batch, N, 3, 3),
            self.c2w[None].expand(batch, N, 4, 4),
            self.height,
            self.width,
        )

    def resized(self, height: int, width: int | None = None) -> "Cameras":
        """The same cameras for images resized to ``height x width`` (e.g. latent resolution)."""
        width = height if width is None else width
        K = self.K.clone()  # scaled in place: no small tensor built on the host and copied to the device
        K[..., 0, :] *= width / self.width
        K[..., 1, :] *= height / self.height
        return Cameras(K, self.c2w, height, width)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """JSON-ready dict (the ``cameras.json`` format); angles are included for people, not read back."""
        flat_K, flat_c2w = self.K.reshape(-1, 3, 3), self.c2w.reshape(-1, 4, 4)
        return {
            "convention": "gen3dface/opencv: world +Y up, face looks +Z; camera x right, y down, z forward",
            "height": self.height,
            "width": self.width,
            "K": flat_K.tolist(),
            "c2w": flat_c2w.tolist(),
            "azimuth_deg": self.azimuth_deg.reshape(-1).tolist(),
            "elevation_deg": self.elevation_deg.reshape(-1).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Cameras":
        try:
            K = torch.tensor(d["K"], dtype=torch.float32)
            c2w = torch.tensor(d["c2w"], dtype=torch.float32)
            height, width = int(d["height"]), int(d["width"])
            if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
                raise ValueError(f"image size {width}x{height} is not within 1..{MAX_IMAGE_SIDE} pixels")
            if not (bool(torch.isfinite(K).all()) and bool(torch.isfinite(c2w).all())):
                raise ValueError("K or c2w holds NaN or infinite numbers")
            return cls(K, c2w, height, width)
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise InputError(f"not a gen3dface cameras record ({e.__class__.__name__}: {e})") from None

    def save(self, path) -> None:
        from gen3dface.core.storage import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> "Cameras":
        from pathlib import Path

        from gen3dface.core.images import read_input_file

        p = Path(path)
        if not p.is_file():
            raise InputError(f"cameras file not found: {p}")
        try:
            d = json.loads(read_input_file(p, MAX_CAMERAS_BYTES, "cameras file"))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise InputError(f"{p} is not valid JSON ({e})") from None
        return cls.from_dict(d)


def orbit_cameras(
    azimuth_deg: Sequence[float] | torch.Tensor,
    elevation_deg: Sequence[float] | torch.Tensor | float = 0.0,
    radius: float = DEFAULT_RADIUS,
    fov_deg: float = DEFAULT_FOV_DEG,
    image_size: int = 256,
) -> Cameras:
    """Cameras on a sphere around the head, looking at the origin with +Y up. Angles broadcast; ``(V,)``."""
    az, el = torch.broadcast_tensors(_as_tensor(azimuth_deg), _as_tensor(elevation_deg))
    if bool((el.abs() >= 89.9).any()):
        raise ValueError("orbit_cameras: elevation must lie strictly between -89.9 and 89.9 degrees")
    eye = orbit_position(az, el, radius)
    c2w = look_at(eye)
    K = intrinsics_from_fov(fov_deg, image_size).expand(*az.shape, 3, 3).clone()
    return Cameras(K, c2w, image_size, image_size)


def ring_azimuths(n: int) -> torch.Tensor:
    """``n`` azimuths evenly spaced from -180 (inclusive) to 180 (exclusive), degrees."""
    return -180.0 + 360.0 * torch.arange(n, dtype=torch.float32) / n


def target_ring(
    n: int = TARGET_VIEWS,
    elevation_deg: float = 0.0,
    radius: float = DEFAULT_RADIUS,
    fov_deg: float = DEFAULT_FOV_DEG,
    image_size: int = 256,
) -> Cameras:
    """The N target views of the paper: a ring of ``n`` cameras around the head, ``(n,)``.

    View 0 looks at the back of the head (azimuth -180), view ``n//2`` at the face (azimuth 0).
    """
    return orbit_cameras(ring_azimuths(n), elevation_deg, radius, fov_deg, image_size)


def synthesis_grid(
    n_azimuth: int = SYNTHESIS_AZIMUTHS,
    elevations: Iterable[float] = SYNTHESIS_ELEVATIONS,
    radius: float = DEFAULT_RADIUS,
    fov_deg: float = DEFAULT_FOV_DEG,
    image_size: int = 256,
) -> Cameras:
    """The paper's 48-view synthesis grid: azimuth -180..180 x elevation -40..40, elevation-major ``(E*A,)``.

    With the defaults the middle elevation ring (index 1) equals :func:`target_ring`'s 16 views.
    """
    el = torch.tensor(list(elevations), dtype=torch.float32)
    az = ring_azimuths(n_azimuth)
    E, A = torch.meshgrid(el, az, indexing="ij")
    return orbit_cameras(A.reshape(-1), E.reshape(-1), radius, fov_deg, image_size)
