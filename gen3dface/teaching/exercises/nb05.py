"""Checkers for notebook 05 (joint multi-view generation): exercises ``joint_tokens`` (tokens one joint
self-attention layer attends over), ``attention_cost_ratio`` (joint vs sequential attention scores) and
``views_tied`` (a noise prediction in which the views see each other)."""

from __future__ import annotations

from typing import Callable

import torch

from gen3dface.teaching.checking import ExerciseFailed, answered, run_check

_NO_ANSWER = "no answer yet (the variable is still None)"


def check_joint_tokens(answer: int, n_views: int, side: int) -> bool:
    """``answer``: the tokens one joint self-attention layer attends over, at a ``side x side`` feature map with
    ``n_views`` target views plus the input view."""

    def body():
        want = (n_views + 1) * side * side
        if int(answered(answer, _NO_ANSWER)) != want:
            raise ExerciseFailed(
                f"{answer} is not it: every frame (the {n_views} targets and the input view) "
                f"contributes {side}x{side} tokens"
            )
        return f"{want} tokens; sequential attention sees only {2 * side * side} per view"

    return run_check("joint_tokens", body)


def check_attention_cost_ratio(answer: float, n_views: int) -> bool:
    """``answer``: how many times more query-key pairs joint attention scores than the sequential scheme at
    one layer (all N views: (N+1)^2 frame pairs vs N * 2 + 1 for sequential: each view with itself and the
    input, the input with itself)."""

    def body():
        want = (n_views + 1) ** 2 / (2 * n_views + 1)
        if abs(float(answered(answer, _NO_ANSWER)) - want) > 1e-6 * want:
            raise ExerciseFailed(
                f"{answer} is not it: count frame pairs (joint attention pairs every frame with "
                "every frame; sequential pairs each target with itself and the input, and the "
                "input with itself)"
            )
        return f"{want:.2f}x more scores, for one UNet call instead of {n_views}"

    return run_check("attention_cost_ratio", body)


def check_views_tied(
    model_fn: Callable[[torch.Tensor], torch.Tensor],
    n_views: int = 4,
    view_shape: tuple[int, int, int] = (3, 8, 8),
) -> bool:
    """``model_fn(x (1, n_views, *view_shape)) -> eps`` of the same shape: a joint model, so changing view 1
    changes view 0's output. ``view_shape``: ``(C, h, w)`` of one view as the model takes it (``model.view_shape``)."""

    def body():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, n_views, *view_shape, generator=g)
        x2 = x.clone()
        x2[:, 1] += 1
        out, out2 = answered(model_fn(x)), answered(model_fn(x2))
        if tuple(out.shape) != tuple(x.shape):
            raise ExerciseFailed(
                f"the prediction has shape {tuple(out.shape)}, expected {tuple(x.shape)} like x"
            )
        d = (out2[:, 0] - out[:, 0]).abs().max().item()
        if d == 0:
            raise ExerciseFailed("view 0's output did not change when view 1 changed: the views are not tied")
        return f"view 0 moved by {d:.3g} when view 1 changed"

    return run_check("views_tied", body)
