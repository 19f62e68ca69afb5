"""gen3dface.recon: quality on ground-truth renders, views folders, mesh/turntable export, CLI errors."""

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from gen3dface.core import cameras
from gen3dface.synth import heads, render
from gen3dface.recon.export import extract_mesh, save_turntable
from gen3dface.recon.field import SDFGrid, initial_field
from gen3dface.recon.fit import reconstruct_views
from gen3dface.evaluation.image_metrics import psnr
from gen3dface.recon.quality import chamfer_distance
from gen3dface.recon.rendering import ray_box, render_field
from gen3dface.recon.report import write_report
from gen3dface.recon.views import load_views, views_from_arrays
from gen3dface.app.cli import main
from gen3dface.core.errors import InputError
from gen3dface.core.images import save_png, to_uint8
from gen3dface.synth.synthesis import SynthConfig, synthesize

RES = 64
#: Thresholds set with margin from measured values (smoke profile, 16 views at 64 px, procedural head seed 3,
#: CPU): Chamfer 0.011-0.012 head widths, held-out PSNR 26.0-26.1 dB; over seeds 0-3 (photo and toon) the
#: Chamfer ranged 0.012-0.017 and the held-out PSNR 22.8-26.1 dB.
MAX_CHAMFER_HW = 0.02
MIN_HELDOUT_PSNR = 23.5


def head_views(seed: int, cams: cameras.Cameras):
    head = heads.build_head(heads.sample_head_params(seed), 96)
    out = render.render(head, cams, ssaa=2)
    return head, to_uint8(out["rgb"][0]), out["alpha"][0, :, 0]


@pytest.fixture(scope="module")
def fitted():
    ring = cameras.target_ring(16, image_size=RES)
    head, rgb, alpha = head_views(3, ring)
    views = views_from_arrays(rgb, ring, alpha)
    result = reconstruct_views(views, profile="smoke", device="cpu", progress=False)
    return head, result


def test_quality_on_ground_truth_renders(fitted):
    head, result = fitted
    # held-out views: between the ring's azimuths, 15 degrees above and below it (never used in fitting)
    held = cameras.orbit_cameras(
        cameras.ring_azimuths(8) + 22.5, torch.tensor([15.0, -15.0]).repeat(4), image_size=RES
    )
    _, gt, _ = head_views(3, held)
    heldout_psnr = psnr(result.render(held)["rgb"], gt / 255.0, pooled=True)
    seen_by = cameras.synthesis_grid(n_azimuth=8, elevations=(-30.0, 0.0, 30.0), image_size=128)
    ch = chamfer_distance(result.mesh, head, cameras=seen_by, n_points=20000)
    report = f"Chamfer {ch['chamfer_hw']:.4f} head widths, held-out PSNR {heldout_psnr:.2f} dB"
    assert ch["chamfer_hw"] < MAX_CHAMFER_HW, report
    assert heldout_psnr > MIN_HELDOUT_PSNR, report
    assert result.history[-1]["psnr"] > result.history[0]["psnr"] + 3, (
        "fitting should improve the photometric fit"
    )
    assert result.mesh.is_watertight and result.mesh.volume > 0  # closed, outward faces


def test_fit_beats_its_starting_point(fitted):
    """The fitted surface is closer to the truth than the visual hull it starts from."""
    head, result = fitted
    seen_by = cameras.synthesis_grid(n_azimuth=8, elevations=(-30.0, 0.0, 30.0), image_size=96)
    hull = extract_mesh(initial_field(result.views, result.field.R), 96)
    fit_mesh = extract_mesh(result.field, 96)
    c_hull = chamfer_distance(hull, head, cameras=seen_by, n_points=10000)["chamfer_hw"]
    c_fit = chamfer_distance(fit_mesh, head, cameras=seen_by, n_points=10000)["chamfer_hw"]
    assert c_fit < c_hull, (c_fit, c_hull)


