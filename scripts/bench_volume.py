#!/usr/bin/env python
"""Time the volume conditioning per denoising step: hybrid volume F_H (view encoder, unprojection, 3D
refinement, mesh branch, fusion) + frustum volumes, for N target views. Prints a table.

    python scripts/bench_volume.py                 # CPU smoke sizes and, on a GPU, the paper sizes in bf16
"""

from __future__ import annotations

import argparse
import time

import torch

from gen3dface.core.cameras import target_ring
from gen3dface.volume.conditioning import FrustumNet, HybridVolume
from gen3dface.mesh.estimate import estimate_mesh
from gen3dface.core.samples import sample_photo
from gen3dface.volume.grid import voxelize_mesh

SIZES = {  # views, latent channels, latent side, feature channels, V, D
    "smoke": dict(N=8, C=4, s=8, F=16, V=16, D=16),
    "paper": dict(N=16, C=4, s=32, F=32, V=32, D=48),
}


def bench(profile: str, device: str, dtype: torch.dtype, repeats: int) -> dict:
    z = SIZES[profile]
    torch.manual_seed(0)
    ring = target_ring(z["N"], image_size=256)
    cams = ring.batched(1).to(device)
    mesh = estimate_mesh(sample_photo("astronaut"))
    vox = voxelize_mesh(torch.as_tensor(mesh.vertices), torch.as_tensor(mesh.faces), z["V"]).to(device)
    hybrid = HybridVolume(z["C"], z["F"], 64, z["V"]).to(device)
    frustum = FrustumNet(z["F"], 64, z["D"]).to(device)
    x_t = torch.randn(1, z["N"], z["C"], z["s"], z["s"], device=device)
    temb = torch.randn(1, 64, device=device)

    def step():
        with torch.no_grad(), torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
            vol = hybrid(x_t, temb, cams, [vox])
            return frustum(vol, temb, cams, z["s"])

    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t) / repeats * 1e3
    return {
        "profile": profile,
        "device": device,
        "dtype": str(dtype).split(".")[-1],
        **z,
        "ms_per_step": ms,
        "s_per_50_steps": ms * 50 / 1e3,
        "sparse": hybrid.mesh_net.sparse_available and device == "cuda",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    rows = [bench("smoke", "cpu", torch.float32, args.repeats)]
    if torch.cuda.is_available():
        rows += [
            bench("paper", "cuda", torch.bfloat16, args.repeats),
            bench("paper", "cuda", torch.float32, args.repeats),
        ]
    print(
        f"{'profile':>7} {'device':>6} {'dtype':>8} {'N':>3} {'V':>3} {'D':>3} {'latent':>6} {'sparse':>6} "
        f"{'ms/step':>8} {'s/50 steps':>10}"
    )
    for r in rows:
        print(
            f"{r['profile']:>7} {r['device']:>6} {r['dtype']:>8} {r['N']:>3} {r['V']:>3} {r['D']:>3} {r['s']:>6} "
            f"{str(r['sparse']):>6} {r['ms_per_step']:>8.1f} {r['s_per_50_steps']:>10.2f}"
        )


if __name__ == "__main__":
    main()
