import filecmp
import json

import pytest

from gen3dface.synth import synthesis
from gen3dface.core.errors import InputError
from gen3dface.synth.pruning import prune
from gen3dface.synth.synthesis import SynthConfig, synthesize

SMALL = SynthConfig(views=12, res=48, ssaa=1, defect_rate=0.5, seed=5, mesh_resolution=48)


def tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def same_files(a, b):
    ta, tb = tree(a), tree(b)
    assert ta == tb
    _, mismatch, errors = filecmp.cmpfiles(a, b, ta, shallow=False)
    assert not mismatch and not errors, mismatch


def test_layout_and_labels(tmp_path):
    r = synthesize(tmp_path / "ds", 4, SMALL, progress=False)
    assert r == {"made": 4, "skipped": 0, "total": 4}
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [i["folder"] for i in m["identities"]] == [f"id_{k:06d}" for k in range(4)]
    d = tmp_path / "ds" / "id_000000"
    names = {p.name for p in d.iterdir()}
    assert {"cameras.json", "mesh.ply", "meta.json"} <= names and len(names) == 3 + 2 * 12
    for item in m["identities"]:
        meta = json.loads((tmp_path / "ds" / item["folder"] / "meta.json").read_text())
        az = meta["azimuth_deg"]
        if item["defect"] == "janus":
            assert item["defect_views"] and all(
                abs(az[k]) >= synthesis.JANUS_AZIMUTH for k in item["defect_views"]
            )
        elif item["defect"] == "drift":
            assert item["defect_views"] and all(az[k] > synthesis.DRIFT_AZIMUTH for k in item["defect_views"])
        else:
            assert item["defect_views"] == []


def test_sharded_runs_equal_one_run_and_resume_after_a_kill(tmp_path, monkeypatch):
    synthesize(tmp_path / "one", 5, SMALL, progress=False)
    for shard in ("1/2", "0/2"):
        synthesize(tmp_path / "two", 5, SMALL, shard=shard, progress=False)
    same_files(tmp_path / "one", tmp_path / "two")
    # a run killed mid-identity: the half-written staging folder stays behind, later identities are missing
    real = synthesis.write_identity
    calls = {"n": 0}

    def dying(root, item):
        calls["n"] += 1
        if calls["n"] == 3:
            stage = root / f".id_{item['meta']['index']:06d}.part"
            stage.mkdir()
            (stage / "view_00.png").write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
        return real(root, item)

    monkeypatch.setattr(synthesis, "write_identity", dying)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "killed", 5, SMALL, progress=False)
    monkeypatch.setattr(synthesis, "write_identity", real)
    assert len(list((tmp_path / "killed").glob("id_*"))) == 2
    r = synthesize(tmp_path / "killed", 5, SMALL, progress=False)
    assert r["made"] == 3 and r["skipped"] == 2
    same_files(tmp_path / "one", tmp_path / "killed")


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError):
        SynthConfig(style="oil")
    with pytest.raises(InputError):
        SynthConfig(defect_rate=1.5)
    with pytest.raises(InputError):
        synthesize(tmp_path / "x", 2, SMALL, shard="2/2")
    synthesize(tmp_path / "x", 1, SMALL, progress=False)
    with pytest.raises(InputError, match="other settings"):
        synthesize(tmp_path / "x", 1, SynthConfig(views=6, res=48, ssaa=1), progress=False)
    with pytest.raises(InputError, match="not a gen3dface dataset"):
        prune(tmp_path)


def test_janus_filter_finds_injected_back_faces(tmp_path):
    cfg = SynthConfig(views=24, res=128, ssaa=1, defect_rate=0.6, seed=11, mesh_resolution=64)
    synthesize(tmp_path / "ds", 6, cfg, progress=False)
    res = prune(tmp_path / "ds", progress=False)
    j = res["janus_filter"]
    assert j["actual"] > 0
    assert j["recall"] >= 0.6 and j["precision"] >= 0.6, j
    assert json.loads((tmp_path / "ds" / "pruning.json").read_text())["kept"] == res["kept"]


