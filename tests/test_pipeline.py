"""Photo -> views: the pipeline and `gen3dface generate` end to end on CPU with a tiny model, and the shipped model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gen3dface.app.cli import main
from gen3dface.generation.model import Gen3DFaceModel
from gen3dface.generation.pipeline import DEFAULT_CHECKPOINT, Gen3DFacePipeline, contact_sheet
from gen3dface.core.samples import sample_photo

from test_model import TINY  # the tiny model config, written once


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    Gen3DFaceModel(**TINY).save_pretrained(path, safe_serialization=True)
    return path


def test_pipeline_generates_views_of_a_photo(tiny_checkpoint):
    pipe = Gen3DFacePipeline.from_checkpoint(tiny_checkpoint)
    out = pipe(sample_photo("astronaut"), steps=2, progress=False)
    assert out.views.shape == (4, 32, 32, 3) and out.views.dtype == np.uint8
    assert out.input_view.shape == (32, 32, 3) and len(out.cameras) == 4
    assert len(out.mesh.vertices) == 468
    again = pipe(sample_photo("astronaut"), steps=2, progress=False)
    assert np.array_equal(out.views, again.views)  # seeded
    other = pipe(sample_photo("astronaut"), steps=2, seed=1, progress=False)
    assert not np.array_equal(out.views, other.views)
    seq = pipe(sample_photo("astronaut"), steps=2, sampler="sequential", progress=False)
    assert seq.views.shape == out.views.shape
    assert contact_sheet(out.views, out.input_view, columns=3).shape == (64, 96, 3)


def test_a_batch_of_photos_equals_one_call_per_photo(tiny_checkpoint):
    pipe = Gen3DFacePipeline.from_checkpoint(tiny_checkpoint)
    preps = [pipe.prepare(sample_photo(k)) for k in ("astronaut", "grace_hopper")]
    batch = pipe.generate_batch(preps, steps=3)
    for prep, got in zip(preps, batch):
        alone = pipe(None, prepared=prep, steps=3, progress=False)
        diff = np.abs(alone.views.astype(int) - got.views.astype(int))
        assert (
            diff.max() <= 2 and diff.mean() < 0.05
        )  # the same noise and condition; only summation order differs
        assert np.array_equal(alone.input_view, got.input_view)
    assert not np.array_equal(batch[0].views, batch[1].views)
    assert pipe.generate_batch([], steps=3) == []
    from gen3dface.core.errors import InputError

    with pytest.raises(InputError):
        pipe.generate_batch(preps, steps=0)


def test_generate_views_from_conditioned_tensors_of_an_in_memory_model(tiny_checkpoint):
    from gen3dface.core.errors import InputError
    from gen3dface.core.images import to_uint8

    pipe = Gen3DFacePipeline.from_checkpoint(tiny_checkpoint)
    preps = [pipe.prepare(sample_photo(k)) for k in ("astronaut", "grace_hopper")]
    batch = pipe.generate_batch(preps, steps=2)
    mem = Gen3DFacePipeline.from_model(Gen3DFaceModel.from_pretrained(tiny_checkpoint).eval())
    images = torch.cat([p["input"] for p in preps])
    vertices = np.stack([p["mesh"].vertices for p in preps])
    faces = preps[0]["mesh"].faces
    views = pipe.generate_views(images, vertices, faces, steps=2)
    assert views.shape == (2, 4, 32, 32, 3) and views.dtype == np.uint8
    for got, want in zip(views, batch):
        assert np.array_equal(got, want.views)  # the same path: generate_batch calls generate_views
    diff = np.abs(mem.generate_views(images, vertices, faces, steps=2).astype(int) - views.astype(int))
    assert (
        diff.max() <= 2 and diff.mean() < 0.05
    )  # from_checkpoint's channels-last UNet sums in another order
    u8 = mem.generate_views(to_uint8(images), torch.as_tensor(vertices), torch.as_tensor(faces), steps=2)
    assert np.abs(u8.astype(int) - views.astype(int)).max() <= 8  # only the input's rounding to uint8 differs
    assert mem.generate_views(images[:0], vertices[:0], faces, steps=2).shape == (0, 4, 32, 32, 3)
    with pytest.raises(InputError):
        mem.generate_views(images, vertices, faces, steps=2, generator=torch.Generator())
    with pytest.raises(InputError):
        mem.generate_views(images, vertices, faces, steps=2, guidance=-1)


def test_generate_cli_writes_views_sheet_cameras_and_mesh(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "gen"
    photo = Path(sample_photo("grace_hopper"))
    assert (
        main(
            [
                "generate",
                str(photo),
                "-o",
                str(out),
                "--checkpoint",
                str(tiny_checkpoint),
                "--steps",
                "2",
                "--quiet",
                "--mesh",
            ]
        )
        == 0
    )
    names = {p.name for p in out.iterdir()}
    assert {f"view_{k:02d}.png" for k in range(4)} <= names
    assert {
        "contact_sheet.png",
        "cameras.json",
        "input.png",
        "input_mesh.obj",
        "input_mesh.json",
        "generate.json",
        "head.glb",
        "turntable.gif",
    } <= names
    from gen3dface.core.cameras import Cameras

    assert len(Cameras.load(out / "cameras.json")) == 4
    rec = json.loads((out / "generate.json").read_text())
    assert rec["steps"] == 2 and rec["sampler"] == "joint"
    assert "wrote" in capsys.readouterr().out


def test_generate_cli_bad_inputs_exit_2_and_leave_nothing(tiny_checkpoint, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((200, 200, 3), 200, np.uint8)).save(blank)
    photo = str(sample_photo("astronaut"))
    cases = [
        [str(tmp_path / "missing.jpg")],
        [str(blank)],  # no face
        [photo, "--steps", "0"],
        [photo, "--views", "0"],
        [photo, "--guidance", "-1"],
        [photo, "--checkpoint", str(tmp_path)],  # not a model
        [photo, "--device", "tpu"],
    ]
    for k, extra in enumerate(cases):
        out = tmp_path / f"out{k}"
        args = ["generate", *extra[:1], "-o", str(out), "--quiet"] + extra[1:]
        if "--checkpoint" not in extra:
            args += ["--checkpoint", str(tiny_checkpoint)]
        assert main(args) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gen3dface: error:"), (extra, err)
        assert not out.exists(), extra
        assert not list(tmp_path.glob(f".out{k}*")), extra


def test_the_shipped_small_model_loads_and_is_documented():
    files = {p.name for p in DEFAULT_CHECKPOINT.rglob("*") if p.is_file()}
    assert {"MODEL_CARD.md", "loss_curve.png", "losses.jsonl", "config.json"} <= files
    weights = list(DEFAULT_CHECKPOINT.rglob("*.safetensors"))
    assert len(weights) == 1 and weights[0].stat().st_size <= 60 * 2**20
    pipe = Gen3DFacePipeline.from_checkpoint()
    cfg = pipe.model.config
    assert cfg.n_views == 16 and cfg.image_size >= 64 and cfg.attention == "joint"
    losses = [json.loads(x)["loss"] for x in (DEFAULT_CHECKPOINT / "losses.jsonl").read_text().splitlines()]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[5:15])  # it was trained: the loss fell


@torch.no_grad()
def test_the_shipped_model_reads_the_input_view():
    """At t = T (zero SNR: nothing of the targets left) the shipped model's one-step estimate of the frontal
    view must take its face brightness from the input view: over 6 held-out identities (a dataset seed never
    trained on) the two correlate. The first shipped model (SD's betas) drew one mean head for every input."""
    from gen3dface.training.data import HELDOUT_SEED, build_training_inputs, load_train_data

    net = Gen3DFacePipeline.from_checkpoint().model
    held = build_training_inputs(
        {
            "kind": "procedural",
            "synth": {"views": 48, "res": 128, "seed": HELDOUT_SEED, "ssaa": 1},
            "input_res": 256,
        },
        identities=list(range(6)),
        per_identity=1,
        crop_size=net.image_size,
        progress=False,
    )
    data = load_train_data(held, net.image_size, net.config.n_views, progress=False)
    b = data.batch(torch.arange(len(data)))
    sch = net.noise_scheduler("ddpm")
    assert float(sch.alphas_cumprod[-1]) == 0.0 and sch.config.prediction_type == "v_prediction"
    face = slice(48, 80)  # the centre of a 128 px view: the face in the frontal view and the input crop
    x_T = torch.randn(
        len(data), net.config.n_views, *net.view_shape, generator=torch.Generator().manual_seed(0)
    )
    y = net.condition(
        b["input"], b["vertices"], data.faces, cameras=b["cameras"], input_cameras=b["input_cameras"]
    )
    v = net(x_T, torch.full((len(data),), 999), y, b["cameras"])
    predicted = net.decode(-v)[:, 8, :, face, face].mean((1, 2, 3))  # x0 = -v where alpha_bar = 0
    given = b["input"][:, :, face, face].mean((1, 2, 3))
    assert given.std() > 0.1  # the identities differ in skin tone
    assert torch.corrcoef(torch.stack([predicted, given]))[0, 1] > 0.7
