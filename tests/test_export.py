"""A training run -> a checkpoint folder that the pipeline and the model load back."""

import json

import numpy as np
import torch

from gen3dface.generation.model import Gen3DFaceModel
from gen3dface.generation.pipeline import Gen3DFacePipeline
from gen3dface.training.export import (
    average_weights,
    export_checkpoint,
    preview_sheet,
    run_weights,
    split_file,
)
from gen3dface.training.loop import TrainConfig, train
from test_model import tiny, tiny_data


def test_a_trained_run_exports_and_loads_back(tmp_path):
    data = tiny_data(2)
    cfg = TrainConfig(
        steps=2,
        batch_size=2,
        lr_backbone=1e-3,
        lr_new=1e-3,
        warmup_steps=1,
        log_every=1,
        checkpoint_every=2,
        ema_decay=0.9,
    )
    losses = train(tiny(), data, tmp_path / "run", cfg, progress=False)
    trained = Gen3DFaceModel.from_pretrained(
        tmp_path / "run" / "model"
    )  # train's own export: the EMA weights
    net = run_weights(tiny(), tmp_path / "run")
    for a, b in zip(net.parameters(), trained.parameters()):
        assert torch.equal(a, b)
    raw = run_weights(tiny(), tmp_path / "run", ema=False)
    assert any(not torch.equal(a, b) for a, b in zip(raw.parameters(), net.parameters()))

    out = export_checkpoint(net, tmp_path / "ship", losses)
    assert next(net.parameters()).dtype == torch.float32  # the model itself is left as it was
    assert [json.loads(x) for x in (out / "losses.jsonl").read_text().splitlines()] == losses
    from safetensors.torch import load_file

    assert {v.dtype for f in (out / "model").glob("*.safetensors") for v in load_file(f).values()} == {
        torch.float16
    }
    loaded = Gen3DFaceModel.from_pretrained(out / "model")
    for a, b in zip(net.parameters(), loaded.parameters()):
        assert torch.equal(a.to(torch.float16).float(), b.float())
    pipe = Gen3DFacePipeline.from_checkpoint(out)
    assert pipe.model.config.n_views == net.config.n_views
    views = pipe.generate_views(data.batch(torch.arange(1))["input"], data.vertices[:1], data.faces, steps=2)
    assert views.shape == (1, 4, 32, 32, 3) and views.dtype == np.uint8

    sheet = preview_sheet(net.eval(), data, torch.arange(2), steps=2)
    assert sheet.shape == (2 * 32, (1 + 2 * 4) * 32, 3)


def test_split_file_cuts_large_files_into_parts(tmp_path):
    f = tmp_path / "w.safetensors"
    blob = np.random.default_rng(0).bytes(int(2.5 * 2**20))
    f.write_bytes(blob)
    split_file(f, 1.0)
    parts = sorted(tmp_path.glob("w.safetensors.part*"))
    assert not f.exists() and len(parts) == 3
    assert b"".join(p.read_bytes() for p in parts) == blob
    small = tmp_path / "s.bin"
    small.write_bytes(b"x")
    split_file(small, 1.0)
    assert small.exists()


def test_average_weights_blends_two_models_parameter_by_parameter():
    import pytest

    from gen3dface.core.errors import InputError

    torch.manual_seed(0)
    a, b = tiny(), tiny()
    for p in b.parameters():
        p.data.add_(torch.randn_like(p))
    pa = [p.detach().clone() for p in a.parameters()]
    pb = [p.detach().clone() for p in b.parameters()]
    mid = average_weights(a, b, 0.25)
    assert mid is a
    for x, y, m in zip(pa, pb, a.parameters()):
        assert torch.allclose(m, 0.25 * x + 0.75 * y, atol=1e-6)
    assert any(not torch.equal(x, m) for x, m in zip(pa, a.parameters()))
    for p, y in zip(average_weights(a, b, 0.0).parameters(), pb):  # all of the other: its weights exactly
        assert torch.equal(p, y)
    with pytest.raises(InputError, match="in \\[0, 1\\]"):
        average_weights(a, b, 1.5)
    other = Gen3DFaceModel.from_profile("smoke")
    with pytest.raises(InputError, match="different parameters"):
        average_weights(a, other)
