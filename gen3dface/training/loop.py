"""Training the multi-view model (paper Sec. 3.2 "Model training", Sec. 4 "Implementation").

Loss Eq. (4) over all target views of a sample, AdamW with two learning rates (the UNet backbone ramped to
5e-5 over 100 warm-up steps, 5e-4 for every new module: camera encoder, input encoder, volumes,
depth-wise attention), batch 8, bf16 on GPU, on top of accelerate: the same script runs on one CPU, one
GPU or ``accelerate launch --num_processes K``.

Randomness is drawn for the *global* batch from one generator on every process, and each process takes
its slice, so K processes with batch B see exactly the rows, timesteps and noise of one process with
batch K*B. Checkpoints (``RUN/checkpoint``: accelerate's state + this generator + the loss log) are
written to a staging folder and renamed into place; a killed run started again continues from the last
checkpoint and reproduces the uninterrupted run's losses.

Layout of a run folder::

    RUN/checkpoint/      accelerate state (model safetensors, optimizer, LR schedule, RNG) + trainer.json
    RUN/model/           the trained model (save_pretrained: safetensors + config.json), written at the end
    RUN/losses.jsonl     one line per logged step: step, loss, lr
    RUN/logs/            TensorBoard events (when tensorboard is installed)
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from gen3dface.core.progress import progress_bar

from gen3dface.generation.diffusion import drop_condition, loss_target, q_sample
from gen3dface.core.errors import InputError
from gen3dface.generation.model import Gen3DFaceModel
from gen3dface.core.storage import atomic_dir, swap_in
from gen3dface.training.data import TrainData


@dataclass
class TrainConfig:
    """Training settings (defaults: the paper's optimiser; sizes come from the profile).

    Attributes:
        steps: optimiser steps in total; batch_size: samples per process and step.
        lr_backbone: the UNet's learning rate (paper 5e-5: a pretrained SD UNet; a random-init backbone
            is a new module and should use ``lr_new``); lr_new: every other module (paper 5e-4).
        warmup_steps: linear warm-up of both learning rates (paper: 100).
        cond_drop: probability of blanking the input view (classifier-free guidance's unconditional branch).
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (accelerate).
        checkpoint_every: steps between checkpoints; log_every: steps between loss-log lines.
        ema_decay: keep an exponential moving average of the weights (``None``: off).
        grad_clip: gradient-norm clipping (0: off); seed: all randomness of the run.
        view_weights: ``(N,)`` weights of the target views in the loss (``None``: Eq. 4's plain mean over
            views), scaled to mean 1 so that the loss keeps its scale (:func:`azimuth_weights`).
    """

    steps: int = 60
    batch_size: int = 2
    lr_backbone: float = 5e-5
    lr_new: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 1e-2
    cond_drop: float = 0.1
    mixed_precision: str = "no"
    checkpoint_every: int = 500
    log_every: int = 10
    ema_decay: float | None = None
    grad_clip: float = 1.0
    seed: int = 0
    view_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise InputError("steps and batch size must be at least 1")
        if self.view_weights is not None and (
            min(self.view_weights) < 0
            or not sum(self.view_weights) > 0
            or not all(map(math.isfinite, self.view_weights))
        ):
            raise InputError(
                f"view weights must be finite, at least 0 and not all 0, got {self.view_weights}"
            )
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise InputError(f"mixed precision must be no, bf16 or fp16, got {self.mixed_precision!r}")


def parameter_groups(model: Gen3DFaceModel, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: the UNet backbone at ``lr_backbone``, every new module at ``lr_new``."""
    backbone = list(model.unet.parameters())
    ids = {id(p) for p in backbone}
    new = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": backbone, "lr": cfg.lr_backbone, "name": "backbone"},
        {"params": new, "lr": cfg.lr_new, "name": "new"},
    ]


