"""Prepare the training inputs of the small model (input views, crop transforms, meshes) as one .npz file.

    python scripts/prepare_training.py -o outputs/train_prep/train_s1_1000.npz --identities 1000 --seed 1
    python scripts/prepare_training.py -o outputs/train_prep/train_gt.npz --identities 1000 --seed 1 \
        --meshes ground_truth                    # the estimated-vs-ground-truth mesh ablation (issue #8)
    python scripts/prepare_training.py -o OUT.npz --folder SYNTH_DIR   # a synth dataset (honours pruning.json)
    python scripts/prepare_training.py -o outputs/train_prep/train_varied.npz --identities 1200 --seed 2 \
        --varied 0.75 --per-identity 3               # the reprojection model's data (issue #18)
    ... --varied 0.75 --symmetric 0.8            # the same, most repainted heads symmetric (train_small --mirror)
    ... --janus 0.5                              # the paper's Janus filter: leave out heads whose back looks
                                                 # like a face (the shipped stage-7 model's data)
    python scripts/prepare_training.py -o OUT.npz --from PREPARED.npz --janus 0.5   # filter a prepared file
    python scripts/prepare_training.py -o more.npz --identities 1200 --first-identity 800 --seed 2 --varied 0.75 \
        --per-identity 3 --symmetric 0.8 --janus 0.5     # identities 800-1999 of the same dataset, then
    python scripts/prepare_training.py -o all.npz --from symj.npz more.npz         # one file of both
    python scripts/prepare_training.py -o s32a.npz --identities 800 --seed 2 --varied 0.75 --symmetric 0.8 \
        --per-identity 3 --janus 0.5 --squircle 1.6 --hair-side 90 --decals 0   # heads whose own rings show a
                                                 # face in 7.7 views of 16 (README, Real-photo benchmark)
    python scripts/prepare_training.py -o sides.npz --from c800.npz --sides   # only heads whose +-67.5 deg views
                                                 # the face detector finds (gen3dface.synth.pruning.SIDE_AZIMUTH)

CPU work (mediapipe on every candidate view): about 20 minutes for 1000 procedural identities on 2 cores; the
Janus filter (procedural sources; a folder is pruned by `gen3dface prune`) adds about 0.3 s per identity, the side
filter about 0.2 s.
The views themselves are not stored: ``gen3dface.training.data.load_train_data`` re-renders them on the training
device from the seeds (or reads the folder).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gen3dface.core.cameras import TARGET_VIEWS
from gen3dface.core.errors import InputError
from gen3dface.synth.pruning import SIDE_AZIMUTH, procedural_janus, procedural_sides
from gen3dface.synth.synthesis import SynthConfig
from gen3dface.training.data import PreparedInputs, build_training_inputs, procedural_source, target_views


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument(
        "--folder", type=Path, default=None, help="a gen3dface synth dataset (default: procedural)"
    )
    ap.add_argument(
        "--identities", type=int, default=1000, help="procedural: N identities, from --first-identity"
    )
    ap.add_argument("--first-identity", type=int, default=0, help="procedural: the first identity's index")
    ap.add_argument("--seed", type=int, default=1, help="procedural: the dataset seed")
    ap.add_argument("--per-identity", type=int, default=4)
    ap.add_argument("--crop-size", type=int, default=128)
    ap.add_argument("--meshes", default="estimated", choices=["estimated", "ground_truth"])
    ap.add_argument(
        "--defects",
        type=float,
        default=0.0,
        help="procedural: rate of identities with Janus / drift defects (as `gen3dface synth --defects`)",
    )
    ap.add_argument(
        "--varied",
        type=float,
        default=0.0,
        help="procedural: fraction of identities repainted with random patterns (gen3dface.synth.appearance)",
    )
    ap.add_argument(
        "--symmetric",
        type=float,
        default=0.0,
        help="procedural: fraction of the repainted identities painted mirror-symmetric across the face "
        "(data for train_small.py --mirror)",
    )
    ap.add_argument(
        "--squircle",
        type=float,
        default=None,
        help="procedural: the heads' skull cross-section exponent (default 2.5, the shipped model's data; 2 is "
        "rounder, and the training heads' own rings show a face at +-67.5 deg more often)",
    )
    ap.add_argument(
        "--hair-side",
        type=float,
        default=None,
        help="procedural: the longitude in degrees from which long hair falls beside the face (default 56, the "
        "shipped model's data; 80 leaves the cheek in view from 67.5 deg round)",
    )
    ap.add_argument(
        "--plain-back",
        action="store_true",
        help="procedural: repainted heads keep their patterns on the face's side, one flat colour per part from "
        "the ears back (patterned backs read as faces)",
    )
    ap.add_argument(
        "--decals",
        type=float,
        default=None,
        metavar="RATE",
        help="procedural: how often a repainted head's face also gets patterns over its eyes, brows or mouth "
        "(default 0.6, the shipped model's data; a covered eye costs face finds 67.5 deg round)",
    )
    ap.add_argument(
        "--janus",
        type=float,
        default=None,
        metavar="TAU",
        help="procedural: leave out every identity with a target back view whose front-face score exceeds TAU "
        "(the paper's Janus filter, gen3dface.synth.pruning.procedural_janus)",
    )
    ap.add_argument(
        "--sides",
        action="store_true",
        help="procedural: leave out every identity with a target view at +-67.5 deg in which the face detector "
        "finds no face (gen3dface.synth.pruning.procedural_sides; not in the paper)",
    )
    ap.add_argument(
        "--from",
        dest="prepared",
        type=Path,
        nargs="+",
        default=None,
        help="filter this prepared file (with --janus and/or --sides) instead of building one; several files of one source "
        "are concatenated first",
    )
    args = ap.parse_args()
    if args.first_identity < 0 or (args.first_identity and (args.folder or args.prepared)):
        raise SystemExit("--first-identity: a procedural identity index (0 or more) for a build from seeds")
    if args.prepared is not None:
        if args.janus is None and not args.sides and len(args.prepared) < 2:
            raise SystemExit("--from needs --janus or --sides, or several files to concatenate")
        try:
            parts = [PreparedInputs.load(p) for p in args.prepared]
            if args.janus is not None:  # a part already filtered at this threshold is not scored again
                parts = [
                    p
                    if (p.source.get("janus") or {}).get("tau") == args.janus
                    else janus_filter(p, p.source, sorted(set(p.identity.tolist())), args.janus)
                    for p in parts
                ]
            if args.sides:
                parts = [
                    p if "sides" in p.source else side_filter(p, p.source, sorted(set(p.identity.tolist())))
                    for p in parts
                ]
            prep = PreparedInputs.concat(parts)
        except InputError as e:
            raise SystemExit(str(e)) from None
        prep.save(args.output)
        print(
            f"{len(prep.identity)} inputs of {len(set(prep.identity.tolist()))} identities -> {args.output}"
        )
        return
    source = (
        str(args.folder)
        if args.folder
        else procedural_source(
            args.seed,
            defect_rate=args.defects,
            varied_appearance=args.varied,
            symmetric_appearance=args.symmetric,
            squircle=args.squircle,
            hair_side=args.hair_side,
            plain_back=args.plain_back,
            decal_rate=args.decals,
        )
    )
    ids = None if args.folder else list(range(args.first_identity, args.first_identity + args.identities))
    t = time.perf_counter()
    if args.janus is not None:
        if args.folder:
            raise SystemExit("--janus filters procedural sources; prune a folder with `gen3dface prune`")
        ids = sorted(set(janus_filter(None, source, ids, args.janus)))
    if args.sides:
        if args.folder:
            raise SystemExit("--sides filters procedural sources")
        ids = side_filter(None, source, ids)
    prep = build_training_inputs(
        source, identities=ids, per_identity=args.per_identity, crop_size=args.crop_size, meshes=args.meshes
    )
    prep.save(args.output)
    print(
        f"{len(prep.identity)} inputs of {len(set(prep.identity.tolist()))} identities ({args.meshes} meshes) "
        f"in {time.perf_counter() - t:.0f} s -> {args.output}"
    )


def _filtered(
    prep: PreparedInputs | None,
    source: dict,
    ids: list[int],
    name: str,
    label: str,
    refusal: str,
    record: dict,
    filt,
):
    """The identities of ``ids`` that ``filt(cfg, ids, views)`` (a :mod:`gen3dface.synth.pruning` filter) finds
    nothing wrong with (``prep`` None), or ``prep`` restricted to them; records the filter in
    ``source[name]`` (``record`` plus how many identities were scored and left out) and says so under ``label``.
    A source that is not procedural is refused with ``refusal``."""
    if source.get("kind") != "procedural":
        raise InputError(refusal)
    cfg = SynthConfig(**source["synth"])
    flagged = filt(cfg, ids, target_views(cfg.views, TARGET_VIEWS))
    keep = [i for i in ids if not flagged[i]]
    source[name] = {**record, "scored": len(ids), "left_out": len(ids) - len(keep)}
    print(f"{label}: {len(ids) - len(keep)} of {len(ids)} identities left out", flush=True)
    return keep if prep is None else prep.subset(keep)


def janus_filter(prep: PreparedInputs | None, source: dict, ids: list[int], tau: float):
    """:func:`_filtered` by the paper's Janus filter (``tau``), recorded in ``source["janus"]``."""
    return _filtered(
        prep,
        source,
        ids,
        "janus",
        f"Janus filter (tau {tau})",
        "--janus filters procedural sources; prune a folder with `gen3dface prune`",
        {"tau": tau},
        lambda cfg, i, v: procedural_janus(cfg, i, v, tau),
    )


def side_filter(prep: PreparedInputs | None, source: dict, ids: list[int]):
    """:func:`_filtered` by the side filter, recorded in ``source["sides"]``."""
    return _filtered(
        prep,
        source,
        ids,
        "sides",
        "side filter",
        "--sides filters procedural sources",
        {"azimuth": SIDE_AZIMUTH},
        procedural_sides,
    )


def cli() -> int:
    """:func:`main` with a bad setting or input told in one line (exit code 2), not a traceback."""
    from gen3dface.core.errors import Gen3DFaceError

    try:
        main()
    except Gen3DFaceError as e:
        print(f"prepare_training: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
