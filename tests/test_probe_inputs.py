"""The input cases of the robustness probe (issue 19): every one gives the safe result or one line
``gen3dface: error: ...`` with status 2, quickly, with nothing written. Pipes, devices, huge files, options out of
range, broken model files, library chatter, photos on their side or upside down; and the cases the probe found
held (corrupt JPEG, a zip named .png, a 20000² PNG header, a symlink loop), so that none of them comes back."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FLAME_F, FLAME_J, FLAME_N, ROOT, encode, png_header_claiming
from PIL import Image

from gen3dface.app.cli import build_parser, main
from gen3dface.app.options import OPTION_RULES
from gen3dface.core.errors import InputError
from gen3dface.core.images import MAX_PHOTO_BYTES, read_input_file

#: a check of the input must answer well within this (the probe's bound: 10 s; a cold start imports torch)
CHECK_S = 60


def run_cli(*args: str, timeout: float = CHECK_S, memory: int | None = None) -> subprocess.CompletedProcess:
    """The real command line in a child process (``memory``: its address-space limit in bytes)."""

    def limit() -> None:  # pragma: no cover - runs in the child
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "gen3dface.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if memory else None,
    )


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gen3dface: error: "), err
    return lines[0]


def refused(argv: list[str], capsys, out: Path | None = None) -> str:
    """Run ``argv`` in-process; it must fail with one error line and leave ``out`` unwritten."""
    assert main(argv) == 2, argv
    line = one_error_line(capsys.readouterr().err)
    if out is not None:
        assert not out.exists(), f"{argv} left {out} behind"
        assert not list(out.parent.glob(f".{out.name}*")), "a staging folder was left behind"
    return line


# --------------------------------------------------------------------------------------- pipes, devices, sizes
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("command", ["crop", "mesh", "generate"])
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path, command):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    out = tmp_path / ("o.obj" if command == "mesh" else "o")
    r = run_cli(command, str(fifo), "-o", str(out))  # a regression hangs until the timeout, then fails
    assert r.returncode == 2 and "named pipe" in one_error_line(r.stderr)
    assert not out.exists()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_is_refused_without_reading_it(tmp_path):
    r = run_cli("crop", "/dev/zero", "-o", str(tmp_path / "o"), memory=6_000_000_000)
    assert r.returncode == 2 and "device" in one_error_line(r.stderr)


def test_a_huge_sparse_file_is_refused_from_its_size(tmp_path, capsys):
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(20 * 2**30)  # 20 GB, sparse: no disk used
    assert "over the" in refused(["crop", str(big), "-o", str(tmp_path / "o")], capsys, tmp_path / "o")
    with pytest.raises(InputError, match="limit"):
        read_input_file(big)


def test_the_reader_takes_a_file_up_to_the_limit_only(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 1000)
    assert read_input_file(f, 1000) == b"x" * 1000
    with pytest.raises(InputError, match="limit"):
        read_input_file(f, 999)
    assert MAX_PHOTO_BYTES >= 50 * 2**20  # a large real photo still loads


def test_a_symlink_to_a_pipe_and_a_symlink_loop_are_refused(tmp_path, capsys):
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "link.png").symlink_to(tmp_path / "fifo")
        assert "named pipe" in refused(
            ["crop", str(tmp_path / "link.png"), "-o", str(tmp_path / "o")], capsys
        )
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    refused(["crop", str(tmp_path / "a.png"), "-o", str(tmp_path / "o")], capsys, tmp_path / "o")


# --------------------------------------------------------------------------------------- held cases
def test_held_cases_stay_one_line(tmp_path, capsys, astronaut):
    jpeg = encode(Image.fromarray(astronaut), "JPEG")
    rng = np.random.default_rng(0)
    cases = {
        "corrupt.jpg": jpeg[:600] + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        "archive.png": b"PK\x03\x04" + bytes(200),  # a zip named as an image
        "huge.png": png_header_claiming(20000, 20000),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        out = tmp_path / f"o_{name}"
        line = refused(["crop", str(tmp_path / name), "-o", str(out)], capsys, out)
        assert name in line
    assert "20000x20000" in refused(["crop", str(tmp_path / "huge.png"), "-o", str(tmp_path / "o")], capsys)


# --------------------------------------------------------------------------------------- options, before any work
BAD_OPTIONS = [
    (["crop", "{photo}", "-o", "{out}", "--size", "100000"], "--size"),
    (["crop", "{photo}", "-o", "{out}", "--size", "0"], "--size"),
    (["mesh", "{photo}", "-o", "{out}.obj", "--fov", "0"], "--fov"),
    (["mesh", "{photo}", "-o", "{out}.obj", "--fov", "nan"], "--fov"),
    (["mesh", "{photo}", "-o", "{out}.obj", "--fov", "inf"], "--fov"),
    (["mesh", "{photo}", "-o", "{out}.obj", "--fov", "180"], "--fov"),
    (["demo", "{photo}", "-o", "{out}", "--steps", "-5"], "--steps"),
    (["demo", "{photo}", "-o", "{out}", "--size", "100000"], "--size"),
    (["generate", "{photo}", "-o", "{out}", "--seed", "99999999999999999999999"], "--seed"),
    (["generate", "{photo}", "-o", "{out}", "--seed=-1"], "--seed"),
    (["generate", "{photo}", "-o", "{out}", "--steps", "0"], "--steps"),
    (["generate", "{photo}", "-o", "{out}", "--views", "100000"], "--views"),
    (["generate", "{photo}", "-o", "{out}", "--guidance", "nan"], "--guidance"),
    (["generate", "{photo}", "-o", "{out}", "--keep-photo=-inf"], "--keep-photo"),
    (["generate", "{photo}", "-o", "{out}", "--device", "tpu"], "device"),
    (
        ["eval", "--protocol", "ood", "--inputs", "{dir}", "-o", "{out}.json", "--seed", "1" + "0" * 30],
        "--seed",
    ),
    (["eval", "--protocol", "ood", "--inputs", "{dir}", "-o", "{out}.json", "--workers=-1"], "--workers"),
    (["eval", "--protocol", "ood", "--inputs", "{dir}", "-o", "{out}.json", "--batch", "0"], "--batch"),
    (["synth", "-o", "{out}", "--identities", "2", "--seed", "99999999999999999999999"], "--seed"),
    (["synth", "-o", "{out}", "--identities", "2", "--res", "100000"], "--res"),
    (["synth", "-o", "{out}", "--identities", "2", "--defects", "nan"], "--defects"),
    (["prune", "{dir}", "--tau", "nan"], "--tau"),
    (["reconstruct", "{dir}", "-o", "{out}.glb", "--seed", "99999999999999999999999"], "--seed"),
    (["reconstruct", "{dir}", "-o", "{out}.glb", "--iters", "1,2,3,4,5,6,7"], "--iters"),
]


@pytest.mark.parametrize("argv, option", BAD_OPTIONS, ids=[" ".join(a[0:1] + a[-2:]) for a, _ in BAD_OPTIONS])
def test_options_out_of_range_fail_before_any_work(argv, option, astronaut_path, tmp_path, capsys):
    out = tmp_path / "out"
    fill = {"photo": str(astronaut_path), "out": str(out), "dir": str(tmp_path)}
    line = refused([a.format(**fill) for a in argv], capsys)
    assert option in line, line
    assert not list(tmp_path.iterdir()), "something was written before the options were checked"


def test_every_numeric_option_has_a_range():
    """A new ``type=int`` or ``type=float`` option must get a rule in ``OPTION_RULES``."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = [
        f"{cmd} --{a.dest}"
        for cmd, p in sub.choices.items()
        for a in p._actions
        if a.type in (int, float) and a.dest not in OPTION_RULES.get(cmd, {})
    ]
    assert not missing, f"options without a range check: {missing}"


