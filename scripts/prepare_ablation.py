"""Prepare the data of the small-scale ablations on a CPU (then ``scripts/run_ablation.py`` on a GPU).

    python scripts/prepare_ablation.py --out outputs/ablate [--identities 320] [--defects 0.3]

Steps (each skipped when its output exists, so a killed run resumes):

1. ``ds/``: the defect-injected training dataset (``gen3dface synth``, seed 5) and its ``pruning.json``
   (``gen3dface prune``, top-K = 85 %) -> ``kept.json``, the identities the pruned arms train on;
2. ``prep_estimated.npz``, ``prep_ground_truth.npz``: crops + meshes of 4 input views per identity, the
   meshes estimated from each view or snapped onto the true surface (:func:`gen3dface.trainset.prepare_inputs`);
3. ``eval_sets.npz``: 24 held-out photo-style identities (seed 2) with both meshes and their ring views, and
   10 identities in each unseen style (toon, clay, sketch; seed 7) (:func:`gen3dface.ablation.build_eval_sets`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen3dface.ablation import OOD_STYLES, build_eval_sets, kept_identities  # noqa: E402
from gen3dface.pruning import prune  # noqa: E402
from gen3dface.storage import atomic_path, atomic_write_text  # noqa: E402
from gen3dface.synthesis import SynthConfig, synthesize  # noqa: E402
from gen3dface.trainset import PreparedInputs, prepare_inputs, procedural_source  # noqa: E402


def step(path: Path, what: str, make) -> None:
    if path.exists():
        print(f"{path}: there")
        return
    t = time.perf_counter()
    make()
    print(f"{path}: {what} in {time.perf_counter() - t:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--identities", type=int, default=320)
    ap.add_argument("--defects", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    ids = list(range(args.identities))
    cfg = SynthConfig(views=48, res=128, seed=args.seed, ssaa=2, defect_rate=args.defects)

    def pruned():
        synthesize(out / "ds", args.identities, cfg)
        r = prune(out / "ds", top_k=math.ceil(0.85 * args.identities), janus_backend="face")
        print({k: r[k] for k in ("janus_filter", "identity_filter", "kept")})
        atomic_write_text(out / "kept.json", json.dumps(kept_identities(out / "ds" / "pruning.json")))

    step(out / "kept.json", "synthesised and pruned", pruned)
    for meshes in ("estimated", "ground_truth"):
        f = out / f"prep_{meshes}.npz"
        step(f, f"{meshes} meshes", lambda f=f, meshes=meshes: prepare_inputs(
            procedural_source(args.seed, defect_rate=args.defects), ids, per_identity=4, meshes=meshes).save(f))

    def eval_sets():
        held = [prepare_inputs(procedural_source(2), list(range(24)), per_identity=1, meshes=m, progress=False)
                for m in ("estimated", "ground_truth")]
        ood = [prepare_inputs(procedural_source(7, st), list(range(10)), per_identity=1, progress=False) for st in OOD_STYLES]
        sets = build_eval_sets(*held, ood)
        with atomic_path(out / "eval_sets.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **sets)

    step(out / "eval_sets.npz", "evaluation sets", eval_sets)
    print("kept", len(json.loads((out / "kept.json").read_text())), "of", args.identities, "identities;",
          {m: len(PreparedInputs.load(out / f"prep_{m}.npz").identity) for m in ("estimated", "ground_truth")})


if __name__ == "__main__":
    main()
