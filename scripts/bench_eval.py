"""Wall time of the whole out-of-domain protocol (`gen3dface eval --protocol ood`), stage by stage, as a table.

The inputs are photos the shipped model never trained on: procedural heads in the three unseen styles (toon,
clay, sketch), each seen from a random near-frontal camera (azimuth within +-30 deg, elevation 0), 256 px PNGs.
Every stage of `gen3dface.evaluation.protocols.run_eval` is counted: loading the model, cropping and meshing every
input, generating 16 views per input (50 DDIM steps, guidance 2), FID (InceptionV3), face detection and
dlib embedding for both ID consistencies. CLIP is reported unavailable offline and costs nothing.

    python scripts/bench_eval.py --make-inputs outputs/ood64 --n 64          # write the inputs (CPU, ~1 min)
    python scripts/bench_eval.py --inputs outputs/ood64 -o outputs/ood64.json  # the protocol, then the table
    python scripts/bench_eval.py --inputs outputs/ood64 -o r.json --batch 16 --workers 15   # on a GPU host
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


UNSEEN_STYLES = ("toon", "clay", "sketch")


def make_inputs(folder: Path, n: int, seed: int = 7, size: int = 256) -> None:
    """``n`` near-frontal renders of procedural heads in the unseen styles (cycled), as PNGs in ``folder``."""
    import numpy as np

    from gen3dface.core.images import save_png
    from gen3dface.synth.synthesis import SynthConfig, render_identity

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cams = SynthConfig(views=48, res=size).cameras()  # the same grid for every style
    near = [
        k
        for k in range(len(cams))
        if abs(float(cams.azimuth_deg[k])) <= 30 and abs(float(cams.elevation_deg[k])) < 1
    ]
    for i in range(n):
        style = UNSEEN_STYLES[i % len(UNSEEN_STYLES)]
        cfg = SynthConfig(views=48, res=size, style=style, seed=seed, ssaa=2)
        view = int(rng.choice(near))
        item = render_identity(cfg, i, views=[view])
        save_png(folder / f"{style}_{i:03d}.png", item["rgb"][0])
    print(f"wrote {n} inputs to {folder}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--make-inputs", type=Path, help="write the benchmark's input photos here and stop")
    ap.add_argument("--n", type=int, default=64, help="inputs to write with --make-inputs (default 64)")
    ap.add_argument("--inputs", type=Path, help="a folder of photos to run the protocol on")
    ap.add_argument("-o", "--output", type=Path, default=Path("outputs/bench_eval.json"))
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.make_inputs:
        make_inputs(args.make_inputs, args.n)
        return 0
    if not args.inputs:
        ap.error("give --inputs DIR (or --make-inputs DIR first)")

    import torch

    from gen3dface.evaluation.protocols import run_eval
    from gen3dface.core.parallel import worker_count

    t0 = time.perf_counter()
    res = run_eval(
        "ood",
        args.inputs,
        args.output,
        checkpoint=args.checkpoint,
        device=args.device,
        steps=args.steps,
        batch=args.batch,
        workers=args.workers,
        progress=False,
    )
    wall = time.perf_counter() - t0
    s, st = res["seconds"], res["settings"]
    n, v = res["n_inputs"], res["n_views"]
    dev = st["device"]
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU, {os.cpu_count()} cores"
    print(
        f"\nOOD protocol: {n} inputs x {v} views ({len(res['skipped'])} skipped), {st['steps']} steps, "
        f"{dev} ({name}), {st['dtype']}, batch {args.batch or 'default'}, "
        f"workers {worker_count(args.workers, n * (v + 1))}"
    )
    print("\n| stage | seconds | per input |\n| --- | --- | --- |")
    rows = [
        ("load model (the worker pool starts meanwhile)", s["load_model"]),
        ("crop + mesh (workers), overlapped with generation", s["crop_mesh_generate"]),
        (
            "  first batch ready to generate (workers started, its photos cropped and meshed), from the start",
            s.get("first_batch_ready", 0.0),
        ),
        (
            f"  of which generation on the {dev.split(':')[0].upper()} ({v} views, {st['steps']} DDIM steps, "
            f"guidance {st['guidance']})",
            s["generation"],
        ),
        ("FID (InceptionV3 on inputs + views)", s.get("metrics_fid", 0.0)),
        (
            "face embeddings still running after generation (ID consistency)",
            s.get("metrics_face_embeddings", 0.0),
        ),
        ("all metrics", s["metrics"]),
    ]
    for label, sec in rows:
        print(f"| {label} | {sec:.2f} | {1000 * sec / n:.0f} ms |")
    print(
        f"| **whole protocol (wall, writing the results included)** | **{wall:.2f}** | {1000 * wall / n:.0f} ms |"
    )
    shown = {k: m["value"] for k, m in res["metrics"].items()}
    print("\nmetrics:", json.dumps(shown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
