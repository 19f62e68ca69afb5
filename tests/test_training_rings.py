"""scripts/training_rings.py: the training heads' own rings as a views file the real-photo benchmark scores."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("training_rings", ROOT / "scripts" / "training_rings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rings_are_the_training_targets_in_ring_order_with_a_cropped_input(tmp_path, capsys):
    from gen3dface.core.cameras import ring_azimuths
    from gen3dface.evaluation.conditions import load_views
    from gen3dface.synth.synthesis import SynthConfig, render_identity
    from gen3dface.training.data import procedural_source

    script = _script()
    out = tmp_path / "rings.npz"
    photos = tmp_path / "photos"
    assert script.main(["-o", str(out), "--identities", "2", "--janus", "none", "--photos", str(photos)]) == 0
    record, crops, views = load_views(out)
    cfg = SynthConfig(**procedural_source(2, varied_appearance=0.75, symmetric_appearance=0.8)["synth"])
    order = script.ring(cfg)
    az = cfg.cameras().azimuth_deg.numpy()[order]
    np.testing.assert_allclose((az + 180) % 360 - 180, ring_azimuths(16).numpy(), atol=1e-3)
    assert record["names"] == ["identity_000000", "identity_000001"] and list(views) == [0]
    assert views[0].shape == (2, 16, cfg.res, cfg.res, 3) and crops.shape == (2, cfg.res, cfg.res, 3)
    np.testing.assert_array_equal(views[0][1], render_identity(cfg, 1, views=order)["rgb"])
    assert (crops < 250).any(-1).mean() > 0.1  # a head, not an empty crop
    assert abs(record["input_yaw"][0]) < 15  # the input is cropped from the frontal view
    from gen3dface.core.images import load_image

    assert sorted(p.name for p in photos.iterdir()) == ["identity_000000.png", "identity_000001.png"]
    # the render the input is cut from
    assert load_image(photos / "identity_000001.png").rgb.shape == (256, 256, 3)
    capsys.readouterr()
    assert script.main(["-o", str(tmp_path / "x.npz"), "--janus", "1.5"]) == 2  # a threshold outside [0, 1]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("training_rings: error:") and not (tmp_path / "x.npz").exists()
    with pytest.raises(SystemExit) as bad:
        script.main(["-o", str(tmp_path / "x.npz"), "--janus", "maybe"])
    assert bad.value.code == 2 and "--janus must be a number" in capsys.readouterr().err


def test_the_janus_filter_leaves_out_what_it_rejects():
    from gen3dface.synth.pruning import procedural_janus
    from gen3dface.synth.synthesis import SynthConfig
    from gen3dface.training.data import procedural_source

    script = _script()
    cfg = SynthConfig(**procedural_source(2, varied_appearance=0.75, symmetric_appearance=0.8)["synth"])
    kept = script.kept_identities(cfg, 0, 4, 0.5)
    assert len(kept) == 4 and kept == sorted(kept)
    rejected = procedural_janus(cfg, list(range(kept[-1] + 1)), script.ring(cfg), 0.5, progress=False)
    assert kept == [i for i in range(kept[-1] + 1) if not rejected[i]][:4]
