"""Every notebook's exercise checker under the one contract of gen3dface.teaching.checking: it passes the reference
answer (one PASS line, returns True) and fails a typical wrong answer and an unfinished one with ExerciseFailed,
whose message is one sentence. (The change-and-see checkers nb00.check_fov_fill, nb01.check_snr_one,
nb02.check_janus_threshold, nb03.check_outlier_fit and nb08.check_oracle_fraction pass and fail in
test_teaching.py.)"""

from functools import partial

import numpy as np
import pytest
import torch

from gen3dface.core.cameras import orbit_position
from gen3dface.teaching.checking import ExerciseFailed, expect_close, is_one_sentence, mismatch, run_check
from gen3dface.teaching.exercises import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08


def unfinished(*args, **kwargs):
    raise NotImplementedError


def passes(check, *answer, capsys) -> None:
    assert check(*answer) is True
    out = capsys.readouterr().out.strip()
    assert out.startswith("PASS ") and "\n" not in out, out


def fails(check, *answer, contains: str = "") -> str:
    """The one-sentence reason ``check`` gives for a wrong ``answer``."""
    with pytest.raises(ExerciseFailed) as info:
        check(*answer)
    reason = str(info.value)
    assert is_one_sentence(reason) and ". " not in reason, reason
    assert contains in reason, reason
    assert info.value._render_traceback_() == [f"FAIL {info.value.exercise}: {reason}"]
    return reason


# ------------------------------------------------------------------------------------- the contract
def test_contract_pass_line_fail_line_and_student_errors(capsys):
    assert run_check("demo", lambda: "all good") is True
    assert capsys.readouterr().out == "PASS demo: all good\n"

    def wrong():
        expect_close([1.0, 2.0], [1.0, 2.5], 1e-3, "case 0")

    with pytest.raises(ExerciseFailed) as info:
        run_check("demo", wrong)
    assert isinstance(info.value, AssertionError)
    assert str(info.value) == "case 0: largest error 0.5 (allowed 0.001)"
    assert info.value._render_traceback_() == ["FAIL demo: case 0: largest error 0.5 (allowed 0.001)"]

    def buggy():
        raise ValueError("bad input\nsecond line")

    with pytest.raises(ExerciseFailed) as info:
        run_check("demo", buggy)
    line = buggy.__code__.co_firstlineno + 1
    assert str(info.value) == f"raised ValueError: bad input (line {line})"
    with pytest.raises(ExerciseFailed, match="^not implemented yet$"):
        run_check("demo", unfinished)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_mismatch_checks_shapes_nan_and_none():
    assert mismatch(torch.ones(3, requires_grad=True), np.ones(3), 0) is None
    assert mismatch(np.ones(3), np.ones((3, 1)), 1) == "shape (3,), expected (3, 1)"
    assert mismatch(float("nan"), float("nan"), 0) is None
    assert "NaN" in mismatch([np.nan], [1.0], 1)
    assert "return" in mismatch(None, 1.0, 1)


# ------------------------------------------------------------------------------------- notebook 00
def test_nb00(capsys):
    passes(nb00.check_orbit_position, lambda a, e, r: orbit_position(a, e, r).numpy(), capsys=capsys)

    def project(K, w2c, X):
        cam = X @ w2c[:3, :3].T + w2c[:3, 3]
        uvw = cam @ K.T
        return uvw[:, :2] / uvw[:, 2:]

    passes(nb00.check_project, project, capsys=capsys)

    def ray(K, c2w, col, row):
        d = np.linalg.inv(K) @ np.array([col + 0.5, row + 0.5, 1.0])
        d = c2w[:3, :3] @ d
        return d / np.linalg.norm(d)

    passes(nb00.check_pixel_ray, ray, capsys=capsys)

    # classic mistakes: degrees as radians, forgetting the perspective divide, pixel corner not centre
    fails(
        nb00.check_orbit_position,
        lambda a, e, r: r * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)]),
    )
    fails(nb00.check_project, lambda K, w2c, X: (X @ w2c[:3, :3].T + w2c[:3, 3]) @ K.T[:, :2])

    def corner_ray(K, c2w, col, row):
        d = c2w[:3, :3] @ np.linalg.inv(K) @ np.array([col, row, 1.0])
        return d / np.linalg.norm(d)

    fails(nb00.check_pixel_ray, corner_ray)
    for check in (nb00.check_orbit_position, nb00.check_project, nb00.check_pixel_ray):
        fails(check, unfinished, contains="not implemented")


