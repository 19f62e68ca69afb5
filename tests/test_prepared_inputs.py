"""Prepared training inputs: several files of one source make one (``PreparedInputs.concat``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gen3dface.core.errors import InputError
from gen3dface.training.data import PreparedInputs

SOURCE = {"kind": "procedural", "synth": {"seed": 2, "varied_appearance": 0.75}, "crop_size": 128}


def _part(
    ids: list[int], per: int = 2, janus: dict | None = None, seed: int = 0, sides: dict | None = None
) -> PreparedInputs:
    rng = np.random.default_rng(seed)
    m = len(ids) * per
    return PreparedInputs(
        identity=np.repeat(np.asarray(ids), per),
        view=rng.integers(0, 48, m),
        crop_M=rng.normal(size=(m, 2, 3)),
        vertices=rng.normal(size=(m, 5, 3)).astype(np.float32),
        faces=np.array([[0, 1, 2], [2, 3, 4]]),
        source={**SOURCE, **({"janus": janus} if janus else {}), **({"sides": sides} if sides else {})},
        camera_K=rng.normal(size=(m, 3, 3)),
        camera_c2w=rng.normal(size=(m, 4, 4)),
    )


def test_concatenated_files_keep_every_row_in_order_and_add_up_their_janus_counts(tmp_path):
    a = _part([0, 1, 3], janus={"tau": 0.5, "scored": 5, "left_out": 2}, seed=1)
    b = _part([800, 802], janus={"tau": 0.5, "scored": 4, "left_out": 2}, seed=2)
    both = PreparedInputs.concat([a, b])
    assert both.identity.tolist() == [0, 0, 1, 1, 3, 3, 800, 800, 802, 802]
    for name in ("view", "crop_M", "vertices", "camera_K", "camera_c2w"):
        assert np.array_equal(getattr(both, name), np.concatenate([getattr(a, name), getattr(b, name)]))
    assert both.source["janus"] == {"tau": 0.5, "scored": 9, "left_out": 4}
    assert both.source["synth"] == SOURCE["synth"]
    both.save(tmp_path / "both.npz")
    back = PreparedInputs.load(tmp_path / "both.npz")
    assert back.identity.tolist() == both.identity.tolist() and back.source == both.source
    assert np.array_equal(back.subset([800]).view, b.view[:2])


def test_files_that_do_not_belong_together_are_refused():
    a = _part([0, 1])
    with pytest.raises(InputError, match="share identities"):
        PreparedInputs.concat([a, _part([1, 2])])
    other = _part([5])
    other.source = {**SOURCE, "synth": {"seed": 3, "varied_appearance": 0.75}}
    with pytest.raises(InputError, match="different sources"):
        PreparedInputs.concat([a, other])
    with pytest.raises(InputError, match="topologies"):
        PreparedInputs.concat([a, dataclasses.replace(_part([7]), faces=np.array([[0, 1, 2]]))])
    with pytest.raises(InputError, match="cameras"):
        PreparedInputs.concat([a, dataclasses.replace(_part([7]), camera_K=None, camera_c2w=None)])
    with pytest.raises(InputError, match="Janus threshold"):
        PreparedInputs.concat([_part([0], janus={"tau": 0.5, "scored": 1, "left_out": 0}), _part([9])])
    with pytest.raises(InputError, match="Janus threshold"):
        PreparedInputs.concat(
            [
                _part([0], janus={"tau": 0.5, "scored": 1, "left_out": 0}),
                _part([9], janus={"tau": 0.7, "scored": 1, "left_out": 0}),
            ]
        )


def test_side_filter_records_add_up_like_the_janus_records_and_must_agree():
    sides = {"azimuth": 67.5, "scored": 4, "left_out": 3}
    a = _part([0], janus={"tau": 0.5, "scored": 2, "left_out": 1}, sides=sides)
    b = _part([7], janus={"tau": 0.5, "scored": 3, "left_out": 1}, sides={**sides, "left_out": 1})
    both = PreparedInputs.concat([a, b])
    assert both.source["sides"] == {"azimuth": 67.5, "scored": 8, "left_out": 4}
    assert both.source["janus"] == {"tau": 0.5, "scored": 5, "left_out": 2}
    with pytest.raises(InputError, match="side azimuth"):
        PreparedInputs.concat([a, _part([9], janus={"tau": 0.5, "scored": 1, "left_out": 0})])


def test_files_without_a_janus_record_or_from_before_a_synth_field_existed_still_join():
    """No filter on any part: none on the whole. A file written before ``SynthConfig`` had a field holds its
    default, so it joins a newer file that writes the default out."""
    from gen3dface.synth.synthesis import SynthConfig

    old, new = _part([0, 1]), _part([2])
    default = SynthConfig().symmetric_appearance
    new.source = {**SOURCE, "synth": {**SOURCE["synth"], "symmetric_appearance": default}}
    both = PreparedInputs.concat([old, new])
    assert "janus" not in both.source and both.identity.tolist() == [0, 0, 1, 1, 2, 2]
    new.source["synth"]["symmetric_appearance"] = default + 0.5
    with pytest.raises(InputError, match="different sources"):
        PreparedInputs.concat([old, new])
