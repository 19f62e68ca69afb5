"""The multi-view model: joint vs sequential attention, training, exact resume, save/load."""

import json

import numpy as np
import pytest
import torch

from gen3dface.core.cameras import target_ring
from gen3dface.mesh.facemesh import face_template, tesselation_triangles
from gen3dface.core.profiles import get_profile
from gen3dface.generation.model import Gen3DFaceModel
from gen3dface.volume.grid import voxelize_mesh

TINY = dict(
    unet_config=dict(
        get_profile("smoke").model["unet_config"],
        block_out_channels=(16, 32, 32),
        cross_attention_dim=32,
        attention_head_dim=(1, 2, 2),
        norm_num_groups=8,
    ),
    image_size=32,
    codec="pixel",
    codec_factor=1,
    volume_size=8,
    volume_channels=4,
    frustum_depth=8,
    n_views=4,
)


def tiny(**kw) -> Gen3DFaceModel:
    torch.manual_seed(0)
    return Gen3DFaceModel(**{**TINY, **kw})


def tiny_data(n_ids: int, S: int = 32, N: int = 4):
    """Training data for :func:`tiny`: ``n_ids`` random flat-colour identities, N identical views each, the face
    template as every input's mesh."""
    from gen3dface.training.data import TrainData

    g = torch.Generator().manual_seed(0)
    base = torch.rand(n_ids, 1, 3, S, S, generator=g)
    return TrainData(
        targets=(base.expand(n_ids, N, 3, S, S) * 255).to(torch.uint8).contiguous(),
        inputs=(base[:, 0] * 255).to(torch.uint8),
        input_identity=torch.arange(n_ids),
        vertices=torch.as_tensor(face_template())[None].expand(n_ids, -1, -1).contiguous(),
        faces=torch.as_tensor(tesselation_triangles()).long(),
        cameras=target_ring(N, image_size=S),
        identities=list(range(n_ids)),
    )


