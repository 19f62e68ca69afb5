"""Checkers for notebook 08 (one ablation arm): exercises ``removal_precision`` (how precise pruning was) and
``oracle_fraction`` (the share of identities a perfect identity filter would keep)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from gen3dface.teaching.checking import ExerciseFailed, answered, require, require_function, run_check

#: ``pruning.json``-like records for the exercises when the dataset's own record is not at hand
EXAMPLE_RECORDS = [
    {"folder": f"id_{i:06d}", "defect": d, "kept": k, "id_score": s, "janus_rejected": []}
    for i, (d, k, s) in enumerate(
        [
            (None, True, 0.61),
            ("drift", False, 0.12),
            (None, True, 0.55),
            ("janus", True, 0.48),
            (None, True, 0.52),
            ("drift", True, 0.44),
            (None, False, 0.20),
            (None, True, 0.58),
            ("drift", False, 0.05),
            (None, True, 0.50),
        ]
    )
]


def check_removal_precision(fn: Callable[[list[dict]], float]) -> bool:
    """``fn(identities)``: of the identities pruning removed (``kept`` false), the fraction that carried an
    injected defect (``defect`` not ``None``); ``nan`` when none was removed. ``identities``: the
    ``pruning.json`` records."""

    def body():
        require_function(fn, "removal_precision")
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


def kept_count(fraction: float, n: int) -> int:
    """How many of ``n`` identities the identity filter keeps at ``fraction`` (top-K, K = ceil(fraction n),
    as :func:`gen3dface.evaluation.ablation.make_ablation_data` sets it)."""
    return min(n, math.ceil(fraction * n - 1e-9))


def check_oracle_fraction(fraction: float | None, identities: list[dict]) -> bool:
    """``fraction``: the share of ``identities`` (``pruning.json`` records) a perfect identity filter keeps: all
    but the drifting ones (``defect == "drift"``)."""

    def body():
        f = float(
            require(fraction, "keep_fraction", "set the share of identities to keep and re-run the cell")
        )
        if not 0 < f <= 1:
            raise ExerciseFailed(f"keep_fraction = {f:g} is not a share of the identities (0 < f <= 1)")
        n = len(identities)
        drift = sum(r.get("defect") == "drift" for r in identities)
        k = kept_count(f, n)
        if k != n - drift:
            raise ExerciseFailed(
                f"{f:g} keeps {k} of the {n} identities, not all but the drifting ones: count those in the record"
            )
        return f"{f:g} keeps {k} of {n}: every identity but the {drift} drifting ones"

    return run_check("oracle_fraction", body)