# ------------------------------------------------------------------------------------- notebook 01
def test_nb01(capsys):
    def q(ab, x0, t, noise):
        a = ab[t].reshape(-1, 1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    passes(nb01.check_q_sample, q, capsys=capsys)
    fails(nb01.check_q_sample, lambda ab, x0, t, n: ab[t].reshape(-1, 1, 1, 1, 1) * x0 + n)

    def ddim(ab, eps, t, t_prev, x):
        a_t, a_p = ab[t], (ab[t_prev] if t_prev >= 0 else ab[0])
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        return a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps

    passes(nb01.check_ddim_step, ddim, capsys=capsys)
    fails(nb01.check_ddim_step, lambda ab, eps, t, tp, x: x - eps)

    def loss(model, ab, x0, y, cams, t, noise):
        a = ab[t].reshape(-1, 1, 1, 1, 1)
        return ((model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, y, cams) - noise) ** 2).mean()

    passes(nb01.check_multiview_loss, loss, capsys=capsys)
    # a classic mistake: predicting x0 instead of the noise
    fails(nb01.check_multiview_loss, lambda m, ab, x0, y, c, t, n: ((m(x0, t, y, c) - n) ** 2).mean())
    for check in (nb01.check_q_sample, nb01.check_ddim_step, nb01.check_multiview_loss):
        fails(check, unfinished, contains="not implemented")


# ------------------------------------------------------------------------------------- notebook 02
def test_nb02(capsys):
    passes(
        nb02.check_grid_angles,
        lambda: [(-180 + 22.5 * a, e) for e in (-40, 0, 40) for a in range(16)],
        capsys=capsys,
    )
    fails(
        nb02.check_grid_angles,
        lambda: [(22.5 * a, e) for e in (-40, 0, 40) for a in range(16)],
        contains="view 0",
    )

    def score(E):
        E = E / np.linalg.norm(E, axis=1, keepdims=True)
        S = E @ E.T
        return (S.sum() - len(E)) / (len(E) * (len(E) - 1))

    passes(nb02.check_consistency_score, score, capsys=capsys)
    fails(nb02.check_consistency_score, lambda E: float(np.mean(E @ E.T)))  # unnormalised, diagonal in
    for check in (nb02.check_grid_angles, nb02.check_consistency_score):
        fails(check, unfinished, contains="not implemented")


# ------------------------------------------------------------------------------------- notebook 03
def test_nb03(capsys):
    from gen3dface.mesh.align import pose_from_rotation, umeyama

    passes(nb03.check_umeyama, umeyama, capsys=capsys)

    def no_scale(src, dst):  # a classic mistake: the rigid fit (s = 1)
        _, R, _ = umeyama(src, dst)
        return 1.0, R, dst.mean(0) - R @ src.mean(0)

    fails(nb03.check_umeyama, no_scale, contains="scale")

    def pose(R):
        p = pose_from_rotation(R)
        return p["yaw"], p["pitch"], p["roll"]

    passes(nb03.check_pose_from_rotation, pose, capsys=capsys)
    fails(
        nb03.check_pose_from_rotation, lambda R: (pose(R)[0], -pose(R)[1], pose(R)[2])
    )  # pitch sign flipped
    for check in (nb03.check_umeyama, nb03.check_pose_from_rotation):
        fails(check, unfinished, contains="not implemented")


