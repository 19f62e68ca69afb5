"""Every command-line option checked before a command does any work (:func:`check_options`), so that a
number out of range is one line on stderr and status 2, with nothing loaded, computed or written first.

The ranges are :class:`gen3dface.core.limits.Whole` and :class:`~gen3dface.core.limits.Real` rules, per command
(:data:`OPTION_RULES`); the photo a command reads is checked to be a regular file of a sane size before anything
else (:func:`gen3dface.core.images.check_input_file`).
"""

from __future__ import annotations

import argparse
import re

from gen3dface.core.errors import InputError
from gen3dface.core.limits import MAX_FOV_DEG, MAX_SEED, MIN_FOV_DEG, Real, Whole

#: crop sides in pixels (align_crop needs 16; 4096 is far beyond any model's input)
CROP_SIZE = Whole(16, 4096)
SEED = Whole(0, MAX_SEED)
#: generation settings, as :meth:`gen3dface.generation.pipeline.Gen3DFacePipeline.check_settings` takes them
VIEWS, STEPS, GUIDANCE, KEEP_PHOTO = Whole(1, 64), Whole(1, 1000), Real(0.0, 30.0), Real(0.0, 1.0)
MANY = 10**9

#: ``{command: {option dest: rule}}``; an option left at ``None`` (its default: "decide for me") is not checked
OPTION_RULES: dict[str, dict[str, Whole | Real]] = {
    "crop": {"size": CROP_SIZE},
    "mesh": {"fov": Real(MIN_FOV_DEG, MAX_FOV_DEG)},
    "demo": {"size": CROP_SIZE, "steps": Whole(0, 1000)},
    "synth": {
        "identities": Whole(1, 10_000_000),
        "views": Whole(1, 512),
        "res": Whole(16, 1024),
        "defects": Real(0.0, 1.0),
        "seed": SEED,
        "ssaa": Whole(1, 4),
    },
    "prune": {"top_k": Whole(1, MANY), "tau": Real(0.0, 1.0)},
    "reconstruct": {"seed": SEED},
    "generate": {
        "views": VIEWS,
        "steps": STEPS,
        "guidance": GUIDANCE,
        "seed": SEED,
        "keep_photo": KEEP_PHOTO,
    },
    "eval": {
        "views": VIEWS,
        "steps": STEPS,
        "guidance": GUIDANCE,
        "seed": SEED,
        "keep_photo": KEEP_PHOTO,
        "limit": Whole(1, MANY),
        "batch": Whole(1, 1024),
        "workers": Whole(0, 1024),
    },
}
#: commands whose ``photo`` argument is a photo file read by the command
PHOTO_COMMANDS = ("crop", "mesh", "demo", "generate")
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and status 2) like every other user error."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def option_name(dest: str) -> str:
    """``top_k`` -> ``--top-k``."""
    return "--" + dest.replace("_", "-")


def parse_iters(text: str | None, profile: str) -> tuple[int, ...] | None:
    """``reconstruct --iters`` ("300,200,100": Adam steps per grid stage of ``profile``) as a tuple, ``None``
    when not given; :class:`InputError` unless it holds one count >= 0 per stage."""
    if not text:
        return None
    from gen3dface.recon.config import config_for

    stages = config_for(profile).iters
    try:
        iters = tuple(int(n) for n in text.split(","))
    except ValueError:
        iters = ()
    if len(iters) != len(stages) or min(iters) < 0 or max(iters) > 1_000_000:
        raise InputError(
            f"--iters: give {len(stages)} counts from 0 to 1000000, one per grid stage, e.g. "
            f"{','.join(map(str, stages))}"
        )
    return iters


def check_options(args: argparse.Namespace) -> None:
    """Check every option of ``args.command`` (:data:`OPTION_RULES`, the device, the photo file) and normalise
    the ones that need it (``--iters`` becomes a tuple); raises :class:`InputError` for the first bad one."""
    for dest, rule in OPTION_RULES.get(args.command, {}).items():
        value = getattr(args, dest, None)
        if value is not None:
            setattr(args, dest, rule.check(value, option_name(dest)))
    device = getattr(args, "device", None)
    if device is not None and not DEVICE.fullmatch(device):
        raise InputError(f"unknown device {device!r}; choose cpu, cuda or cuda:N")
    if args.command == "reconstruct":
        args.iters = parse_iters(args.iters, args.profile)
    photo = getattr(args, "photo", None)
    if args.command in PHOTO_COMMANDS and photo is not None:
        from gen3dface.core.images import MAX_PHOTO_BYTES, check_input_file

        check_input_file(photo, MAX_PHOTO_BYTES, "photo")
