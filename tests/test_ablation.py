"""The ablation harness end to end on the smoke model: evaluation sets, generation per arm (joint and
sequential samplers, own and swapped meshes), lossless mosaics, metrics and the paper-layout tables."""

import numpy as np
import pytest

from gen3dface.evaluation import ablation
from gen3dface.core.errors import InputError
from gen3dface.generation.model import Gen3DFaceModel
from gen3dface.training.data import build_training_inputs


def _src(seed, style="photo"):
    return {
        "kind": "procedural",
        "input_res": 192,
        "synth": {"views": 24, "res": 64, "seed": seed, "ssaa": 1, "style": style, "mesh_resolution": 48},
    }


@pytest.fixture(scope="module")
def sets():
    est = build_training_inputs(_src(2), [0, 1], per_identity=1, crop_size=64, progress=False)
    gt = build_training_inputs(
        _src(2), [0, 1], per_identity=1, crop_size=64, meshes="ground_truth", progress=False
    )
    ood = [build_training_inputs(_src(7, "clay"), [0], per_identity=1, crop_size=64, progress=False)]
    with pytest.raises(InputError, match="one input per identity"):
        ablation.build_eval_sets(
            build_training_inputs(_src(2), [0], per_identity=2, crop_size=64, progress=False),
            gt,
            ood,
            image_size=64,
            n_views=8,
        )
    return ablation.build_eval_sets(est, gt, ood, image_size=64, n_views=8)


def test_eval_sets_hold_inputs_meshes_and_ground_truth(sets):
    assert sets["indomain_inputs"].shape == (2, 64, 64, 3) and sets["indomain_inputs"].dtype == np.uint8
    assert sets["indomain_gt"].shape == (2, 8, 64, 64, 3)
    assert sets["indomain_vertices"].shape == sets["indomain_vertices_gt"].shape
    assert not np.allclose(sets["indomain_vertices"], sets["indomain_vertices_gt"])  # the GT meshes differ
    assert sets["ood_inputs"].shape == (1, 64, 64, 3) and list(sets["ood_style"]) == ["clay"]
    assert sets["indomain_gt"].std() > 10  # real renders, not blanks


def test_arms_generate_score_and_tabulate(sets, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    results = {}
    for arm in ("joint", "sequential", "gt_mesh"):
        model = Gen3DFaceModel.from_profile("smoke", attention=ablation.ARMS[arm]["attention"]).eval()
        views = ablation.arm_views(model, arm, sets, steps=2, guidance=2.0, batch=2)
        assert set(views) == set(ablation.arm_sets(arm))  # swapped meshes only for the mesh-prior arms
        assert views["indomain"].shape == (2, 8, 64, 64, 3) and views["ood"].shape == (1, 8, 64, 64, 3)
        # a lossless round trip through the mosaic the GPU run sends back
        ablation.save_mosaic(tmp_path / f"{arm}.png", views["indomain"])
        np.testing.assert_array_equal(ablation.load_mosaic(tmp_path / f"{arm}.png", 8), views["indomain"])
        if arm == "joint":  # (scoring is the slow part on a CPU: once is enough here)
            results[arm] = ablation.arm_metrics(views, sets)
    r = results["joint"]["indomain"]["metrics"]
    assert 0 < r["psnr"]["value"] < 60 and r["psnr"]["n"] == 2 * 8
    results["sequential"] = results["joint"]
    md = ablation.ablation_markdown(results)
    assert "Table 4" in md and "| yes (joint) |" in md and "55.4901" in md  # the paper's number beside ours
    assert (
        "| no (sequential) |" in md and "| w/o data pruning | — |" in md
    )  # an arm not run is a dash, not a number


def test_the_shipped_report_is_the_shipped_results():
    """data/ablation/ablation.md is what ablation_report makes of data/ablation/ablation.json."""
    data = ablation.shipped_results()
    assert set(ablation.PROTOCOLS) <= set(data) and set(data["finetune"]) == set(ablation.ARMS)
    assert ablation.ablation_report(data) == (ablation.SHIPPED / "ablation.md").read_text()


def test_each_arm_gets_its_sampler_and_meshes(sets, monkeypatch):
    calls = []
    monkeypatch.setattr(
        ablation,
        "generate_set",
        lambda model, inputs, vertices, faces, sampler, **kw: (
            calls.append((sampler, vertices)) or np.zeros((len(inputs), 1, 1, 1, 3), np.uint8)
        ),
    )
    for arm in ("joint", "sequential", "gt_mesh"):
        ablation.arm_views(None, arm, sets)
    assert (
        len(calls) == 3 + 2 + 3
    )  # joint: indomain, ood, swapped; sequential: no swapped; gt_mesh: all three
    (s_in, v_in), (_, v_ood), (_, v_sw) = calls[:3]
    assert s_in == "joint" and calls[3][0] == calls[4][0] == "sequential" and calls[5][0] == "joint"
    np.testing.assert_array_equal(v_in, sets["indomain_vertices"])
    np.testing.assert_array_equal(v_ood, sets["ood_vertices"])
    np.testing.assert_array_equal(
        v_sw, np.roll(sets["indomain_vertices"], 1, axis=0)
    )  # another identity's mesh
    np.testing.assert_array_equal(
        calls[5][1], sets["indomain_vertices_gt"]
    )  # gt_mesh: trained and tested on GT
    np.testing.assert_array_equal(calls[6][1], sets["ood_vertices"])  # ... but OOD inputs only have estimates
    np.testing.assert_array_equal(calls[7][1], np.roll(sets["indomain_vertices_gt"], 1, axis=0))


def test_an_arm_run_saved_by_notebook_08_is_gathered_back(tmp_path):
    from gen3dface.evaluation.ablation import ARMS, arm_table, collect_arm_runs, load_mosaic, save_arm_run

    rng = np.random.default_rng(0)
    views = {
        "indomain": rng.integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8),
        "ood": rng.integers(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8),
    }
    metrics = {
        "ood": {"metrics": {"fid": {"value": 12.5}}},
        "indomain": {"metrics": {"psnr": {"value": 20.0}}},
    }
    record = {"arm": "sequential", "steps": 3, "losses": [{"step": 3, "loss": 0.5}]}
    save_arm_run(tmp_path, "sequential", views, metrics, record, tag="ft_")
    for name, v in views.items():  # lossless
        np.testing.assert_array_equal(load_mosaic(tmp_path / f"ft_sequential_{name}", 4), v)
    results, records = collect_arm_runs(tmp_path, "ft_")
    assert list(results) == ["sequential"] and results["sequential"] == metrics and records == [record]
    assert collect_arm_runs(tmp_path, "") == ({}, [])
    table = arm_table(metrics)
    assert "| ood | 12.5 |" in table and "| indomain | — |" in table
    assert set(ARMS) == {"joint", "sequential", "no_pruning", "gt_mesh"}
