"""Small, fast problems for notebook 01: a cartoon-face image set, a tiny UNet noise predictor, and a
multi-view toy where consistency across views can be measured exactly.

The multi-view toy: a hidden 2-D point ``z`` lies near one of ``K`` modes on the unit circle; view ``n``
sees it rotated, ``x^n = R(φ_n) z``. Every view alone looks like a ring of K blobs, so a denoiser that
sees one view at a time can only sample *a* plausible view, and the V views pick their modes
independently; a denoiser that sees all views at once can make them agree (Eqs. 1-3 of the paper).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn
from gen3dface.core.progress import progress_bar

from gen3dface.generation.diffusion import Scheduler, multiview_loss


# --------------------------------------------------------------------------------------- images
def cartoon_faces(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """``n`` procedural cartoon faces ``(n, size, size, 3)`` uint8: a skin-coloured oval with hair, two eyes
    and a mouth, varied in position, scale, colours and expression, on a plain background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    out = np.empty((n, size, size, 3), np.uint8)
    skins = np.array(
        [[255, 224, 189], [234, 192, 134], [198, 134, 66], [141, 85, 36], [255, 205, 148]], np.float32
    )
    for i in range(n):
        bg = rng.uniform(40, 230, 3)
        img = np.broadcast_to(bg, (size, size, 3)).copy()
        cx, cy = size / 2 + rng.normal(0, size * 0.05, 2)
        rx, ry = size * rng.uniform(0.28, 0.36), size * rng.uniform(0.34, 0.42)
        face = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        hair = (((xx - cx) / (rx * 1.1)) ** 2 + ((yy - cy + ry * 0.15) / (ry * 1.05)) ** 2 <= 1) & (
            yy < cy - ry * rng.uniform(0.35, 0.6)
        )
        img[face] = skins[rng.integers(len(skins))] * rng.uniform(0.9, 1.05)
        img[hair] = rng.uniform(0, 120, 3) if rng.random() < 0.8 else rng.uniform(150, 255, 3)
        eye_dx, eye_y = rx * rng.uniform(0.35, 0.5), cy - ry * rng.uniform(0.05, 0.2)
        eye_r = size * rng.uniform(0.05, 0.075)
        for sx in (-1, 1):
            img[(xx - (cx + sx * eye_dx)) ** 2 + (yy - eye_y) ** 2 <= eye_r**2] = (25, 25, 35)
        mouth_y, mouth_w = cy + ry * rng.uniform(0.35, 0.5), rx * rng.uniform(0.35, 0.6)
        smile = rng.uniform(-0.5, 1.0)  # curvature: frown < 0 < smile
        curve = mouth_y + smile * size * 0.08 * (1 - ((xx - cx) / mouth_w) ** 2)
        img[(np.abs(xx - cx) <= mouth_w) & (np.abs(yy - curve) <= max(0.6, size * 0.04))] = (150, 30, 40)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


class UNetNoisePredictor(nn.Module):
    """A diffusers ``UNet2DModel`` as an unconditional single-view noise predictor with the package's
    interface ``(x_t (B, 1, C, H, W), t, y, cameras, views=None) -> (B, 1, C, H, W)``."""

    def __init__(self, size: int = 16, channels: tuple[int, ...] = (32, 64, 64)):
        super().__init__()
        from diffusers import UNet2DModel

        down = ["DownBlock2D"] * (len(channels) - 1) + ["AttnDownBlock2D"]
        up = ["AttnUpBlock2D"] + ["UpBlock2D"] * (len(channels) - 1)
        self.unet = UNet2DModel(
            sample_size=size,
            in_channels=3,
            out_channels=3,
            layers_per_block=1,
            block_out_channels=channels,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=8,
        )
        self.view_shape = (3, size, size)

    def forward(self, x_t, t, y=None, cameras=None, views=None):
        B, V = x_t.shape[:2]
        eps = self.unet(x_t.flatten(0, 1), t.repeat_interleave(V)).sample
        return eps.unflatten(0, (B, V))


# --------------------------------------------------------------------------------------- multi-view toy
def rotation(phi: torch.Tensor) -> torch.Tensor:
    """2-D rotation matrices ``(..., 2, 2)`` for angles ``phi (...)`` in radians."""
    c, s = torch.cos(phi), torch.sin(phi)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


