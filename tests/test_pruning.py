"""Pruning: per-camera centring of identity embeddings, the CLIP Janus path (on a tiny CLIP this test
saves), the cache that lets a killed run resume, and both filters against injected defects."""

import importlib.util
import json

import numpy as np
import pytest

from gen3dface.synth import pruning
from gen3dface.core.errors import InputError
from gen3dface.synth.pruning import centred_scores, consistency_score, prune
from gen3dface.synth.synthesis import SynthConfig, synthesize


def _can_import_open_clip() -> bool:
    if importlib.util.find_spec("open_clip") is None:
        return False
    try:
        import open_clip  # noqa: F401 - torchvision may not load against this torch build
    except Exception:  # noqa: BLE001
        return False
    return True


def test_centring_per_camera_separates_identities_that_raw_cosine_cannot():
    """Embeddings = a large part every face shares (as with dlib) + a per-pose shift + a small identity part:
    the raw mean cosine barely tells a drifting identity (two people) from a consistent one; centred it does."""
    rng = np.random.default_rng(0)
    views, D = range(9), 128
    common = rng.normal(0, 1, D) * 6
    shared = {k: common + rng.normal(0, 1, D) for k in views}  # what every face at that pose has in common
    people = rng.normal(0, 1, (40, D))
    embs, drift = [], []
    for i in range(20):
        is_drift = i % 4 == 0
        other = people[20 + i]
        embs.append(
            {
                k: shared[k] + (other if is_drift and k >= 6 else people[i]) + rng.normal(0, 0.3, D)
                for k in views
            }
        )
        drift.append(is_drift)
    drift = np.array(drift)
    raw = np.array([consistency_score(np.stack(list(e.values()))) for e in embs])
    cen = np.array(centred_scores(embs))
    assert raw.min() > 0.9  # everything looks alike raw
    assert cen[drift].max() < cen[~drift].min()  # centred: every drifting identity below every consistent one
    assert cen[~drift].mean() - cen[drift].mean() > 10 * (raw[~drift].mean() - raw[drift].mean())


def test_centring_needs_enough_identities_per_view():
    e = {0: np.ones(4), 1: np.ones(4) * 2}
    assert centred_scores([e]) == pytest.approx([1.0])  # one identity: nothing to centre on, raw cosine
    assert np.isnan(centred_scores([{0: np.ones(4)}])[0])  # one embedded view: no pair
    assert np.isnan(centred_scores([{}, e])[0])  # no face found in any view


def test_unknown_or_unavailable_janus_backend(tmp_path, monkeypatch):
    monkeypatch.delenv("GEN3DFACE_CLIP_WEIGHTS", raising=False)
    with pytest.raises(InputError, match="Janus backend"):
        pruning._janus_scorer("oracle")
    if not _can_import_open_clip():
        with pytest.raises(InputError, match="open_clip"):
            pruning._janus_scorer("clip")
    assert pruning._janus_scorer("auto")[1] in ("face", "clip")


@pytest.fixture(scope="module")
def defect_dataset(tmp_path_factory):
    """24 procedural identities with Janus and drift defects on the paper's 48-view grid."""
    root = tmp_path_factory.mktemp("prune") / "ds"
    synthesize(
        root,
        24,
        SynthConfig(views=48, res=112, ssaa=1, defect_rate=0.6, seed=3, mesh_resolution=64),
        progress=False,
    )
    return root


def test_both_filters_beat_chance_and_a_killed_run_resumes_from_the_cache(defect_dataset, monkeypatch):
    n_drift = sum(
        i["defect"] == "drift"
        for i in json.loads((defect_dataset / "manifest.json").read_text())["identities"]
    )
    assert n_drift >= 4
    res = prune(defect_dataset, top_k=24 - n_drift, janus_backend="face", progress=False)
    j, i = res["janus_filter"], res["identity_filter"]
    print("janus", j, "identity", i, "chance", res["identity_filter_chance_precision"])
    assert j["actual"] > 0 and j["precision"] >= 0.8 and j["recall"] >= 0.7, j
    chance = res["identity_filter_chance_precision"]
    assert i["flagged"] == n_drift and i["precision"] >= min(1.0, 1.8 * chance), (i, chance)
    # resume: every identity is cached, so a second run scores nothing again and gives the same record
    cached = sorted(p.name for p in (defect_dataset / ".prune_cache").iterdir())
    assert len(cached) == 24
    monkeypatch.setattr(pruning, "_score_identity", lambda *a: pytest.fail("scored an identity twice"))
    again = prune(defect_dataset, top_k=24 - n_drift, janus_backend="face", progress=False)
    assert again["identity_filter"] == i and again["janus_filter"] == j
    # a corrupt cache file (a kill while it was written cannot leave one: it is renamed into place) is redone
    monkeypatch.undo()
    (defect_dataset / ".prune_cache" / cached[0]).write_bytes(b"garbage")
    assert (
        prune(defect_dataset, top_k=24 - n_drift, janus_backend="face", progress=False)["identity_filter"]
        == i
    )


