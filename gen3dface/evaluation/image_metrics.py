"""Pixel and perceptual metrics of generated views against ground truth at the same cameras (the in-domain
protocol, paper Table 2), and the image conventions every metric shares.

Images are uint8 ``(..., H, W, 3)`` numpy arrays (RGB), or float torch tensors ``(..., 3, H, W)`` in [-1, 1]
(the models' convention, converted with :func:`gen3dface.core.images.to_uint8`).

* **SSIM / PSNR**: scikit-image (``structural_similarity`` with its default 7 x 7 window and
  ``data_range=255``, as Morphable Diffusion's evaluation; ``peak_signal_noise_ratio``), per view pair.
* **LPIPS**: the ``lpips`` package, VGG backbone as Morphable Diffusion's evaluation, inputs in [0, 1]
  (``normalize=True``); computed only when the package, its linear-layer weights and torchvision's
  backbone weights are on disk (else reported unavailable with the reason, never estimated).
"""

from __future__ import annotations

import importlib.util
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3dface.core.errors import InputError

#: torchvision backbone weights the lpips package loads (file names in torch hub's checkpoint cache).
_TV_BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def as_uint8_images(images: Any, name: str = "images") -> np.ndarray:
    """Stack images to a uint8 ``(..., H, W, 3)`` array.

    Accepts a uint8 numpy array ``(..., H, W, 3)``, a (nested) list of such arrays of equal size, or a
    float torch tensor ``(..., 3, H, W)`` in [-1, 1].
    """
    if isinstance(images, torch.Tensor):
        if images.dtype == torch.uint8:
            arr = images.cpu().numpy()
        elif images.ndim >= 3 and images.shape[-3] == 3:
            from gen3dface.core.images import to_uint8

            arr = to_uint8(images)
        else:
            raise InputError(
                f"{name}: a float tensor must be (..., 3, H, W) in [-1, 1], got {tuple(images.shape)}"
            )
    elif isinstance(images, np.ndarray):
        arr = images
    else:
        try:
            arr = np.stack([as_uint8_images(x, name) for x in images])
        except ValueError as e:
            raise InputError(f"{name}: images of one set must share one size ({e})") from None
    if arr.dtype != np.uint8:
        raise InputError(
            f"{name}: expected uint8 images (0-255), got dtype {arr.dtype}; convert float images "
            "in [0, 1] with (x * 255).round().astype(np.uint8)"
        )
    if arr.ndim < 3 or arr.shape[-1] != 3:
        raise InputError(f"{name}: expected RGB images (..., H, W, 3), got shape {arr.shape}")
    return arr


