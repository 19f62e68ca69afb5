"""Time the offline synthesis stand-in: build procedural heads and render the 48-view grid.

    python scripts/bench_synthesis.py                       # 10 identities x 48 views at 128 and 256 px
    python scripts/bench_synthesis.py --identities 100 --sizes 128 --ssaa 2
    python scripts/bench_synthesis.py --identities 1024 --sizes 256 --ssaa 1 --batch 16 --workers 12   # GPU

Prints one row per (resolution, ssaa, batch): identities, views, resolution, seconds of head building
(summed over workers), seconds of rendering alone, wall seconds of the whole run, views/s and ms per view
of the whole run. With ``--workers N`` the heads are built by N processes ahead of the renderer (what a
GPU needs: building a head takes ~50 ms of CPU, rendering its 48 views a few ms of GPU); with 0 they are
built in the rendering process, in turn. Images stay on the device (no PNG writing). Uses CUDA when it is
available (``--device cpu`` forces the CPU).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

from gen3dface.core.cameras import synthesis_grid
from gen3dface.synth.heads import build_head
from gen3dface.synth.head_params import sample_head_params
from gen3dface.synth.render import render


def _one_thread() -> None:
    torch.set_num_threads(1)


def build_batch(seeds: list[int], resolution: int) -> tuple[list, float]:
    """Heads of ``seeds`` and the seconds it took (run in a worker process)."""
    t = time.perf_counter()
    heads = [build_head(sample_head_params(s), resolution) for s in seeds]
    return heads, time.perf_counter() - t


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench(
    identities: int,
    size: int,
    ssaa: int,
    batch: int,
    resolution: int,
    device: str,
    pool: ProcessPoolExecutor | None,
) -> dict:
    """Build and render ``identities`` heads on the 48-view grid; returns the timings."""
    cams = synthesis_grid(image_size=size).to(device)
    render(build_head(sample_head_params(10**6), resolution), cams, ssaa=ssaa)  # warm-up
    _sync(device)
    starts = list(range(0, identities, batch))
    seeds = [list(range(s, min(identities, s + batch))) for s in starts]
    t0 = time.perf_counter()
    build = rendering = 0.0
    if pool is not None:
        pending = [pool.submit(build_batch, s, resolution) for s in seeds]  # all queued: workers run ahead
        results = (f.result() for f in pending)
    else:
        results = (build_batch(s, resolution) for s in seeds)
    for heads, built in results:
        build += built
        tr = time.perf_counter()
        out = render(heads, cams, ssaa=ssaa)
        _sync(device)
        rendering += time.perf_counter() - tr
        del out
    total = time.perf_counter() - t0
    views = identities * len(cams)
    return {
        "identities": identities,
        "views": len(cams),
        "size": size,
        "ssaa": ssaa,
        "batch": batch,
        "device": device,
        "build_s": build,
        "render_s": rendering,
        "seconds": total,
        "views_per_s": views / total,
        "ms_per_view": 1000 * total / views,
        "render_views_per_s": views / rendering,
    }


def profile_ops(size: int, ssaa: int, batch: int, resolution: int, device: str) -> None:
    """Print the operators that take the most time in one render call of ``batch`` heads."""
    from torch.profiler import ProfilerActivity, profile

    cams = synthesis_grid(image_size=size).to(device)
    heads = [build_head(sample_head_params(s), resolution) for s in range(batch)]
    render(heads, cams, ssaa=ssaa)
    _sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=acts) as prof:
        render(heads, cams, ssaa=ssaa)
        _sync(device)
    key = "cuda_time_total" if device == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=40))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--ssaa", type=int, nargs="+", default=[1, 2], help="supersampling factors to time")
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="identities per render call")
    ap.add_argument("--workers", type=int, default=0, help="processes building heads ahead of the renderer")
    ap.add_argument("--resolution", type=int, default=96, help="head mesh resolution (see build_head)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument(
        "--profile-ops",
        action="store_true",
        help="first print torch.profiler's top operators of one render call (first size, ssaa, batch)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pool = (
        ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), initializer=_one_thread)
        if args.workers
        else None
    )
    faces = len(build_head(sample_head_params(0), args.resolution).faces)
    print(
        f"device {args.device}{' ' + torch.cuda.get_device_name() if args.device == 'cuda' else ''}, "
        f"{torch.get_num_threads()} CPU threads, head mesh ~{faces} triangles (resolution {args.resolution}), "
        f"{args.workers} head-building workers"
    )
    if args.profile_ops:
        profile_ops(args.sizes[0], args.ssaa[0], args.batch[0], args.resolution, args.device)
    head = (
        f"{'identities':>10} {'views':>5} {'res':>5} {'ssaa':>4} {'batch':>5} {'build s':>8} {'render s':>8} "
        f"{'wall s':>8} {'views/s':>8} {'ms/view':>8} {'ids/min':>8}"
    )
    print(head)
    print("-" * len(head))
    for size in args.sizes:
        for ssaa in args.ssaa:
            for batch in args.batch:
                r = bench(args.identities, size, ssaa, batch, args.resolution, args.device, pool)
                print(
                    f"{r['identities']:>10} {r['views']:>5} {r['size']:>5} {r['ssaa']:>4} {r['batch']:>5} "
                    f"{r['build_s']:>8.2f} {r['render_s']:>8.2f} {r['seconds']:>8.2f} {r['views_per_s']:>8.1f} "
                    f"{r['ms_per_view']:>8.2f} {60 * r['identities'] / r['seconds']:>8.0f}",
                    flush=True,
                )
    if pool is not None:
        pool.shutdown()


if __name__ == "__main__":
    main()
