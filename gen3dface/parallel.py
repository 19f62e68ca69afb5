"""Worker processes for the per-image CPU work of evaluation: face detection and embedding (mediapipe, dlib)
and photo preparation (crop + mesh estimation). These libraries run one image at a time on one core, so a
set of 1,024 views takes minutes in one process and seconds across a GPU host's 16 cores.

Workers are started with ``spawn`` (never ``fork``: the parent may hold CUDA or threaded native state) and
run one thread each. How many: ``workers`` when given, else ``$GEN3DFACE_WORKERS``, else one per
:data:`ITEMS_PER_WORKER` items up to the machine's cores, so small sets (tests, notebooks) stay in-process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

from .errors import InputError

T = TypeVar("T")
#: below this many items per process, starting a worker (importing torch, loading the face models) costs
#: more than it saves
ITEMS_PER_WORKER = 32
WORKERS_ENV = "GEN3DFACE_WORKERS"


def worker_count(workers: int | None, n_items: int, per_worker: int = ITEMS_PER_WORKER) -> int:
    """The number of processes to use for ``n_items`` (1 = in this process); by default one per ``per_worker``
    items (lower it for costly items), at most one per core."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        if env:
            try:
                workers = int(env)
            except ValueError:
                raise InputError(f"${WORKERS_ENV} must be a whole number, got {env!r}") from None
        else:
            workers = min(os.cpu_count() or 1, n_items // per_worker)
    if workers < 0:
        raise InputError(f"workers must be 0 or more, got {workers}")
    return max(1, min(workers, n_items))


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - opencv is a dependency
        pass
    import torch

    torch.set_num_threads(1)


def map_chunks(fn: Callable[[Sequence[Any]], list[T]], items: Sequence[Any], workers: int | None = None,
               chunk: int = 8, progress: Callable[[int], None] | None = None,
               per_worker: int = ITEMS_PER_WORKER) -> list[T]:
    """``fn`` applied to consecutive chunks of ``items``; the per-item results concatenated in order.

    Args:
        fn: a module-level function (it is pickled to the workers) taking a list of items and returning one
            result per item.
        workers, per_worker: see :func:`worker_count`.
        chunk: items per task (small enough to balance the workers, large enough to amortise pickling).
        progress: called with the number of items finished, as chunks complete.
    """
    n = len(items)
    chunks = [list(items[i:i + chunk]) for i in range(0, n, chunk)]
    k = worker_count(workers, n, per_worker)
    if k <= 1:
        out: list[T] = []
        for c in chunks:
            out += fn(c)
            if progress is not None:
                progress(len(c))
        return out
    from concurrent.futures import as_completed

    with ProcessPoolExecutor(k, mp_context=get_context("spawn"), initializer=_one_thread) as pool:
        futures = {pool.submit(fn, c): i for i, c in enumerate(chunks)}
        done: dict[int, list[T]] = {}
        for f in as_completed(futures):
            i = futures[f]
            done[i] = f.result()
            if progress is not None:
                progress(len(chunks[i]))
    return [r for i in range(len(chunks)) for r in done[i]]
