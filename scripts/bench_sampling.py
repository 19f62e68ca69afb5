"""Sampling speed of the multi-view model: joint vs sequential, seconds and peak GPU memory, as a table.

    python scripts/bench_sampling.py                       # paper + small profiles on the GPU (if any)
    python scripts/bench_sampling.py --device cpu --profiles small --steps 5

Paper profile: SD 1.5's UNet (random weights, fp16), SD's VAE decoding the views (random weights), 256 px,
16 views, 50 DDIM steps, classifier-free guidance (conditional and unconditional in one batch), the full
volume conditioning (F_H, frustum volumes, depth-wise attention) every step. Small profile: the shipped
model's architecture. The mesh is the shipped face template. Each run is one
:meth:`Gen3DFacePipeline.generate_views` (voxelising the mesh, the start latents, VAE encode/decode included).
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from gen3dface.generation.model import Gen3DFaceModel, count_parameters
from gen3dface.generation.pipeline import Gen3DFacePipeline
from gen3dface.mesh.facemesh import face_template, tesselation_triangles


def sd_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )


def bench_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    """The conditioning mesh: the face template on mediapipe's triangles, or (where mediapipe is not installed,
    e.g. a bare GPU box) the face-region vertices' triangles of a procedural head. Either way a face-sized
    surface; the volume's cost does not depend on which."""
    try:
        return torch.as_tensor(face_template()), torch.as_tensor(tesselation_triangles()).long()
    except ImportError:
        from gen3dface.synth.head_params import PARTS, sample_head_params
        from gen3dface.synth.heads import build_head

        head = build_head(sample_head_params(0), 64)
        keep = torch.as_tensor(head.labels) == PARTS.index("skin")
        f = torch.as_tensor(head.faces).long()
        f = f[
            keep[f].all(1) & (torch.as_tensor(head.vertices)[f][..., 2].mean(1) > 0)
        ]  # the front of the skin
        return torch.as_tensor(head.vertices).float(), f


def run(
    profile: str,
    sampler: str,
    device: str,
    steps: int,
    guidance: float,
    dtype,
    profile_ops: bool = False,
    compile_unet: bool = False,
    channels_last: bool = False,
    repeats: int = 1,
) -> dict:
    torch.manual_seed(0)
    model = Gen3DFaceModel.from_profile(profile)
    if profile == "paper":
        model.set_vae(sd_vae())
        model.codec.vae.to(device, dtype)
    model.to(device, dtype).eval()
    if channels_last or compile_unet:
        model.speed_up(compile=compile_unet)
    S, N = model.image_size, model.config.n_views
    pipe = Gen3DFacePipeline.from_model(model)
    vertices, faces = bench_mesh()
    photo = torch.rand(1, 3, S, S, device=device, dtype=dtype) * 2 - 1
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def once():
        return pipe.generate_views(
            photo, vertices[None], faces, steps=steps, guidance=guidance, sampler=sampler
        )

    t = time.perf_counter()
    once() if device == "cuda" else None  # warm-up (cuDNN autotune, kernels; torch.compile's compilation)
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        views = once()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    sec = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    if profile_ops:
        print_op_profile(once, device, f"{profile} {sampler}")
    assert views.shape == (1, N, S, S, 3)
    return {
        "profile": profile,
        "sampler": sampler,
        "compile": compile_unet,
        "channels_last": channels_last or compile_unet,
        "first_s": first,
        "range_s": (times[0], times[-1]),
        "device": device,
        "px": S,
        "views": N,
        "steps": steps,
        "params_M": count_parameters(model) / 1e6,
        "seconds": sec,
        "peak_GiB": peak,
    }


def print_op_profile(once, device: str, label: str) -> None:
    """Where one sampling run spends its time: the model's parts (record_function labels) and the top ops."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=acts) as prof:
        once()
        torch.cuda.synchronize() if device == "cuda" else None
    key = "device_time_total" if device == "cuda" else "cpu_time_total"
    rows = prof.key_averages()
    print(f"\n{label}: time per part (ms over the whole run)")
    for r in rows:
        if r.key.startswith("gen3dface."):
            print(
                f"  {r.key:32s} cpu {r.cpu_time_total / 1e3:9.1f}  device {getattr(r, key, 0) / 1e3:9.1f}  calls {r.count}"
            )
    print(rows.table(sort_by=key, row_limit=15, max_name_column_width=50))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--profiles", nargs="+", default=["paper", "small"])
    ap.add_argument("--samplers", nargs="+", default=["joint", "sequential"])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument(
        "--repeats", type=int, default=1, help="timed runs after the warm-up; the median is reported"
    )
    ap.add_argument(
        "--profile-ops", action="store_true", help="also print where the time goes (torch.profiler)"
    )
    ap.add_argument("--compile", choices=["on", "off", "both"], default="off", help="torch.compile the UNet")
    ap.add_argument(
        "--channels-last",
        choices=["on", "off", "both"],
        default="off",
        help="the UNet's weights and activations in channels-last memory format (always on with --compile:"
        " Gen3DFaceModel.speed_up)",
    )
    args = ap.parse_args()
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    rows = []
    options = {"on": [True], "off": [False], "both": [False, True]}
    for prof in args.profiles:
        for smp in args.samplers:
            for cp, cl in itertools.product(options[args.compile], options[args.channels_last]):
                if cp and cl is False and args.channels_last == "both":
                    continue  # compiling implies channels-last (speed_up)
                try:
                    r = run(
                        prof,
                        smp,
                        args.device,
                        args.steps,
                        args.guidance,
                        dtype,
                        args.profile_ops,
                        cp,
                        cl,
                        args.repeats,
                    )
                except Exception as e:  # noqa: BLE001 - an option that fails on this machine is reported, not fatal
                    print(f"  {prof} {smp} compile={cp} channels_last={cl}: failed: {str(e).splitlines()[0]}")
                    continue
                rows.append(r)
                print(
                    f"  {prof:6s} {smp:10s} compile {cp:d} channels-last {r['channels_last']:d}: {r['seconds']:8.2f} s "
                    f"(first call {r['first_s']:.1f} s), peak {r['peak_GiB']:.2f} GiB",
                    flush=True,
                )
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"\nsampling, {name}, guidance {args.guidance} (CFG batched), {str(dtype).replace('torch.', '')}")
    onoff = lambda b: "on" if b else "off"  # noqa: E731
    print(
        f"| profile | params (M) | px | views | DDIM steps | sampler | compile | channels-last "
        f"| seconds / {rows[0]['views']} views (median) | range | first call (s) | peak GPU GiB |"
    )
    print("| --- " * 12 + "|")
    for r in rows:
        lo, hi = r["range_s"]
        print(
            f"| {r['profile']} | {r['params_M']:.0f} | {r['px']} | {r['views']} | {r['steps']} | {r['sampler']} | "
            f"{onoff(r['compile'])} | {onoff(r['channels_last'])} | {r['seconds']:.2f} | {lo:.2f}-{hi:.2f} | "
            f"{r['first_s']:.1f} | {r['peak_GiB']:.2f} |"
        )


if __name__ == "__main__":
    main()