# ------------------------------------------------------------------------------------- notebook 04
def test_nb04(capsys):
    passes(
        nb04.check_voxel_index, lambda p, V: tuple(np.floor((p + 1) / 2 * V).astype(int)[::-1]), capsys=capsys
    )
    fails(
        nb04.check_voxel_index, lambda p, V: tuple(np.floor((p + 1) / 2 * V).astype(int)), contains="z, y, x"
    )
    passes(nb04.check_grid_coords, lambda uv, h, w: uv / [w, h] * 2 - 1, capsys=capsys)
    fails(nb04.check_grid_coords, lambda uv, h, w: (uv - 0.5) / [w - 1, h - 1] * 2 - 1)  # align_corners=True
    for check in (nb04.check_voxel_index, nb04.check_grid_coords, nb04.check_depth_attention):
        fails(check, unfinished, contains="not implemented")


def test_nb04_depth_attention(capsys):
    def attend(q, k, v):
        a = torch.softmax(torch.einsum("pc,pdc->pd", q, k) / q.shape[-1] ** 0.5, dim=-1)
        return torch.einsum("pd,pdc->pc", a, v)

    passes(nb04.check_depth_attention, attend, capsys=capsys)

    def unscaled(q, k, v):  # a classic mistake: the logits without the 1/sqrt(c) scale
        return torch.einsum("pd,pdc->pc", torch.softmax(torch.einsum("pc,pdc->pd", q, k), dim=-1), v)

    fails(nb04.check_depth_attention, unscaled, contains="random case 0")

    def over_pixels(q, k, v):  # softmax over the wrong axis: pixels instead of a ray's D samples
        a = torch.softmax(torch.einsum("pc,pdc->pd", q, k) / q.shape[-1] ** 0.5, dim=0)
        return torch.einsum("pd,pdc->pc", a, v)

    fails(nb04.check_depth_attention, over_pixels)


def test_nb04_depth_sweep(capsys):
    def frustum_psnr(d: int) -> float:  # a stand-in for the notebook's render: PSNR rising with D
        return 12.0 + 3.0 * np.log2(d) - 0.01 * d

    good = {d: frustum_psnr(d) for d in (2, 4, 8, 16, 32, 64)}
    passes(nb04.check_depth_sweep, good, frustum_psnr, capsys=capsys)
    just_enough = {d: frustum_psnr(d) for d in (4, 16, 32)}  # three depths, from 4 to 32
    passes(nb04.check_depth_sweep, just_enough, frustum_psnr, capsys=capsys)
    # too narrow a sweep: it starts above 4 or stops below 32 samples per ray
    narrow = {d: frustum_psnr(d) for d in (8, 16, 32)}
    assert "[8, 16, 32]" in fails(nb04.check_depth_sweep, narrow, frustum_psnr, contains="at most 4")
    fails(nb04.check_depth_sweep, {d: frustum_psnr(d) for d in (2, 4, 16)}, frustum_psnr, contains="32")
    fails(nb04.check_depth_sweep, {2: 1.0, 32: 2.0}, frustum_psnr, contains="three depths")
    fails(nb04.check_depth_sweep, [2, 8, 32], frustum_psnr, contains="dict")
    wrong = {**good, 16: frustum_psnr(16) + 0.5}  # one PSNR not from frustum_psnr
    fails(nb04.check_depth_sweep, wrong, frustum_psnr, contains="D = 16")
    fails(nb04.check_depth_sweep, None, frustum_psnr, contains="None")


# ------------------------------------------------------------------------------------- notebook 05
def test_nb05(capsys):
    passes(nb05.check_joint_tokens, 17 * 16 * 16, 16, 16, capsys=capsys)
    fails(nb05.check_joint_tokens, 16 * 16 * 16, 16, 16, contains="input view")  # the input frame forgotten
    fails(nb05.check_joint_tokens, None, 16, 16, contains="no answer")
    passes(nb05.check_attention_cost_ratio, 17**2 / 33, 16, capsys=capsys)
    fails(nb05.check_attention_cost_ratio, 16.0, 16, contains="frame pairs")
    fails(nb05.check_attention_cost_ratio, None, 16, contains="no answer")

    mix = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    passes(nb05.check_views_tied, lambda x: torch.einsum("bvchw,vu->buchw", x, mix), capsys=capsys)
    fails(nb05.check_views_tied, lambda x: 2 * x, contains="not tied")  # each view on its own
    fails(nb05.check_views_tied, unfinished, contains="not implemented")


