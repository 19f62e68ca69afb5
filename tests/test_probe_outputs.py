"""Issue 19's probe, the output and dataset cases: an output folder never swallows its input, is replaced whole
(no file of an earlier run stays, a second run into it is refused, a killed run's staging folder is swept), eval's
view cache and prune's score cache are checked when read, dataset manifests and meta files are validated and
confined to the dataset root, and pickle checkpoints load only with --trust-pickle."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen3dface.app.cli import main
from gen3dface.core.samples import sample_photo
from gen3dface.core.storage import exclusive_lock, output_folder

ROOT = Path(__file__).resolve().parent.parent


def one_error_line(capsys) -> str:
    """The single stderr line of a refused command (and nothing else on stderr)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gen3dface: error: "), err
    return err[0]


def generate(photo, out, checkpoint, *extra: str) -> int:
    return main(
        ["generate", str(photo), "-o", str(out), "--checkpoint", str(checkpoint), "--steps", "1", "--quiet"]
        + ["--views", "2", *extra]
    )


def litter(folder: Path, name: str) -> list[str]:
    """Hidden leftovers of output ``name`` beside it (staging folders, lock files, old copies)."""
    return sorted(p.name for p in folder.glob(f".{name}*"))


# ------------------------------------------------------------------------------------ 4: the input is never lost
def test_generate_into_the_folder_holding_the_photo_is_refused_and_the_photo_kept(
    tiny_checkpoint, tmp_path, capsys
):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(sample_photo("astronaut"), d / "input.png")
    before = (d / "input.png").read_bytes()
    assert generate(d / "input.png", d, tiny_checkpoint) == 2
    assert "inside the output folder" in one_error_line(capsys)
    assert (d / "input.png").read_bytes() == before and [p.name for p in d.iterdir()] == ["input.png"]
    assert litter(tmp_path, "d") == []


def test_crop_of_a_crop_into_its_own_folder_is_refused(tmp_path, capsys):
    d = tmp_path / "d"
    assert main(["crop", str(sample_photo("astronaut")), "-o", str(d), "--size", "96"]) == 0
    capsys.readouterr()
    files = {p.name: p.read_bytes() for p in d.iterdir()}
    assert main(["crop", str(d / "crop.png"), "-o", str(d)]) == 2
    assert "inside the output folder" in one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == files
    # through another spelling of the same folder, too
    assert main(["crop", str(d / ".." / "d" / "crop.png"), "-o", str(tmp_path / "x" / ".." / "d")]) == 2
    one_error_line(capsys)


def test_output_folders_that_are_not_gen3dface_outputs_are_refused(tmp_path, capsys, monkeypatch):
    photo = str(sample_photo("astronaut"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["crop", photo, "-o", str(mine)]) == 2
    assert "did not write" in one_error_line(capsys)
    assert (mine / "notes.txt").read_text() == "keep me"
    monkeypatch.chdir(mine)  # -o . would replace the current folder
    assert main(["crop", photo, "-o", "."]) == 2
    assert "current folder" in one_error_line(capsys)
    assert main(["crop", photo, "-o", str(tmp_path)]) == 2  # a folder above the current one
    one_error_line(capsys)
    assert (mine / "notes.txt").read_text() == "keep me"


# -------------------------------------------------------------------------- 5: replaced whole, one run at a time
def test_a_second_generate_replaces_the_first_whole_and_reconstruct_reads_it(
    tiny_checkpoint, tmp_path, capsys
):
    from gen3dface.recon.views import load_views

    d = tmp_path / "d"
    photo = sample_photo("astronaut")
    assert generate(photo, d, tiny_checkpoint, "--views", "4") == 0
    assert len(list(d.glob("view_*.png"))) == 4
    assert generate(photo, d, tiny_checkpoint, "--views", "2") == 0
    assert sorted(p.name for p in d.glob("view_*.png")) == ["view_00.png", "view_01.png"]
    assert len(load_views(d)) == 2  # was: "4 view images but cameras.json has 2 cameras"
    assert litter(tmp_path, "d") == []
    # a failed run leaves the last complete output as it was, and nothing beside it
    files = {p.name: p.read_bytes() for p in d.iterdir()}
    assert generate(photo, d, tiny_checkpoint, "--guidance", "-1") == 2
    one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == files
    assert litter(tmp_path, "d") == []


def test_a_second_run_into_a_folder_being_written_is_refused(tiny_checkpoint, tmp_path, capsys):
    d = tmp_path / "d"
    photo = sample_photo("astronaut")
    with output_folder(d) as stage:  # the first run, still writing
        (stage / "generate.json").write_text("{}")
        assert generate(photo, d, tiny_checkpoint) == 2
        assert "another gen3dface run is writing" in one_error_line(capsys)
        assert main(["crop", str(photo), "-o", str(d)]) == 2
        one_error_line(capsys)
    assert [p.name for p in d.iterdir()] == ["generate.json"]  # the first run's output, whole
    assert litter(tmp_path, "d") == []
    assert generate(photo, d, tiny_checkpoint) == 0  # once it is done, the folder is free


def test_concurrent_runs_in_two_processes_leave_one_complete_output(tmp_path):
    d = tmp_path / "d"
    code = (
        "import sys, time\nfrom gen3dface.core.storage import output_folder\n"
        "with output_folder(sys.argv[1]) as s:\n"
        "    (s / 'landmarks.json').write_text(sys.argv[2]); print('in', flush=True); time.sleep(float(sys.argv[3]))\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", code, str(d), "first", "3"], stdout=subprocess.PIPE, text=True
    )
    assert first.stdout.readline().strip() == "in"
    second = subprocess.run(
        [sys.executable, "-c", code, str(d), "second", "0"], capture_output=True, text=True
    )
    assert second.returncode != 0 and "another gen3dface run is writing" in second.stderr
    assert first.wait(30) == 0
    assert (d / "landmarks.json").read_text() == "first" and litter(tmp_path, "d") == []


