"""Train the shipped ``small`` model (or continue training it) from a prepared-inputs file.

    python scripts/train_small.py --prepared outputs/train_prep/train.npz --run outputs/run_small \
        --steps 20000 --max-seconds 540 [--export DIR] [--cache outputs/traindata.pt]

The training views are re-rendered from the dataset's seeds on the training device (seconds on a GPU)
and cached in ``--cache``; the run resumes from ``RUN/checkpoint`` when it exists. ``--export DIR`` writes
the current weights (EMA when on) as fp16 safetensors + config.json, the loss log and a contact sheet of
samples for held-out inputs (``--heldout``) into DIR, splitting files larger than ``--split-mb``.

``--reprojection`` trains a model that also reads the input view carried into every target view through the
estimated mesh (``gen3dface.volume.reprojection``); with ``--init`` of a model without it, the input layer is
widened with zeros (``gen3dface.generation.model.add_reprojection``). The shipped model's last two stages:

    python scripts/prepare_training.py -o outputs/train_prep/varied.npz --identities 800 --seed 2 --varied 0.75 \
        --per-identity 3                                          # CPU, ~20 min (mediapipe on every input view)
    python scripts/train_small.py --prepared outputs/train_prep/varied.npz --run RUN --init PAPER_MODEL \
        --reprojection --batch 16 --steps 100000 --max-seconds 330 --ema 0.995 --lr-backbone 1e-4 --export OUT

``--mirror`` (with ``--reprojection``) fills what the input view does not show from its mirror image
(``reproject(mirror=True)``, saved as the model's ``reprojection_mirror``); train it on data whose appearance is
mostly symmetric (``SynthConfig.symmetric_appearance``, the ``"symmetric_appearance"`` rate in the prepared
file's ``source["synth"]``), or it learns that mirrored pixels are wrong. ``--mirror squarest`` also takes a
target pixel from the mirror image where that sees its surface clearly more squarely than the input view does
(``reproject(mirror="squarest")``).

``--side-weight W`` weighs the target views 45-112.5 degrees round from the front W times the others in the loss
(``TrainConfig.view_weights``, scaled to mean 1; the paper's loss is the plain mean, W = 1): the views whose
agreement with the front the real-photo benchmark finds weakest.

``--average-with DIR [--average-weight W]`` exports ``W`` times the run's weights plus ``1 - W`` times DIR's
(``gen3dface.training.export.average_weights``; W = 0.5 by default): a fine-tune averaged with the weights it
started from (``--init``), as the shipped model's stage 10 is (its model card).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import torch

from gen3dface.core.images import save_png
from gen3dface.generation.model import Gen3DFaceModel, add_reprojection
from gen3dface.training.data import PreparedInputs, TrainData, load_train_data
from gen3dface.training.export import average_weights, export_checkpoint, preview_sheet, run_weights
from gen3dface.training.loop import TrainConfig, azimuth_weights, train
from gen3dface.volume.reprojection import CLOSE_HOLES, SQUAREST_MARGIN, SQUAREST_RAMP, SQUAREST_SMOOTH


def cache_settings(prepared: Path, size: int, views: int, reprojection: bool, mirror: bool | str) -> dict:
    """What a ``--cache`` file's training views depend on: the prepared file's bytes, the view size and count,
    and the reprojection settings (mirror mode, the squarest rule's margin and normals, the face mesh's holes
    closed or not); a cache made otherwise is stale."""
    return {
        "prepared_sha256": hashlib.sha256(prepared.read_bytes()).hexdigest() if prepared.exists() else None,
        "size": size,
        "views": views,
        "reprojection": bool(reprojection),
        "mirror": mirror if reprojection else False,
        "squarest": (SQUAREST_MARGIN, SQUAREST_RAMP, SQUAREST_SMOOTH)
        if reprojection and mirror == "squarest"
        else None,
        "closed_holes": CLOSE_HOLES if reprojection else None,
    }


def load_data(
    prepared: Path,
    size: int,
    views: int,
    device: str,
    cache: Path | None,
    reprojection: bool = False,
    mirror: bool | str = False,
) -> TrainData:
    """The training views of ``prepared``, rendered on ``device``, or read from ``cache`` (a file this script
    wrote: a pickle, so only ever your own) when it was made with the same :func:`cache_settings`; the
    prepared file may be absent when the cache is current (a device copy without it)."""
    want = None if cache is None else cache_settings(prepared, size, views, reprojection, mirror)
    if cache is not None and cache.exists():
        saved = torch.load(cache, map_location=device, weights_only=False)
        have = saved.get("settings") if isinstance(saved, dict) else None
        if have is not None and want["prepared_sha256"] is None:
            want["prepared_sha256"] = have["prepared_sha256"]
        if have == want:
            d = saved["data"]
            print(f"training data from cache {cache}: {len(d.identities)} identities, {len(d)} inputs")
            return d
        print(f"cache {cache} was made from other data or settings; rendering again")
    t = time.perf_counter()
    d = load_train_data(
        PreparedInputs.load(prepared), size, views, device=device, reprojection=reprojection, mirror=mirror
    )
    print(f"rendered {len(d.identities)} identities ({len(d)} inputs) in {time.perf_counter() - t:.1f} s")
    if cache is not None:
        torch.save({"settings": want, "data": d}, cache)
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, required=True)
    ap.add_argument(
        "--heldout", type=Path, default=None, help="prepared inputs of held-out identities to sample"
    )
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--profile", default="small")
    ap.add_argument("--attention", default="joint", choices=["joint", "sequential"])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr-backbone", type=float, default=2e-4)
    ap.add_argument("--lr-new", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="end training so that the whole script (rendering the views, training, export) ends within so many "
        "seconds of its start: for a call with a hard time limit, whatever the rendering takes",
    )
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (no optimizer state)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument(
        "--prediction",
        default=None,
        choices=["epsilon", "v_prediction"],
        help="prediction type (default: the profile's, or --init's)",
    )
    ap.add_argument("--zero-snr", action="store_true", help="zero-terminal-SNR schedule (needs v_prediction)")
    ap.add_argument(
        "--reprojection",
        action="store_true",
        help="train a model that also reads the input view reprojected through the estimated mesh (an --init "
        "model without it gets its input layer widened with zeros); the paper's model is without",
    )
    ap.add_argument(
        "--mirror",
        nargs="?",
        const="fill",
        default=None,
        choices=["fill", "squarest"],
        help="with --reprojection: what the input view does not show is filled from its mirror image (the "
        "model's reprojection_mirror; pair it with data of --symmetric appearance); 'squarest': also where the "
        "mirror image sees the surface clearly more squarely",
    )
    ap.add_argument(
        "--side-weight",
        type=float,
        default=1.0,
        help="weight of the target views 45-112.5 degrees round from the front in the loss (the others 1; "
        "scaled to mean 1); 1 = the paper's plain mean",
    )
    ap.add_argument("--export", type=Path, default=None)
    ap.add_argument(
        "--profile-steps", type=int, default=0, help="first profile so many steps (CUDA op table)"
    )
    ap.add_argument("--split-mb", type=float, default=15.0)
    ap.add_argument(
        "--average-with",
        type=Path,
        default=None,
        help="export the run's weights averaged with this model's (e.g. the --init weights)",
    )
    ap.add_argument(
        "--average-weight", type=float, default=0.5, help="the run's share of --average-with's average"
    )
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=2.0)
    args = ap.parse_args()
    if not 0.0 <= args.average_weight <= 1.0:
        ap.error(f"--average-weight must be in [0, 1], got {args.average_weight}")
    started = time.perf_counter()

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = build_model(args)
    data = load_data(
        args.prepared,
        model.image_size,
        model.config.n_views,
        dev,
        args.cache,
        model.config.reprojection,
        model.config.reprojection_mirror,
    )
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr_backbone=args.lr_backbone,
        lr_new=args.lr_new,
        mixed_precision="bf16" if dev == "cuda" else "no",
        checkpoint_every=args.checkpoint_every,
        log_every=25,
        ema_decay=args.ema or None,
        view_weights=None if args.side_weight == 1 else azimuth_weights(data.cameras, args.side_weight),
    )
    if args.profile_steps:
        profile_steps(model, data, cfg, args.profile_steps, dev)
    max_seconds = training_seconds(args.max_seconds, args.deadline, time.perf_counter() - started)
    t = time.perf_counter()
    losses = train(model, data, args.run, cfg, max_seconds=max_seconds)
    took = time.perf_counter() - t
    done = losses[-1]["step"] if losses else 0
    print(
        f"trained to step {done} in this call ({took:.0f} s); last loss {losses[-1]['loss'] if losses else float('nan'):.4f}"
    )
    if args.export is not None:
        export(args, losses, dev)


#: seconds a ``--deadline`` keeps back for what follows training: the last step and checkpoint, the export
EXPORT_RESERVE = 60.0


def training_seconds(max_seconds: float | None, deadline: float | None, elapsed: float) -> float | None:
    """The training time of this call: ``max_seconds``, shortened so that the script ends within ``deadline``
    seconds of its start (``elapsed`` spent so far, :data:`EXPORT_RESERVE` kept for the export); at least 1."""
    if deadline is None:
        return max_seconds
    left = max(deadline - elapsed - EXPORT_RESERVE, 1.0)
    return left if max_seconds is None else min(max_seconds, left)


def build_model(args) -> Gen3DFaceModel:
    """A random-init model of ``--profile``, or ``--init``'s weights; ``--prediction`` / ``--zero-snr`` override."""
    over = {}
    if args.prediction:
        over["prediction_type"] = args.prediction
    if args.zero_snr:
        over["zero_terminal_snr"] = True
    if args.init is not None:
        model = Gen3DFaceModel.from_pretrained(args.init, torch_dtype=torch.float32, **over)
    else:
        model = Gen3DFaceModel.from_profile(args.profile, attention=args.attention, **over)
    model = add_reprojection(model) if args.reprojection else model
    if args.mirror:
        if not model.config.reprojection:
            raise SystemExit("--mirror needs a reprojection model (--reprojection)")
        model.register_to_config(reprojection_mirror=True if args.mirror == "fill" else args.mirror)
    return model


