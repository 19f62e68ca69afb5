"""Sampling speed of the multi-view model: joint vs sequential, seconds and peak GPU memory, as a table.

    python scripts/bench_sampling.py                       # paper + small profiles on the GPU (if any)
    python scripts/bench_sampling.py --device cpu --profiles small --steps 5

Paper profile: SD 1.5's UNet (random weights, fp16), SD's VAE decoding the views (random weights), 256 px,
16 views, 50 DDIM steps, classifier-free guidance (conditional and unconditional in one batch), the full
volume conditioning (F_H, frustum volumes, depth-wise attention) every step. Small profile: the shipped
model's architecture. The mesh is the shipped face template, voxelised. Times include VAE encode/decode.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen3dface.cameras import Cameras, target_ring  # noqa: E402
from gen3dface.diffusion import sample  # noqa: E402
from gen3dface.geometry import face_template, tesselation_triangles  # noqa: E402
from gen3dface.model import Gen3DFaceModel, count_parameters  # noqa: E402
from gen3dface.volume import voxelize_mesh  # noqa: E402


def sd_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def run(profile: str, sampler: str, device: str, steps: int, guidance: float, dtype) -> dict:
    torch.manual_seed(0)
    model = Gen3DFaceModel.from_profile(profile)
    if profile == "paper":
        model.set_vae(sd_vae())
        model.codec.vae.to(device, dtype)
    model.to(device, dtype).eval()
    S, N = model.image_size, model.config.n_views
    ring = target_ring(N, image_size=S)
    cams = Cameras(ring.K[None], ring.c2w[None], S, S).to(device)
    vox = voxelize_mesh(torch.as_tensor(face_template()), torch.as_tensor(tesselation_triangles()).long(),
                        model.config.volume_size).to(device)
    photo = torch.rand(1, 3, S, S, device=device, dtype=dtype) * 2 - 1
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    g = torch.Generator(device=device).manual_seed(0)

    def once():
        with torch.no_grad():
            y = {"latent": model.encode(photo), "mesh_voxels": [vox]}
            z = sample(model, y, cams, steps=steps, guidance=guidance, sampler=sampler, generator=g, device=device,
                       x_T=torch.randn(1, N, *model.view_shape, device=device, generator=g).to(dtype))
            return model.decode(z)

    once() if device == "cuda" else None  # warm-up (cuDNN autotune, kernels)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    views = once()
    if device == "cuda":
        torch.cuda.synchronize()
    sec = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    assert views.shape == (1, N, 3, S, S) and torch.isfinite(views).all()
    return {"profile": profile, "sampler": sampler, "device": device, "px": S, "views": N, "steps": steps,
            "params_M": count_parameters(model) / 1e6, "seconds": sec, "peak_GiB": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--profiles", nargs="+", default=["paper", "small"])
    ap.add_argument("--samplers", nargs="+", default=["joint", "sequential"])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=2.0)
    args = ap.parse_args()
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    rows = []
    for prof in args.profiles:
        for smp in args.samplers:
            r = run(prof, smp, args.device, args.steps, args.guidance, dtype)
            rows.append(r)
            print(f"  {prof:6s} {smp:10s} {r['seconds']:8.2f} s  peak {r['peak_GiB']:.2f} GiB", flush=True)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"\nsampling, {name}, guidance {args.guidance} (CFG batched), {str(dtype).replace('torch.', '')}")
    print(f"| profile | params (M) | px | views | DDIM steps | sampler | seconds / {rows[0]['views']} views | peak GPU GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['profile']} | {r['params_M']:.0f} | {r['px']} | {r['views']} | {r['steps']} | {r['sampler']} | "
              f"{r['seconds']:.2f} | {r['peak_GiB']:.2f} |")


if __name__ == "__main__":
    main()
