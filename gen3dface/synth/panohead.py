"""PanoHead adapter: the paper's data generator, for users who have its code and a checkpoint.

PanoHead (An et al., CVPR 2023) is an EG3D-style 3D GAN. Its camera conditioning is EG3D's 25 values:
the camera-to-world matrix (4 x 4, OpenCV axes: x right, y down, z forward; world +Y up, the face looking
along +Z) flattened, then the intrinsics (3 x 3) *normalised by the image size* (focal 4.2647 for its
18.837 degree field of view, principal point 0.5). Its world differs from ours by a scale and a pivot:
its heads live in EG3D's box [-0.5, 0.5]^3 around ``pivot``, ours in [-1, 1]^3 around the origin, so a point
``X`` of ours is ``scale * X + pivot`` there (``scale = 0.5``). Rotations are the same.

Nothing here downloads anything. The network pickle is untrusted code: it is only unpickled when the
caller passes ``trust_pickle=True``, and PanoHead's own source tree (``dnnlib``, ``torch_utils``,
``legacy.py``) must be given, since the pickle refers to its classes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

from gen3dface.core.cameras import Cameras, orbit_cameras, ring_azimuths
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.core.images import to_uint8

EG3D_FOCAL = 4.2647  # normalised focal length of EG3D / PanoHead (FOV 18.837 degrees)
PANOHEAD_RADIUS = 2.7  # camera distance in EG3D units
EG3D_SCALE = 0.5  # our [-1, 1]^3 head cube -> EG3D's [-0.5, 0.5]^3 box


def panohead_fov_deg() -> float:
    """Field of view of PanoHead's cameras, degrees."""
    return math.degrees(2 * math.atan(0.5 / EG3D_FOCAL))


def panohead_grid(
    image_size: int = 256,
    n_azimuth: int = 16,
    elevations=(-40.0, 0.0, 40.0),
    radius: float = PANOHEAD_RADIUS,
    scale: float = EG3D_SCALE,
) -> Cameras:
    """The 48-view synthesis grid in *our* frame, framed as PanoHead renders it (its radius and focal)."""
    el = torch.tensor(list(elevations), dtype=torch.float32)
    E, A = torch.meshgrid(el, ring_azimuths(n_azimuth), indexing="ij")
    return orbit_cameras(
        A.reshape(-1), E.reshape(-1), radius=radius / scale, fov_deg=panohead_fov_deg(), image_size=image_size
    )


def to_eg3d(cameras: Cameras, scale: float = EG3D_SCALE, pivot=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """EG3D conditioning ``(..., 25)``: cam2world (16, EG3D's world) + intrinsics normalised by image size (9)."""
    c2w = cameras.c2w.clone()
    c2w[..., :3, 3] = scale * c2w[..., :3, 3] + torch.as_tensor(pivot, dtype=c2w.dtype, device=c2w.device)
    norm = torch.tensor([cameras.width, cameras.height, 1.0], dtype=cameras.K.dtype, device=cameras.K.device)
    K = cameras.K / norm[:, None]
    return torch.cat([c2w.flatten(-2), K.flatten(-2)], -1)


def from_eg3d(c: torch.Tensor, image_size: int, scale: float = EG3D_SCALE, pivot=(0.0, 0.0, 0.0)) -> Cameras:
    """Inverse of :func:`to_eg3d` for square images of ``image_size`` pixels."""
    c = torch.as_tensor(c, dtype=torch.float32)
    if c.shape[-1] != 25:
        raise InputError(f"EG3D conditioning has 25 values per camera, got {c.shape[-1]}")
    c2w = c[..., :16].reshape(*c.shape[:-1], 4, 4).clone()
    c2w[..., :3, 3] = (c2w[..., :3, 3] - torch.as_tensor(pivot, dtype=c.dtype)) / scale
    K = c[..., 16:].reshape(*c.shape[:-1], 3, 3) * torch.tensor([image_size, image_size, 1.0])[:, None]
    return Cameras(K, c2w, image_size, image_size)


def load_panohead(pkl: str | Path, code_dir: str | Path, trust_pickle: bool = False, device: str = "cpu"):
    """PanoHead's generator ``G_ema`` from its network pickle, with PanoHead's source tree on the path.

    Raises :class:`BackendUnavailable` unless ``trust_pickle`` is set (the pickle runs code) and both paths exist.
    """
    pkl, code_dir = Path(pkl), Path(code_dir)
    if not trust_pickle:
        raise BackendUnavailable(
            f"{pkl} is a pickle, which can run arbitrary code; pass trust_pickle=True "
            "(CLI: --trust-pickle) only for a checkpoint from a source you trust"
        )
    if not pkl.is_file():
        raise BackendUnavailable(f"PanoHead checkpoint not found: {pkl}")
    if not (code_dir / "legacy.py").is_file() or not (code_dir / "dnnlib").is_dir():
        raise BackendUnavailable(f"{code_dir} is not a PanoHead checkout (needs legacy.py and dnnlib/)")
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    import legacy  # PanoHead's own loader, from the user's checkout

    with open(pkl, "rb") as f:
        G = legacy.load_network_pkl(f)["G_ema"]
    return G.eval().requires_grad_(False).to(device)


@torch.no_grad()
def render_panohead_identity(
    G, seed: int, cameras: Cameras, truncation: float = 0.7, scale: float = EG3D_SCALE
) -> dict:
    """Render one PanoHead identity (latent from ``seed``) from ``cameras (V,)``: ``rgb (V, H, W, 3)`` uint8,
    ``mask (V, H, W)`` uint8 (PanoHead's ``image_mask`` where it returns one, else all 255), ``cameras``.

    The mapping network is conditioned on the frontal camera, as PanoHead's sampling scripts do.
    """
    kw = getattr(G, "rendering_kwargs", {}) or {}
    pivot = tuple(kw.get("avg_camera_pivot", (0.0, 0.0, 0.0)))
    device = next(G.parameters()).device if hasattr(G, "parameters") else "cpu"
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float().to(device)
    front = orbit_cameras(
        [0.0],
        [0.0],
        radius=kw.get("avg_camera_radius", PANOHEAD_RADIUS) / scale,
        fov_deg=panohead_fov_deg(),
        image_size=cameras.height,
    )
    ws = G.mapping(z, to_eg3d(front, scale, pivot).to(device), truncation_psi=truncation)
    cond = to_eg3d(cameras, scale, pivot).to(device)
    rgbs, masks = [], []
    for k in range(len(cameras)):
        out = G.synthesis(ws, cond[k : k + 1])
        img = out["image"] if isinstance(out, dict) else out
        if img.shape[-1] != cameras.width:
            img = torch.nn.functional.interpolate(
                img,
                size=(cameras.height, cameras.width),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        rgbs.append(to_uint8(img[0]))
        m = out.get("image_mask") if isinstance(out, dict) else None
        if m is None:
            masks.append(np.full((cameras.height, cameras.width), 255, np.uint8))
        else:
            m = torch.nn.functional.interpolate(
                m.float(), size=(cameras.height, cameras.width), mode="bilinear"
            )
            masks.append((m[0, 0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy())
    return {"rgb": np.stack(rgbs), "mask": np.stack(masks), "cameras": cameras}