class RingViews:
    """The multi-view toy's data: ``sample(n) -> x (n, V, 2, 1, 1)`` and the hidden ``z (n, 2)``.

    Attributes:
        num_views: V; view n is rotated by φ_n = 2π n / V + 0.3 n (so no view equals another up to a mode shift).
        modes: K modes at angles 2π k / K on the unit circle; ``spread`` is their standard deviation.
    """

    def __init__(self, num_views: int = 4, modes: int = 6, spread: float = 0.06):
        self.num_views, self.modes, self.spread = num_views, modes, spread
        n = torch.arange(num_views, dtype=torch.float32)
        self.phi = 2 * math.pi * n / num_views + 0.3 * n
        self.R = rotation(self.phi)  # (V, 2, 2)
        k = torch.arange(modes, dtype=torch.float32) * 2 * math.pi / modes
        self.centres = torch.stack([torch.cos(k), torch.sin(k)], -1)  # (K, 2)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.randint(0, self.modes, (n,), generator=generator)
        z = self.centres[k] + self.spread * torch.randn(n, 2, generator=generator)
        x = torch.einsum("vij,nj->nvi", self.R, z)
        return x[..., None, None], z

    def unrotate(self, x: torch.Tensor) -> torch.Tensor:
        """Each view's estimate of the hidden point, ``(n, V, 2)`` from ``x (n, V, 2, 1, 1)``."""
        return torch.einsum("vji,nvj->nvi", self.R, x[..., 0, 0])

    def consistency(self, x: torch.Tensor) -> dict[str, float]:
        """How well the views of each sample agree: ``agreement`` = fraction of samples whose views all
        fall nearest the same mode (1.0 for the data, ≈ K^(1-V) by chance); ``spread`` = mean pairwise
        distance between the views' estimates of z; ``on_ring`` = fraction of views within 0.3 of a mode
        (each view on its own is plausible)."""
        z = self.unrotate(x)  # (n, V, 2)
        d = torch.cdist(z.reshape(-1, 2), self.centres).reshape(*z.shape[:2], -1)
        nearest = d.argmin(-1)
        agree = (nearest == nearest[:, :1]).all(1).float().mean()
        pair = torch.cdist(z, z)
        V = z.shape[1]
        spread = pair.sum((1, 2)) / (V * (V - 1))
        return {
            "agreement": float(agree),
            "spread": float(spread.mean()),
            "on_ring": float((d.min(-1).values < 0.3).float().mean()),
        }


def timestep_embedding(t: torch.Tensor, dim: int = 32) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of integer timesteps ``t (B,)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(a), torch.cos(a)], -1)


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(i, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, o)
    )


class IndependentDenoiser(nn.Module):
    """ε_θ(x^n_t, t, n): each view is denoised seeing only itself and its view index (no ties at all)."""

    def __init__(self, num_views: int, hidden: int = 128):
        super().__init__()
        self.num_views, self.view_shape = num_views, (2, 1, 1)
        self.net = _mlp(2 + 32 + num_views, hidden, 2)

    def forward(self, x_t, t, y=None, cameras=None, views=None):
        idx = torch.arange(self.num_views, device=x_t.device) if views is None else views
        x = x_t[:, idx, :, 0, 0]  # (B, V', 2)
        B, V = x.shape[:2]
        onehot = nn.functional.one_hot(idx, self.num_views).float().expand(B, V, -1)
        temb = timestep_embedding(t)[:, None].expand(B, V, -1)
        return self.net(torch.cat([x, temb, onehot], -1))[..., None, None]


class JointDenoiser(nn.Module):
    """ε_θ(x^1..V_t, t): all views denoised together, each view's noise predicted from every view."""

    def __init__(self, num_views: int, hidden: int = 256):
        super().__init__()
        self.num_views, self.view_shape = num_views, (2, 1, 1)
        self.net = _mlp(2 * num_views + 32, hidden, 2 * num_views)

    def forward(self, x_t, t, y=None, cameras=None, views=None):
        B = x_t.shape[0]
        eps = self.net(torch.cat([x_t.reshape(B, -1), timestep_embedding(t)], -1)).reshape(
            B, self.num_views, 2, 1, 1
        )
        return eps if views is None else eps[:, views]


def fit_denoiser(
    model: nn.Module,
    scheduler: Scheduler,
    draw: Callable[[int, torch.Generator], torch.Tensor],
    steps: int,
    batch: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Train ``model`` with the multi-view loss (Eq. 4) on batches ``draw(batch, generator) -> x0 (B, V, C, H, W)``.

    AdamW with a short linear warm-up; returns the loss per step.
    """
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm))
    losses = []
    for _ in progress_bar(range(steps), desc="training", disable=not progress, leave=False):
        x0 = draw(batch, g).to(device)
        loss = multiview_loss(model, scheduler, x0, None, None, generator=g if device == "cpu" else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses
