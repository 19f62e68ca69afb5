"""Run by tests/test_multiprocess.py, alone or under `accelerate launch --num_processes K`: a few training steps
of a tiny model on fixed synthetic data; the main process writes the loss log to argv[1]."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from test_model import tiny  # noqa: E402

from gen3dface.core.cameras import target_ring  # noqa: E402
from gen3dface.mesh.geometry import face_template, tesselation_triangles  # noqa: E402
from gen3dface.training.loop import TrainConfig, train  # noqa: E402
from gen3dface.training.data import TrainData  # noqa: E402


def main() -> None:
    out, run, batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    S, N, n_ids = 32, 4, 5
    base = torch.rand(n_ids, 1, 3, S, S, generator=g)
    data = TrainData(targets=(base.expand(n_ids, N, 3, S, S) * 255).to(torch.uint8).contiguous(),
                     inputs=(base[:, 0] * 255).to(torch.uint8), input_identity=torch.arange(n_ids),
                     vertices=torch.as_tensor(face_template())[None].expand(n_ids, -1, -1).contiguous(),
                     faces=torch.as_tensor(tesselation_triangles()).long(), cameras=target_ring(N, image_size=S),
                     identities=list(range(n_ids)))
    cfg = TrainConfig(steps=3, batch_size=batch, lr_backbone=1e-3, lr_new=1e-3, warmup_steps=1, log_every=1,
                      checkpoint_every=100, grad_clip=0.0)
    losses = train(tiny(), data, run, cfg, progress=False)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        out.write_text(json.dumps([r["loss"] for r in losses]))


if __name__ == "__main__":
    main()
