"""``scripts/train_small.py --cache``: a cache is reused only when it was made from the same prepared file with
the same view size, view count and reprojection settings (mirror mode, the squarest rule's margin and normals)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_small.py"


class _Views:
    """Stands in for rendered ``TrainData``: what ``load_data`` prints and caches."""

    def __init__(self, tag: str):
        self.tag, self.identities = tag, [0, 1]

    def __len__(self) -> int:
        return 2


def _script(monkeypatch):
    spec = importlib.util.spec_from_file_location("train_small_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    renders = []

    def render(prepared, size, views, device=None, reprojection=False, mirror=False):
        renders.append((size, views, reprojection, mirror))
        return _Views(f"render{len(renders)}")

    monkeypatch.setattr(mod, "load_train_data", render)
    monkeypatch.setattr(mod.PreparedInputs, "load", staticmethod(lambda path: path))
    return mod, renders


def test_a_cache_is_reused_only_for_the_data_and_settings_it_was_made_with(tmp_path, monkeypatch):
    mod, renders = _script(monkeypatch)
    prep, cache = tmp_path / "train.npz", tmp_path / "cache.pt"
    prep.write_bytes(b"first")
    a = mod.load_data(prep, 32, 4, "cpu", cache, reprojection=True, mirror="squarest")
    assert len(renders) == 1 and cache.exists()
    assert mod.load_data(prep, 32, 4, "cpu", cache, reprojection=True, mirror="squarest").tag == a.tag
    assert len(renders) == 1
    # another mirror mode, another size, a changed prepared file: each renders again
    assert mod.load_data(prep, 32, 4, "cpu", cache, reprojection=True, mirror=True).tag != a.tag
    assert mod.load_data(prep, 64, 4, "cpu", cache, reprojection=True, mirror=True).tag == "render3"
    prep.write_bytes(b"second")
    assert mod.load_data(prep, 64, 4, "cpu", cache, reprojection=True, mirror=True).tag == "render4"
    # the squarest rule's margin is part of what the views depend on
    mod.load_data(prep, 64, 4, "cpu", cache, reprojection=True, mirror="squarest")
    monkeypatch.setattr(mod, "SQUAREST_MARGIN", mod.SQUAREST_MARGIN + 0.05)
    assert mod.load_data(prep, 64, 4, "cpu", cache, reprojection=True, mirror="squarest").tag == "render6"
    # and which normals it compares
    monkeypatch.setattr(mod, "SQUAREST_SMOOTH", not mod.SQUAREST_SMOOTH)
    assert mod.load_data(prep, 64, 4, "cpu", cache, reprojection=True, mirror="squarest").tag == "render7"
    # so is whether the face mesh's eye and mouth holes are closed
    monkeypatch.setattr(mod, "CLOSE_HOLES", not mod.CLOSE_HOLES)
    assert mod.load_data(prep, 64, 4, "cpu", cache, reprojection=True, mirror="squarest").tag == "render8"
    # a device copy without the prepared file uses the current cache
    prep.unlink()
    assert mod.load_data(prep, 64, 4, "cpu", cache, reprojection=True, mirror="squarest").tag == "render8"
    assert len(renders) == 8


def test_a_cache_written_before_settings_were_recorded_is_rendered_again(tmp_path, monkeypatch):
    mod, renders = _script(monkeypatch)
    prep, cache = tmp_path / "train.npz", tmp_path / "cache.pt"
    prep.write_bytes(b"data")
    torch.save(_Views("old"), cache)
    assert mod.load_data(prep, 32, 4, "cpu", cache).tag == "render1"
    assert mod.load_data(prep, 32, 4, "cpu", cache).tag == "render1" and len(renders) == 1


def test_a_deadline_shortens_training_by_what_rendering_took_and_keeps_time_for_the_export(monkeypatch):
    mod, _ = _script(monkeypatch)
    reserve = mod.EXPORT_RESERVE
    assert mod.training_seconds(300.0, None, 100.0) == 300.0  # no deadline: --max-seconds as given
    assert mod.training_seconds(None, None, 100.0) is None
    assert mod.training_seconds(None, 540.0, 100.0) == 540.0 - 100.0 - reserve
    assert mod.training_seconds(200.0, 540.0, 100.0) == 200.0  # the shorter of the two
    assert mod.training_seconds(None, 540.0, 600.0) == 1.0  # rendering overran: one step, then export
