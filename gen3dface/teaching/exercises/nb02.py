"""Checkers for notebook 02 (multi-view synthesis and pruning): exercises ``grid_angles`` (the 48 synthesis
views), ``consistency_score`` (the identity-consistency score of pruning) and ``janus_threshold`` (a threshold
τ of the Janus filter as good as any on the dataset)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from gen3dface.core.cameras import synthesis_grid
from gen3dface.synth.pruning import consistency_score
from gen3dface.teaching.checking import (
    ExerciseFailed,
    answered,
    expect_close,
    expect_equal,
    require,
    require_function,
    run_check,
)


def check_grid_angles(fn: Callable[[], list[tuple[float, float]]]) -> bool:
    """``fn() -> [(azimuth, elevation), ...]``: the paper's 48 synthesis views as in
    :func:`gen3dface.core.cameras.synthesis_grid` (elevation-major: -40, 0, 40; azimuths from -180 in 22.5° steps)."""

    def body():
        require_function(fn, "my_grid_angles")
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
        require_function(fn, "my_consistency_score")
        rng = np.random.default_rng(6)
        for m in (2, 3, 7):
            e = rng.normal(size=(m, 16)) * rng.uniform(0.5, 3, (m, 1))
            expect_close(fn(e), consistency_score(e), 1e-5, f"{m} embeddings")
        return "sets of 2, 3 and 7 embeddings score as gen3dface.synth.pruning.consistency_score"

    return run_check("consistency_score", body)


def janus_f1(tau: float, normal: list[float], janus: list[float]) -> dict:
    """The Janus filter at threshold ``tau`` (a back view is removed when its front-face score exceeds it),
    against the labels: ``precision``, ``recall`` and ``f1`` (nan where undefined), ``removed``, ``false_alarms``."""
    normal, janus = np.asarray(normal, float), np.asarray(janus, float)
    caught, false = int((janus > tau).sum()), int((normal > tau).sum())
    removed = caught + false
    precision = caught / removed if removed else float("nan")
    recall = caught / len(janus) if len(janus) else float("nan")
    f1 = 2 * caught / (removed + len(janus)) if removed + len(janus) else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "removed": removed, "false_alarms": false}


def check_janus_threshold(tau: float | None, normal: list[float], janus: list[float]) -> bool:
    """``tau``: a Janus threshold whose F1 on these labelled back-view scores (``normal``: views without a face,
    ``janus``: views with one) is the best any threshold reaches."""

    def body():
        t = float(require(tau, "tau", "set a threshold between 0 and 1 and re-run the cell"))
        if not len(janus):
            return f"this dataset has no Janus view, so any τ (here {t:g}) removes only false alarms"
        candidates = sorted({0.0, 1.0, *map(float, normal), *map(float, janus)})
        best = max(np.nan_to_num(janus_f1(c, normal, janus)["f1"]) for c in [-1.0, *candidates])
        got = janus_f1(t, normal, janus)
        if np.nan_to_num(got["f1"]) < best - 1e-9:
            raise ExerciseFailed(
                f"τ = {t:g} gives F1 {np.nan_to_num(got['f1']):.2f} (recall {got['recall']:.2f}, "
                f"{got['false_alarms']} false alarms) but some τ reaches {best:.2f}: keep trying"
            )
        return f"τ = {t:g} catches {got['recall']:.0%} of the Janus views with {got['false_alarms']} false alarms"

    return run_check("janus_threshold", body)
