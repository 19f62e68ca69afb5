"""Prepare the training inputs of the small model (input views, crop transforms, meshes) as one .npz file.

    python scripts/prepare_training.py -o outputs/train_prep/train_s1_1000.npz --identities 1000 --seed 1
    python scripts/prepare_training.py -o outputs/train_prep/train_gt.npz --identities 1000 --seed 1 \
        --meshes ground_truth                    # the estimated-vs-ground-truth mesh ablation (issue #8)
    python scripts/prepare_training.py -o OUT.npz --folder SYNTH_DIR   # a synth dataset (honours pruning.json)
    python scripts/prepare_training.py -o outputs/train_prep/train_varied.npz --identities 1200 --seed 2 \
        --varied 0.75 --per-identity 3               # the reprojection model's data (issue #18)
    ... --varied 0.75 --symmetric 0.8            # the same, most repainted heads symmetric (train_small --mirror)

CPU work (mediapipe on every candidate view): about 20 minutes for 1000 procedural identities on 2 cores.
The views themselves are not stored: ``gen3dface.training.data.load_train_data`` re-renders them on the training
device from the seeds (or reads the folder).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gen3dface.training.data import build_training_inputs, procedural_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument(
        "--folder", type=Path, default=None, help="a gen3dface synth dataset (default: procedural)"
    )
    ap.add_argument("--identities", type=int, default=1000, help="procedural: identities 0..N-1")
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
    args = ap.parse_args()
    source = (
        str(args.folder)
        if args.folder
        else procedural_source(
            args.seed,
            defect_rate=args.defects,
            varied_appearance=args.varied,
            symmetric_appearance=args.symmetric,
        )
    )
    ids = None if args.folder else list(range(args.identities))
    t = time.perf_counter()
    prep = build_training_inputs(
        source, identities=ids, per_identity=args.per_identity, crop_size=args.crop_size, meshes=args.meshes
    )
    prep.save(args.output)
    print(
        f"{len(prep.identity)} inputs of {len(set(prep.identity.tolist()))} identities ({args.meshes} meshes) "
        f"in {time.perf_counter() - t:.0f} s -> {args.output}"
    )


if __name__ == "__main__":
    main()
