"""Train one ablation arm of the small model from scratch and generate its evaluation views (GPU).

    python scripts/run_ablation.py --arms joint gt_mesh --data outputs/ablate --steps 600 --out OUT/

``--data`` holds what ``scripts/prepare_ablation.py`` wrote on a CPU: ``prep_estimated.npz`` and
``prep_ground_truth.npz`` (training inputs of the defect-injected dataset), ``kept.json`` (the identities
pruning keeps) and ``eval_sets.npz`` (:func:`gen3dface.evaluation.ablation.build_eval_sets`). Writes ``OUT/ARM_SET[.partK].webp``
(lossless mosaics of the generated views, :func:`gen3dface.evaluation.ablation.save_mosaic`) and prints one ``RECORD``
JSON line per arm (settings, steps done, seconds, loss log). Arms run one after the other: two processes
sharing the lent H100 (16 cores, no ``OMP_WAIT_POLICY``) made no progress in 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gen3dface.evaluation.ablation import ARMS, arm_views, load_eval_sets, save_mosaic, train_arm


def run_arm(arm: str, args, sets: dict) -> dict:
    """Train ``arm``, write its mosaics into ``args.out`` and return its record."""
    model, record = train_arm(
        arm,
        args.data,
        (args.run or args.data) / f"run_{args.tag}{arm}",
        steps=args.steps,
        batch=args.batch,
        init=args.init,
        lr=args.lr,
        max_seconds=args.max_seconds,
        log=lambda m: print(m, flush=True),
    )
    t = time.perf_counter()
    views = arm_views(
        model, arm, sets, steps=args.sample_steps, guidance=args.guidance, batch=args.sample_batch
    )
    t_sample = time.perf_counter() - t
    args.out.mkdir(parents=True, exist_ok=True)
    for name, v in views.items():
        save_mosaic(args.out / f"{args.tag}{arm}_{name}", v, max_rows=16 if name != "ood" else 15)
    print(f"[{arm}] sampled {', '.join(views)} in {t_sample:.0f} s -> {args.out}", flush=True)
    record["seconds"]["sample"] = round(t_sample, 1)
    return {**record, "sample_steps": args.sample_steps, "guidance": args.guidance}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", required=True, choices=sorted(ARMS))
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--run", type=Path, default=None, help="folder of the training runs (default: DATA)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument(
        "--init", type=Path, default=None, help="start every arm from these weights (default: scratch)"
    )
    ap.add_argument(
        "--lr", type=float, default=None, help="one learning rate for all modules (default 2e-4 / 5e-4)"
    )
    ap.add_argument("--tag", default="", help="prefix of the output files and run folders (e.g. ft_)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--sample-batch", type=int, default=30, help="inputs generated at once")
    ap.add_argument(
        "--indomain", type=int, default=16, help="held-out identities generated (of the eval set's)"
    )
    ap.add_argument(
        "--record", type=Path, default=None, help="also write the records here (default: print only)"
    )
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    sets = load_eval_sets(args.data, args.indomain)
    records = []
    for arm in args.arms:
        records.append(run_arm(arm, args, sets))
        print("RECORD " + json.dumps(records[-1]), flush=True)  # a lent GPU returns few files, but its output
    if args.record is not None:
        args.record.write_text(json.dumps(records))


if __name__ == "__main__":
    main()