def flat_images(images: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3)`` -> ``(N, H, W, 3)``."""
    return images.reshape(-1, *images.shape[-3:])


def check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    """Raise :class:`InputError` unless generated and ground-truth images have one shape."""
    if pred.shape != target.shape:
        raise InputError(f"generated and ground-truth images differ in shape: {pred.shape} vs {target.shape}")


def _batch_out(values: np.ndarray, batch_shape: tuple[int, ...]) -> float | np.ndarray:
    return float(values[0]) if batch_shape == () else values.reshape(batch_shape)


# ------------------------------------------------------------------------------------------ SSIM / PSNR
def psnr(pred: Any, target: Any, pooled: bool = False) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB.

    Args:
        pred, target: equal shapes. Per pair (the default): uint8 ``(..., H, W, 3)`` (or tensors, see
            :func:`as_uint8_images`), scored by scikit-image. ``pooled=True``: float images in [0, 1] (any
            matching shapes, e.g. a reconstruction's renders ``(V, H, W, 3)`` and its views), one PSNR over all
            their pixels together (the squared error is averaged over the whole set first).
    Returns:
        per pair: a float for one pair, else an array of the batch shape ``(...)``, ``inf`` for identical
        images; pooled: one float (capped at 120 dB for identical sets).
    """
    if pooled:
        err = (np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2
        return float(-10 * np.log10(max(err.mean(), 1e-12)))
    from skimage.metrics import peak_signal_noise_ratio

    p, t = as_uint8_images(pred, "pred"), as_uint8_images(target, "target")
    check_pair(p, t)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical images: division by zero -> inf
        vals = np.array(
            [peak_signal_noise_ratio(b, a, data_range=255) for a, b in zip(flat_images(p), flat_images(t))]
        )
    return _batch_out(vals, p.shape[:-3])


def ssim(pred: Any, target: Any) -> float | np.ndarray:
    """Structural similarity (scikit-image, 7 x 7 uniform window, ``data_range=255``, mean over the
    three channels), per image pair.

    Args:
        pred, target: uint8 ``(..., H, W, 3)`` (or tensors, see :func:`as_uint8_images`), equal shapes,
            at least 7 x 7 pixels.
    Returns:
        a float for one pair, else an array of the batch shape ``(...)``.
    """
    from skimage.metrics import structural_similarity

    p, t = as_uint8_images(pred, "pred"), as_uint8_images(target, "target")
    check_pair(p, t)
    vals = np.array(
        [
            structural_similarity(b, a, channel_axis=-1, data_range=255)
            for a, b in zip(flat_images(p), flat_images(t))
        ]
    )
    return _batch_out(vals, p.shape[:-3])


# ------------------------------------------------------------------------------------------ LPIPS
def lpips_status(net: str = "vgg") -> str | None:
    """``None`` when LPIPS with backbone ``net`` can run offline, else the reason it cannot.

    Needs the ``lpips`` package (its linear-layer weights ``weights/v0.1/<net>.pth`` ship inside it),
    ``torchvision``, and torchvision's ImageNet backbone weights in torch hub's checkpoint cache
    (``$TORCH_HOME/hub/checkpoints``; never downloaded here).
    """
    if net not in _TV_BACKBONE_FILES:
        raise InputError(f"unknown LPIPS backbone {net!r}; choose one of {', '.join(_TV_BACKBONE_FILES)}")
    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        return "the lpips package is not installed (pip install lpips torchvision)"
    if importlib.util.find_spec("torchvision") is None:
        return "torchvision is not installed (lpips needs it for its backbone)"
    lin = Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth"
    if not lin.is_file():
        return f"lpips' linear-layer weights are missing ({lin})"
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / _TV_BACKBONE_FILES[net]
    if not backbone.is_file():
        return (
            f"torchvision's {net} ImageNet weights are not on disk ({backbone}); copy "
            f"{_TV_BACKBONE_FILES[net]} there (this package never downloads it)"
        )
    return None


@lru_cache(maxsize=4)
def _lpips_model(net: str, device: str):
    import lpips

    return lpips.LPIPS(net=net, verbose=False).eval().to(torch.device(device))


@torch.inference_mode()
def lpips_distance(
    pred: Any, target: Any, net: str = "vgg", device: str | None = None, batch_size: int = 16
) -> tuple[np.ndarray | None, str]:
    """LPIPS distance per image pair, or ``(None, reason)`` when LPIPS is unavailable offline.

    Args:
        pred, target: uint8 ``(..., H, W, 3)``, equal shapes.
        net: backbone, ``"vgg"`` (Morphable Diffusion's evaluation) or ``"alex"``.
    Returns:
        ``(distances, "")`` with distances of the batch shape ``(...)`` (lower is more similar), or
        ``(None, reason)``.
    """
    reason = lpips_status(net)
    if reason is not None:
        return None, reason
    p, t = as_uint8_images(pred, "pred"), as_uint8_images(target, "target")
    check_pair(p, t)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _lpips_model(net, device)
    fp, ft = flat_images(p), flat_images(t)
    out = []
    for i in range(0, len(fp), batch_size):
        a = torch.from_numpy(fp[i : i + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
        b = torch.from_numpy(ft[i : i + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(a, b, normalize=True).reshape(-1).double().cpu().numpy())
    return np.concatenate(out).reshape(p.shape[:-3]), ""
