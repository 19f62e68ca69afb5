"""CLIP similarity (paper Tables 1, 3, 4): mean cosine similarity of the CLIP image embeddings of the input and
of each generated view (``open_clip``; computed only when the package and the weights are on disk, else
reported unavailable with the reason; nothing is downloaded). The paper does not name its CLIP model:
:data:`CLIP_MODEL` / :data:`CLIP_PRETRAINED` by default.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen3dface.core.errors import InputError
from gen3dface.evaluation.image_metrics import as_uint8_images, flat_images

#: Default CLIP model for the CLIP similarity (the paper does not name one).
CLIP_MODEL, CLIP_PRETRAINED = "ViT-B-32", "openai"


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
    return None, (
        f"CLIP weights {model_name}/{pretrained} are not on disk (Hugging Face cache "
        f"{hub or '-'}; set GEN3DFACE_CLIP_WEIGHTS to a local open_clip checkpoint)"
    )


@lru_cache(maxsize=2)
def clip_model(model_name: str, weights: str, device: str):
    """``(model in eval mode on device, image preprocess)`` of open_clip ``model_name`` with the weights file
    ``weights`` (:func:`clip_weights`), created once per process."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights)
    return model.eval().to(torch.device(device)), preprocess


@torch.inference_mode()
def clip_embed(
    images: Any,
    model_name: str | None = None,
    pretrained: str = CLIP_PRETRAINED,
    device: str | None = None,
    batch_size: int = 32,
) -> tuple[np.ndarray | None, str]:
    """Unit-norm CLIP image embeddings ``(N, D)`` of uint8 images ``(..., H, W, 3)``, or ``(None, reason)``."""
    from PIL import Image

    model_name = clip_name(model_name)
    weights, reason = clip_weights(model_name, pretrained)
    if weights is None:
        return None, reason
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, preprocess = clip_model(model_name, str(weights), device)
    arr = flat_images(as_uint8_images(images))
    out = []
    for i in range(0, len(arr), batch_size):
        x = torch.stack([preprocess(Image.fromarray(a)) for a in arr[i : i + batch_size]]).to(device)
        f = model.encode_image(x).float()
        out.append((f / f.norm(dim=-1, keepdim=True)).double().cpu().numpy())
    return np.concatenate(out), ""


def clip_similarity(
    inputs: Any,
    outputs: Any,
    model_name: str | None = None,
    pretrained: str = CLIP_PRETRAINED,
    device: str | None = None,
) -> tuple[np.ndarray | None, str]:
    """CLIP similarity of each generated view to its input, or ``(None, reason)`` when unavailable.

    Args:
        inputs: uint8 ``(B, H, W, 3)``; outputs: uint8 ``(B, V, H', W', 3)``.
    Returns:
        ``(similarities (B, V), "")`` (cosine of CLIP image embeddings) or ``(None, reason)``.
    """
    x, y = as_uint8_images(inputs, "inputs"), as_uint8_images(outputs, "outputs")
    if x.ndim != 4 or y.ndim != 5 or len(x) != len(y):
        raise InputError(
            f"expected inputs (B, H, W, 3) and outputs (B, V, H, W, 3), got {x.shape}, {y.shape}"
        )
    ex, reason = clip_embed(x, model_name, pretrained, device)
    if ex is None:
        return None, reason
    ey, _ = clip_embed(y, model_name, pretrained, device)
    ey = ey.reshape(y.shape[0], y.shape[1], -1)
    return np.einsum("bd,bvd->bv", ex, ey), ""
