"""`gen3dface eval`: both protocols end to end with a tiny model, and its bad inputs."""

import json
import shutil

import numpy as np
import pytest

from gen3dface.app.cli import main
from gen3dface.core.samples import sample_photo


def test_ood_protocol_writes_every_metric_and_counts_skipped_inputs(tiny_checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "grace_hopper"):
        shutil.copy(sample_photo(name), photos / f"{name}.jpg")
    from PIL import Image

    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(photos / "wall.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 a JPEG cut short")  # skipped, the run goes on
    out = tmp_path / "ood.json"
    assert (
        main(
            [
                "eval",
                "--protocol",
                "ood",
                "--inputs",
                str(photos),
                "-o",
                str(out),
                "--checkpoint",
                str(tiny_checkpoint),
                "--steps",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert res["protocol"] == "out_of_domain" and res["n_inputs"] == 2 and res["n_views"] == 4
    assert sorted(s["input"] for s in res["skipped"]) == ["broken.jpg", "wall.png"]
    assert "corrupt" in {s["input"]: s["reason"] for s in res["skipped"]}["broken.jpg"]
    m = res["metrics"]
    assert {"fid", "id_consistency_output", "id_consistency_input", "clip"} <= set(m)
    assert m["fid"]["value"] is not None and m["clip"]["available"] is False
    # identity on real photos: the near-frontal views follow each photo's estimated yaw
    assert {"near_frontal_match", "faces_found", "id_impostor"} <= set(m)
    near = m["near_frontal_match"]
    assert near["yaw_source"].startswith("the yaw of each input's estimated face mesh")
    assert len(near["input_yaw_deg"]) == 2 and all(abs(y) < 30 for y in near["input_yaw_deg"])
    assert 0 <= m["faces_found"]["value"] <= 4 and m["faces_found"]["of_views"] == 4
    table = out.with_suffix(".md").read_text()
    assert table.count("|") > 10 and "### Identity on real photos" in table
    err = capsys.readouterr().err
    assert "skipped wall.png" in err and "skipped broken.jpg" in err


def test_indomain_protocol_compares_with_ground_truth_views(tiny_checkpoint, tmp_path):
    from gen3dface.synth.synthesis import SynthConfig, synthesize

    data = tmp_path / "held"
    synthesize(data, 2, SynthConfig(views=12, res=64, seed=5, ssaa=1), progress=False)
    out = tmp_path / "in.json"
    assert (
        main(
            [
                "eval",
                "--protocol",
                "indomain",
                "--inputs",
                str(data),
                "-o",
                str(out),
                "--checkpoint",
                str(tiny_checkpoint),
                "--steps",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert res["protocol"] == "in_domain" and res["n_views"] == 4
    m = res["metrics"]
    assert (
        m["psnr"]["value"] is not None and m["ssim"]["value"] is not None and m["lpips"]["available"] is False
    )
    # the ablation's arm with ground-truth meshes (same identities, same noise)
    out_gt = tmp_path / "in_gt.json"
    assert (
        main(
            [
                "eval",
                "--protocol",
                "indomain",
                "--inputs",
                str(data),
                "-o",
                str(out_gt),
                "--checkpoint",
                str(tiny_checkpoint),
                "--steps",
                "2",
                "--quiet",
                "--meshes",
                "ground_truth",
                "--limit",
                "1",
            ]
        )
        == 0
    )
    assert json.loads(out_gt.read_text())["settings"]["meshes"] == "ground_truth"


def test_eval_bad_inputs_exit_2(tiny_checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    faceless = tmp_path / "faceless"  # photos, none with a face
    faceless.mkdir()
    from PIL import Image

    Image.fromarray(np.full((96, 96, 3), 90, np.uint8)).save(faceless / "wall.png")
    for args in (
        ["--protocol", "ood", "--inputs", str(tmp_path / "nope")],
        ["--protocol", "ood", "--inputs", str(empty)],
        ["--protocol", "indomain", "--inputs", str(empty)],
        ["--protocol", "ood", "--inputs", str(empty), "--limit", "0"],
        ["--protocol", "ood", "--inputs", str(empty), "--meshes", "ground_truth"],
        ["--protocol", "ood", "--inputs", str(faceless)],
        ["--protocol", "ood", "--inputs", str(faceless), "--workers", "-1"],
    ):
        out = tmp_path / "r.json"
        assert main(["eval", *args, "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--quiet"]) == 2, (
            args
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gen3dface: error:"), err
        assert not out.exists() and not (tmp_path / ".r.views").exists()


def test_eval_batched_in_workers_and_resumed_after_a_kill(tiny_checkpoint, tmp_path, monkeypatch):
    """Batching and worker processes change nothing; a run killed after its first batch resumes from the views
    it kept, generates only the rest, and leaves no cache behind."""
    from gen3dface.evaluation import protocols as evaluation
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    for k, name in enumerate(("astronaut", "grace_hopper", "astronaut")):
        shutil.copy(sample_photo(name), photos / f"{k}_{name}.jpg")
    common = [
        "eval",
        "--protocol",
        "ood",
        "--inputs",
        str(photos),
        "--checkpoint",
        str(tiny_checkpoint),
        "--steps",
        "2",
        "--quiet",
    ]
    ref = tmp_path / "ref.json"
    assert main([*common, "-o", str(ref), "--batch", "1", "--workers", "1"]) == 0
    par = tmp_path / "par.json"
    assert main([*common, "-o", str(par), "--batch", "2", "--workers", "2"]) == 0
    a, b = json.loads(ref.read_text()), json.loads(par.read_text())
    assert a["evaluated"] == b["evaluated"] and a["n_inputs"] == 3
    for m in ("fid", "id_consistency_output", "id_consistency_input"):
        va, vb = a["metrics"][m]["value"], b["metrics"][m]["value"]
        assert (va is None and vb is None) or vb == pytest.approx(va, rel=0.05, abs=0.05), m
        assert a["metrics"][m]["n_faces_missing"] == b["metrics"][m]["n_faces_missing"], m
    assert set(b["seconds"]) >= {"crop_mesh_generate", "generation", "metrics", "metrics_fid", "total"}

    real = Gen3DFacePipeline.generate_batch
    calls = []

    def killed_after_one_batch(self, prepared, **kw):
        calls.append(len(prepared))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, prepared, **kw)

    out = tmp_path / "res.json"
    monkeypatch.setattr(Gen3DFacePipeline, "generate_batch", killed_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluation.run_eval("ood", photos, out, checkpoint=tiny_checkpoint, steps=2, batch=2, progress=False)
    assert not out.exists() and len(list((tmp_path / ".res.views").glob("*.npz"))) == 2
    calls.clear()
    monkeypatch.setattr(
        Gen3DFacePipeline,
        "generate_batch",
        lambda self, prepared, **kw: calls.append(len(prepared)) or real(self, prepared, **kw),
    )
    res = evaluation.run_eval(
        "ood", photos, out, checkpoint=tiny_checkpoint, steps=2, batch=2, progress=False
    )
    assert calls == [1] and res["resumed"] == 2
    assert res["metrics"]["fid"]["value"] == pytest.approx(b["metrics"]["fid"]["value"], rel=1e-6)
    assert not (tmp_path / ".res.views").exists()