# --------------------------------------------------------------------- 7: a killed run's staging folder is swept
def test_a_killed_runs_staging_folder_and_lock_are_cleared_by_the_next_run(tmp_path, capsys):
    d = tmp_path / "d"
    kill = (
        "import os, signal, sys\nfrom gen3dface.core.storage import output_folder\n"
        "with output_folder(sys.argv[1]) as s:\n"
        "    (s / 'view_00.png').write_bytes(b'half'); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", kill, str(d)], capture_output=True)
        assert r.returncode == -9
        left = litter(
            tmp_path, "d"
        )  # the kill leaves its staging folder and lock file; each run sweeps the last
        assert len([n for n in left if n.endswith(".part")]) == 1 and ".d.lock" in left, left
    assert not d.exists()
    assert main(["crop", str(sample_photo("astronaut")), "-o", str(d), "--size", "64"]) == 0
    assert litter(tmp_path, "d") == [] and (d / "crop.png").is_file()
    # an output named like the first one's prefix keeps its own staging folder
    other = tmp_path / "d.b.abcdefgh.part"
    other.mkdir()
    assert main(["crop", str(sample_photo("astronaut")), "-o", str(d), "--size", "64"]) == 0
    assert other.is_dir()
    capsys.readouterr()


def test_a_kill_between_the_renames_of_a_swap_is_recovered(tmp_path, capsys):
    d = tmp_path / "d"
    assert main(["crop", str(sample_photo("astronaut")), "-o", str(d), "--size", "64"]) == 0
    d.rename(tmp_path / ".d.old")  # killed after moving the old output aside, before the new one moved in
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 200, np.uint8)).save(blank)
    assert main(["crop", str(blank), "-o", str(d)]) == 2  # no face: this run fails
    one_error_line(capsys)
    assert (d / "crop.png").is_file() and litter(tmp_path, "d") == []  # the earlier output is back


def test_demo_writes_one_folder_whole_or_nothing(tmp_path, capsys):
    d = tmp_path / "demo"
    assert main(["demo", str(sample_photo("astronaut")), "-o", str(d), "--steps", "0", "--size", "64"]) == 0
    names = {p.name for p in d.iterdir()}
    assert {"crop.png", "summary.png", "landmarks.json", "mesh.obj", "mesh.json"} <= names
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 200, np.uint8)).save(blank)
    assert main(["demo", str(blank), "-o", str(tmp_path / "d2"), "--steps", "0"]) == 2
    one_error_line(capsys)
    assert not (tmp_path / "d2").exists() and litter(tmp_path, "d2") == []


