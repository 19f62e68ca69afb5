"""Time face mesh estimation (gen3dface.mesh.estimate.estimate_mesh) on a 512 px photo, per offline backend.

    python scripts/bench_geometry.py                  # the shipped astronaut photo, 10 repeats
    python scripts/bench_geometry.py --photo me.jpg --repeats 20 --flame-model generic_model.pkl

Prints one row per backend that runs offline: mediapipe always, ground_truth (a procedural head: builds
its mesh, no photo), flame only with --flame-model (the licence-gated FLAME 2020 pickle, trusted by giving
it). Models are loaded by one warm-up call first; the target is <= 0.5 s per photo on a laptop CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image

from gen3dface.mesh.estimate import estimate_mesh
from gen3dface.core.samples import sample_photo


def photo_512(path) -> np.ndarray:
    """The photo resized so its long side is 512 px, ``(H, W, 3)`` uint8."""
    img = Image.open(path).convert("RGB")
    scale = 512 / max(img.size)
    return np.asarray(img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC))


def bench(run, repeats: int) -> list[float]:
    run()  # warm-up: loads models
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", default=None, help="a face photo (default: data/samples/astronaut.jpg)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--flame-model", default=None, help="FLAME 2020 generic_model.pkl (adds the flame row)")
    args = ap.parse_args()
    rgb = photo_512(args.photo or sample_photo("astronaut"))
    runs = {
        "mediapipe": lambda: estimate_mesh(rgb),
        "ground_truth": lambda: estimate_mesh(None, "ground_truth", head=0),
    }
    if args.flame_model:
        runs["flame"] = lambda: estimate_mesh(rgb, "flame", flame_model=args.flame_model, trust_pickle=True)
    print(f"photo {rgb.shape[1]}x{rgb.shape[0]} px, {args.repeats} repeats after one warm-up")
    head = f"{'backend':>13} {'median s':>9} {'min s':>7} {'max s':>7} {'vertices':>9}"
    print(head)
    print("-" * len(head))
    for name, run in runs.items():
        times = bench(run, args.repeats)
        print(
            f"{name:>13} {statistics.median(times):>9.3f} {min(times):>7.3f} {max(times):>7.3f} {len(run().vertices):>9}"
        )


if __name__ == "__main__":
    main()