def test_procedural_janus_filter_scores_the_rendered_back_views_as_the_folder_filter_does(defect_dataset):
    """Training data rendered from seeds is Janus-filtered like a synth folder: the same back views of the same
    identities get the same verdicts, front views are never scored, and the paper's Janus defects (a face
    rendered on the back of the head) are caught."""
    from gen3dface.training.data import target_views

    cfg = SynthConfig(views=48, res=112, ssaa=1, defect_rate=0.6, seed=3, mesh_resolution=64)
    record = (
        json.loads((defect_dataset / "pruning.json").read_text())
        if (defect_dataset / "pruning.json").exists()
        else prune(defect_dataset, janus_backend="face", progress=False)
    )
    ring = target_views(48, 16)
    ids = list(range(12))
    got = pruning.procedural_janus(cfg, ids, ring, tau=record["tau"], janus_backend="face", progress=False)
    az = cfg.cameras().azimuth_deg.numpy()
    for r in record["identities"][:12]:
        index = int(r["folder"][3:])
        want = sorted(int(k) for k in r["janus_rejected"] if int(k) in ring)
        assert sorted(got[index]) == want, (index, got[index], want)
        assert all(abs(az[v]) > pruning.BACK_AZIMUTH for v in got[index])
    janus_ids = [int(r["folder"][3:]) for r in record["identities"][:12] if r["defect"] == "janus"]
    assert janus_ids and all(got[i] for i in janus_ids), (janus_ids, got)
    with pytest.raises(InputError):
        pruning.procedural_janus(cfg, ids, ring, tau=1.5, janus_backend="face", progress=False)


TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.mark.skipif(not _can_import_open_clip(), reason="open_clip (extra `clip`) does not import here")
def test_clip_janus_filter_loads_open_clip_weights_and_scores_like_the_paper(
    tmp_path, monkeypatch, defect_dataset
):
    """The real open_clip path, on a tiny random CLIP saved by this test: weights found through
    GEN3DFACE_CLIP_WEIGHTS, the paper's two class names, softmax of scaled cosines."""
    import open_clip
    import torch

    from gen3dface.evaluation import clip

    (tmp_path / "gen3dface-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(tmp_path / "gen3dface-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("gen3dface-tiny-clip")
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    monkeypatch.setenv("GEN3DFACE_CLIP_WEIGHTS", str(tmp_path / "tiny.pt"))
    monkeypatch.setenv("GEN3DFACE_CLIP_MODEL", "gen3dface-tiny-clip")
    clip.clip_model.cache_clear()
    pruning._clip_classes.cache_clear()

    rng = np.random.default_rng(1)
    views = [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(5)]
    scores, reason = pruning.clip_front_face_scores(views, device="cpu")
    assert reason == "" and scores.shape == (5,) and np.all((scores > 0) & (scores < 1))
    # the same figure computed here from open_clip's own API
    loaded, _, preprocess = open_clip.create_model_and_transforms(
        "gen3dface-tiny-clip", pretrained=str(tmp_path / "tiny.pt")
    )
    loaded.eval()
    from PIL import Image

    with torch.no_grad():
        im = loaded.encode_image(torch.stack([preprocess(Image.fromarray(v)) for v in views]))
        tx = loaded.encode_text(
            open_clip.get_tokenizer("gen3dface-tiny-clip")(["back of human head", "human front face"])
        )
        im, tx = im / im.norm(dim=-1, keepdim=True), tx / tx.norm(dim=-1, keepdim=True)
        want = (loaded.logit_scale.exp() * im @ tx.T).softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)

    monkeypatch.setattr(
        pruning, "identity_embeddings", lambda images, backend: (np.zeros((0, 128), np.float32), [])
    )
    res = prune(defect_dataset, janus_backend="clip", progress=False)  # (embeddings skipped: not under test)
    assert res["janus_backend"] == "clip"
    back = [s for r in res["identities"] for s in r["janus_scores"].values()]
    assert len(back) == 24 * 21 and all(0 < s < 1 for s in back)  # |azimuth| > 90: 7 azimuths x 3 rows


def test_cli_reports_a_missing_clip_in_one_line(defect_dataset, monkeypatch, capsys):
    from gen3dface.app.cli import main

    monkeypatch.delenv("GEN3DFACE_CLIP_WEIGHTS", raising=False)
    monkeypatch.setattr(
        "gen3dface.evaluation.clip.clip_weights", lambda *a, **k: (None, "open_clip is not installed")
    )
    assert main(["prune", str(defect_dataset), "--janus", "clip", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "CLIP Janus filter" in err and len(err.splitlines()) == 1


def test_procedural_side_filter_reports_the_side_views_without_a_face_and_scores_no_other_view():
    """The side filter renders only the target views between 45 and 67.5 deg round, and lists exactly those
    of them in which the detector finds no face (checked against the detector on the same renders)."""
    from gen3dface.synth.synthesis import render_identity
    from gen3dface.training.data import target_views

    cfg = SynthConfig(views=48, seed=2, varied_appearance=0.75, symmetric_appearance=0.8, hair_side=80.0)
    ring = target_views(48, 16)
    az = cfg.cameras().azimuth_deg.numpy()
    side = [v for v in ring if 45 < abs(az[v]) <= pruning.SIDE_AZIMUTH]
    assert sorted(abs(az[side]).tolist()) == [67.5, 67.5]
    ids = [1, 2, 3, 8]  # of the heads this data's Janus filter keeps: one side found, none, both, both
    got = pruning.procedural_sides(cfg, ids, ring, progress=False)
    assert sorted(got) == ids
    for i in ids:
        rgb = render_identity(cfg, i, views=side)["rgb"]
        want = [v for v, x in zip(side, rgb) if not pruning.detect_faces(np.ascontiguousarray(x))]
        assert got[i] == want, (i, got[i], want)
    assert [len(got[i]) for i in ids] == [1, 2, 0, 0], got
    with pytest.raises(InputError, match="between 45 and 67.5"):
        pruning.procedural_sides(cfg, ids, [v for v in ring if abs(az[v]) <= 45], progress=False)
