"""Checkers for notebook 05's exercises (joint multi-view generation)."""

from __future__ import annotations

import torch


def _ok(msg: str) -> str:
    print(f"correct: {msg}")
    return msg


def check_joint_tokens(answer, n_views: int, side: int) -> str:
    """Exercise 1: tokens one joint self-attention layer attends over, at a ``side x side`` feature map with
    ``n_views`` target views plus the input view."""
    want = (n_views + 1) * side * side
    if int(answer) != want:
        raise AssertionError(f"{answer} is not it: every frame (the {n_views} targets and the input view) "
                             f"contributes {side}x{side} tokens")
    return _ok(f"{want} tokens; sequential attention sees only {2 * side * side} per view")


def check_attention_cost_ratio(answer, n_views: int) -> str:
    """Exercise 2: how many times more query-key pairs joint attention scores than the sequential scheme at
    one layer (all N views: (N+1)^2 frames-pairs vs N * 2 + 1 for sequential: each view with itself and the input,
    the input with itself)."""
    want = (n_views + 1) ** 2 / (2 * n_views + 1)
    if abs(float(answer) - want) > 1e-6 * want:
        raise AssertionError(f"{answer}: count frame pairs. Joint: every frame with every frame; sequential: each "
                             "target with itself and the input (2 pairs), the input with itself (1)")
    return _ok(f"{want:.2f}x more scores, for one UNet call instead of {n_views}")


def check_views_tied(model_fn, n_views: int = 4) -> str:
    """Exercise 3: ``model_fn(x) -> eps`` must be a joint model: changing view 1 changes view 0's output."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, n_views, 3, 8, 8, generator=g)
    x2 = x.clone()
    x2[:, 1] += 1
    d = (model_fn(x2)[:, 0] - model_fn(x)[:, 0]).abs().max().item()
    if d == 0:
        raise AssertionError("view 0's output did not change when view 1 changed: the views are not tied")
    return _ok(f"view 0 moved by {d:.3g} when view 1 changed")
