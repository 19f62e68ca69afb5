"""The spaces the multi-view model diffuses in ("latents"): :class:`PixelCodec` (a lossless pixel-unshuffle, the
offline models) and :class:`VAECodec` (Stable Diffusion's AutoencoderKL, the paper). Both map images
``(..., 3, H, W)`` in [-1, 1] to latents ``(..., C, H / f, W / f)`` and back."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelCodec(nn.Module):
    """Images <-> "latents" by pixel-unshuffle: ``(.., 3, H, W)`` <-> ``(.., 3 f², H/f, W/f)``, lossless.

    ``factor=1`` is plain pixel-space diffusion; ``factor=2`` halves the UNet's resolution (as patchifying
    "simple diffusion" models do) at no loss.
    """

    def __init__(self, factor: int = 1):
        super().__init__()
        self.factor = factor
        self.channels = 3 * factor * factor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        return F.pixel_unshuffle(x.reshape(-1, *x.shape[-3:]), self.factor).reshape(
            *lead, self.channels, x.shape[-2] // self.factor, x.shape[-1] // self.factor
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-3]
        return F.pixel_shuffle(z.reshape(-1, *z.shape[-3:]), self.factor).reshape(
            *lead, 3, z.shape[-2] * self.factor, z.shape[-1] * self.factor
        )


class VAECodec(nn.Module):
    """Stable Diffusion's AutoencoderKL: ``(.., 3, H, W)`` <-> ``(.., 4, H/8, W/8)`` scaled latents."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.channels = vae.config.latent_channels
        self.scale = vae.config.scaling_factor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        z = self.vae.encode(x.reshape(-1, *x.shape[-3:]).to(self.vae.dtype)).latent_dist.mode() * self.scale
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-3]
        x = self.vae.decode(z.reshape(-1, *z.shape[-3:]).to(self.vae.dtype) / self.scale).sample
        return x.reshape(*lead, *x.shape[1:])
