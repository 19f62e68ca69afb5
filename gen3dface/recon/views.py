"""The posed views a surface is fitted to: :class:`ViewSet`, built from arrays (:func:`views_from_arrays`)
or read from a views folder (:func:`load_views`); foreground masks from files, an alpha channel or the
plain background.

Tensors: ``rgb (V, H, W, 3)`` in [0, 1], ``mask (V, H, W)`` in [0, 1], cameras ``(V,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras
from gen3dface.core.errors import InputError
from gen3dface.core.images import MAX_PHOTO_BYTES, read_input_file
from gen3dface.recon.photo import PhotoView, load_photo_view


@dataclass
class ViewSet:
    """Posed views to reconstruct from.

    Attributes:
        rgb: ``(V, H, W, 3)`` float in [0, 1].
        mask: ``(V, H, W)`` float in [0, 1], the foreground.
        cameras: ``(V,)`` :class:`Cameras` of size H x W.
        background: ``(3,)`` colour behind the head (estimated from the pixels outside the masks).
        source: where the views came from (a folder, or ``"arrays"``).
        mask_source: ``"files"``, ``"alpha"``, ``"background"`` or ``"given"``.
        gt_mesh: path of a ground-truth ``mesh.ply`` beside the views (``synth`` writes one), else ``None``.
        photo: the input photo at its camera beside the views (``gen3dface generate`` writes one; see
            :mod:`gen3dface.recon.photo`), else ``None``.
    """

    rgb: torch.Tensor
    mask: torch.Tensor
    cameras: Cameras
    background: torch.Tensor
    source: str = "arrays"
    mask_source: str = "given"
    gt_mesh: Path | None = None
    photo: PhotoView | None = None

    def __len__(self) -> int:
        return self.rgb.shape[0]


def _estimate_background(rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = rgb[mask < 0.5]
    if len(out) < 16:
        return torch.ones(3)
    return out.median(0).values.clamp(0, 1)


def _mask_from_background(rgb: torch.Tensor, threshold: float = 12 / 255) -> torch.Tensor:
    """Soft foreground masks ``(V, H, W)`` of views on a plain background.

    The median colour of the image borders is the background; pixels that differ from it, with holes
    filled, are the head. On its outline a pixel's coverage is estimated as its difference from the
    background over the largest difference among its 3x3 neighbours (anti-aliased edges are partly
    covered), so a 0.5 threshold of the mask does not grow the silhouette by half a pixel.
    """
    from scipy.ndimage import binary_erosion, binary_fill_holes, binary_opening

    border = torch.cat([rgb[:, 0], rgb[:, -1], rgb[:, :, 0], rgb[:, :, -1]], 1).reshape(-1, 3)
    bg = border.median(0).values
    diff = (rgb - bg).abs().amax(-1)
    fg = np.stack([binary_fill_holes(binary_opening(m, iterations=1)) for m in (diff > threshold).numpy()])
    inner = np.stack([binary_erosion(m) for m in fg])
    fg_t = torch.from_numpy(fg)
    ref = F.max_pool2d((diff * fg_t)[:, None], 3, 1, 1)[:, 0].clamp(min=threshold)
    soft = torch.where(fg_t, (diff / ref).clamp(0, 1), torch.zeros_like(diff))
    return torch.where(torch.from_numpy(inner), torch.ones_like(soft), soft).float()


def views_from_arrays(
    images, cameras: Cameras, masks=None, background=None, source: str = "arrays"
) -> ViewSet:
    """A :class:`ViewSet` from in-memory views.

    Args:
        images: uint8 ``(V, H, W, 3|4)`` (numpy or torch), or float ``(V, 3, H, W)`` / ``(1, V, 3, H, W)``
            torch tensors in [-1, 1] (the models' convention, e.g. the sampler's output).
        cameras: ``(V,)`` cameras (the image size may differ from theirs if the aspect ratio is the same).
        masks: optional ``(V, H, W)`` in [0, 1] (float) or 0..255 (uint8). Without them, an alpha channel
            is used, else the masks are derived from the plain background.
        background: optional ``(3,)`` background colour in [0, 1].
    """
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        x = images.detach().float().cpu()
        if x.dim() == 5 and x.shape[0] == 1:
            x = x[0]
        if x.dim() != 4 or x.shape[1] not in (3, 4):
            raise InputError(f"float views must be (V, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        x = ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
    else:
        a = np.asarray(images.cpu() if isinstance(images, torch.Tensor) else images)
        if a.ndim != 4 or a.shape[-1] not in (3, 4) or a.dtype != np.uint8:
            raise InputError(f"uint8 views must be (V, H, W, 3|4), got {a.shape} {a.dtype}")
        x = torch.from_numpy(a.astype(np.float32) / 255.0)
    if len(cameras.shape) != 1:
        cameras = (
            cameras[None]
            if len(cameras.shape) == 0
            else Cameras(
                cameras.K.reshape(-1, 3, 3), cameras.c2w.reshape(-1, 4, 4), cameras.height, cameras.width
            )
        )
    V, H, W = x.shape[:3]
    if len(cameras) != V:
        raise InputError(f"{V} views but {len(cameras)} cameras; give one camera per view")
    if (H, W) != (cameras.height, cameras.width):
        if abs(H / W - cameras.height / cameras.width) > 1e-3:
            raise InputError(f"views are {W}x{H} pixels but the cameras are {cameras.width}x{cameras.height}")
        cameras = cameras.resized(H, W)
    mask_source = "given"
    if masks is not None:
        m = torch.as_tensor(np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks))
        m = m.float() / 255.0 if m.dtype == torch.uint8 else m.float()
        if m.dim() == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if tuple(m.shape) != (V, H, W):
            raise InputError(f"masks must be (V, H, W) = {(V, H, W)}, got {tuple(m.shape)}")
    elif x.shape[-1] == 4 and float(x[..., 3].min()) < 1.0:
        m, mask_source = x[..., 3].clone(), "alpha"
    else:
        m, mask_source = _mask_from_background(x[..., :3]), "background"
    rgb = x[..., :3]
    if x.shape[-1] == 4:  # composite transparent pixels onto white
        rgb = rgb * x[..., 3:] + (1 - x[..., 3:])
    m = m.clamp(0, 1)
    bg = (
        torch.as_tensor(background, dtype=torch.float32)
        if background is not None
        else _estimate_background(rgb, m)
    )
    return ViewSet(rgb.contiguous(), m.contiguous(), cameras.to(dtype=torch.float32), bg, source, mask_source)


def _read_png(path: Path) -> np.ndarray:
    import io

    from PIL import Image, UnidentifiedImageError

    data = read_input_file(path, MAX_PHOTO_BYTES, "view image")  # a regular file of sane size, or one line
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            if mode in ("RGBA", "LA") or (mode == "P" and "transparency" in img.info):
                return np.asarray(img.convert("RGBA"))
            if mode in ("L", "I;16", "I", "F", "1"):
                return np.asarray(img.convert("L"))
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InputError(f"cannot read {path}: {e.__class__.__name__}: {e}") from None


def load_views(folder) -> ViewSet:
    """Read a views folder: ``view_*.png`` + ``cameras.json`` (+ optional ``mask_*.png``, ``mesh.ply``, and the
    input photo: ``input_photo.png`` + ``input_camera.json`` (+ ``input_photo_mask.png``)).

    That is one identity folder of ``gen3dface synth`` or the output folder of ``gen3dface generate``.
    Every problem raises :class:`InputError` with a one-line reason.
    """
    p = Path(folder)
    if not p.exists():
        raise InputError(f"views folder not found: {p}")
    if not p.is_dir():
        raise InputError(f"{p} is not a folder; give a folder with view_XX.png files and cameras.json")
    if not (p / "cameras.json").is_file():
        ids = sorted(q.name for q in p.glob("id_[0-9]*") if q.is_dir())
        if ids:
            raise InputError(
                f"{p} is a dataset of {len(ids)} identities; give one identity folder, e.g. {p / ids[0]}"
            )
        raise InputError(
            f"{p} has no cameras.json; a views folder holds view_XX.png files and their cameras.json"
        )
    files = sorted(p.glob("view_*.png"))
    if not files:
        raise InputError(f"{p} has cameras.json but no view_XX.png images")
    cams = Cameras.load(p / "cameras.json")
    cams = Cameras(cams.K.reshape(-1, 3, 3), cams.c2w.reshape(-1, 4, 4), cams.height, cams.width)
    if len(cams) != len(files):
        raise InputError(f"{p}: {len(files)} view images but cameras.json has {len(cams)} cameras")
    imgs = [_read_png(f) for f in files]
    shapes = {im.shape[:2] for im in imgs}
    if len(shapes) != 1:
        raise InputError(f"{p}: the views differ in size ({sorted(shapes)}); they must all be the same size")
    imgs = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in imgs]
    if len({im.shape[-1] for im in imgs}) != 1:
        imgs = [im[..., :3] for im in imgs]
    mask_files = sorted(p.glob("mask_*.png"))
    masks = None
    if mask_files:
        if [f.name[5:] for f in mask_files] != [f.name[5:] for f in files]:
            raise InputError(
                f"{p}: {len(mask_files)} mask_XX.png files do not match the {len(files)} view_XX.png files"
            )
        ms = []
        for f in mask_files:
            m = _read_png(f)
            m = m[..., -1] if m.ndim == 3 and m.shape[-1] == 4 else (m[..., 0] if m.ndim == 3 else m)
            if m.shape != imgs[0].shape[:2]:
                raise InputError(
                    f"{f} is {m.shape[1]}x{m.shape[0]} pixels but the views are "
                    f"{imgs[0].shape[1]}x{imgs[0].shape[0]}"
                )
            ms.append(m)
        masks = np.stack(ms)
    views = views_from_arrays(np.stack(imgs), cams, masks, source=str(p))
    if masks is not None:
        views.mask_source = "files"
    if (p / "mesh.ply").is_file():
        views.gt_mesh = p / "mesh.ply"
    views.photo = load_photo_view(p)
    return views


def as_views(source, cameras: Cameras | None = None, masks=None) -> ViewSet:
    """A :class:`ViewSet` from a folder path, a ViewSet, or arrays + ``cameras``."""
    if isinstance(source, ViewSet):
        return source
    if isinstance(source, (str, Path)):
        return load_views(source)
    if cameras is None:
        raise InputError("reconstruct_views: arrays of views need their cameras")
    return views_from_arrays(source, cameras, masks)