def test_nb05_views_tied_at_the_models_view_shape(capsys):
    mix = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    seen = []

    def model_fn(x):  # a joint model of 12 x 32 x 32 views that refuses any other shape, as a real one does
        seen.append(tuple(x.shape))
        if tuple(x.shape[2:]) != (12, 32, 32):
            raise RuntimeError(f"expected views of shape (12, 32, 32), got {tuple(x.shape[2:])}")
        return torch.einsum("bvchw,vu->buchw", x, mix)

    passes(nb05.check_views_tied, model_fn, 4, (12, 32, 32), capsys=capsys)
    assert seen == [(1, 4, 12, 32, 32)] * 2
    passes(partial(nb05.check_views_tied, view_shape=(12, 32, 32)), model_fn, capsys=capsys)
    # the model's view_shape not passed: the checker's default 3 x 8 x 8 views reach the model
    fails(nb05.check_views_tied, model_fn, contains="raised RuntimeError")
    # the prediction at another resolution than the views it was given
    fails(
        nb05.check_views_tied,
        lambda x: model_fn(x)[..., ::2, ::2],
        4,
        (12, 32, 32),
        contains="expected (1, 4, 12, 32, 32)",
    )
    fails(nb05.check_views_tied, lambda x: 0.5 * x, 4, (12, 32, 32), contains="not tied")


# ------------------------------------------------------------------------------------- notebook 06
def test_nb06(capsys):
    from gen3dface.evaluation.image_metrics import psnr

    passes(nb06.check_psnr, psnr, capsys=capsys)
    # a classic mistake: uint8 arithmetic wraps around
    fails(nb06.check_psnr, lambda a, b: 10 * np.log10(255.0**2 / np.mean((a - b) ** 2)), contains="dB")
    passes(nb06.check_reid_match, lambda d: float(np.mean(np.asarray(d) < 0.6)), capsys=capsys)
    fails(nb06.check_reid_match, lambda d: float(np.mean(np.asarray(d) <= 0.6)), contains="strictly below")
    for check in (nb06.check_psnr, nb06.check_reid_match):
        fails(check, unfinished, contains="not implemented")
    fails(nb06.check_psnr, lambda a, b: None, contains="return")


def test_nb06_reid_against(astronaut, hopper, capsys):
    pytest.importorskip("dlib")
    from gen3dface.evaluation.identity import reid, reid_embeddings
    from gen3dface.faces.detect import align_crop, find_face

    a, h = (align_crop(img, find_face(img), size=128, mask=False).image for img in (astronaut, hopper))
    genuine, impostor = a[None], h[None]  # one view each keeps the dlib work short
    noise = np.random.default_rng(0).integers(-12, 13, genuine.shape)  # the same person, not the same pixels
    generated = np.clip(genuine.astype(int) + noise, 0, 255).astype(np.uint8)

    def reid_against(reference_views):
        e_ref, e_gen, _ = reid_embeddings(reference_views, generated)
        return reid(e_ref, e_gen)

    passes(nb06.check_reid_against, reid_against, generated, genuine, impostor, capsys=capsys)
    # a classic mistake: always scoring against the true person, whatever reference is passed
    fails(
        nb06.check_reid_against,
        lambda ref: reid_against(genuine),
        generated,
        genuine,
        impostor,
        contains="against another person: match",
    )

    def arcface_rule(reference_views):  # unit-normalised embeddings: ArcFace's rule, not dlib's
        e_ref, e_gen, _ = reid_embeddings(reference_views, generated)
        return reid(e_ref, e_gen, normalize=True)

    fails(nb06.check_reid_against, arcface_rule, generated, genuine, impostor, contains="against same person")
    fails(
        nb06.check_reid_against,
        lambda ref: reid_against(ref)["match"],
        generated,
        genuine,
        impostor,
        contains="the dict",
    )
    fails(nb06.check_reid_against, unfinished, generated, genuine, impostor, contains="not implemented")


