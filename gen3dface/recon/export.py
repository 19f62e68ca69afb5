"""What leaves a fitted field: its mesh (:func:`extract_mesh`, marching cubes with vertex colours) written
as ``.glb`` / ``.obj`` / ``.ply``, and turntables (frames going once round the head) written as ``.gif`` /
``.mp4``; all writes are atomic."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import DEFAULT_FOV_DEG, DEFAULT_RADIUS, Cameras, orbit_cameras
from gen3dface.core.errors import InputError
from gen3dface.core.storage import MESH_FORMATS, atomic_path, atomic_write_bytes
from gen3dface.recon.field import SDFGrid

#: Turntable formats :func:`save_turntable` writes.
VIDEO_FORMATS = (".gif", ".mp4")


@torch.no_grad()
def extract_mesh(field: SDFGrid, resolution: int = 128, min_component: float = 0.05):
    """Marching cubes of the zero level set on a ``resolution^3`` grid; vertex colours from the colour grid.

    Returns a ``trimesh.Trimesh`` in the head frame with outward (counter-clockwise) faces and uint8 RGBA
    vertex colours; pieces with fewer faces than ``min_component`` x the largest piece are dropped.
    """
    import trimesh
    from skimage.measure import marching_cubes

    dev = field.sdf.device
    n = resolution
    t = torch.linspace(-1, 1, n, device=dev)
    vol = torch.empty(n, n, n)
    for k in range(n):  # one z slice at a time bounds memory
        y, x = torch.meshgrid(t, t, indexing="ij")
        pts = torch.stack([x, y, torch.full_like(x, float(t[k]))], -1)
        vol[k] = field.query(pts, rgb=False)[0].cpu()
    vol = F.pad(vol, (1, 1, 1, 1, 1, 1), value=1.0).numpy()  # close the surface at the cube's faces
    if vol.min() >= 0 or vol.max() <= 0:
        raise InputError(
            "the fitted field has no surface (the SDF does not change sign); check views and masks"
        )
    step = 2.0 / (n - 1)
    verts, faces, _, _ = marching_cubes(vol, level=0.0, spacing=(step, step, step))
    verts = verts[:, ::-1] - (1.0 + step)  # (z, y, x) index order -> (x, y, z), undo the padding
    faces = faces.astype(np.int64)
    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:
        mesh.invert()
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        biggest = max(len(p.faces) for p in parts)
        mesh = trimesh.util.concatenate([p for p in parts if len(p.faces) >= min_component * biggest])
    v = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=dev)
    _, rgb = field.query(v)
    rgba = np.concatenate(
        [(rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8), np.full((len(v), 1), 255, np.uint8)], 1
    )
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=rgba, process=False)


def check_output_path(path, formats=MESH_FORMATS, what: str = "mesh") -> Path:
    """``path`` as a Path, or :class:`InputError` when its extension is not one of ``formats``."""
    p = Path(path)
    if p.suffix.lower() not in formats:
        raise InputError(f"{what} file must end in {', '.join(formats)}; got {p.name!r}")
    if p.is_dir():
        raise InputError(f"{p} is a folder; give a {what} file name ({', '.join(formats)})")
    return p


def save_mesh(mesh, path) -> Path:
    """Write a trimesh mesh atomically as ``.glb``, ``.obj`` or ``.ply`` (by extension)."""
    p = check_output_path(path)
    data = mesh.export(file_type=p.suffix.lower()[1:])
    atomic_write_bytes(p, data if isinstance(data, bytes) else data.encode())
    return p


# --------------------------------------------------------------------------------------- turntables
def turntable_cameras(
    n_frames: int = 36, elevation_deg: float = 10.0, image_size: int = 128, like: Cameras | None = None
) -> Cameras:
    """``n_frames`` cameras going once round the head, starting in front of the face. With ``like``, its
    first camera's radius and focal length are used (the inputs' framing)."""
    radius, fov = DEFAULT_RADIUS, DEFAULT_FOV_DEG
    if like is not None:
        c = like if len(like.shape) == 1 else like[None]
        radius = float(c.radius.reshape(-1)[0])
        fov = math.degrees(2 * math.atan(0.5 * c.height / float(c.K.reshape(-1, 3, 3)[0, 1, 1])))
    az = torch.arange(n_frames, dtype=torch.float32) * 360.0 / n_frames
    return orbit_cameras(az, elevation_deg, radius, fov, image_size)


def save_turntable(frames: np.ndarray, path, fps: int = 12) -> Path:
    """Write ``frames (T, H, W, 3)`` as ``.gif`` (Pillow) or ``.mp4`` (OpenCV, mp4v), atomically."""
    p = check_output_path(path, VIDEO_FORMATS, "turntable")
    f = np.asarray(frames)
    if f.dtype != np.uint8:
        f = np.clip(f * 255 + 0.5, 0, 255).astype(np.uint8)
    if p.suffix.lower() == ".gif":
        from PIL import Image

        imgs = [Image.fromarray(x) for x in f]
        buf = io.BytesIO()
        imgs[0].save(
            buf, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0
        )
        atomic_write_bytes(p, buf.getvalue())
        return p
    import cv2

    with atomic_path(p) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (f.shape[2], f.shape[1]))
        if not writer.isOpened():
            raise InputError("this OpenCV build cannot write MP4; use a .gif turntable")
        for x in f:
            writer.write(np.ascontiguousarray(x[..., ::-1]))
        writer.release()
    return p
