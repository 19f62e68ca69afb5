"""Checkers for notebook 06 (evaluation): exercises ``psnr`` (PSNR by hand), ``reid_match`` (the Re-ID
match rule) and ``reid_against`` (Re-ID of generated views against the true person and against another one)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from gen3dface.evaluation.image_metrics import psnr
from gen3dface.teaching.checking import ExerciseFailed, answered, run_check


def check_psnr(fn: Callable[[np.ndarray, np.ndarray], float]) -> bool:
    """``fn(a, b)``: PSNR in dB of two uint8 images (peak 255), as :func:`gen3dface.evaluation.image_metrics.psnr`."""

    def body():
        rng = np.random.default_rng(0)
        a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
        got, want = float(answered(fn(a, b))), float(psnr(a, b))
        if not np.isclose(got, want, atol=1e-3):
            raise ExerciseFailed(
                f"{got:.3f} dB, expected {want:.3f} dB: PSNR = 10 log10(255² / mean squared error)"
            )
        return f"{got:.2f} dB, as gen3dface.evaluation.image_metrics.psnr"

    return run_check("psnr", body)


def check_reid_match(fn: Callable[[np.ndarray], float]) -> bool:
    """``fn(distances)``: the fraction of generated views that match (distance < 0.6)."""

    def body():
        got = float(answered(fn(np.array([0.31, 0.59, 0.6, 0.75, 0.2]))))
        if not np.isclose(got, 0.6):
            raise ExerciseFailed(
                f"{got}: a view matches when its distance to the ground truth is strictly below 0.6"
            )
        return "3 of 5 views match (0.6 itself does not)"

    return run_check("reid_match", body)


def check_reid_against(
    fn: Callable[[np.ndarray], dict], generated: np.ndarray, genuine: np.ndarray, impostor: np.ndarray
) -> bool:
    """``fn(reference_views (16, H, W, 3)) -> dict``: Re-ID of ``generated (16, H, W, 3)`` against the reference
    views as :func:`gen3dface.evaluation.identity.reid` returns it (``match``, ``dist``, ``n``) after
    :func:`~gen3dface.evaluation.identity.reid_embeddings` (dlib, the paper's protocol). Run against the true
    ground truth (``genuine``) and another person's (``impostor``); the success line reports both."""
    from gen3dface.evaluation.identity import reid, reid_embeddings

    def body():
        lines = []
        for name, ref in (("same person", genuine), ("another person", impostor)):
            got = answered(fn(ref))
            if not isinstance(got, dict) or not {"match", "dist", "n"} <= set(got):
                raise ExerciseFailed("return the dict that gen3dface.evaluation.identity.reid returns")
            eg, ep, _ = reid_embeddings(ref, generated)
            want = reid(eg, ep)
            if int(got["n"]) != want["n"]:
                raise ExerciseFailed(
                    f"against {name}: {got['n']} view pairs scored, expected {want['n']} (embed with "
                    "reid_embeddings(reference, generated): the face box comes from the reference)"
                )
            for key in ("match", "dist"):
                if not np.isclose(float(got[key]), want[key], atol=1e-4, equal_nan=True):
                    raise ExerciseFailed(f"against {name}: {key} {got[key]:.4f}, expected {want[key]:.4f}")
            lines.append(f"{name} match {want['match']:.2f}, distance {want['dist']:.2f} (n = {want['n']})")
        return "; ".join(lines)

    return run_check("reid_against", body)
