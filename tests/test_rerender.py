"""Many identities per rasteriser pass (synth.synthesis.render_heads, training.rerender) draw exactly the pixels
of rendering each identity on its own, defects included, in order, whatever the grouping and worker count."""

import numpy as np
import pytest
import torch

from gen3dface.core.images import to_uint8
from gen3dface.synth.synthesis import (
    SynthConfig,
    identity_defect,
    identity_heads,
    render_heads,
    render_identity,
)
from gen3dface.training.rerender import procedural_views

# 48-view grid at 48 px; seed 2 with half the identities defective gives both kinds among the first six
CFG = SynthConfig(
    views=48, res=48, seed=2, ssaa=2, varied_appearance=0.75, symmetric_appearance=0.8, defect_rate=0.5
)
IDS = list(range(6))


def test_the_identities_cover_both_defects_and_a_clean_head():
    kinds = {identity_defect(CFG, i) for i in IDS}
    assert {None, "janus", "drift"} <= kinds


def test_one_pass_over_many_heads_draws_each_head_as_rendered_alone():
    heads = [identity_heads(CFG, i) for i in IDS]
    views = [0, 5, 17, 40, 47]  # back views too: where Janus and drift replace the head
    rgb, alpha = render_heads(CFG, heads, views)
    assert rgb.shape == (len(IDS), len(views), 3, 48, 48) and alpha.shape == (len(IDS), len(views), 1, 48, 48)
    for b, i in enumerate(IDS):
        alone = render_identity(CFG, i, views=views)
        np.testing.assert_array_equal(to_uint8(rgb[b]), alone["rgb"])
    # per-identity views
    per = [[0, 5, 17], [47, 46, 45], [16, 20, 24], [1, 2, 3], [40, 41, 47], [0, 0, 0]]
    rgb2, _ = render_heads(CFG, heads, per)
    for b, i in enumerate(IDS):
        np.testing.assert_array_equal(to_uint8(rgb2[b]), render_identity(CFG, i, views=per[b])["rgb"])


@pytest.mark.parametrize("group,workers", [(4, 1), (2, 2)])
def test_procedural_views_are_each_identity_rendered_alone_in_order(group, workers):
    small = SynthConfig(**{**CFG.__dict__, "res": 32})
    ring = [16, 20, 24, 28]
    views_of = {0: [16, 17, 18], 1: [20], 2: [15, 16], 3: [16, 19, 21], 4: [18, 17, 16], 5: [16]}
    order = [3, 0, 5, 1, 4, 2]
    got = list(procedural_views(small, CFG, order, ring, views_of, group=group, workers=workers))
    assert [g[0] for g in got] == order
    for i, targets, inputs in got:
        assert targets.shape == (len(ring), 3, 32, 32) and inputs.shape == (len(views_of[i]), 3, 48, 48)
        np.testing.assert_array_equal(to_uint8(targets), render_identity(small, i, views=ring)["rgb"])
        np.testing.assert_array_equal(to_uint8(inputs), render_identity(CFG, i, views=views_of[i])["rgb"])
    assert all(t.dtype == torch.float32 for _, t, _ in got)