def test_demo_with_bad_steps_writes_nothing(astronaut_path, tmp_path, capsys):
    out = tmp_path / "demo"
    refused(["demo", str(astronaut_path), "-o", str(out), "--steps", "-5"], capsys, out)


def test_a_checkpoint_config_of_absurd_size_is_refused_before_loading(tmp_path, astronaut_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    config = json.loads((ROOT / "data/checkpoints/gen3dface-small/model/config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "image_size": 8192}))
    (ckpt / "diffusion_pytorch_model.safetensors").write_bytes(b"not read")
    out = tmp_path / "o"
    line = refused(["generate", str(astronaut_path), "-o", str(out), "--checkpoint", str(ckpt)], capsys, out)
    assert "image_size" in line and "8192" in line
    (ckpt / "config.json").write_text(json.dumps({**config, "unet_config": {"block_out_channels": [10**7]}}))
    assert "block_out_channels" in refused(
        ["generate", str(astronaut_path), "-o", str(out), "--checkpoint", str(ckpt)], capsys, out
    )


def test_an_all_zero_flame_file_is_refused(tmp_path, astronaut_path, capsys):
    zeros = {
        "v_template": np.zeros((FLAME_N, 3)),
        "shapedirs": np.zeros((FLAME_N, 3, 400)),
        "posedirs": np.zeros((FLAME_N, 3, 9 * (FLAME_J - 1))),
        "J_regressor": np.zeros((FLAME_J, FLAME_N)),
        "weights": np.zeros((FLAME_N, FLAME_J)),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "f": np.zeros((FLAME_F, 3), np.uint32),
    }
    path = tmp_path / "zero.pkl"
    path.write_bytes(pickle.dumps(zeros, protocol=2))
    out = tmp_path / "m.obj"
    argv = ["mesh", str(astronaut_path), "-o", str(out), "--backend", "flame", "--flame-model", str(path)]
    assert "not a usable FLAME model" in refused(argv + ["--trust-pickle"], capsys, out)


# --------------------------------------------------------------------------------------- one line, no chatter
def test_a_failure_prints_exactly_one_line(tmp_path, bad_inputs):
    r = run_cli("crop", str(bad_inputs["no_face"]), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "no face found" in one_error_line(r.stderr)


def test_a_failure_after_loading_the_model_prints_exactly_one_line(tmp_path, bad_inputs):
    """diffusers' loading messages (here: a config key the model does not take) and mediapipe's C++ log lines
    stay off stderr."""
    shipped = ROOT / "data/checkpoints/gen3dface-small/model"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    config = json.loads((shipped / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "unused_key": 1}))
    (ckpt / "diffusion_pytorch_model.safetensors").symlink_to(shipped / "diffusion_pytorch_model.safetensors")
    r = run_cli("generate", str(bad_inputs["no_face"]), "-o", str(tmp_path / "g"), "--checkpoint", str(ckpt))
    assert r.returncode == 2 and "no face found" in one_error_line(r.stderr), r.stderr


def test_a_success_prints_no_library_lines(tmp_path, astronaut_path):
    r = run_cli("crop", str(astronaut_path), "-o", str(tmp_path / "o"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


# --------------------------------------------------------------------------------------- orientation
def _eyes_above_mouth(landmarks: np.ndarray) -> bool:
    eyes = landmarks[[33, 133, 263, 362], 1].mean()  # mediapipe's eye corners
    mouth = landmarks[[13, 14, 61, 291], 1].mean()
    return bool(eyes < mouth)


@pytest.mark.parametrize("turns", [2, 1, 3])
def test_a_turned_photo_gives_an_upright_crop_with_a_note(turns, astronaut, tmp_path, capsys):
    upright, ref = tmp_path / "upright.png", tmp_path / "ref"
    upright.write_bytes(encode(Image.fromarray(astronaut)))
    assert main(["crop", str(upright), "-o", str(ref)]) == 0
    turned = tmp_path / "turned.png"
    turned.write_bytes(encode(Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, turns)))))
    out = tmp_path / "o"
    capsys.readouterr()
    assert main(["crop", str(turned), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    how = {1: "90 deg clockwise", 2: "180 deg", 3: "90 deg counterclockwise"}[turns]  # undoes np.rot90
    assert f"note: the photo was rotated by {how} to put the face upright" in err, err
    rec = json.loads((out / "landmarks.json").read_text())
    assert _eyes_above_mouth(np.array(rec["crop"]["landmarks"]))
    a = np.asarray(Image.open(out / "crop.png"), float)
    b = np.asarray(Image.open(ref / "crop.png"), float)
    assert np.abs(a - b).mean() < 20  # the same upright crop (an upside-down one differs by ~70)
    assert np.abs(np.rot90(a, 2) - b).mean() > 2 * np.abs(a - b).mean()


def test_an_upside_down_photo_has_its_true_roll_in_the_mesh(astronaut, tmp_path, capsys):
    turned = tmp_path / "upside_down.png"
    turned.write_bytes(encode(Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, 2)))))
    out = tmp_path / "m.obj"
    assert main(["mesh", str(turned), "-o", str(out)]) == 0
    assert "rotated by 180 deg" in capsys.readouterr().err
    assert abs(json.loads(out.with_suffix(".json").read_text())["pose_deg"]["roll"]) > 150


def test_an_upright_photo_is_not_turned(astronaut_path, tmp_path, capsys):
    assert main(["crop", str(astronaut_path), "-o", str(tmp_path / "o")]) == 0
    assert "rotated" not in capsys.readouterr().err


def test_arrays_are_turned_only_when_asked(astronaut):
    """Renders and views (arrays) are upright by construction and are not searched turned unless asked; a photo
    read from a file is (see above)."""
    from gen3dface.faces.detect import face_roll, find_face

    upside_down = np.ascontiguousarray(np.rot90(astronaut, 2))
    assert abs(face_roll(find_face(upside_down))) < 30  # Face Mesh's upright fit, as the detector gives it
    with pytest.warns(UserWarning, match="rotated by 180 deg"):
        assert abs(face_roll(find_face(upside_down, upright=True))) > 150


def test_a_doubtful_face_is_named_in_a_note(astronaut_path, tmp_path, capsys, monkeypatch):
    """A face the detector is unsure of (a false face on hair, a face cut off by the photo's edge) still gives a
    result, with a note saying why it may not show a person; a clear face gives no such note."""
    from gen3dface.faces import detect

    assert main(["crop", str(astronaut_path), "-o", str(tmp_path / "sure")]) == 0
    assert "doubtful" not in capsys.readouterr().err
    real = detect.detect_faces

    def unsure(*args, **kwargs):
        faces = real(*args, **kwargs)
        for f in faces:
            f.score = 0.5
        return faces

    monkeypatch.setattr(detect, "detect_faces", unsure)
    assert main(["crop", str(astronaut_path), "-o", str(tmp_path / "unsure")]) == 0
    err = capsys.readouterr().err
    assert "doubtful (detector confidence 0.50 < 0.7)" in err and "note" in err
    assert (tmp_path / "unsure").is_dir()