def test_symmetric_appearance_paints_the_face_as_its_mirror_image():
    import torch

    from gen3dface.synth.appearance import triplanar, vary_appearance
    from gen3dface.synth.head_params import sample_head_params
    from gen3dface.synth.heads import build_head

    torch.manual_seed(0)
    pats = [torch.rand(3, 32, 32) for _ in range(3)]
    pts = torch.rand(200, 3) * 2 - 1
    mirrored = pts * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(triplanar(pats, pts, symmetric=True), triplanar(pats, mirrored, symmetric=True))
    assert not torch.allclose(triplanar(pats, pts), triplanar(pats, mirrored), atol=1e-2)
    head = build_head(sample_head_params(11, "photo"), 48)
    for seed in range(4):  # with and without decals over the face
        sym = vary_appearance(head, seed, symmetric=True).texture[:3]
        assert torch.allclose(sym, sym.flip(-1))
        plain = vary_appearance(head, seed).texture[:3]
        assert (plain - plain.flip(-1)).abs().mean() > 0.01


def test_symmetric_appearance_rate_is_checked_and_recorded():
    from gen3dface.synth.synthesis import render_identity

    with pytest.raises(InputError, match="symmetric_appearance"):
        SynthConfig(symmetric_appearance=1.5)
    cfg = SynthConfig(
        views=4, res=32, ssaa=1, mesh_resolution=32, varied_appearance=1.0, symmetric_appearance=1.0
    )
    assert render_identity(cfg, 0)["meta"]["symmetric_appearance"] is True
    plain = SynthConfig(views=4, res=32, ssaa=1, mesh_resolution=32, varied_appearance=1.0)
    assert render_identity(plain, 0)["meta"]["symmetric_appearance"] is False


def test_squircle_rounds_the_skull_and_is_checked_and_recorded():
    import dataclasses

    import numpy as np

    from gen3dface.synth.head_params import EYE_Y, sample_head_params
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.synthesis import identity_heads

    with pytest.raises(InputError, match="squircle"):
        SynthConfig(squircle=1.0)
    p = sample_head_params(11, "photo")
    assert p.squircle == 2.5  # the shipped model's heads

    def reach(params, azimuth_deg):
        """How far the head surface reaches from the vertical axis at the eye line, towards ``azimuth_deg``."""
        v = build_head(params, 64).vertices.numpy()
        az = np.degrees(np.arctan2(v[:, 0], v[:, 2]))
        near = (np.abs(v[:, 1] - EYE_Y - 0.25) < 0.03) & (
            np.abs(az - azimuth_deg) < 4
        )  # the forehead's height
        return float(np.hypot(v[near, 0], v[near, 2]).max())

    round_ = dataclasses.replace(p, squircle=2.0)
    assert reach(round_, 45.0) < reach(p, 45.0) - 0.02  # rounder between the face and the side
    assert abs(reach(round_, 90.0) - reach(p, 90.0)) < 0.02  # the same width
    cfg = SynthConfig(views=4, res=32, ssaa=1, mesh_resolution=32, squircle=2.0)
    assert identity_heads(cfg, 0).params.squircle == 2.0
    assert identity_heads(SynthConfig(views=4, res=32, ssaa=1, mesh_resolution=32), 0).params.squircle == 2.5


def test_hair_side_moves_long_hair_back_beside_the_face_and_is_checked_and_recorded():
    import dataclasses

    import numpy as np

    from gen3dface.synth.head_params import EYE_Y, sample_head_params
    from gen3dface.synth.heads import HAIR, build_head
    from gen3dface.synth.synthesis import identity_heads

    with pytest.raises(InputError, match="hair_side"):
        SynthConfig(hair_side=10.0)
    p = dataclasses.replace(sample_head_params(11, "photo"), hair_style="long")
    assert p.hair_side == 56.0  # the shipped model's heads

    def curtain(params, lo, hi):
        """Hair vertices below the eye line between ``lo`` and ``hi`` degrees of longitude from the front."""
        m = build_head(params, 64)
        v = m.vertices.numpy()[m.labels.numpy() == HAIR]
        az = np.abs(np.degrees(np.arctan2(v[:, 0], v[:, 2])))
        return int(((v[:, 1] < EYE_Y - 0.1) & (az > lo) & (az < hi)).sum())

    back = dataclasses.replace(p, hair_side=80.0)
    assert curtain(p, 60, 75) > 0 and curtain(back, 60, 75) == 0  # the cheek is in view from 67.5 deg round
    assert curtain(back, 95, 180) > 0  # the hair still falls behind
    cfg = SynthConfig(views=4, res=32, ssaa=1, mesh_resolution=32, hair_side=80.0)
    assert identity_heads(cfg, 0).params.hair_side == 80.0


