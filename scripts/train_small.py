"""Train the shipped ``small`` model (or continue training it) from a prepared-inputs file.

    python scripts/train_small.py --prepared outputs/train_prep/train.npz --run outputs/run_small \
        --steps 20000 --max-seconds 540 [--export DIR] [--cache outputs/traindata.pt]

The training views are re-rendered from the dataset's seeds on the training device (seconds on a GPU)
and cached in ``--cache``; the run resumes from ``RUN/checkpoint`` when it exists. ``--export DIR`` writes
the current weights (EMA when on) as fp16 safetensors + config.json, the loss log and a contact sheet of
samples for held-out inputs (``--heldout``) into DIR, splitting files larger than ``--split-mb``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen3dface.generation.model import Gen3DFaceModel  # noqa: E402
from gen3dface.training.loop import TrainConfig, train  # noqa: E402
from gen3dface.training.data import PreparedInputs, TrainData, load_train_data  # noqa: E402


def load_data(prepared: Path, size: int, views: int, device: str, cache: Path | None) -> TrainData:
    if cache is not None and cache.exists():
        d = torch.load(cache, map_location=device, weights_only=False)
        print(f"training data from cache {cache}: {len(d.identities)} identities, {len(d)} inputs")
        return d
    t = time.perf_counter()
    d = load_train_data(PreparedInputs.load(prepared), size, views, device=device)
    print(f"rendered {len(d.identities)} identities ({len(d)} inputs) in {time.perf_counter() - t:.1f} s")
    if cache is not None:
        torch.save(d, cache)
    return d


def split_file(path: Path, mb: float) -> None:
    size = path.stat().st_size
    limit = int(mb * 2**20)
    if size <= limit:
        return
    with open(path, "rb") as f:
        k = 0
        while chunk := f.read(limit):
            (path.parent / f"{path.name}.part{k}").write_bytes(chunk)
            k += 1
    path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, required=True)
    ap.add_argument("--heldout", type=Path, default=None, help="prepared inputs of held-out identities to sample")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--profile", default="small")
    ap.add_argument("--attention", default="joint", choices=["joint", "sequential"])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr-backbone", type=float, default=2e-4)
    ap.add_argument("--lr-new", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (no optimizer state)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--prediction", default=None, choices=["epsilon", "v_prediction"],
                    help="prediction type (default: the profile's, or --init's)")
    ap.add_argument("--zero-snr", action="store_true", help="zero-terminal-SNR schedule (needs v_prediction)")
    ap.add_argument("--export", type=Path, default=None)
    ap.add_argument("--profile-steps", type=int, default=0, help="first profile so many steps (CUDA op table)")
    ap.add_argument("--split-mb", type=float, default=15.0)
    ap.add_argument("--sample-steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=2.0)
    args = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = build_model(args)
    data = load_data(args.prepared, model.image_size, model.config.n_views, dev, args.cache)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr_backbone=args.lr_backbone, lr_new=args.lr_new,
                      mixed_precision="bf16" if dev == "cuda" else "no", checkpoint_every=args.checkpoint_every,
                      log_every=25, ema_decay=args.ema or None)
    if args.profile_steps:
        profile_steps(model, data, cfg, args.profile_steps, dev)
    t = time.perf_counter()
    losses = train(model, data, args.run, cfg, max_seconds=args.max_seconds)
    took = time.perf_counter() - t
    done = losses[-1]["step"] if losses else 0
    print(f"trained to step {done} in this call ({took:.0f} s); last loss {losses[-1]['loss'] if losses else float('nan'):.4f}")
    if args.export is not None:
        export(args, model, losses, dev)


def build_model(args) -> Gen3DFaceModel:
    """A random-init model of ``--profile``, or ``--init``'s weights; ``--prediction`` / ``--zero-snr`` override."""
    over = {}
    if args.prediction:
        over["prediction_type"] = args.prediction
    if args.zero_snr:
        over["zero_terminal_snr"] = True
    if args.init is not None:
        return Gen3DFaceModel.from_pretrained(args.init, torch_dtype=torch.float32, **over)
    return Gen3DFaceModel.from_profile(args.profile, attention=args.attention, **over)


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
            loss = training_loss(net, sch, data, d, 0, cfg.batch_size)
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
def export(args, model: Gen3DFaceModel, losses: list[dict], dev: str) -> None:
    import numpy as np

    from gen3dface.generation.diffusion import sample
    from gen3dface.core.images import save_png, to_uint8

    out = args.export
    out.mkdir(parents=True, exist_ok=True)
    ckpt = args.run / "checkpoint"
    # the weights to ship: the EMA copy when training kept one (accelerate saved it beside the model)
    net = build_model(args)
    from safetensors.torch import load_file

    net.load_state_dict(load_file(ckpt / "model.safetensors"))
    ema_file = sorted(ckpt.glob("custom_checkpoint_*.pkl"))
    if args.ema and ema_file:
        state = torch.load(ema_file[0], map_location="cpu", weights_only=False)
        if "shadow_params" in state:
            for p, s in zip(net.parameters(), state["shadow_params"]):
                p.copy_(s)
    net.to(dev).eval()
    net.to(torch.float16).save_pretrained(out / "model", safe_serialization=True)
    net.to(torch.float32)
    for f in (out / "model").glob("*.safetensors"):
        split_file(f, args.split_mb)
    (out / "losses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in losses))
    if args.heldout is not None:
        held = load_train_data(PreparedInputs.load(args.heldout), net.image_size, net.config.n_views, device=dev,
                               progress=False)
        k = min(6, len(held))
        rows = torch.arange(k)
        b = held.batch(rows)
        y = net.condition(b["input"], b["vertices"], held.faces)
        g = torch.Generator(device=dev).manual_seed(0)
        sheets = []
        for sampler in ("joint", "sequential"):
            t = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
                z = sample(net, y, b["cameras"], steps=args.sample_steps, guidance=args.guidance, sampler=sampler,
                           generator=g, device=dev)
            print(f"{sampler}: {k} inputs x {net.config.n_views} views in {time.perf_counter() - t:.1f} s")
            views = net.decode(z.float()).clamp(-1, 1)
            grid = torch.cat([b["input"][:, None], views, b["targets"]], 1)  # (k, 1 + 2N, 3, S, S)
            sheets.append(to_uint8(grid))
        sheet = np.concatenate([np.concatenate(list(r), 1) for r in sheets[0]], 0)
        save_png(out / "samples_joint.png", sheet)
        sheet = np.concatenate([np.concatenate(list(r), 1) for r in sheets[1]], 0)
        save_png(out / "samples_sequential.png", sheet)


if __name__ == "__main__":
    main()
