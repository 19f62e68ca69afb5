"""Checkers for the exercises of notebooks 06 (evaluation metrics) and 08 (an ablation arm)."""

from __future__ import annotations

import numpy as np


def _ok(msg: str) -> str:
    print(f"correct: {msg}")
    return msg


def check_psnr(fn) -> str:
    """Exercise 1: ``fn(a, b)`` = PSNR in dB of two uint8 images (peak 255), as :func:`gen3dface.evaluation.metrics.psnr`."""
    from gen3dface.evaluation.metrics import psnr

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    got, want = float(fn(a, b)), float(psnr(a, b))
    if not np.isclose(got, want, atol=1e-3):
        raise AssertionError(f"{got:.3f} dB, expected {want:.3f} dB: PSNR = 10 log10(255² / mean squared error)")
    return _ok(f"{got:.2f} dB")


def check_reid_match(fn) -> str:
    """Exercise 2: ``fn(distances)`` = the fraction of generated views that match (distance < 0.6)."""
    d = np.array([0.31, 0.59, 0.6, 0.75, 0.2])
    got = float(fn(d))
    if not np.isclose(got, 0.6):
        raise AssertionError(f"{got}: a view matches when its distance to the ground truth is strictly below 0.6")
    return _ok("3 of 5 views match (0.6 itself does not)")


def check_removal_precision(fn) -> str:
    """Notebook 08: ``fn(identities)`` = of the identities pruning removed (``kept`` false), the fraction that
    carried an injected defect (``defect`` not ``None``); ``nan`` when none was removed. ``identities``: the
    ``pruning.json`` records."""
    ids = [{"defect": d, "kept": k} for d, k in ((None, True), ("janus", False), ("drift", True), (None, False),
                                                  ("drift", False), (None, True), ("janus", True))]
    got = float(fn(ids))
    if not np.isclose(got, 2 / 3):
        raise AssertionError(f"{got}: 3 identities were removed and 2 of them carried a defect (expected 2/3)")
    if not np.isnan(float(fn([{"defect": None, "kept": True}]))):
        raise AssertionError("when nothing was removed the precision is undefined: return nan")
    return _ok("2 of the 3 removed identities were defective")
