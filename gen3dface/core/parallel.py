"""Worker processes for per-item CPU work that runs one item at a time on one core (e.g. face detection and
embedding): a set of 1,024 images takes minutes in one process and seconds across a GPU host's 16 cores.

Workers are started with ``spawn`` (never ``fork``: the parent may hold CUDA or threaded native state) and run
one thread each. A :class:`WorkerPool` given a ``warm_up`` function starts every worker at once and runs it in
each as it starts (e.g. importing what the tasks use and loading their models), so that work submitted later
does not wait for it. How many: ``workers`` when given, else ``$GEN3DFACE_WORKERS``, else one per
:data:`ITEMS_PER_WORKER` items up to the machine's cores, so small sets (tests, notebooks) stay in-process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from typing import Any, TypeVar

from gen3dface.core.errors import InputError

T = TypeVar("T")
#: below this many items per process, starting a worker (importing torch, loading the face models) costs
#: more than it saves
ITEMS_PER_WORKER = 32
WORKERS_ENV = "GEN3DFACE_WORKERS"


def worker_count(workers: int | None, n_items: int) -> int:
    """The number of processes to use for ``n_items`` (1 = in this process); by default one per
    :data:`ITEMS_PER_WORKER` items, at most one per core."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        if env:
            try:
                workers = int(env)
            except ValueError:
                raise InputError(f"${WORKERS_ENV} must be a whole number, got {env!r}") from None
        else:
            workers = min(os.cpu_count() or 1, n_items // ITEMS_PER_WORKER)
    if workers < 0:
        raise InputError(f"--workers must be 0 or more, got {workers}")
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


def _start_worker(warm_up: Callable[[], Any]) -> None:
    """A worker's start: one thread, then ``warm_up()``."""
    _one_thread()
    warm_up()


def _done(value: Any) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


def _failed(error: BaseException) -> Future:
    f: Future = Future()
    f.set_exception(error)
    return f


class WorkerPool:
    """``workers`` processes (none when ``workers <= 1``: tasks then run in this process, at submission).

    ``warm_up``: a module-level function (it is pickled to the workers) run in each worker as it starts; with it,
    every worker is started now (the executor otherwise spawns them as tasks arrive). Use as a context manager;
    :meth:`submit` returns a :class:`concurrent.futures.Future` either way."""

    def __init__(self, workers: int, warm_up: Callable[[], Any] | None = None):
        self.workers = max(1, workers)
        initializer = _one_thread if warm_up is None else partial(_start_worker, warm_up)
        self._pool = (
            ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=initializer)
            if self.workers > 1
            else None
        )
        if self._pool is not None and warm_up is not None:
            for _ in range(self.workers):
                self._pool.submit(int)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        try:
            return _done(fn(*args))
        except Exception as e:  # surfaces at .result(), as from a worker
            return _failed(e)

    def submit_chunks(
        self, fn: Callable[[list[Any]], list[T]], items: Sequence[Any], chunk: int = 8
    ) -> list[Future]:
        """One task per ``chunk`` consecutive items; each future's result is ``fn``'s list for its chunk."""
        return [self.submit(fn, list(items[i : i + chunk])) for i in range(0, len(items), chunk)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gather(futures: Sequence[Future], progress: Callable[[int], None] | None = None) -> list:
    """The concatenated per-item results of chunk futures, in submission order (``progress(n)`` as each
    chunk of ``n`` items completes, in completion order)."""
    from concurrent.futures import as_completed

    if progress is not None:
        for f in as_completed(futures):
            progress(len(f.result()))
    return [r for f in futures for r in f.result()]


def map_chunks(
    fn: Callable[[Sequence[Any]], list[T]],
    items: Sequence[Any],
    workers: int | None = None,
    chunk: int = 8,
    progress: Callable[[int], None] | None = None,
    pool: WorkerPool | None = None,
) -> list[T]:
    """``fn`` applied to consecutive chunks of ``items``; the per-item results concatenated in order.

    Args:
        fn: a module-level function (it is pickled to the workers) taking a list of items and returning one
            result per item.
        workers: see :func:`worker_count` (ignored with ``pool``).
        chunk: items per task (small enough to balance the workers, large enough to amortise pickling).
        progress: called with the number of items finished, as chunks complete.
        pool: a running :class:`WorkerPool` to use (default: one made for this call and closed after it).
    """
    own = pool is None
    if own:
        pool = WorkerPool(worker_count(workers, len(items)))
    try:
        return gather(pool.submit_chunks(fn, items, chunk), progress)
    finally:
        if own:
            pool.close()