def test_synth_refuses_a_second_process_on_the_same_shard(tmp_path, capsys):
    ds = tmp_path / "ds"
    args = [
        "synth",
        "-o",
        str(ds),
        "--identities",
        "1",
        "--views",
        "3",
        "--res",
        "32",
        "--ssaa",
        "1",
        "--quiet",
    ]
    ds.mkdir()
    with exclusive_lock(ds / ".synth.shard-0-of-1.lock", "shard"):
        assert main(args) == 2
        assert "another gen3dface run" in one_error_line(capsys)
    assert main(args) == 0 and (ds / "id_000000").is_dir()
    assert not list(ds.glob(".*lock"))


# ------------------------------------------------------------------------------- 8: eval's view cache, checked
def test_eval_view_cache_entries_of_another_shape_are_generated_again(tmp_path):
    from gen3dface.evaluation.protocols import ViewCache

    out = tmp_path / "r.json"
    shapes = {"input_view": (8, 8, 3), "views": (2, 8, 8, 3)}
    cache = ViewCache(out, {"steps": 1}, shapes)
    good = np.zeros((8, 8, 3), np.uint8), np.ones((2, 8, 8, 3), np.uint8)
    cache.put("a.png", *good)
    got = cache.get("a.png")
    assert got is not None and got[1].shape == (2, 8, 8, 3)
    cases = {
        "older_run_4_views": dict(input_view=good[0], views=np.ones((4, 8, 8, 3), np.uint8)),
        "other_size": dict(
            input_view=np.zeros((16, 16, 3), np.uint8), views=np.ones((2, 16, 16, 3), np.uint8)
        ),
        "float": dict(input_view=good[0].astype(np.float32), views=good[1]),
        "missing_key": dict(views=good[1]),
        "extra_key": dict(input_view=good[0], views=good[1], other=good[1]),
    }
    for name, arrays in cases.items():
        np.savez(cache.dir / f"{name}.npz", **arrays)
        assert cache.get(name) is None, name
    (cache.dir / "zip.npz").write_bytes(b"PK\x03\x04 not a zip")
    (cache.dir / "junk.npz").write_bytes(b"junk")
    assert cache.get("zip") is None and cache.get("junk") is None and cache.get("never") is None
    # the same settings keep the entries; names are escaped so nested identities do not collide
    again = ViewCache(out, {"steps": 1}, shapes)
    assert again.get("a.png") is not None
    again.put("sub/id_000000", *good)
    assert again.get("id_000000") is None and again.get("sub/id_000000") is not None


# ------------------------------------------------------------------ 10, 12, 13: datasets read, validated, confined
def meta(index: int, views: int = 6) -> dict:
    return {
        "index": index,
        "seed": index,
        "style": "photo",
        "res": 32,
        "views": views,
        "defect": None,
        "defect_views": [],
        "azimuth_deg": [float(a) for a in np.linspace(-180, 180, views, endpoint=False)],
        "elevation_deg": [0.0] * views,
    }


def identity(folder: Path, index: int, colour: int = 200) -> None:
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps(meta(index)))
    for k in range(6):
        Image.fromarray(np.full((32, 32, 3), colour, np.uint8)).save(folder / f"view_{k:02d}.png")


def dataset(root: Path, folders=("id_000000", "id_000001")) -> Path:
    for k, f in enumerate(folders):
        identity(root / f, k, 100 + 50 * k)
    (root / "manifest.json").write_text(json.dumps({"identities": [{"folder": f} for f in folders]}))
    return root


def set_manifest(root: Path, text: str) -> None:
    (root / "manifest.json").write_text(text)


