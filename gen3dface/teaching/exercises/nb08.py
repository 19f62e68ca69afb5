"""Checkers for notebook 08 (one ablation arm): exercise ``removal_precision`` (how precise pruning was)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from gen3dface.teaching.checking import ExerciseFailed, answered, run_check


def check_removal_precision(fn: Callable[[list[dict]], float]) -> bool:
    """``fn(identities)``: of the identities pruning removed (``kept`` false), the fraction that carried an
    injected defect (``defect`` not ``None``); ``nan`` when none was removed. ``identities``: the
    ``pruning.json`` records."""

    def body():
        ids = [
            {"defect": d, "kept": k}
            for d, k in (
                (None, True),
                ("janus", False),
                ("drift", True),
                (None, False),
                ("drift", False),
                (None, True),
                ("janus", True),
            )
        ]
        got = float(answered(fn(ids)))
        if not np.isclose(got, 2 / 3):
            raise ExerciseFailed(
                f"{got}: 3 identities were removed and 2 of them carried a defect (expected 2/3)"
            )
        if not np.isnan(float(answered(fn([{"defect": None, "kept": True}])))):
            raise ExerciseFailed("when nothing was removed the precision is undefined: return nan")
        return "2 of the 3 removed identities were defective, and nan when none was removed"

    return run_check("removal_precision", body)
