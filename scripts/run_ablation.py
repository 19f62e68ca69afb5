"""Train one ablation arm of the small model from scratch and generate its evaluation views (GPU).

    python scripts/run_ablation.py --arms joint gt_mesh --data outputs/ablate --steps 600 --out OUT/

``--data`` holds what ``scripts/prepare_ablation.py`` wrote on a CPU: ``prep_estimated.npz`` and
``prep_ground_truth.npz`` (training inputs of the defect-injected dataset), ``kept.json`` (the identities
pruning keeps) and ``eval_sets.npz`` (:func:`gen3dface.ablation.build_eval_sets`). Writes ``OUT/ARM_SET[.partK].webp``
(lossless mosaics of the generated views, :func:`gen3dface.ablation.save_mosaic`) and prints one ``RECORD``
JSON line per arm (settings, steps done, seconds, loss log). Arms run one after the other: two processes
sharing the lent H100 (16 cores, no ``OMP_WAIT_POLICY``) made no progress in 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen3dface.ablation import ARMS, arm_views, save_mosaic  # noqa: E402
from gen3dface.model import Gen3DFaceModel  # noqa: E402
from gen3dface.train import TrainConfig, train  # noqa: E402
from gen3dface.trainset import PreparedInputs, load_train_data  # noqa: E402


def run_arm(arm: str, args, sets: dict, dev: str) -> dict:
    """Train ``arm`` from scratch, write its mosaics into ``args.out`` and return its record."""
    spec = ARMS[arm]
    prep = PreparedInputs.load(args.data / f"prep_{spec['meshes']}.npz")
    if spec["pruned"]:
        prep = prep.subset(json.loads((args.data / "kept.json").read_text()))
    torch.manual_seed(0)
    if args.init is not None:  # fine-tune every arm from the same weights (e.g. the shipped model)
        model = Gen3DFaceModel.from_pretrained(args.init, torch_dtype=torch.float32, attention=spec["attention"])
    else:
        model = Gen3DFaceModel.from_profile("small", attention=spec["attention"])
    t = time.perf_counter()
    data = load_train_data(prep, model.image_size, model.config.n_views, device=dev, progress=False)
    t_data = time.perf_counter() - t
    print(f"[{arm}] {len(data.identities)} identities, {len(data)} inputs, rendered in {t_data:.0f} s", flush=True)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr_backbone=args.lr or 2e-4, lr_new=args.lr or 5e-4,
                      mixed_precision="bf16" if dev == "cuda" else "no", checkpoint_every=args.steps, log_every=25)
    t = time.perf_counter()
    losses = train(model, data, (args.run or args.data) / f"run_{args.tag}{arm}", cfg, max_seconds=args.max_seconds,
                   progress=False)
    t_train = time.perf_counter() - t
    done = losses[-1]["step"] if losses else 0
    print(f"[{arm}] trained {done} steps in {t_train:.0f} s", flush=True)
    model.to(dev).eval()
    t = time.perf_counter()
    views = arm_views(model, arm, sets, steps=args.sample_steps, guidance=args.guidance, batch=args.sample_batch)
    t_sample = time.perf_counter() - t
    args.out.mkdir(parents=True, exist_ok=True)
    for name, v in views.items():
        save_mosaic(args.out / f"{args.tag}{arm}_{name}", v, max_rows=16 if name != "ood" else 15)
    print(f"[{arm}] sampled {', '.join(views)} in {t_sample:.0f} s -> {args.out}", flush=True)
    return {"arm": arm, **spec, "init": str(args.init) if args.init else None, "lr": cfg.lr_backbone, "identities": len(data.identities), "inputs": len(data), "steps": done,
            "batch": args.batch, "seconds": {"data": round(t_data, 1), "train": round(t_train, 1),
                                            "sample": round(t_sample, 1)},
            "sample_steps": args.sample_steps, "guidance": args.guidance,
            "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", required=True, choices=sorted(ARMS))
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--run", type=Path, default=None, help="folder of the training runs (default: DATA)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--init", type=Path, default=None, help="start every arm from these weights (default: scratch)")
    ap.add_argument("--lr", type=float, default=None, help="one learning rate for all modules (default 2e-4 / 5e-4)")
    ap.add_argument("--tag", default="", help="prefix of the output files and run folders (e.g. ft_)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--sample-batch", type=int, default=30, help="inputs generated at once")
    ap.add_argument("--indomain", type=int, default=16, help="held-out identities generated (of the eval set's)")
    ap.add_argument("--record", type=Path, default=None, help="also write the records here (default: print only)")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    sets = dict(np.load(args.data / "eval_sets.npz"))
    sets = {k: v[:args.indomain] if k.startswith("indomain") else v for k, v in sets.items()}
    records = []
    for arm in args.arms:
        records.append(run_arm(arm, args, sets, dev))
        print("RECORD " + json.dumps(records[-1]), flush=True)  # a lent GPU returns few files, but its output
    if args.record is not None:
        args.record.write_text(json.dumps(records))


if __name__ == "__main__":
    main()
