"""Time rebuilding the training views from a prepared file (``load_train_data``'s rendering) at several groupings.

    python scripts/bench_train_data.py --prepared outputs/train_prep/p.npz --identities 48       # CPU
    python scripts/bench_train_data.py --prepared all.npz --groups 1 16 32 --workers 0 15          # a GPU

Each row renders the first ``--identities`` identities of the file: their 16 target views and their input views
(``gen3dface.training.rerender.procedural_views``), with ``group`` identities per rasteriser pass and heads
built by ``workers`` processes (0 = in this process, in turn). The baseline row (``per identity``) is what
``load_train_data`` did before: ``render_identity`` twice per identity (head built twice, one pass each).
Prints identities, seconds, identities per second and the time a 1277-identity file (the shipped model's data)
would take at that rate. The crops and the reprojection that follow are not timed here.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from gen3dface.synth.synthesis import SynthConfig, render_identity
from gen3dface.training.data import PreparedInputs, target_views
from gen3dface.training.rerender import procedural_views


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def per_identity(cfg_t, cfg_in, ids, ring, views_of, device) -> None:
    """The former path: each identity rendered alone, its head built once for the targets, once for the inputs."""
    for i in ids:
        render_identity(cfg_t, i, views=ring, device=device)
        render_identity(cfg_in, i, views=views_of[i], device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepared", type=Path, required=True, help="a prepared file of procedural identities")
    ap.add_argument("--identities", type=int, default=48)
    ap.add_argument("--size", type=int, default=128, help="target view size")
    ap.add_argument("--groups", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[0])
    ap.add_argument("--no-baseline", action="store_true", help="skip the per-identity row")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    prepared = PreparedInputs.load(args.prepared)
    src = prepared.source
    if src["kind"] != "procedural":
        raise SystemExit("bench_train_data: needs a prepared file of procedural identities")
    base = SynthConfig(**src["synth"])
    cfg_t, cfg_in = dataclasses.replace(base, res=args.size), dataclasses.replace(base, res=src["input_res"])
    ring = target_views(src["grid_views"], 16)
    ids = sorted({int(i) for i in prepared.identity})[: args.identities]
    views_of: dict[int, list[int]] = {i: [] for i in ids}
    for v, j in zip(prepared.view, prepared.identity):
        if int(j) in views_of:
            views_of[int(j)].append(int(v))
    name = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"{args.prepared}: {len(ids)} identities, {sum(map(len, views_of.values()))} inputs; {name}")
    render_identity(cfg_t, ids[0], views=ring, device=args.device)  # warm-up
    _sync(args.device)
    head = f"{'path':>12} {'group':>5} {'workers':>7} {'seconds':>8} {'ids/s':>7} {'1277 ids':>9}"
    print(head + "\n" + "-" * len(head))

    def row(path: str, group, workers, seconds: float) -> None:
        rate = len(ids) / seconds
        print(
            f"{path:>12} {group:>5} {workers:>7} {seconds:>8.1f} {rate:>7.2f} {1277 / rate:>8.0f}s",
            flush=True,
        )

    if not args.no_baseline:
        t = time.perf_counter()
        per_identity(cfg_t, cfg_in, ids, ring, views_of, args.device)
        _sync(args.device)
        row("per identity", 1, 0, time.perf_counter() - t)
    for workers in args.workers:
        for group in args.groups:
            t = time.perf_counter()
            for _ in procedural_views(
                cfg_t, cfg_in, ids, ring, views_of, device=args.device, group=group, workers=max(workers, 1)
            ):
                pass
            _sync(args.device)
            row("batched", group, workers, time.perf_counter() - t)


if __name__ == "__main__":
    main()
