"""Re-render a procedural training set from its seeds on the training device (what
:func:`gen3dface.training.data.load_train_data` does for a prepared file of procedural identities).

Two halves, overlapped: CPU worker processes (:mod:`gen3dface.core.parallel`) build each identity's head once
(:func:`gen3dface.synth.synthesis.identity_heads`, 50-90 ms of CPU each), while this process renders ``group``
identities per rasteriser pass (:func:`gen3dface.synth.synthesis.render_heads`): their target ring and their input
views. On a GPU the head building is what limits (``scripts/bench_synthesis.py`` on an H100: 505 views/s with
heads built in turn, 2000 with 14 workers), and a pass over many heads shares the rasteriser's kernel launches.
The pixels are exactly those of :func:`gen3dface.synth.synthesis.render_identity`.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Iterator, Sequence
from functools import partial

import torch

from gen3dface.core.parallel import WorkerPool, worker_count
from gen3dface.synth.synthesis import SynthConfig, identity_heads, render_heads

#: identities per rasteriser pass (16 x 16 target views at 128 px, ssaa 2, is 17 M samples: one CUDA pass)
GROUP = 16


def _heads(cfg: SynthConfig, indices: list[int]) -> bytes:
    """The heads of ``indices``, pickled by value (tensors sent through a process pool otherwise travel as
    shared-memory handles, one file descriptor each)."""
    return pickle.dumps([identity_heads(cfg, int(i)) for i in indices])


def procedural_views(
    cfg_targets: SynthConfig,
    cfg_inputs: SynthConfig,
    identities: Sequence[int],
    ring: Sequence[int],
    input_views: dict[int, list[int]],
    device=None,
    group: int = GROUP,
    workers: int | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(identity, targets (N, 3, S, S), inputs (m, 3, R, R))``, floats in [-1, 1] on ``device``, for
    each of ``identities`` in order.

    Args:
        cfg_targets, cfg_inputs: the dataset's config at the target size S and at the input renders' size R
            (the same seeds and views).
        ring: the N grid views of the targets; input_views: each identity's m grid views to render as inputs.
        group: identities per rasteriser pass; workers: head-building processes (see
            :func:`gen3dface.core.parallel.worker_count`; small sets build in this process).
    """
    ids = [int(i) for i in identities]
    chunks = [ids[k : k + group] for k in range(0, len(ids), group)]
    build = partial(_heads, cfg_targets)
    with WorkerPool(worker_count(workers, len(ids))) as pool:
        ahead = 2 * pool.workers  # chunks in flight: the workers stay busy, memory stays bounded
        pending = deque(pool.submit(build, c) for c in chunks[:ahead])
        for n, chunk in enumerate(chunks):
            heads = pickle.loads(pending.popleft().result())  # our own workers' output
            if n + ahead < len(chunks):
                pending.append(pool.submit(build, chunks[n + ahead]))
            targets, _ = render_heads(cfg_targets, heads, list(ring), device=device)
            m = max(len(input_views[i]) for i in chunk)
            # one pass needs as many views per identity: repeat the last view where an identity has fewer
            views = [input_views[i] + input_views[i][-1:] * (m - len(input_views[i])) for i in chunk]
            inputs, _ = render_heads(cfg_inputs, heads, views, device=device)
            for b, i in enumerate(chunk):
                yield i, targets[b], inputs[b, : len(input_views[i])]