def test_plain_back_keeps_the_face_side_painted_and_paints_the_back_flat():
    import torch

    from gen3dface.synth.appearance import PLAIN_BACK_FADE, plain_behind, random_pattern, triplanar
    from gen3dface.synth.appearance import vary_appearance
    from gen3dface.synth.head_params import HAIR, SKIN, sample_head_params
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.synthesis import identity_heads

    head = build_head(sample_head_params(11, "photo"), 48)
    labels = head.labels.long()
    z = torch.nn.functional.normalize(head.vertices, dim=-1)[:, 2]
    front, back = z > PLAIN_BACK_FADE[1], z < PLAIN_BACK_FADE[0]
    rng = __import__("numpy").random.default_rng(0)
    for _ in range(3):
        paint = triplanar([random_pattern(rng) for _ in range(3)], head.vertices)
        plain = plain_behind(paint, head.vertices, labels)
        assert torch.equal(plain[front], paint[front])
        for part in (SKIN, HAIR):  # one colour per part on the back, a mean of its painted side's colours
            on_back, painted = back & (labels == part), (z > PLAIN_BACK_FADE[0]) & (labels == part)
            assert on_back.any() and painted.any()
            assert plain[on_back].std(0).max() < 1e-5
            lo, hi = paint[painted].min(0).values, paint[painted].max(0).values
            assert ((plain[on_back][0] >= lo - 1e-5) & (plain[on_back][0] <= hi + 1e-5)).all()
    for seed in range(3):
        patterned = vary_appearance(head, seed)
        flat = vary_appearance(head, seed, plain_back=True)
        assert torch.allclose(flat.colors[front], patterned.colors[front])
        assert torch.equal(flat.texture, patterned.texture)  # the face's painting is the front's
        assert flat.colors[back].std(0).sum() < patterned.colors[back].std(0).sum()
    cfg = SynthConfig(views=4, res=32, ssaa=1, mesh_resolution=32, varied_appearance=1.0, plain_back=True)
    patterned_cfg = SynthConfig(**{**cfg.__dict__, "plain_back": False})
    assert not torch.equal(identity_heads(cfg, 0).mesh.colors, identity_heads(patterned_cfg, 0).mesh.colors)


def test_decal_rate_sets_how_often_the_face_is_covered_and_nothing_else():
    import torch

    from gen3dface.synth.appearance import DECAL_RATE, vary_appearance
    from gen3dface.synth.head_params import sample_head_params
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.synthesis import identity_heads

    assert SynthConfig().decal_rate == DECAL_RATE == 0.6  # the shipped model's heads
    for bad in (-0.1, 1.5):
        with pytest.raises(InputError, match="decal_rate"):
            SynthConfig(decal_rate=bad)
    head = build_head(sample_head_params(3, "photo"), 48)
    kept = 0
    for seed in range(8):
        none, always = (
            vary_appearance(head, seed, decal_rate=0.0),
            vary_appearance(head, seed, decal_rate=1.0),
        )
        shipped = vary_appearance(head, seed)
        assert torch.equal(none.colors, always.colors) and torch.equal(none.colors, shipped.colors)
        assert not torch.equal(none.texture, always.texture)  # decals paint over the face
        kept += torch.equal(none.texture, shipped.texture)  # the shipped rate leaves some faces bare
        assert torch.equal(shipped.texture, none.texture) or torch.equal(shipped.texture, always.texture)
    assert 0 < kept < 8
    cfg = SynthConfig(views=4, res=32, ssaa=1, mesh_resolution=32, varied_appearance=1.0, decal_rate=0.0)
    bare = identity_heads(cfg, 0).mesh
    covered = identity_heads(SynthConfig(**{**cfg.__dict__, "decal_rate": 1.0}), 0).mesh
    assert torch.equal(bare.colors, covered.colors) and not torch.equal(bare.texture, covered.texture)


def test_a_dataset_begun_before_a_setting_existed_resumes_at_its_default(tmp_path):
    root = tmp_path / "ds"
    synthesize(root, 2, SMALL, progress=False)
    recorded = json.loads((root / "synth_config.json").read_text())
    del recorded["decal_rate"]  # as a folder begun before decal_rate was a setting
    (root / "synth_config.json").write_text(json.dumps(recorded))
    __import__("shutil").rmtree(root / "id_000001")  # and stopped before its second identity
    assert synthesize(root, 2, SMALL, progress=False) == {"made": 1, "skipped": 1, "total": 2}
    with pytest.raises(InputError, match="other settings"):
        synthesize(root, 2, SynthConfig(**{**SMALL.__dict__, "decal_rate": 0.0}), progress=False)
    (root / "synth_config.json").write_text("{not json")
    with pytest.raises(InputError, match="other settings"):
        synthesize(root, 2, SMALL, progress=False)
