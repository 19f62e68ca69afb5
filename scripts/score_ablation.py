"""Score the ablation arms' generated views (from ``scripts/run_ablation.py``) and write the tables.

    python scripts/score_ablation.py --views outputs/ablate/views --data outputs/ablate -o data/ablation
    python scripts/score_ablation.py --runs-from outputs/ablation_runs --tag ft_ --protocol finetune -o data/ablation

With ``--runs-from``, the arms were already scored by notebook 08 under papermill (one ``TAG+ARM.json`` each,
:func:`gen3dface.evaluation.ablation.save_arm_run`): their scores and run records are gathered, nothing is recomputed.

Per arm, :func:`gen3dface.evaluation.ablation.arm_metrics` -> ``OUT/metrics_ARM.json`` (skipped when there: a killed run
resumes); then the arms go under ``--protocol`` into ``OUT/ablation.json`` (the format of the shipped
``data/ablation/ablation.json``; other protocols already there are kept, ``--runs`` sets the run records) and
``OUT/ablation.md`` is written from it (:func:`gen3dface.evaluation.ablation.ablation_report`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gen3dface.core.storage import atomic_write_text
from gen3dface.evaluation.ablation import (
    ARMS,
    PROTOCOLS,
    ablation_report,
    arm_metrics,
    arm_sets,
    collect_arm_runs,
    load_eval_sets,
    load_mosaic,
)


def score_views(args) -> dict:
    """Score run_ablation.py's mosaics per arm (``OUT/metrics_ARM.json`` cached: a killed run resumes)."""
    sets = load_eval_sets(args.data, args.indomain)
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
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=Path, help="the mosaics run_ablation.py wrote")
    ap.add_argument("--data", type=Path, help="the folder holding eval_sets.npz")
    ap.add_argument(
        "--runs-from", type=Path, help="a folder of notebook 08 runs (TAG+ARM.json): gather, not score"
    )
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--arms", nargs="+", default=list(ARMS))
    ap.add_argument("--indomain", type=int, default=16, help="held-out identities the GPU run generated")
    ap.add_argument("--protocol", default="scratch", choices=PROTOCOLS, help="how the arms were trained")
    ap.add_argument("--runs", type=Path, default=None, help="JSON of the training runs' records to merge")
    ap.add_argument("--tag", default="", help="the file prefix run_ablation.py was given (e.g. ft_)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records = None
    if args.runs_from:
        results, records = collect_arm_runs(args.runs_from, args.tag, args.arms)
        if not results:
            ap.error(f"no {args.tag}ARM.json in {args.runs_from}")
    else:
        if not (args.views and args.data):
            ap.error("give --views and --data (or --runs-from)")
        results = score_views(args)
    f = args.out / "ablation.json"
    data = json.loads(f.read_text()) if f.exists() else {}
    data[args.protocol] = results
    if args.runs:
        data["runs"] = json.loads(args.runs.read_text())
    elif records:  # the notebook runs' records, their loss logs shortened to the final loss
        data.setdefault("runs", {}).setdefault(args.protocol, {})["arms"] = {
            r["arm"]: {
                **{k: v for k, v in r.items() if k not in ("arm", "losses")},
                "final_loss": r["losses"][-1]["loss"] if r.get("losses") else None,
            }
            for r in records
        }
    atomic_write_text(f, json.dumps(data, indent=1))
    atomic_write_text(args.out / "ablation.md", ablation_report(data))
    print(ablation_report(data))


if __name__ == "__main__":
    main()
