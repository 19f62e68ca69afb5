"""`gen3dface eval`: both protocols end to end with a tiny model, and its bad inputs."""

import json
import shutil

import numpy as np
import pytest
import torch
from test_pipeline import TINY

from gen3dface.cli import main
from gen3dface.model import Gen3DFaceModel
from gen3dface.samples import sample_photo


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    Gen3DFaceModel(**TINY).save_pretrained(path, safe_serialization=True)
    return path


def test_ood_protocol_writes_every_metric_and_counts_skipped_inputs(tiny_checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "grace_hopper"):
        shutil.copy(sample_photo(name), photos / f"{name}.jpg")
    from PIL import Image

    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(photos / "wall.png")
    out = tmp_path / "ood.json"
    assert main(["eval", "--protocol", "ood", "--inputs", str(photos), "-o", str(out), "--checkpoint",
                 str(tiny_checkpoint), "--steps", "2", "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "out_of_domain" and res["n_inputs"] == 2 and res["n_views"] == 4
    assert [s["input"] for s in res["skipped"]] == ["wall.png"]
    m = res["metrics"]
    assert {"fid", "id_consistency_output", "id_consistency_input", "clip"} <= set(m)
    assert m["fid"]["value"] is not None and m["clip"]["available"] is False
    assert out.with_suffix(".md").read_text().count("|") > 10
    assert "skipped wall.png" in capsys.readouterr().err


def test_indomain_protocol_compares_with_ground_truth_views(tiny_checkpoint, tmp_path):
    from gen3dface.synthesis import SynthConfig, synthesize

    data = tmp_path / "held"
    synthesize(data, 2, SynthConfig(views=12, res=64, seed=5, ssaa=1), progress=False)
    out = tmp_path / "in.json"
    assert main(["eval", "--protocol", "indomain", "--inputs", str(data), "-o", str(out), "--checkpoint",
                 str(tiny_checkpoint), "--steps", "2", "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "in_domain" and res["n_views"] == 4
    m = res["metrics"]
    assert m["psnr"]["value"] is not None and m["ssim"]["value"] is not None and m["lpips"]["available"] is False
    # the ablation's arm with ground-truth meshes (same identities, same noise)
    out_gt = tmp_path / "in_gt.json"
    assert main(["eval", "--protocol", "indomain", "--inputs", str(data), "-o", str(out_gt), "--checkpoint",
                 str(tiny_checkpoint), "--steps", "2", "--quiet", "--meshes", "ground_truth", "--limit", "1"]) == 0
    assert json.loads(out_gt.read_text())["settings"]["meshes"] == "ground_truth"


def test_eval_bad_inputs_exit_2(tiny_checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["--protocol", "ood", "--inputs", str(tmp_path / "nope")],
                 ["--protocol", "ood", "--inputs", str(empty)],
                 ["--protocol", "indomain", "--inputs", str(empty)],
                 ["--protocol", "ood", "--inputs", str(empty), "--limit", "0"],
                 ["--protocol", "ood", "--inputs", str(empty), "--meshes", "ground_truth"]):
        out = tmp_path / "r.json"
        assert main(["eval", *args, "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--quiet"]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gen3dface: error:"), err
        assert not out.exists()
