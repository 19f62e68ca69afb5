"""Checkers for notebook 07 (surface reconstruction): exercises ``ray_box`` (where rays enter and leave the head
cube), ``neus_alpha`` (NeuS's opacity between SDF samples), ``composite`` (front-to-back compositing) and
``weight_stats`` (where the NeuS weights put the surface, and how thick, for a given sharpness s)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from gen3dface.recon.rendering import composite_weights, neus_alpha, ray_box
from gen3dface.teaching.checking import ExerciseFailed, answered, as_array, expect_close, run_check


def check_ray_box(fn: Callable[[np.ndarray, np.ndarray], tuple]) -> bool:
    """``fn(origins (B, 3), dirs (B, 3)) -> (near (B,), far (B,))``: where each ray enters and leaves the
    head cube [-1, 1]^3 (near clamped at 0, the camera; rays that miss have near >= far). Only rays that
    hit the cube are compared."""

    def body():
        rng = np.random.default_rng(11)
        for case in range(10):
            o = rng.normal(size=(50, 3))
            o = o / np.linalg.norm(o, axis=1, keepdims=True) * rng.uniform(2, 5, (50, 1))
            target = rng.uniform(-1.3, 1.3, (50, 3))
            d = target - o
            d = d / np.linalg.norm(d, axis=1, keepdims=True)
            near, far = (as_array(x) for x in answered(fn(o.copy(), d.copy())))
            n_want, f_want = (
                x.numpy()
                for x in ray_box(torch.tensor(o, dtype=torch.float64), torch.tensor(d, dtype=torch.float64))
            )
            hit = f_want > n_want + 1e-6
            if near.shape != (50,) or far.shape != (50,):
                raise ExerciseFailed(f"near and far must be (B,) arrays, got {near.shape} and {far.shape}")
            expect_close(near[hit], n_want[hit], 1e-4, f"case {case}, near")
            expect_close(far[hit], f_want[hit], 1e-4, f"case {case}, far")
            if np.any(near[~hit] < far[~hit] - 1e-6):
                raise ExerciseFailed(f"case {case}: a ray that misses the cube got near < far")
        return "near and far of 500 random rays match gen3dface.recon.rendering.ray_box"

    return run_check("ray_box", body)


def check_neus_alpha(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(sdf (B, S), s) -> alpha (B, S-1)``: NeuS's opacity of each section between two samples."""

    def body():
        g = torch.Generator().manual_seed(12)
        for case in range(10):
            t = torch.linspace(-0.5, 0.5, 16)
            offset = torch.rand(8, 1, generator=g) * 0.6 - 0.3
            sdf = -(t[None] - offset) + 0.02 * torch.randn(8, 16, generator=g)  # surfaces crossed head on
            s = float(torch.rand(1, generator=g) * 80 + 10)
            expect_close(fn(sdf.clone(), s), neus_alpha(sdf, s), 1e-4, f"case {case} (s = {s:.1f})")
        return "opacities along 80 rays match gen3dface.recon.rendering.neus_alpha"

    return run_check("neus_alpha", body)


def check_composite(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(alpha (B, S), colors (B, S, 3), background (3,)) -> rgb (B, 3)``: front-to-back compositing
    over the background."""

    def body():
        g = torch.Generator().manual_seed(13)
        for case in range(10):
            alpha = torch.rand(6, 12, generator=g) ** 3
            colors = torch.rand(6, 12, 3, generator=g)
            bg = torch.rand(3, generator=g)
            w = composite_weights(alpha)
            want = (w[..., None] * colors).sum(1) + (1 - w.sum(1, keepdim=True)) * bg
            expect_close(fn(alpha.clone(), colors.clone(), bg.clone()), want, 1e-4, f"case {case}")
        return "colours of 60 rays composite as gen3dface.recon.rendering.composite_weights"

    return run_check("composite", body)


def check_weight_stats(fn: Callable[[float], tuple[float, float]]) -> bool:
    """``fn(s) -> (mean, std)``: where the NeuS weights ``T_i alpha_i`` of notebook 07's ray (161 samples from
    0.6 to 1.4, the surface at 1.0; section i at its start ``t_i``) put the surface, and how spread out they
    are, at sharpness ``s`` (weights normalised to sum to 1)."""

    def body():
        t = torch.linspace(0.6, 1.4, 161, dtype=torch.float64)
        sdf = (1.0 - t)[None]
        for s in (8.0, 30.0, 100.0, 400.0):
            w = composite_weights(neus_alpha(sdf, s))[0]
            w = w / w.sum()
            mean = float((w * t[:-1]).sum())
            std = float((w * (t[:-1] - mean) ** 2).sum().sqrt())
            got = answered(fn(s))
            if len(got) != 2:
                raise ExerciseFailed("return two numbers, (mean, std)")
            expect_close([float(got[0]), float(got[1])], [mean, std], 1e-3, f"s = {s:g}, (mean, std)")
        return (
            f"at s = 400 the weights centre on {mean:.4f} with spread {std:.4f}: sharper s, thinner surface"
        )

    return run_check("weight_stats", body)