BAD_DATASETS = {
    "manifest_not_json": lambda r: set_manifest(r, "{not json"),
    "manifest_a_list": lambda r: set_manifest(r, "[1, 2]"),
    "manifest_without_identities": lambda r: set_manifest(r, '{"count": 2}'),
    "identities_not_a_list": lambda r: set_manifest(r, '{"identities": "id_000000"}'),
    "string_ids": lambda r: set_manifest(r, '{"identities": ["id_000000", "id_000001"]}'),
    "number_ids": lambda r: set_manifest(r, '{"identities": [0, 1]}'),
    "folder_not_a_string": lambda r: set_manifest(r, '{"identities": [{"folder": 7}]}'),
    "no_identities": lambda r: set_manifest(r, '{"identities": []}'),
    "folder_missing": lambda r: set_manifest(r, '{"identities": [{"folder": "id_000009"}]}'),
    "listed_twice": lambda r: set_manifest(
        r, '{"identities": [{"folder": "id_000000"}, {"folder": "./id_000000"}]}'
    ),
    "meta_missing": lambda r: (r / "id_000001" / "meta.json").unlink(),
    "meta_not_json": lambda r: (r / "id_000001" / "meta.json").write_text("{"),
    "meta_without_azimuths": lambda r: (r / "id_000001" / "meta.json").write_text(
        json.dumps({k: v for k, v in meta(1).items() if k != "azimuth_deg"})
    ),
    "meta_short_azimuths": lambda r: (r / "id_000001" / "meta.json").write_text(
        json.dumps({**meta(1), "azimuth_deg": [0.0]})
    ),
    "meta_string_views": lambda r: (r / "id_000001" / "meta.json").write_text(
        json.dumps({**meta(1), "views": "6"})
    ),
    "meta_defect_view_out_of_range": lambda r: (r / "id_000001" / "meta.json").write_text(
        json.dumps({**meta(1), "defect": "janus", "defect_views": [99]})
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_prune_and_eval_refuse_a_malformed_dataset_in_one_line(case, tiny_checkpoint, tmp_path, capsys):
    root = dataset(tmp_path / "ds")
    BAD_DATASETS[case](root)
    assert main(["prune", str(root), "--quiet", "--embed", "dlib", "--janus", "face"]) == 2
    line = one_error_line(capsys)
    assert "manifest.json" in line or "meta.json" in line or "no identities" in line, line
    assert not (root / "pruning.json").exists() and not (root / ".prune_cache").exists()
    out = tmp_path / "r.json"
    args = ["eval", "--protocol", "indomain", "--inputs", str(root), "-o", str(out)]
    assert main([*args, "--checkpoint", str(tiny_checkpoint), "--quiet"]) == 2
    assert one_error_line(capsys) == line  # the same reader, the same message
    assert not out.exists() and litter(tmp_path, "r") == []


OUTSIDE = {
    "parent": lambda root, other: "../outside/id_000000",
    "deep_parent": lambda root, other: "../../" + os.path.relpath(other, root.parent.parent),
    "absolute": lambda root, other: str(other),
    "etc": lambda root, other: "../../../../../../../../etc",
    "symlink": lambda root, other: (root / "link").symlink_to(other, target_is_directory=True) or "link",
}


@pytest.mark.parametrize("case", sorted(OUTSIDE))
def test_identity_folders_outside_the_dataset_are_never_read(
    case, tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    from gen3dface.synth import pruning

    root = dataset(tmp_path / "ds")
    other = tmp_path / "outside" / "id_000000"
    identity(other, 0)
    folder = OUTSIDE[case](root, other)
    (root / "manifest.json").write_text(
        json.dumps({"identities": [{"folder": "id_000000"}, {"folder": folder}]})
    )
    monkeypatch.setattr(pruning, "_score_identity", lambda *a: pytest.fail("scored an identity"))
    assert main(["prune", str(root), "--quiet", "--embed", "dlib", "--janus", "face"]) == 2
    assert "outside the dataset" in one_error_line(capsys)
    assert not (root / "pruning.json").exists()
    out = tmp_path / "r.json"
    args = ["eval", "--protocol", "indomain", "--inputs", str(root), "-o", str(out), "--quiet"]
    assert main([*args, "--checkpoint", str(tiny_checkpoint)]) == 2
    assert "outside the dataset" in one_error_line(capsys)


def test_a_view_file_linked_outside_the_dataset_is_never_read(tmp_path, capsys):
    root = dataset(tmp_path / "ds", folders=("id_000000",))
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(secret)
    view = root / "id_000000" / "view_00.png"
    view.unlink()
    view.symlink_to(secret)
    assert main(["prune", str(root), "--quiet", "--embed", "dlib", "--janus", "face"]) == 2
    assert "outside the dataset" in one_error_line(capsys)


def test_identities_whose_folders_share_a_name_get_their_own_cache_and_score(tmp_path, monkeypatch):
    from gen3dface.synth import pruning

    root = dataset(tmp_path / "ds", folders=("id_000000", "sub/id_000000", "id_000002"))
    scored = []

    def fake(root_, folder, meta_, janus, embed):
        scored.append(folder.relative_to(root_.resolve()).as_posix())
        emb = np.random.default_rng(len(scored)).normal(size=(3, 8)).astype(np.float32)
        return {
            "defect": None,
            "janus_views": [],
            "janus_scores": {3: 0.1 * len(scored)},
            "face_views": [0, 1, 5],
            "embedded_views": [0, 1, 5],
            "embeddings": emb,
        }

    monkeypatch.setattr(pruning, "_score_identity", fake)
    res = pruning.prune(root, janus_backend="face", embed_backend="dlib", progress=False)
    assert scored == ["id_000000", "sub/id_000000", "id_000002"]
    recs = {r["folder"]: r for r in res["identities"]}
    assert set(recs) == {"id_000000", "sub/id_000000", "id_000002"}
    assert recs["id_000000"]["janus_scores"] != recs["sub/id_000000"]["janus_scores"]
    assert len(list((root / ".prune_cache").iterdir())) == 3
    again = pruning.prune(
        root, janus_backend="face", embed_backend="dlib", progress=False
    )  # all from the cache
    assert len(scored) == 3 and again["identities"] == res["identities"]
    # a cache entry of another shape (an older run) is scored again, not trusted
    f = next(p for p in (root / ".prune_cache").iterdir() if p.name.startswith("sub%2Fid_000000"))
    np.savez(f, embeddings=np.zeros((5, 8), np.float64), record=np.array(json.dumps({"defect": None})))
    pruning.prune(root, janus_backend="face", embed_backend="dlib", progress=False)
    assert scored[3:] == ["sub/id_000000"]


# ------------------------------------------------------------------------------------- 14: pickle checkpoints
class RunsCode:
    """Unpickling this makes a folder: what a hostile checkpoint would do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_pickle_checkpoints_load_only_with_trust_pickle(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import torch

    from gen3dface.generation.model import Gen3DFaceModel

    photo = sample_photo("astronaut")
    pickled = tmp_path / "pickled"
    Gen3DFaceModel.from_pretrained(tiny_checkpoint).save_pretrained(pickled, safe_serialization=False)
    assert (pickled / "diffusion_pytorch_model.bin").is_file()
    assert not list(pickled.glob("*.safetensors"))
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", hostile)
    marker = tmp_path / "code_ran"
    (hostile / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({"w": RunsCode(marker)}))
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo, photos)
    for ckpt in (pickled, hostile):
        out = tmp_path / f"out_{ckpt.name}"
        assert generate(photo, out, ckpt) == 2
        line = one_error_line(capsys)
        assert "pickle" in line and "--trust-pickle" in line
        assert not out.exists() and litter(tmp_path, out.name) == []
        r = main(
            ["eval", "--protocol", "ood", "--inputs", str(photos), "-o", str(tmp_path / "e.json")]
            + ["--checkpoint", str(ckpt), "--quiet"]
        )
        assert r == 2 and "--trust-pickle" in one_error_line(capsys)
    monkeypatch.setenv("GEN3DFACE_CHECKPOINT", str(pickled))  # demo's model: refused before the crop
    assert main(["demo", str(photo), "-o", str(tmp_path / "demo"), "--quiet"]) == 2
    assert "--trust-pickle" in one_error_line(capsys) and not (tmp_path / "demo").exists()
    assert not marker.exists()
    torch.manual_seed(0)
    assert generate(photo, tmp_path / "trusted", pickled, "--trust-pickle") == 0
    assert len(list((tmp_path / "trusted").glob("view_*.png"))) == 2
    assert not marker.exists()
    out = subprocess.run(
        [sys.executable, "-m", "gen3dface.app.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    assert "--trust-pickle" in out


def test_synth_into_a_path_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["synth", "-o", str(tmp_path / "afile" / "ds"), "--identities", "1", "--quiet"]) == 2
    one_error_line(capsys)


def test_a_full_disk_is_one_line_but_a_bug_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    import errno

    from gen3dface.app import jobs

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "crop.png"))

    monkeypatch.setattr(jobs, "crop_job", full)
    photo = str(Path(__file__).resolve().parents[1] / "data" / "samples" / "astronaut.jpg")
    assert main(["crop", photo, "-o", str(tmp_path / "c")]) == 2
    assert "No space left on device" in one_error_line(capsys)

    def bug(*a, **k):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "something/the/code/expected")

    monkeypatch.setattr(jobs, "crop_job", bug)
    with pytest.raises(FileNotFoundError):
        main(["crop", photo, "-o", str(tmp_path / "c")])
