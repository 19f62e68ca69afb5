"""Score the ablation arms' generated views (from ``scripts/run_ablation.py``) and write the tables.

    python scripts/score_ablation.py --views outputs/ablate/views --data outputs/ablate -o data/ablation

Per arm, :func:`gen3dface.ablation.arm_metrics` -> ``OUT/metrics_ARM.json`` (skipped when there: a killed run
resumes); then the arms go under ``--protocol`` into ``OUT/ablation.json`` (the format of the shipped
``data/ablation/ablation.json``; other protocols already there are kept, ``--runs`` sets the run records) and
``OUT/ablation.md`` is written from it (:func:`gen3dface.ablation.ablation_report`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen3dface.ablation import ARMS, PROTOCOLS, ablation_report, arm_metrics, arm_sets, load_mosaic  # noqa: E402
from gen3dface.storage import atomic_write_text  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="the folder holding eval_sets.npz")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--arms", nargs="+", default=list(ARMS))
    ap.add_argument("--indomain", type=int, default=16, help="held-out identities the GPU run generated")
    ap.add_argument("--protocol", default="scratch", choices=PROTOCOLS, help="how the arms were trained")
    ap.add_argument("--runs", type=Path, default=None, help="JSON of the training runs' records to merge")
    ap.add_argument("--tag", default="", help="the file prefix run_ablation.py was given (e.g. ft_)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sets = dict(np.load(args.data / "eval_sets.npz"))
    sets = {k: v[:args.indomain] if k.startswith("indomain") else v for k, v in sets.items()}
    n_views = sets["indomain_gt"].shape[1]
    results = {}
    for arm in args.arms:
        f = args.out / f"metrics_{arm}.json"
        if not f.exists():
            t = time.perf_counter()
            views = {s: load_mosaic(args.views / f"{args.tag}{arm}_{s}", n_views) for s in arm_sets(arm)}
            atomic_write_text(f, json.dumps(arm_metrics(views, sets), indent=1))
            print(f"{arm}: scored in {time.perf_counter() - t:.0f} s", flush=True)
        results[arm] = json.loads(f.read_text())
    f = args.out / "ablation.json"
    data = json.loads(f.read_text()) if f.exists() else {}
    data[args.protocol] = results
    if args.runs:
        data["runs"] = json.loads(args.runs.read_text())
    atomic_write_text(f, json.dumps(data, indent=1))
    atomic_write_text(args.out / "ablation.md", ablation_report(data))
    print(ablation_report(data))


if __name__ == "__main__":
    main()