# ------------------------------------------------------------------------------------- notebook 07
def test_nb07(capsys):
    from gen3dface.recon.rendering import composite_weights, neus_alpha, ray_box

    passes(nb07.check_ray_box, lambda o, d: ray_box(torch.tensor(o), torch.tensor(d)), capsys=capsys)

    def unclamped(o, d):  # a classic mistake: min/max of the slab distances swapped
        with np.errstate(divide="ignore"):
            t0, t1 = (-1 - o) / d, (1 - o) / d
        return np.minimum(t0, t1).min(axis=1), np.maximum(t0, t1).max(axis=1)

    fails(nb07.check_ray_box, unclamped)
    passes(nb07.check_neus_alpha, neus_alpha, capsys=capsys)
    fails(nb07.check_neus_alpha, lambda sdf, s: torch.sigmoid(s * sdf)[:, 1:])
    passes(
        nb07.check_composite,
        lambda a, c, bg: (
            (composite_weights(a)[..., None] * c).sum(1)
            + (1 - composite_weights(a).sum(1, keepdim=True)) * bg
        ),
        capsys=capsys,
    )
    fails(nb07.check_composite, lambda a, c, bg: (a[..., None] * c).sum(1))  # no transmittance, no background
    for check in (nb07.check_ray_box, nb07.check_neus_alpha, nb07.check_composite, nb07.check_weight_stats):
        fails(check, unfinished, contains="not implemented")


def test_nb07_weight_stats(capsys):
    from gen3dface.recon.rendering import composite_weights, neus_alpha

    t = torch.linspace(0.6, 1.4, 161)
    sdf = (1.0 - t)[None]

    def weights(s):
        return composite_weights(neus_alpha(sdf, s))[0]

    def weight_stats(s):
        w = weights(s) / weights(s).sum()
        mean = float((w * t[:-1]).sum())
        return mean, float((w * (t[:-1] - mean) ** 2).sum().sqrt())

    passes(nb07.check_weight_stats, weight_stats, capsys=capsys)

    def unnormalised(s):  # a classic mistake: the weights do not sum to 1 at low sharpness
        w = weights(s)
        mean = float((w * t[:-1]).sum())
        return mean, float((w * (t[:-1] - mean) ** 2).sum().sqrt())

    fails(nb07.check_weight_stats, unnormalised, contains="s = 8")

    def at_section_ends(s):  # each section placed at its end t_{i+1} instead of its start t_i
        w = weights(s) / weights(s).sum()
        mean = float((w * t[1:]).sum())
        return mean, float((w * (t[1:] - mean) ** 2).sum().sqrt())

    fails(nb07.check_weight_stats, at_section_ends, contains="(mean, std)")
    fails(nb07.check_weight_stats, lambda s: weight_stats(s)[::-1], contains="largest error")
    fails(nb07.check_weight_stats, lambda s: (*weight_stats(s), 0.0), contains="two numbers")


# ------------------------------------------------------------------------------------- notebook 08
def test_nb08(capsys):
    def precision(ids):
        removed = [r for r in ids if not r["kept"]]
        return float("nan") if not removed else sum(r["defect"] is not None for r in removed) / len(removed)

    passes(nb08.check_removal_precision, precision, capsys=capsys)
    # a classic mistake: the fraction of defective identities that were removed (the recall)
    fails(
        nb08.check_removal_precision,
        lambda ids: sum(not r["kept"] for r in ids if r["defect"]) / sum(bool(r["defect"]) for r in ids),
    )
    fails(
        nb08.check_removal_precision,
        lambda ids: precision(ids) if any(not r["kept"] for r in ids) else 0.0,
        contains="nan",
    )
    fails(nb08.check_removal_precision, unfinished, contains="not implemented")
