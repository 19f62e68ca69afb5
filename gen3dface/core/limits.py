"""The ranges a user's numbers must lie in, checked before any work starts: command-line options
(:mod:`gen3dface.app.options`) and a model folder's ``config.json`` (:func:`check_model_config_file`).

A value out of range raises a one-line :class:`~gen3dface.core.errors.InputError` naming the option and the
range, instead of an overflow, a division by zero or an allocation of terabytes deep inside a library.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gen3dface.core.errors import InputError

#: Seeds are unsigned 32-bit numbers (numpy's and torch's generators both take them).
MAX_SEED = 2**32 - 1
#: The fields of view (vertical, degrees) a pinhole camera may have (:func:`gen3dface.core.cameras.check_fov`).
MIN_FOV_DEG, MAX_FOV_DEG = 1.0, 170.0
#: A model folder's ``config.json`` larger than this is not a model's config.
MAX_CONFIG_BYTES = 1 * 2**20


@dataclass(frozen=True)
class Whole:
    """A whole number in ``[lo, hi]``."""

    lo: int
    hi: int

    def check(self, value: Any, name: str) -> int:
        """``value`` as an int; :class:`InputError` when it is not a whole number in range."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InputError(f"{name} must be a whole number, got {value!r}")
        if not self.lo <= value <= self.hi:
            raise InputError(f"{name} must be between {self.lo} and {self.hi}, got {value}")
        return int(value)


@dataclass(frozen=True)
class Real:
    """A finite number in ``[lo, hi]``."""

    lo: float
    hi: float

    def check(self, value: Any, name: str) -> float:
        """``value`` as a float; :class:`InputError` when it is not a finite number in range (NaN included)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value) or not self.lo <= value <= self.hi:
            raise InputError(f"{name} must be between {self.lo:g} and {self.hi:g}, got {value}")
        return float(value)


#: Sizes of a model folder's ``config.json`` (``Gen3DFaceModel``'s arguments) that a real model stays well
#: within; a larger one would allocate without bound before sampling a single step.
MODEL_CONFIG_LIMITS = {
    "image_size": Whole(8, 1024),
    "n_views": Whole(1, 64),
    "codec_factor": Whole(1, 64),
    "volume_size": Whole(1, 128),
    "volume_channels": Whole(1, 1024),
    "frustum_depth": Whole(1, 256),
    "frustum_size": Whole(1, 1024),
    "latent_channels": Whole(1, 64),
}
#: The same for the diffusers UNet config inside it (lists are checked item by item).
UNET_CONFIG_LIMITS = {
    "block_out_channels": Whole(1, 4096),
    "layers_per_block": Whole(1, 16),
    "cross_attention_dim": Whole(1, 8192),
    "attention_head_dim": Whole(1, 1024),
    "norm_num_groups": Whole(1, 1024),
}


def check_model_config(config: Any, source: str = "config.json") -> dict:
    """``config`` (a model folder's parsed ``config.json``) when every size in it lies within
    :data:`MODEL_CONFIG_LIMITS` and :data:`UNET_CONFIG_LIMITS`; else a one-line :class:`InputError`."""
    if not isinstance(config, dict):
        raise InputError(f"{source} is not a model config (a JSON object)")
    for key, rule in MODEL_CONFIG_LIMITS.items():
        if config.get(key) is not None:
            rule.check(config[key], f"{source}: {key}")
    unet = config.get("unet_config")
    if unet is not None and not isinstance(unet, dict):
        raise InputError(f"{source}: unet_config must be a JSON object")
    for key, rule in UNET_CONFIG_LIMITS.items():
        value = (unet or {}).get(key)
        for v in value if isinstance(value, (list, tuple)) else [] if value is None else [value]:
            rule.check(v, f"{source}: unet_config.{key}")
    return config


def check_model_config_file(path: str | os.PathLike) -> dict:
    """Read and check a model folder's ``config.json`` (:func:`check_model_config`) before a model is built
    from it; returns the parsed config."""
    from gen3dface.core.images import read_input_file

    p = Path(path)
    data = read_input_file(p, MAX_CONFIG_BYTES, "model config")
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(f"{p} is not valid JSON ({e})") from None
    return check_model_config(config, str(p))
