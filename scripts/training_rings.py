"""The training heads' own rings as a views file, to score with the real-photo benchmark: what a model that drew
exactly its training heads would score (views with a face, output-to-output ID), a ceiling set by the data.

    python scripts/training_rings.py -o outputs/bench/rings.npz --identities 60    # the shipped model's data
    python scripts/bench_real_photos.py --score outputs/bench/rings.npz -o rings.json
    python scripts/training_rings.py -o before.npz --identities 48 --janus none   # before the Janus filter
    python scripts/training_rings.py -o held.npz --seed 9 --identities 8 --photos outputs/held  # held-out heads,
    python scripts/bench_real_photos.py --photos outputs/held -o held.json --steps 25   # as photos through the model

Each identity of the procedural dataset (``--seed``, ``--varied``, ``--symmetric``: the shipped model's,
``scripts/prepare_training.py``) that the Janus filter keeps is rendered at its 16 training target views, as
training renders them (128 px), in the benchmark's ring order (the view facing the camera in the middle). Its
input is cropped from its frontal view rendered at 256 px, as training crops its inputs (about 1 minute for 60
identities on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def ring(cfg) -> list[int]:
    """The grid indices of ``cfg``'s training target views, in the order of
    :func:`gen3dface.core.cameras.ring_azimuths` (from -180 degrees)."""
    from gen3dface.core.cameras import TARGET_VIEWS
    from gen3dface.training.data import target_views

    views = target_views(cfg.views, TARGET_VIEWS)
    az = cfg.cameras().azimuth_deg.numpy()[views]
    return [views[i] for i in np.argsort((az + 180.0) % 360.0, kind="stable")]


def kept_identities(cfg, first: int, n: int, tau: float | None) -> list[int]:
    """The first ``n`` identities from ``first`` on that the Janus filter (``tau``; ``None``: no filter) keeps."""
    from gen3dface.synth.pruning import procedural_janus

    if tau is None:
        return list(range(first, first + n))
    kept, start = [], first
    while len(kept) < n:
        chunk = list(range(start, start + n))
        rejected = procedural_janus(cfg, chunk, ring(cfg), tau, progress=False)
        kept += [i for i in chunk if not rejected[i]]
        start += n
    return kept[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, required=True, help="the views file (.npz) to write")
    ap.add_argument(
        "--identities", type=int, default=60, help="identities the Janus filter keeps (default 60)"
    )
    ap.add_argument("--first-identity", type=int, default=0)
    ap.add_argument("--seed", type=int, default=2, help="the dataset seed (default 2: the shipped model's)")
    ap.add_argument("--varied", type=float, default=0.75)
    ap.add_argument("--symmetric", type=float, default=0.8)
    ap.add_argument(
        "--squircle",
        type=float,
        default=None,
        help="the heads' skull exponent (prepare_training.py --squircle)",
    )
    ap.add_argument(
        "--hair-side",
        type=float,
        default=None,
        help="where long hair falls beside the face, degrees (prepare_training.py --hair-side)",
    )
    ap.add_argument(
        "--plain-back",
        action="store_true",
        help="repainted heads keep their patterns on the face's side (prepare_training.py --plain-back)",
    )
    ap.add_argument(
        "--decals",
        type=float,
        default=None,
        metavar="RATE",
        help="how often a repainted face gets patterns over its features (prepare_training.py --decals)",
    )
    ap.add_argument("--janus", default="0.5", help="the Janus filter's threshold, or 'none' (default 0.5)")
    ap.add_argument(
        "--photos",
        type=Path,
        help="also write each identity's frontal render (256 px) here as a photo, for bench_real_photos --photos",
    )
    args = ap.parse_args(argv)
    from gen3dface.core.errors import Gen3DFaceError, InputError

    try:
        tau = None if args.janus.lower() == "none" else float(args.janus)
    except ValueError:
        ap.error(f"--janus must be a number or 'none', got {args.janus!r}")
    try:
        if args.identities < 1:
            raise InputError(f"--identities must be at least 1, got {args.identities}")
        write(args, tau)
    except Gen3DFaceError as e:
        print(f"training_rings: error: {e}", file=sys.stderr)
        return 2
    return 0


def write(args: argparse.Namespace, tau: float | None) -> None:
    """Render the rings and inputs of ``args``' identities and save them as a views file."""
    from gen3dface.core.errors import NoFaceError
    from gen3dface.core.images import save_png
    from gen3dface.evaluation.conditions import save_views
    from gen3dface.synth.synthesis import SynthConfig, render_identity
    from gen3dface.training.data import crop_from_render, procedural_source

    src = procedural_source(
        args.seed,
        varied_appearance=args.varied,
        symmetric_appearance=args.symmetric,
        squircle=args.squircle,
        hair_side=args.hair_side,
        plain_back=args.plain_back,
        decal_rate=args.decals,
    )
    cfg = SynthConfig(**src["synth"])
    big = SynthConfig(**{**src["synth"], "res": int(src["input_res"])})
    ids = kept_identities(cfg, args.first_identity, args.identities, tau)
    views = ring(cfg)
    front = views[len(views) // 2]
    rings, crops, yaws, names, skipped = [], [], [], [], []
    if args.photos:
        args.photos.mkdir(parents=True, exist_ok=True)
    for i in ids:
        name = f"identity_{i:06d}"
        photo = render_identity(big, i, views=[front])["rgb"][0]
        if args.photos:
            save_png(args.photos / f"{name}.png", photo)
        try:  # training leaves out an input without a face likewise
            _, crop, mesh = crop_from_render(photo, cfg.res)
        except NoFaceError:
            skipped.append({"input": name, "reason": "no face in its frontal view"})
            continue
        rings.append(render_identity(cfg, i, views=views)["rgb"])
        crops.append(crop)
        yaws.append(float(mesh.pose["yaw"]))
        names.append(name)
    if not names:
        raise NoFaceError("no identity's frontal view shows a face")
    settings = {"training_rings": True, **src["synth"], "janus": tau}
    save_views(args.output, names, np.stack(crops), {0: np.stack(rings)}, yaws, settings, skipped)
    print(f"{len(names)} identities x {len(views)} views ({len(skipped)} without a face) -> {args.output}")


if __name__ == "__main__":
    raise SystemExit(main())
