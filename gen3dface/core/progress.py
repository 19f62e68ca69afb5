"""Progress bars that suit where the output goes.

On a terminal or in Jupyter a bar refreshes as usual. When the output is a file or a pipe (CI logs, ``make demo >
log``, batch jobs) every refresh would be written as one more line, so the bar refreshes at most every
:data:`LOG_INTERVAL_S` seconds (and once at the end): a long run writes a handful of lines, not thousands.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

#: seconds between refreshes when the output is not a terminal
LOG_INTERVAL_S = 30.0


def interactive() -> bool:
    """Whether progress goes to a person watching: a terminal, or a Jupyter kernel."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, refreshing sparsely when the output is not interactive."""
    from tqdm.auto import tqdm

    if not interactive():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, kwargs["mininterval"]))
    return tqdm(iterable, **kwargs)
