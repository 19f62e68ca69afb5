"""Prepare the data of the small-scale ablations on a CPU (then ``scripts/run_ablation.py`` on a GPU).

    python scripts/prepare_ablation.py --out outputs/ablate [--identities 320] [--defects 0.3]

Steps (each skipped when its output exists, so a killed run resumes):

1. ``ds/``: the defect-injected training dataset (``gen3dface synth``, seed 5) and its ``pruning.json``
   (``gen3dface prune``, top-K = 85 %) -> ``kept.json``, the identities the pruned arms train on;
2. ``prep_estimated.npz``, ``prep_ground_truth.npz``: crops + meshes of 4 input views per identity, the
   meshes estimated from each view or snapped onto the true surface
   (:func:`gen3dface.training.data.build_training_inputs`);
3. ``eval_sets.npz``: 24 held-out photo-style identities (seed 2) with both meshes and their ring views, and
   10 identities in each unseen style (toon, clay, sketch; seed 7) (:func:`gen3dface.evaluation.ablation.build_eval_sets`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gen3dface.evaluation.ablation import make_ablation_data
from gen3dface.training.data import PreparedInputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--identities", type=int, default=320)
    ap.add_argument("--defects", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    out = make_ablation_data(
        args.out, args.identities, args.defects, args.seed, log=lambda m: print(m, flush=True)
    )
    print(
        "kept",
        len(json.loads((out / "kept.json").read_text())),
        "of",
        args.identities,
        "identities;",
        {m: len(PreparedInputs.load(out / f"prep_{m}.npz").identity) for m in ("estimated", "ground_truth")},
    )


if __name__ == "__main__":
    main()
