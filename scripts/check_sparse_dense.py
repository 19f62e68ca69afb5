#!/usr/bin/env python
"""Check that SparseMeshNet's spconv path equals its dense path, and time both, on this machine.

python scripts/check_sparse_dense.py            # CUDA if present (TF32 off, so float32 is compared), else CPU
"""

import time

import torch

from gen3dface.synth.heads import build_head
from gen3dface.synth.head_params import sample_head_params
from gen3dface.volume.grid import SparseMeshNet, voxelize_mesh


def main() -> None:
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions differ from float32 by ~1e-4
    torch.backends.cuda.matmul.allow_tf32 = False
    V, C = 32, 32
    mesh = build_head(sample_head_params(0), 48)
    vox = voxelize_mesh(mesh.vertices, mesh.faces, V)
    idx = torch.cat([torch.zeros(len(vox), 1, dtype=torch.long), vox], 1).to(dev)
    f = torch.randn(len(vox), C, device=dev)
    torch.manual_seed(0)
    net = SparseMeshNet(C, C, C).to(dev)
    print(
        f"device {dev}, spconv {'available' if net.sparse_available else 'NOT available'}, "
        f"{len(vox)} active voxels of {V**3}"
    )
    if not net.sparse_available:
        return
    with torch.no_grad():
        d, s = net(f, idx, 1, V, dense=True), net(f, idx, 1, V, dense=False)
        print(
            f"max |dense - sparse| = {float((d - s).abs().max()):.2e} (values up to {float(d.abs().max()):.2f})"
        )
        for dense in (True, False):
            for _ in range(3):
                net(f, idx, 1, V, dense=dense)
            if dev == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(20):
                net(f, idx, 1, V, dense=dense)
            if dev == "cuda":
                torch.cuda.synchronize()
            print(
                f"{'dense' if dense else 'sparse':>6}: {(time.perf_counter() - t) / 20 * 1e3:.2f} ms per call"
            )
    if dev == "cuda":  # spconv 2.3.8 has no CPU backward
        net(f, idx, 1, V, dense=False).square().mean().backward()
        print(
            "gradients reach every parameter:",
            all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters()),
        )


if __name__ == "__main__":
    main()