def inputs(model, B=1, N=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    S = model.image_size
    ring = target_ring(N, image_size=S)
    cams = ring.batched(B)
    vox = voxelize_mesh(
        torch.as_tensor(face_template()),
        torch.as_tensor(tesselation_triangles()).long(),
        model.config.volume_size,
    )
    x = torch.randn(B, N, *model.view_shape, generator=g)
    y = {"latent": torch.randn(B, *model.view_shape, generator=g), "mesh_voxels": [vox] * B}
    return x, torch.full((B,), 400), y, cams


def perturb_dwa(model):
    for m in model.dwa.values():
        torch.nn.init.normal_(m.out.weight, std=0.5)


@torch.no_grad()
def test_joint_attention_ties_views_and_sequential_does_not():
    for attention in ("joint", "sequential"):
        m = tiny(attention=attention).eval()
        x, t, y, cams = inputs(m)
        x2 = x.clone()
        x2[:, 3] += torch.randn_like(x2[:, 3])
        # depth-wise attention starts at zero: the volume has no say yet, only attention can tie views
        change = (m(x2, t, y, cams)[:, 0] - m(x, t, y, cams)[:, 0]).abs().max().item()
        if attention == "joint":
            assert change > 1e-3
        else:
            assert change == 0.0
        perturb_dwa(m)  # with the volume switched on, views are tied through it in both modes
        assert (m(x2, t, y, cams)[:, 0] - m(x, t, y, cams)[:, 0]).abs().max().item() > 1e-4


@torch.no_grad()
def test_guidance_shares_one_volume_between_its_halves():
    from gen3dface.generation.diffusion import batch_cat, null_like, predict_noise

    m = tiny().eval()
    perturb_dwa(m)  # the volume must matter for the test to mean anything
    x, t, y, cams = inputs(m)
    x2, t2 = torch.cat([x, x]), torch.cat([t, t])
    y2, c2 = batch_cat(y, null_like(y)), batch_cat(cams, cams)
    full = m(x2, t2, y2, c2)
    shared = m(x2, t2, y2, c2, volume_groups=2)
    assert torch.allclose(full, shared, atol=1e-5) and (full[0] - full[1]).abs().max() > 1e-3
    eps = predict_noise(m, x, t, y, cams, guidance=3.0)  # takes the shared path
    assert torch.allclose(eps, full[1:] + 3.0 * (full[:1] - full[1:]), atol=1e-4)
    with pytest.raises(Exception):
        m(x2, t2, y2, c2, volume_groups=3)


@torch.no_grad()
def test_sequential_call_per_view_equals_one_sequential_call():
    m = tiny(attention="sequential").eval()
    perturb_dwa(m)
    x, t, y, cams = inputs(m, B=2)
    full = m(x, t, y, cams)
    for v in range(4):
        one = m(x, t, y, cams, views=torch.tensor([v]))
        torch.testing.assert_close(one[:, 0], full[:, v], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_save_load_round_trip_is_exact(tmp_path):
    m = tiny().eval()
    perturb_dwa(m)
    x, t, y, cams = inputs(m)
    m.save_pretrained(tmp_path / "m", safe_serialization=True)
    assert (tmp_path / "m" / "config.json").exists()
    assert list((tmp_path / "m").glob("*.safetensors")) and not list((tmp_path / "m").glob("*.bin"))
    m2 = Gen3DFaceModel.from_pretrained(tmp_path / "m").eval()
    s1, s2 = m.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)  # every weight, bit for bit
    # the same numbers out (up to float rounding: loaded tensors may sit differently in memory)
    torch.testing.assert_close(m(x, t, y, cams), m2(x, t, y, cams), atol=1e-5, rtol=1e-5)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["attention"] == "joint"


def test_pixel_codec_is_lossless():
    m = tiny(codec_factor=2, image_size=32)
    img = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    z = m.encode(img)
    assert z.shape == (2, 3, 12, 16, 16)
    assert torch.equal(m.decode(z), img)


def test_bad_configs_are_refused():
    from gen3dface.core.errors import InputError

    with pytest.raises(InputError):
        tiny(attention="both")
    with pytest.raises(InputError):
        tiny(image_size=36)
    with pytest.raises(InputError):
        tiny(prediction_type="sample")
    with pytest.raises(InputError):  # epsilon is undefined where no signal is left
        tiny(zero_terminal_snr=True)


def test_from_stable_diffusion_loads_unet_and_widens_conv_in(tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    unet.save_pretrained(tmp_path / "sd" / "unet")
    vae.save_pretrained(tmp_path / "sd" / "vae")
    m = Gen3DFaceModel.from_stable_diffusion(
        tmp_path / "sd", image_size=64, volume_size=8, volume_channels=4, frustum_depth=8, frustum_size=8
    )
    w = m.unet.conv_in.weight
    assert w.shape[1] == 8 and torch.equal(w[:, :4], unet.conv_in.weight) and not w[:, 4:].any()
    assert torch.equal(
        m.unet.down_blocks[0].attentions[0].proj_in.weight, unet.down_blocks[0].attentions[0].proj_in.weight
    )
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    z = m.encode(img)
    assert z.shape == (1, 4, 8, 8) and m.decode(z).shape == (1, 3, 64, 64)
    x, t, y, cams = inputs(m, N=2)
    assert m(x, t, y, cams).shape == (1, 2, 4, 8, 8)


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    from gen3dface.training.loop import TrainConfig, train

    data = tiny_data(3)
    cfg = TrainConfig(
        steps=6, batch_size=2, lr_backbone=1e-3, lr_new=1e-3, warmup_steps=1, log_every=1, checkpoint_every=3
    )
    whole = train(tiny(), data, tmp_path / "a", cfg, progress=False)
    first = train(tiny(), data, tmp_path / "b", cfg, stop_after=3, progress=False)
    assert (
        len(first) == 3
        and (tmp_path / "b" / "checkpoint").exists()
        and not (tmp_path / "b" / "model").exists()
    )
    rest = train(tiny(), data, tmp_path / "b", cfg, progress=False)
    assert [r["loss"] for r in rest] == [r["loss"] for r in whole]
    lines = (tmp_path / "b" / "losses.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in lines] == [r["loss"] for r in whole]
    assert (tmp_path / "b" / "model" / "config.json").exists()


def test_view_weights_weigh_each_target_view_in_the_loss():
    from gen3dface.core.errors import InputError
    from gen3dface.generation.diffusion import q_sample
    from gen3dface.training.loop import TrainConfig, azimuth_weights, draw_batch, training_loss

    data = tiny_data(3)
    m = tiny(prediction_type="epsilon")
    sch = m.noise_scheduler("ddpm")
    draw = draw_batch(data, torch.Generator().manual_seed(0), 2, 1000, 0.0, (4, *m.view_shape))
    plain = training_loss(m, sch, data, draw, 0, 2)
    assert torch.allclose(training_loss(m, sch, data, draw, 0, 2, (2.0, 2.0, 2.0, 2.0)), plain)  # mean 1
    # one view alone: its own squared error (the model and its inputs are deterministic)
    with torch.no_grad():
        batch = data.batch(draw["rows"])
        x0 = m.encode(batch["targets"])
        y = m.condition(batch["input"], batch["vertices"], data.faces, cameras=batch["cameras"])
        x_t, noise = q_sample(sch, x0, draw["t"], noise=draw["noise"])
        err = (m(x_t, draw["t"], y, batch["cameras"]) - noise).pow(2).flatten(2).mean(2)  # (B, N)
    for v in range(4):
        w = tuple(1.0 if k == v else 0.0 for k in range(4))
        assert torch.allclose(training_loss(m, sch, data, draw, 0, 2, w), err[:, v].mean())
    ring = target_ring(16, image_size=32)
    w = azimuth_weights(ring, 3.0)
    side = [abs(float(a)) for a, x in zip(ring.azimuth_deg, w) if x == 3.0]
    assert sorted(side) == [45.0, 45.0, 67.5, 67.5, 90.0, 90.0, 112.5, 112.5]
    for bad in [(1.0, -1.0), (0.0, 0.0), (1.0, float("nan"))]:
        with pytest.raises(InputError):
            TrainConfig(view_weights=bad)


@pytest.mark.parametrize("prediction,zero_snr", [("epsilon", False), ("v_prediction", True)])
def test_a_training_step_lowers_the_loss_on_a_fixed_batch(prediction, zero_snr):
    from gen3dface.generation.diffusion import loss_target, q_sample
    from gen3dface.training.loop import TrainConfig, parameter_groups

    m = tiny(prediction_type=prediction, zero_terminal_snr=zero_snr)
    x0 = torch.rand(2, 4, *m.view_shape) * 2 - 1
    _, _, y, cams = inputs(m, B=2)
    sch = m.noise_scheduler("ddpm")
    assert sch.config.prediction_type == prediction and (float(sch.alphas_cumprod[-1]) == 0) == zero_snr
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([999, 400])  # the last step: pure noise under a zero-terminal-SNR schedule
    noise = torch.randn(x0.shape, generator=g)
    x_t, _ = q_sample(sch, x0, t, noise=noise)
    target = loss_target(sch, x0, noise, t)
    opt = torch.optim.AdamW(parameter_groups(m, TrainConfig(lr_backbone=1e-3, lr_new=1e-3)))
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.mse_loss(m(x_t, t, y, cams), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[1] < losses[0] and losses[2] < losses[0]
    assert np.isfinite(losses).all()


def test_training_data_from_a_synth_folder_honours_pruning(tmp_path):
    from gen3dface.synth.synthesis import SynthConfig, synthesize
    from gen3dface.training.data import load_train_data, build_training_inputs

    root = tmp_path / "synth"
    synthesize(root, 3, SynthConfig(views=12, res=96, seed=4, ssaa=1), progress=False)
    prep = build_training_inputs(root, per_identity=1, crop_size=32, progress=False)
    assert sorted(set(prep.identity.tolist())) == [0, 1, 2] and prep.source["kind"] == "folder"
    data = load_train_data(prep, 32, 4, progress=False)
    assert data.targets.shape == (3, 4, 3, 32, 32) and data.inputs.shape == (3, 3, 32, 32)
    assert data.vertices.shape[1:] == (468, 3)
    gt = build_training_inputs(
        root, identities=[0], per_identity=1, crop_size=32, progress=False, meshes="ground_truth"
    )
    assert gt.vertices.shape == (1, 468, 3) and not np.allclose(gt.vertices[0], prep.vertices[0])
    # pruning: identity 1 dropped by the identity filter, identity 2 has a Janus-rejected view
    records = [
        {"folder": "id_000000", "kept": True, "janus_rejected": []},
        {"folder": "id_000001", "kept": False, "janus_rejected": []},
        {"folder": "id_000002", "kept": True, "janus_rejected": [0]},
    ]
    (root / "pruning.json").write_text(json.dumps({"identities": records, "kept": 2}))
    assert build_training_inputs(root, per_identity=1, crop_size=32, progress=False).identity.tolist() == [0]


def test_ground_truth_meshes_for_the_ablation_lie_on_the_true_surface():
    from gen3dface.mesh.surface import MeshSurface, head_surface
    from gen3dface.synth.synthesis import SynthConfig, render_identity
    from gen3dface.training.data import build_training_inputs

    src = {"kind": "procedural", "synth": {"views": 12, "res": 96, "seed": 3, "ssaa": 1}, "input_res": 256}
    est = build_training_inputs(src, identities=[0], per_identity=1, crop_size=32, progress=False)
    gt = build_training_inputs(
        src, identities=[0], per_identity=1, crop_size=32, progress=False, meshes="ground_truth"
    )
    assert gt.source["meshes"] == "ground_truth" and est.source["meshes"] == "estimated"
    assert (
        gt.vertices.shape == est.vertices.shape and (gt.faces == est.faces).all()
    )  # same topology, same view
    assert gt.view.tolist() == est.view.tolist()
    head = render_identity(SynthConfig(views=12, res=96, seed=3, ssaa=1), 0, views=[0])["mesh"]
    surface = MeshSurface(*head_surface(head))
    width = 2 * head.params.skull_width
    d_gt = surface.closest(gt.vertices[0])[1] / width
    d_est = surface.closest(est.vertices[0])[1] / width
    assert d_gt.max() < 1e-6 and d_est.mean() > 5 * max(d_gt.mean(), 1e-9)
    with pytest.raises(Exception, match="meshes"):
        build_training_inputs(
            src, identities=[0], per_identity=1, crop_size=32, progress=False, meshes="flame"
        )
