"""Time the offline synthesis stand-in: build procedural heads and render the 48-view grid.

    python scripts/bench_synthesis.py                       # 10 identities x 48 views at 128 and 256 px
    python scripts/bench_synthesis.py --identities 100 --sizes 128 --ssaa 2

Prints one row per (resolution, ssaa): identities, views, resolution, seconds (mesh building + rendering),
views/s and ms per view. Uses CUDA when it is available (``--device cpu`` forces the CPU).
"""

from __future__ import annotations

import argparse
import time

import torch

from gen3dface.cameras import synthesis_grid
from gen3dface.heads import build_head, sample_head_params
from gen3dface.render import render


def bench(identities: int, size: int, ssaa: int, batch: int, resolution: int, device: str) -> dict:
    """Build and render ``identities`` heads on the 48-view grid; returns the timings."""
    cams = synthesis_grid(image_size=size).to(device)
    render(build_head(sample_head_params(10**6), resolution), cams, ssaa=ssaa)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    build = 0.0
    for start in range(0, identities, batch):
        tb = time.perf_counter()
        heads = [build_head(sample_head_params(s), resolution) for s in range(start, min(identities, start + batch))]
        build += time.perf_counter() - tb
        out = render(heads, cams, ssaa=ssaa)
        out["rgb"].sum().item()  # waits for the device
    total = time.perf_counter() - t0
    views = identities * len(cams)
    return {"identities": identities, "views": len(cams), "size": size, "ssaa": ssaa, "device": device,
            "build_s": build, "seconds": total, "views_per_s": views / total, "ms_per_view": 1000 * total / views}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--ssaa", type=int, nargs="+", default=[1, 2], help="supersampling factors to time")
    ap.add_argument("--batch", type=int, default=1, help="identities per render call")
    ap.add_argument("--resolution", type=int, default=96, help="head mesh resolution (see build_head)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    faces = len(build_head(sample_head_params(0), args.resolution).faces)
    print(f"device {args.device}, {torch.get_num_threads()} CPU threads, head mesh ~{faces} triangles "
          f"(resolution {args.resolution}), {args.batch} identities per call")
    head = f"{'identities':>10} {'views':>5} {'res':>5} {'ssaa':>4} {'build s':>8} {'seconds':>8} {'views/s':>8} {'ms/view':>8}"
    print(head)
    print("-" * len(head))
    for size in args.sizes:
        for ssaa in args.ssaa:
            r = bench(args.identities, size, ssaa, args.batch, args.resolution, args.device)
            print(f"{r['identities']:>10} {r['views']:>5} {r['size']:>5} {r['ssaa']:>4} {r['build_s']:>8.2f} "
                  f"{r['seconds']:>8.2f} {r['views_per_s']:>8.1f} {r['ms_per_view']:>8.2f}")


if __name__ == "__main__":
    main()
