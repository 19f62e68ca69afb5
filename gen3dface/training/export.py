"""A training run -> a shippable checkpoint folder (the layout of ``data/checkpoints/gen3dface-small``)::

    OUT/model/                  the weights (fp16 safetensors) + config.json: Gen3DFaceModel.from_pretrained,
                                Gen3DFacePipeline.from_checkpoint(OUT)
    OUT/losses.jsonl            the run's loss log
    OUT/samples_joint.png       preview sheets of held-out inputs (:func:`preview_sheet`), when written
    OUT/samples_sequential.png

:func:`run_weights` takes the weights to ship from a run's last checkpoint (the EMA copy when training kept one),
:func:`average_weights` blends them with another model's (a fine-tune averaged with the weights it started from),
:func:`export_checkpoint` writes the folder, :func:`preview_sheet` draws samples beside their inputs and targets.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from gen3dface.core.errors import InputError
from gen3dface.core.images import to_uint8
from gen3dface.core.storage import atomic_dir, atomic_write_text
from gen3dface.generation.model import Gen3DFaceModel
from gen3dface.generation.pipeline import Gen3DFacePipeline
from gen3dface.training.data import TrainData


@torch.no_grad()
def run_weights(model: Gen3DFaceModel, run_dir: str | Path, ema: bool = True) -> Gen3DFaceModel:
    """Load into ``model`` (built like the run's) the weights of ``RUN/checkpoint``
    (:func:`gen3dface.training.loop.train`): the trained weights, replaced by the EMA copy that accelerate saved
    beside them when ``ema`` and training kept one. Returns ``model``."""
    from safetensors.torch import load_file

    ckpt = Path(run_dir) / "checkpoint"
    model.load_state_dict(load_file(ckpt / "model.safetensors"))
    ema_file = sorted(ckpt.glob("custom_checkpoint_*.pkl"))
    if ema and ema_file:
        state = torch.load(ema_file[0], map_location="cpu", weights_only=True)
        if "shadow_params" in state:
            for p, s in zip(model.parameters(), state["shadow_params"]):
                p.copy_(s)
    return model


@torch.no_grad()
def average_weights(model: Gen3DFaceModel, other: Gen3DFaceModel, weight: float = 0.5) -> Gen3DFaceModel:
    """Set ``model``'s weights to ``weight * model + (1 - weight) * other``, parameter by parameter (buffers too;
    a "model soup" of two fine-tunes of one model). A fine-tune averaged with the weights it started from lands
    between the two in what it draws: the shipped model is one (model card, stage 10). Returns ``model``.

    Raises :class:`InputError` when ``weight`` is outside [0, 1] or the two do not have the same parameters and
    shapes (models of different configurations)."""
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"the averaging weight must be in [0, 1], got {weight}")
    mine, theirs = model.state_dict(), other.state_dict()
    shapes = {k: tuple(v.shape) for k, v in mine.items()}
    if shapes != {k: tuple(v.shape) for k, v in theirs.items()}:
        raise InputError(
            "cannot average the weights of models with different parameters (another configuration)"
        )
    for k, v in mine.items():
        if v.is_floating_point():
            v.copy_(weight * v.float() + (1 - weight) * theirs[k].to(v.device).float())
    return model


def split_file(path: Path, mb: float) -> None:
    """Cut a file larger than ``mb`` MiB into ``NAME.part0``, ``NAME.part1``, ... of at most that size (their
    concatenation is the file) and remove it; smaller files are left alone."""
    limit = int(mb * 2**20)
    if path.stat().st_size <= limit:
        return
    with open(path, "rb") as f:
        k = 0
        while chunk := f.read(limit):
            (path.parent / f"{path.name}.part{k}").write_bytes(chunk)
            k += 1
    path.unlink()


def export_checkpoint(
    model: Gen3DFaceModel,
    out: str | Path,
    losses: list[dict] | None = None,
    dtype: torch.dtype = torch.float16,
    split_mb: float | None = None,
) -> Path:
    """Write ``model`` as a checkpoint folder ``out``: ``out/model`` (``save_pretrained`` in ``dtype``:
    safetensors + config.json, written to a staging folder and swapped into place) and, when given, the loss
    log ``out/losses.jsonl``. ``model`` itself is left unchanged. ``split_mb`` cuts weight files larger than so
    many MiB into parts (:func:`split_file`; join them before loading). Returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ship = copy.deepcopy(model).to(dtype)

    def write(stage: Path) -> None:
        ship.save_pretrained(stage, safe_serialization=True)
        if split_mb is not None:
            for f in stage.glob("*.safetensors"):
                split_file(f, split_mb)

    atomic_dir(out / "model", write)
    if losses is not None:
        atomic_write_text(out / "losses.jsonl", "".join(json.dumps(r) + "\n" for r in losses))
    return out


def preview_sheet(
    model: Gen3DFaceModel,
    data: TrainData,
    rows: torch.Tensor,
    steps: int = 50,
    guidance: float = 2.0,
    sampler: str = "joint",
    seed: int = 0,
) -> np.ndarray:
    """Samples of examples ``rows (k,)`` of ``data`` (:meth:`Gen3DFacePipeline.generate_views`), one line per
    example: its input view, the N generated views, the N target views. ``(k * S, (1 + 2N) * S, 3)`` uint8."""
    b = data.batch(rows)
    views = Gen3DFacePipeline.from_model(model).generate_views(
        b["input"],
        b["vertices"],
        data.faces,
        input_cameras=b["input_cameras"],
        steps=steps,
        guidance=guidance,
        sampler=sampler,
        seed=seed,
    )
    grid = np.concatenate(
        [to_uint8(b["input"][:, None]), views, to_uint8(b["targets"])], 1
    )  # (k, 1 + 2N, S, S, 3)
    return np.concatenate([np.concatenate(list(r), 1) for r in grid], 0)