@pytest.mark.parametrize("ext", [".glb", ".obj", ".ply"])
def test_mesh_export_round_trip(fitted, tmp_path, ext):
    _, result = fitted
    path = result.save_mesh(tmp_path / f"head{ext}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"head{ext}"]  # no temporary files left
    back = trimesh.load(path, force="mesh", process=False)
    assert len(back.faces) == len(result.mesh.faces)
    assert abs(back.area - result.mesh.area) < 1e-3 * result.mesh.area
    colors = np.asarray(back.visual.vertex_colors)[:, :3]
    assert colors.std() > 5, "vertex colours must survive the round trip"


def test_turntable_and_report(fitted, tmp_path):
    _, result = fitted
    frames = result.turntable(n_frames=6, image_size=32, geometry=True)
    assert frames.shape == (6, 32, 64, 3) and 0 <= frames.min() and frames.max() <= 1
    gif = save_turntable(frames, tmp_path / "t.gif", fps=6)
    assert Image.open(gif).n_frames == 6
    mp4 = save_turntable(frames, tmp_path / "t.mp4", fps=6)
    assert mp4.stat().st_size > 0
    write_report(result, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["views"] == 16


def test_rendering_pieces():
    o = torch.tensor([[0.0, 0.0, 4.0], [0.0, 3.0, 4.0]])
    d = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]), dim=-1)
    near, far = ray_box(o, d)
    assert torch.allclose(near[0], torch.tensor(3.0)) and torch.allclose(far[0], torch.tensor(5.0))
    assert near[1] >= far[1]  # misses the cube
    # a sphere of radius 0.5 seen head on: opaque in the middle, empty outside, depth at its surface
    field = SDFGrid.sphere(48, radius=0.5)
    r = render_field(field, cameras.orbit_cameras([0.0], 0.0, image_size=32), s=600.0)
    assert r["opacity"][0, 16, 16] > 0.99 and r["opacity"][0, 0, 0] < 0.01
    assert abs(r["depth"][0, 16, 16] - 3.5) < 0.02


def test_views_folder_from_synth(tmp_path):
    synthesize(tmp_path / "ds", 1, SynthConfig(views=8, res=48, ssaa=1, mesh_resolution=48), progress=False)
    views = load_views(tmp_path / "ds" / "id_000000")
    assert len(views) == 8 and views.rgb.shape == (8, 48, 48, 3) and views.mask_source == "files"
    assert views.gt_mesh is not None and views.gt_mesh.name == "mesh.ply"
    assert torch.allclose(views.background, torch.ones(3), atol=0.02)
    with pytest.raises(InputError, match="identity folder"):
        load_views(tmp_path / "ds")


def generate_style_folder(root, rgba: bool = False):
    """What `generate` writes: view_XX.png + cameras.json, no masks."""
    ring = cameras.target_ring(8, image_size=48)
    _, rgb, alpha = head_views(1, ring)
    root.mkdir()
    for k, im in enumerate(rgb):
        if rgba:
            im = np.concatenate([im, (alpha[k, ..., None].numpy() * 255 + 0.5).astype(np.uint8)], -1)
        save_png(root / f"view_{k:02d}.png", im)
    ring.save(root / "cameras.json")
    return alpha


@pytest.mark.parametrize("rgba", [False, True])
def test_masks_derived_without_mask_files(tmp_path, rgba):
    alpha = generate_style_folder(tmp_path / "gen", rgba)
    views = load_views(tmp_path / "gen")
    assert views.mask_source == ("alpha" if rgba else "background")
    a, b = views.mask > 0.5, alpha > 0.5
    iou = float((a & b).sum() / (a | b).sum())
    assert iou > 0.95, iou


def test_arrays_in_the_models_convention():
    ring = cameras.target_ring(4, image_size=32)
    _, rgb, alpha = head_views(2, ring)
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1  # (V, 3, H, W) in [-1, 1]
    views = views_from_arrays(x[None], ring, alpha)
    assert torch.allclose(views.rgb, torch.from_numpy(rgb).float() / 255, atol=1e-5)
    with pytest.raises(InputError, match="cameras"):
        views_from_arrays(x, ring[:3])