class _Trainer:
    """State accelerate checkpoints alongside the model: step counter and the data/noise generator."""

    def __init__(self, generator: torch.Generator):
        self.step = 0
        self.generator = generator

    def state_dict(self) -> dict:
        return {"step": torch.tensor(self.step), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.generator.set_state(
            state["generator"].cpu() if state["generator"].device.type != "cpu" else state["generator"]
        )


def draw_batch(
    data: TrainData,
    generator: torch.Generator,
    global_batch: int,
    n_train_timesteps: int,
    cond_drop: float,
    latent_shape: tuple[int, ...],
) -> dict:
    """The randomness of one step for the whole global batch: rows, timesteps, dropout, noise."""
    dev = generator.device
    return {
        "rows": torch.randint(0, len(data), (global_batch,), generator=generator, device=dev),
        "t": torch.randint(0, n_train_timesteps, (global_batch,), generator=generator, device=dev),
        "drop": torch.rand(global_batch, generator=generator, device=dev) < cond_drop,
        "noise": torch.randn((global_batch, *latent_shape), generator=generator, device=dev),
    }


def azimuth_weights(cameras, weight: float, lo: float = 45.0, hi: float = 112.5) -> tuple[float, ...]:
    """Loss weights of target views ``cameras (N,)``: ``weight`` where ``lo <= |azimuth| <= hi`` degrees (the
    sides of the head), 1 elsewhere (for :attr:`TrainConfig.view_weights`)."""
    az = cameras.azimuth_deg.abs()
    return tuple(float(weight) if lo - 1e-3 <= float(a) <= hi + 1e-3 else 1.0 for a in az)


def training_loss(
    model: Gen3DFaceModel, scheduler, data: TrainData, draw: dict, lo: int, hi: int, view_weights=None
) -> torch.Tensor:
    """Eq. (4) on samples ``lo:hi`` of a drawn global batch (ε, or v for a v-prediction model); with
    ``view_weights (N,)`` each target view's squared error is weighted (scaled to mean 1)."""
    batch = data.batch(draw["rows"][lo:hi])
    net = model.module if hasattr(model, "module") else model
    x0 = net.encode(batch["targets"])
    y = net.condition(
        batch["input"],
        batch["vertices"],
        data.faces,
        cameras=batch["cameras"],
        input_cameras=batch["input_cameras"],
        reprojected=batch["reprojected"],
    )
    y = drop_condition(y, draw["drop"][lo:hi].to(x0.device))
    t = draw["t"][lo:hi].to(x0.device)
    x_t, noise = q_sample(scheduler, x0, t, noise=draw["noise"][lo:hi].to(x0.device))
    out = model(x_t, t, y, batch["cameras"])
    target = loss_target(scheduler, x0, noise, t).float()
    if view_weights is None:
        return torch.nn.functional.mse_loss(out.float(), target)
    w = torch.as_tensor(view_weights, dtype=torch.float32, device=out.device)
    per_view = (out.float() - target).pow(2).flatten(2).mean(2)  # (B, N)
    return (per_view * (w / w.mean())).mean()


def train(
    model: Gen3DFaceModel,
    data: TrainData,
    run_dir: str | Path,
    cfg: TrainConfig,
    stop_after: int | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
    accelerator=None,
) -> list[dict]:
    """Train ``model`` on ``data``; resumes from ``run_dir/checkpoint`` when it exists.

    Args:
        stop_after: end this call after so many steps (a checkpoint is written); the next call resumes.
        max_seconds: end this call at the first step after so many seconds of training (checkpointed),
            e.g. to fit a 10-minute slot on a lent GPU.
    Returns:
        the loss log of the whole run (every ``log_every`` steps), as in ``losses.jsonl``.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    if accelerator is None:
        log_with = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401

            log_with = "tensorboard"
        except Exception:  # noqa: BLE001 - absent or broken (e.g. a protobuf clash): log to losses.jsonl only
            pass
        # cpu=True where there is no GPU, so that several launched CPU processes join one gloo group
        accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            log_with=log_with,
            cpu=not torch.cuda.is_available(),
            project_config=ProjectConfiguration(project_dir=str(run), logging_dir=str(run / "logs")),
        )
    dev = accelerator.device
    torch.manual_seed(cfg.seed)
    scheduler = model.noise_scheduler("ddpm")
    T = scheduler.config.num_train_timesteps
    opt = torch.optim.AdamW(parameter_groups(model, cfg), weight_decay=cfg.weight_decay)
    warm = max(1, cfg.warmup_steps)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    model, opt, lr_sched = accelerator.prepare(model, opt, lr_sched)
    ema = None
    if cfg.ema_decay:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=cfg.ema_decay)
        ema.to(dev)
        accelerator.register_for_checkpointing(ema)
    gen = torch.Generator(device=dev)
    gen.manual_seed(cfg.seed)
    trainer = _Trainer(gen)
    accelerator.register_for_checkpointing(trainer)
    ckpt = run / "checkpoint"
    log_path = run / "losses.jsonl"
    orphan = ckpt.with_name(f".{ckpt.name}.old")
    if not ckpt.exists() and orphan.exists() and accelerator.is_main_process:
        orphan.rename(ckpt)  # killed between the two renames of a swap
    accelerator.wait_for_everyone()
    if ckpt.exists():
        accelerator.load_state(str(ckpt))
        if ema is not None:
            ema.to(dev)  # its state loads onto the CPU
        saved = json.loads((ckpt / "losses.json").read_text())
        logged, running = saved["logged"], saved["running"]
    else:
        logged, running = [], []
    if accelerator.is_main_process:  # the log file always equals the checkpoint's log plus later lines
        log_path.write_text("".join(json.dumps(r) + "\n" for r in logged))
        (run / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    if accelerator.trackers == [] and accelerator.log_with:
        accelerator.init_trackers("gen3dface")
    net = accelerator.unwrap_model(model)
    latent_shape = (data.cameras.shape[0], *net.view_shape)
    P, rank = accelerator.num_processes, accelerator.process_index
    G = cfg.batch_size * P
    data_dev = data.inputs.device
    end = cfg.steps if stop_after is None else min(cfg.steps, trainer.step + stop_after)
    bar = progress_bar(
        total=cfg.steps,
        initial=trainer.step,
        desc="training",
        disable=not (progress and accelerator.is_main_process),
    )
    model.train()
    t0 = time.perf_counter()

    def save_checkpoint():
        stage = ckpt.with_name(f".{ckpt.name}.part")
        if accelerator.is_main_process:
            shutil.rmtree(stage, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(stage))  # every process writes its part (RNG states) into one folder
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (stage / "losses.json").write_text(
                json.dumps({"logged": logged, "running": [float(x) for x in running]})
            )
            swap_in(stage, ckpt)
        accelerator.wait_for_everyone()

    while trainer.step < end:
        draw = draw_batch(data, gen, G, T, cfg.cond_drop, latent_shape)
        if data_dev != dev:
            draw = {k: v.to(data_dev) for k, v in draw.items()}
        with accelerator.accumulate(model):
            loss = training_loss(
                model,
                scheduler,
                data,
                draw,
                rank * cfg.batch_size,
                (rank + 1) * cfg.batch_size,
                cfg.view_weights,
            )
            accelerator.backward(loss)
            if cfg.grad_clip and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            lr_sched.step()
            opt.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
        trainer.step += 1
        running.append(accelerator.gather(loss.detach()[None]).mean())  # a tensor: no GPU sync every step
        if trainer.step % cfg.log_every == 0:
            rec = {
                "step": trainer.step,
                "loss": sum(float(x) for x in running) / len(running),
                "lr": lr_sched.get_last_lr()[-1],
                "seconds": round(time.perf_counter() - t0, 2),
            }
            running.clear()
            logged.append(rec)
            if accelerator.is_main_process:
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            accelerator.log({"loss": rec["loss"], "lr": rec["lr"]}, step=trainer.step)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", refresh=False)
        bar.update(1)
        out_of_time = max_seconds is not None and time.perf_counter() - t0 > max_seconds
        if P > 1:  # every process must stop at the same step
            flag = torch.tensor([float(out_of_time)], device=dev)
            out_of_time = bool(accelerator.reduce(flag, "max").item())
        if out_of_time:
            end = trainer.step
        if trainer.step % cfg.checkpoint_every == 0 or trainer.step == end:
            save_checkpoint()
    bar.close()
    if trainer.step >= cfg.steps and accelerator.is_main_process:
        export = accelerator.unwrap_model(model)
        if ema is not None:
            ema.store(export.parameters())
            ema.copy_to(export.parameters())
        atomic_dir(run / "model", lambda stage: export.save_pretrained(stage, safe_serialization=True))
        if ema is not None:
            ema.restore(export.parameters())
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return logged


def loss_curve_figure(losses: list[dict], smooth: int = 20):
    """A matplotlib figure of the loss log (raw and a running mean over ``smooth`` log points). Records with
    an ``"objective"`` field (e.g. epsilon, then v-prediction when fine-tuned) are drawn as separate runs,
    since their losses measure different targets."""
    import matplotlib.pyplot as plt

    runs: list[tuple[str | None, list[dict]]] = []
    for r in losses:
        if not runs or runs[-1][0] != r.get("objective"):
            runs.append((r.get("objective"), []))
        runs[-1][1].append(r)
    many = len(runs) > 2  # many stages: one legend entry each (its running mean), under the plot
    fig, ax = plt.subplots(figsize=(6, 3.2 + 0.16 * len(runs) * many))
    for n, (objective, recs) in enumerate(runs):
        steps = [r["step"] for r in recs]
        vals = [r["loss"] for r in recs]
        k = max(1, min(smooth, len(vals)))
        mean = [
            sum(vals[max(0, i - k + 1) : i + 1]) / len(vals[max(0, i - k + 1) : i + 1])
            for i in range(len(vals))
        ]
        name = f" ({objective})" if objective else ""
        ax.plot(steps, vals, lw=0.6, alpha=0.4, color=f"C{2 * n}", label=None if many else f"loss{name}")
        ax.plot(
            steps, mean, lw=1.6, color=f"C{2 * n + 1}", label=f"{'' if many else 'running '}mean ({k}){name}"
        )
        if n:
            ax.axvline(steps[0], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel("Eq. (4) loss")
    ax.set_yscale("log")
    if many:
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
    else:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
