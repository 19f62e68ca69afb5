"""Checkers for notebook 07's exercises (surface reconstruction): each takes the student's function,
compares it with :mod:`gen3dface.recon.reconstruct` on random cases, prints PASS/FAIL and returns a bool."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gen3dface.teaching.exercises import _close, _run


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def check_ray_box(fn: Callable[[np.ndarray, np.ndarray], tuple]) -> bool:
    """``fn(origins (B, 3), dirs (B, 3)) -> (near (B,), far (B,))``: where each ray enters and leaves the
    head cube [-1, 1]^3 (near clamped at 0, the camera; rays that miss have near >= far). Only rays that
    hit the cube are compared."""
    from gen3dface.recon.reconstruct import ray_box

    def body():
        rng = np.random.default_rng(11)
        for case in range(10):
            o = rng.normal(size=(50, 3))
            o = o / np.linalg.norm(o, axis=1, keepdims=True) * rng.uniform(2, 5, (50, 1))
            target = rng.uniform(-1.3, 1.3, (50, 3))
            d = target - o
            d = d / np.linalg.norm(d, axis=1, keepdims=True)
            near, far = (_np(x) for x in fn(o.copy(), d.copy()))
            n_want, f_want = (
                x.numpy()
                for x in ray_box(torch.tensor(o, dtype=torch.float64), torch.tensor(d, dtype=torch.float64))
            )
            hit = f_want > n_want + 1e-6
            if near.shape != (50,) or far.shape != (50,):
                return f"near and far must be (B,) arrays, got {near.shape} and {far.shape}"
            why = _close(near[hit], n_want[hit], 1e-4) or _close(far[hit], f_want[hit], 1e-4)
            if why:
                return f"case {case}: {why}"
            if np.any(near[~hit] < far[~hit] - 1e-6):
                return f"case {case}: a ray that misses the cube got near < far"
        return None

    return _run("exercise: ray_box", body)


def check_neus_alpha(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """``fn(sdf (B, S), s) -> alpha (B, S-1)``: NeuS's opacity of each section between two samples."""
    from gen3dface.recon.reconstruct import neus_alpha

    def body():
        g = torch.Generator().manual_seed(12)
        for case in range(10):
            t = torch.linspace(-0.5, 0.5, 16)
            offset = torch.rand(8, 1, generator=g) * 0.6 - 0.3
            sdf = -(t[None] - offset) + 0.02 * torch.randn(8, 16, generator=g)  # surfaces crossed head on
            s = float(torch.rand(1, generator=g) * 80 + 10)
            why = _close(_np(fn(sdf.clone(), s)), neus_alpha(sdf, s).numpy(), 1e-4)
            if why:
                return f"case {case} (s = {s:.1f}): {why}"
        return None

    return _run("exercise: neus_alpha", body)


def check_composite(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(alpha (B, S), colors (B, S, 3), background (3,)) -> rgb (B, 3)``: front-to-back compositing
    over the background."""
    from gen3dface.recon.reconstruct import composite_weights

    def body():
        g = torch.Generator().manual_seed(13)
        for case in range(10):
            alpha = torch.rand(6, 12, generator=g) ** 3
            colors = torch.rand(6, 12, 3, generator=g)
            bg = torch.rand(3, generator=g)
            w = composite_weights(alpha)
            want = (w[..., None] * colors).sum(1) + (1 - w.sum(1, keepdim=True)) * bg
            why = _close(_np(fn(alpha.clone(), colors.clone(), bg.clone())), want.numpy(), 1e-4)
            if why:
                return f"case {case}: {why}"
        return None

    return _run("exercise: composite", body)
