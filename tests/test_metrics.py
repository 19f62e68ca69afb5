"""Metrics of the paper's evaluation (gen3dface.evaluation): library agreement, FID sanity, ID consistency,
the Re-ID 0.6 rule, honest "unavailable" reports, and both protocols end to end on real face photos."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import scipy.linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gen3dface.core.errors import InputError
from gen3dface.core.images import to_tensor
from gen3dface.evaluation.clip import clip_similarity, clip_weights
from gen3dface.evaluation.fid import (
    INCEPTION_DIM,
    InceptionFeatures,
    fid,
    fid_from_features,
    frechet_distance,
    tf_bilinear_resize,
)
from gen3dface.evaluation.identity import (
    REID_THRESHOLD,
    embed_faces,
    id_consistency_input,
    id_consistency_output,
    reid,
    reid_embeddings,
)
from gen3dface.evaluation.image_metrics import lpips_distance, lpips_status, psnr, ssim
from gen3dface.evaluation.outputs import OUT_OF_DOMAIN, REAL_PHOTO, evaluate_outputs
from gen3dface.evaluation.tables import METRIC_LABELS, results_markdown, write_results
from gen3dface.faces.detect import align_crop, find_face


@pytest.fixture(scope="module")
def crops(astronaut, hopper) -> dict[str, np.ndarray]:
    """Aligned 128 px head crops of the two sample photos (faces every backend finds)."""
    return {
        name: align_crop(img, find_face(img), size=128, mask=False).image
        for name, img in (("astronaut", astronaut), ("hopper", hopper))
    }


@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    return InceptionFeatures(device="cpu", batch_size=16)


def noisy(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).round().astype(np.uint8)


# ------------------------------------------------------------------ SSIM / PSNR
def test_ssim_psnr_equal_scikit_image_on_random_images():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 3, 24, 40, 3), dtype=np.uint8)
    b = noisy(a, 30.0)
    s, p = ssim(a, b), psnr(a, b)
    assert s.shape == p.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert s[i, j] == pytest.approx(
                structural_similarity(b[i, j], a[i, j], channel_axis=-1, data_range=255), abs=1e-12
            )
            assert p[i, j] == pytest.approx(
                peak_signal_noise_ratio(b[i, j], a[i, j], data_range=255), abs=1e-12
            )
    assert isinstance(ssim(a[0, 0], b[0, 0]), float) and isinstance(psnr(a[0, 0], b[0, 0]), float)
    # the models' tensors in [-1, 1] give the same numbers
    assert ssim(to_tensor(a), to_tensor(b)) == pytest.approx(s, abs=1e-12)
    assert psnr(a[0, 0], a[0, 0]) == np.inf
    assert ssim(a[0, 0], a[0, 0]) == pytest.approx(1.0)


def test_image_checks():
    with pytest.raises(InputError, match="uint8"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(InputError, match="shape"):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


# ------------------------------------------------------------------ FID
def test_frechet_distance_matches_scipy_sqrtm_and_both_paths_agree():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(300, 16)) * 1.4 + 0.3
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)
    assert fid_from_features(a, b) == pytest.approx(ref, rel=1e-9)  # N > D: covariance path
    small_a, small_b = a[:10], b[:12]  # N < D: the feature-space path
    cov = frechet_distance(
        small_a.mean(0), np.cov(small_a, rowvar=False), small_b.mean(0), np.cov(small_b, rowvar=False)
    )
    assert fid_from_features(small_a, small_b) == pytest.approx(cov, rel=1e-8)
    assert fid_from_features(small_a, small_a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError):
        fid_from_features(a[:1], b)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(crops, inception):
    rng = np.random.default_rng(3)
    base = np.stack(
        [
            np.roll(crops[k], (int(rng.integers(-12, 12)), int(rng.integers(-12, 12))), axis=(0, 1))
            for k in ("astronaut", "hopper") * 3
        ]
    )[:, ::2, ::2]  # 6 images, 64 px
    f0 = inception(base)
    assert f0.shape == (6, INCEPTION_DIM)
    assert np.array_equal(f0[:2], inception(base[:2].copy()))  # deterministic, batch-independent
    assert fid_from_features(f0, f0) == pytest.approx(0.0, abs=1e-6)
    fids = [fid_from_features(f0, inception(noisy(base, s, seed=7))) for s in (8.0, 40.0)]
    assert 0 < fids[0] < fids[1], fids


def test_fid_end_to_end_on_tiny_sets(crops):
    imgs = np.stack([crops["astronaut"], crops["hopper"]])[:, ::2, ::2]
    assert fid(imgs, imgs, device="cpu") == pytest.approx(0.0, abs=1e-6)


def test_tf_bilinear_resize_is_identity_at_equal_size_and_keeps_constants():
    import torch

    x = torch.rand(2, 3, 17, 23)
    assert torch.allclose(tf_bilinear_resize(x[..., :17], 17), x[..., :17], atol=1e-5)
    assert torch.allclose(tf_bilinear_resize(torch.full((1, 3, 40, 40), 0.3), 299), torch.tensor(0.3))


# ------------------------------------------------------------------ ID consistency and Re-ID
def test_id_consistency_of_identical_images_is_one(crops):
    a = crops["astronaut"]
    emb, found = embed_faces(np.stack([a, a, a]), backend="dlib")
    assert found.all() and emb.shape == (3, 128)
    assert id_consistency_output(emb) == pytest.approx(1.0, abs=1e-6)
    assert id_consistency_input(emb[0], emb) == pytest.approx(1.0, abs=1e-6)


def test_id_consistency_is_lower_across_identities_and_missing_faces_are_counted(crops):
    a, h = crops["astronaut"], crops["hopper"]
    blank = np.full_like(a, 255)
    emb, found = embed_faces(np.stack([a, a[:, ::-1], h, blank]), backend="dlib")
    assert found.tolist() == [True, True, True, False]
    assert np.isnan(emb[3]).all()
    same, mixed = id_consistency_output(emb[:2]), id_consistency_output(emb[1:3])
    assert mixed < same <= 1.0
    # NaN rows (no face) are left out, not counted as anything
    assert id_consistency_output(emb[[0, 1, 3]]) == pytest.approx(same)
    assert np.isnan(id_consistency_output(emb[[0, 3]]))
    assert np.isnan(id_consistency_input(emb[3], emb[:2]))


def test_face_embedding_in_worker_processes_equals_in_process(crops):
    a, h = crops["astronaut"], crops["hopper"]
    blank = np.full_like(a, 200)
    imgs = np.stack([a, h, blank, a[:, ::-1], h, a])
    e1, f1 = embed_faces(imgs, backend="dlib", workers=1)
    e2, f2 = embed_faces(imgs, backend="dlib", workers=2)
    assert f1.tolist() == f2.tolist() == [True, True, False, True, True, True]
    np.testing.assert_array_equal(e1, e2)  # same faces in the same order, NaN rows where none
    g1 = reid_embeddings(imgs, imgs[::-1].copy(), "dlib", workers=1)
    g2 = reid_embeddings(imgs, imgs[::-1].copy(), "dlib", workers=2)
    for x, y in zip(g1, g2):
        np.testing.assert_array_equal(x, y)


def test_worker_count():
    from gen3dface.core.errors import InputError
    from gen3dface.core.parallel import ITEMS_PER_WORKER, worker_count

    assert worker_count(None, ITEMS_PER_WORKER - 1) == 1  # small sets stay in this process
    assert worker_count(4, 2) == 2 and worker_count(0, 100) == 1
    import os

    assert worker_count(None, 10**6) == os.cpu_count()
    with pytest.raises(InputError):
        worker_count(-1, 10)


def test_worker_count_from_the_environment(monkeypatch):
    from gen3dface.core.errors import InputError
    from gen3dface.core.parallel import worker_count

    monkeypatch.setenv("GEN3DFACE_WORKERS", "3")
    assert worker_count(None, 100) == 3
    monkeypatch.setenv("GEN3DFACE_WORKERS", "many")
    with pytest.raises(InputError, match="GEN3DFACE_WORKERS"):
        worker_count(None, 100)


def test_reid_follows_the_06_rule():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=128)
    u = rng.normal(size=128)
    u /= np.linalg.norm(u)
    out = np.stack([ref + d * u for d in (0.0, 0.3, 0.599, 0.601, 0.9)])
    r = reid(ref, out)
    assert r["distances"] == pytest.approx([0.0, 0.3, 0.599, 0.601, 0.9])
    assert r["match"] == pytest.approx(3 / 5) and r["n"] == 5
    assert r["dist"] == pytest.approx(np.mean([0.0, 0.3, 0.599, 0.601, 0.9]))
    assert reid(ref, out, threshold=0.95)["match"] == 1.0
    out[1] = np.nan  # a view without a face is left out
    r = reid(ref, out)
    assert r["n"] == 4 and r["match"] == pytest.approx(2 / 4)
    # ArcFace: Euclidean distance of unit embeddings, sqrt(2 - 2 cos)
    a, b = np.array([1.0, 0.0]), np.array([3.0, 3.0])
    assert reid(a, b[None], normalize=True)["dist"] == pytest.approx(np.sqrt(2 - 2 * np.cos(np.pi / 4)))


def test_reid_on_real_faces(crops):
    a, h = crops["astronaut"], crops["hopper"]
    gt, gen = np.stack([a, a, h]), np.stack([a, h, a])
    eg, ep, found = reid_embeddings(gt, gen, backend="dlib")
    assert found.all()
    r = reid(eg, ep)
    assert r["distances"][0] == pytest.approx(0.0, abs=1e-6)
    assert (r["distances"][1:] > REID_THRESHOLD).all()  # two different people
    assert r["match"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------ unavailable components
def test_lpips_and_clip_report_unavailable_instead_of_a_number(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # not importable
    monkeypatch.setitem(sys.modules, "open_clip", None)
    img = np.zeros((2, 32, 32, 3), np.uint8)
    d, reason = lpips_distance(img, img)
    assert d is None and "lpips" in reason and "not installed" in reason
    s, reason = clip_similarity(img, img[:, None])
    assert s is None and "open_clip" in reason
    assert clip_weights()[0] is None


def test_lpips_without_backbone_weights_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reason = lpips_status("vgg")
    assert reason is not None  # no package here, or no weights in an empty torch hub cache
    assert lpips_distance(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)) == (None, reason)


# ------------------------------------------------------------------ protocols
def test_out_of_domain_protocol_end_to_end(crops, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    a, h = crops["astronaut"], crops["hopper"]
    blank = np.full_like(a, 255)
    inputs = np.stack([a, h])
    outputs = np.stack([np.stack([a, a[:, ::-1], blank]), np.stack([h, noisy(h, 5.0), h[:, ::-1]])])
    res = evaluate_outputs(inputs, outputs, backend="dlib", device="cpu")
    assert res["protocol"] == "out_of_domain" and res["id_backend"] == "dlib"
    m = res["metrics"]
    assert list(m) == list(OUT_OF_DOMAIN + REAL_PHOTO)  # the paper's, then identity on real photos
    assert m["fid"]["n"] == 6 and m["fid"]["n_ref"] == 2 and m["fid"]["value"] > 0
    oo = m["id_consistency_output"]
    assert oo["n_faces_missing"] == 1 and oo["n"] == 2 and oo["n_pairs"] == 1 + 3
    assert 0.9 < oo["value"] <= 1.0
    ii = m["id_consistency_input"]
    assert ii["n_faces_missing"] == 1 and ii["n_pairs"] == 5 and 0.9 < ii["value"] <= 1.0
    assert m["clip"]["available"] is False and m["clip"]["value"] is None and "open_clip" in m["clip"]["note"]
    js, md = write_results(res, tmp_path)
    assert json.loads(js.read_text()) == res
    table = md.read_text()
    assert (
        "| gen3dface (this run) |" in table
        and "55.49" in table
        and "Output-to-Output ID Consistency" in table
    )
    assert "faces missing: 1" in table and "n/a" in table
    # the paper's Table 1 columns stay as they are; identity on real photos is a block of its own
    assert table.splitlines()[0] == "| Method | " + " | ".join(METRIC_LABELS[c] for c in OUT_OF_DOMAIN) + " |"
    assert "### Identity on real photos" in table and "| output-to-output ID | " in table


def test_in_domain_protocol_end_to_end(crops):
    a, h = crops["astronaut"], crops["hopper"]
    gt = np.stack([np.stack([a, h])])
    gen = np.stack([np.stack([noisy(a, 6.0), a])])  # the second view has the wrong identity
    res = evaluate_outputs(
        gt[:, 0],
        gen,
        ground_truth=gt,
        device="cpu",
        metrics=["ssim", "psnr", "lpips", "reid_match", "reid_dist"],
    )
    m = res["metrics"]
    assert res["protocol"] == "in_domain" and res["reid_backend"] == "dlib"
    assert m["ssim"]["value"] == pytest.approx(float(np.mean(ssim(gen, gt))))
    assert m["psnr"]["n"] == 2
    assert m["lpips"]["value"] is None and not m["lpips"]["available"]
    assert m["reid_match"]["value"] == pytest.approx(0.5) and m["reid_match"]["n"] == 2
    assert m["reid_dist"]["n_faces_missing"] == 0
    assert "Re-ID(match)" in results_markdown(res) and "0.9981" in results_markdown(res)
    assert "0.9981" not in results_markdown(res, paper=False)


def test_protocol_argument_checks(crops):
    a = crops["astronaut"]
    with pytest.raises(InputError, match="ground-truth"):
        evaluate_outputs(a[None], a[None, None], metrics=["ssim"])
    with pytest.raises(InputError, match="unknown metric"):
        evaluate_outputs(a[None], a[None, None], metrics=["bleu"])
    with pytest.raises(InputError, match="must match"):
        evaluate_outputs(a[None], a[None, None], ground_truth=a[None, None, :64])


def test_pooled_psnr_scores_a_set_of_float_images_at_once():
    rng = np.random.default_rng(3)
    a = rng.uniform(size=(4, 8, 8, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    want = -10 * np.log10(np.mean((a - b) ** 2))
    assert psnr(a, b, pooled=True) == pytest.approx(want, abs=1e-9)
    assert psnr(a, a, pooled=True) == pytest.approx(120.0)  # capped, not inf