def test_cli_reconstructs(tmp_path, capsys):
    generate_style_folder(tmp_path / "gen")
    out = tmp_path / "out" / "head.ply"
    rc = main(
        [
            "reconstruct",
            str(tmp_path / "gen"),
            "-o",
            str(out),
            "--profile",
            "smoke",
            "--iters",
            "10,10",
            "--quiet",
            "--device",
            "cpu",
            "--turntable",
            str(tmp_path / "out" / "t.gif"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert trimesh.load(out, force="mesh").faces.shape[1] == 3
    assert (tmp_path / "out" / "t.gif").is_file()
    assert "wrote" in capsys.readouterr().out


def bad_folders(tmp_path):
    ok = tmp_path / "ok"
    generate_style_folder(ok)
    cases = {"missing": tmp_path / "nope"}
    (tmp_path / "afile").write_text("x")
    cases["not_a_folder"] = tmp_path / "afile"
    (tmp_path / "empty").mkdir()
    cases["no_cameras"] = tmp_path / "empty"
    for name, change in [
        ("count_mismatch", lambda d: (d / "view_07.png").unlink()),
        ("bad_image", lambda d: (d / "view_03.png").write_bytes(b"\x89PNG broken")),
        ("bad_json", lambda d: (d / "cameras.json").write_text("{not json")),
        ("mask_mismatch", lambda d: save_png(d / "mask_00.png", np.zeros((48, 48), np.uint8))),
    ]:
        d = tmp_path / name
        d.mkdir()
        for f in ok.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        change(d)
        cases[name] = d
    return cases, ok


def test_cli_bad_inputs_exit_2_with_one_line_and_no_output(tmp_path, capsys):
    cases, ok = bad_folders(tmp_path)
    cases["wrong_extension"] = ok
    cases["bad_iters"] = ok
    for name, folder in cases.items():
        out = tmp_path / "outs" / f"{name}.{'stl' if name == 'wrong_extension' else 'glb'}"
        extra = ["--iters", "5"] if name == "bad_iters" else []
        rc = main(["reconstruct", str(folder), "-o", str(out), "--profile", "smoke", "--quiet", *extra])
        err = capsys.readouterr().err
        assert rc == 2, (name, err)
        assert err.startswith("gen3dface: error: ") and err.count("\n") == 1, (name, err)
        assert not out.exists() and not (tmp_path / "outs").exists(), name


def test_cli_reconstruct_never_overwrites_its_inputs_nor_writes_one_file_twice(tmp_path, capsys):
    generate_style_folder(tmp_path / "gen")
    cams = (tmp_path / "gen" / "cameras.json").read_bytes()
    base = ["reconstruct", str(tmp_path / "gen"), "-o", str(tmp_path / "h.glb"), "--quiet", "--iters", "5,5"]
    for extra in (
        ["--summary", str(tmp_path / "gen" / "cameras.json")],
        ["--summary", str(tmp_path / "h.glb")],
    ):
        rc = main([*base, *extra])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("gen3dface: error: ") and err.count("\n") == 1, err
    assert (tmp_path / "gen" / "cameras.json").read_bytes() == cams
    assert not (tmp_path / "h.glb").exists()


def test_cli_reconstruct_writes_all_its_files_or_none(tmp_path, capsys, monkeypatch):
    from gen3dface.recon import fit

    generate_style_folder(tmp_path / "gen")
    real = fit.reconstruct_views

    def failing_turntable(*a, **k):
        result = real(*a, **k)
        result.save_turntable = lambda path: (_ for _ in ()).throw(OSError("no video writer"))
        return result

    monkeypatch.setattr(fit, "reconstruct_views", failing_turntable)
    out = tmp_path / "o"
    args = ["reconstruct", str(tmp_path / "gen"), "-o", str(out / "h.glb"), "--quiet", "--iters", "5,5"]
    with pytest.raises(OSError):
        main([*args, "--summary", str(out / "s.json"), "--turntable", str(out / "t.gif")])
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())