def profile_steps(model, data, cfg, n: int, dev: str) -> None:
    """Time ``n`` training steps of a throwaway copy under torch.profiler and print the top ops."""
    import copy

    from torch.profiler import ProfilerActivity, profile

    from gen3dface.training.loop import draw_batch, parameter_groups, training_loss

    net = copy.deepcopy(model).to(dev).train()
    opt = torch.optim.AdamW(parameter_groups(net, cfg))
    sch = net.noise_scheduler("ddpm")
    g = torch.Generator(device=dev).manual_seed(0)
    shape = (data.cameras.shape[0], *net.view_shape)

    def step():
        d = draw_batch(data, g, cfg.batch_size, 1000, 0.1, shape)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            loss = training_loss(net, sch, data, d, 0, cfg.batch_size, cfg.view_weights)
        loss.backward()
        opt.step()
        opt.zero_grad()

    for _ in range(3):
        step()
    torch.cuda.synchronize() if dev == "cuda" else None
    t = time.perf_counter()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(n):
            step()
        torch.cuda.synchronize() if dev == "cuda" else None
    print(f"profiled {n} steps: {(time.perf_counter() - t) / n * 1000:.0f} ms/step (with profiler)")
    key = "cuda_time_total" if dev == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))


@torch.no_grad()
def export(args, losses: list[dict], dev: str) -> None:
    """The run's weights (EMA when on) into ``--export`` (:mod:`gen3dface.training.export`), then preview
    sheets of ``--heldout`` inputs sampled with the weights as shipped."""
    net = run_weights(build_model(args), args.run, ema=bool(args.ema)).to(dev).eval()
    if args.average_with is not None:
        other = Gen3DFaceModel.from_pretrained(args.average_with, torch_dtype=torch.float32)
        average_weights(net, other, args.average_weight)
    export_checkpoint(net, args.export, losses, split_mb=args.split_mb)
    if args.heldout is None:
        return
    net.to(torch.float16).to(torch.float32)  # the shipped (fp16) weights
    held = load_train_data(
        PreparedInputs.load(args.heldout), net.image_size, net.config.n_views, device=dev, progress=False
    )
    rows = torch.arange(min(6, len(held)))
    for sampler in ("joint", "sequential"):
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            sheet = preview_sheet(
                net, held, rows, steps=args.sample_steps, guidance=args.guidance, sampler=sampler
            )
        print(
            f"{sampler}: {len(rows)} inputs x {net.config.n_views} views in {time.perf_counter() - t:.1f} s"
        )
        save_png(args.export / f"samples_{sampler}.png", sheet)


if __name__ == "__main__":
    main()
