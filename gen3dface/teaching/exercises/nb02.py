"""Checkers for notebook 02 (multi-view synthesis and pruning): exercises ``grid_angles`` (the 48 synthesis
views) and ``consistency_score`` (the identity-consistency score of pruning)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from gen3dface.core.cameras import synthesis_grid
from gen3dface.synth.pruning import consistency_score
from gen3dface.teaching.checking import ExerciseFailed, answered, expect_close, expect_equal, run_check


def check_grid_angles(fn: Callable[[], list[tuple[float, float]]]) -> bool:
    """``fn() -> [(azimuth, elevation), ...]``: the paper's 48 synthesis views as in
    :func:`gen3dface.core.cameras.synthesis_grid` (elevation-major: -40, 0, 40; azimuths from -180 in 22.5° steps)."""

    def body():
        grid = synthesis_grid()
        want = [
            (round((float(a) + 180) % 360 - 180, 3), round(float(e), 3))
            for a, e in zip(grid.azimuth_deg, grid.elevation_deg)
        ]
        want = [(-180.0 if a == 180.0 else a, e) for a, e in want]
        got = [(round(float(a), 3), round(float(e), 3)) for a, e in answered(fn())]
        if len(got) != 48:
            raise ExerciseFailed(f"{len(got)} views, expected 48")
        for i, (g, w) in enumerate(zip(got, want)):
            expect_equal(g, w, f"view {i}")
        return "the 48 (azimuth, elevation) pairs of synthesis_grid, in its order"

    return run_check("grid_angles", body)


def check_consistency_score(fn: Callable[[np.ndarray], float]) -> bool:
    """``fn(embeddings (M, D)) -> float``: the mean pairwise cosine similarity over distinct pairs."""

    def body():
        rng = np.random.default_rng(6)
        for m in (2, 3, 7):
            e = rng.normal(size=(m, 16)) * rng.uniform(0.5, 3, (m, 1))
            expect_close(fn(e), consistency_score(e), 1e-5, f"{m} embeddings")
        return "sets of 2, 3 and 7 embeddings score as gen3dface.synth.pruning.consistency_score"

    return run_check("consistency_score", body)
