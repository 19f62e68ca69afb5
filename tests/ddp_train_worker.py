"""Run by tests/test_multiprocess.py, alone or under `accelerate launch --num_processes K`: a few training steps
of a tiny model on fixed synthetic data; the main process writes the loss log to argv[1]."""

import json
import os
import sys
from pathlib import Path

import torch
from test_model import tiny, tiny_data  # this script's folder is on the path: it runs as a script

from gen3dface.training.loop import TrainConfig, train


def main() -> None:
    out, run, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    data = tiny_data(5)
    cfg = TrainConfig(
        steps=3,
        batch_size=batch,
        lr_backbone=1e-3,
        lr_new=1e-3,
        warmup_steps=1,
        log_every=1,
        checkpoint_every=100,
        grad_clip=0.0,
    )
    losses = train(tiny(), data, run, cfg, progress=False)
    if int(os.environ.get("RANK", "0")) == 0:
        out.write_text(json.dumps([r["loss"] for r in losses]))


if __name__ == "__main__":
    main()
