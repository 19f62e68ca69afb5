"""Run profiles: ``smoke`` (CPU, minutes), ``small`` (one GPU, <= 30 min training), ``paper`` (the paper's settings).

Every notebook's ``parameters`` cell sets ``profile = "smoke"``; papermill's ``-p profile paper`` switches
all of a notebook's sizes at once. Later modules read the fields they need from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from gen3dface.core.errors import InputError


@dataclass(frozen=True)
class Profile:
    """Sizes of one run profile.

    Attributes:
        name: profile name.
        image_size: side of generated views and of the input crop, pixels.
        n_views: number of target views N generated per input (the paper: 16).
        n_synth_views: views rendered per synthetic identity (the paper: 48).
        n_identities: synthetic identities a notebook makes by default.
        volume_size: V, voxels per side of the feature volume (the paper profile: 32).
        frustum_depth: D, samples per ray of the frustum volumes (the paper profile: 48).
        ddim_steps: DDIM sampling steps (the paper: 50).
        batch_size: training batch (the paper: 8).
        train_steps: training iterations (the paper: 48k).
        device: preferred device, "cpu" or "cuda" ("cuda" falls back to CPU when absent).
        model: keyword arguments of :class:`~gen3dface.generation.model.Gen3DFaceModel` beyond the sizes above
            (the diffusers UNet config, pixel or VAE codec, volume channels, prediction type).
        recon: fields of :class:`~gen3dface.recon.config.ReconConfig` that differ from its defaults.
        diffusion_toy: notebook 01's sizes (cartoon-face resolution, UNet training steps and batch, multi-view toy
            training steps and batch, samples drawn).
        synthesis_demo: notebook 02's sizes (identities, views, resolution, defect rate, top-K, faces detected).
    """

    name: str
    image_size: int
    n_views: int
    n_synth_views: int
    n_identities: int
    volume_size: int
    frustum_depth: int
    ddim_steps: int
    batch_size: int
    train_steps: int
    device: str
    model: dict[str, Any]
    recon: dict[str, Any]
    diffusion_toy: dict[str, int]
    synthesis_demo: dict[str, Any]

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "Profile":
        return replace(self, **changes)


# UNet configs (diffusers ``UNet2DConditionModel``). ``attention_head_dim`` is diffusers' legacy name for the number
# of heads per block (head width 32 in the offline configs); attention (3D across views, and cross-attention to
# the input) sits at the two coarsest resolutions, where 17 frames x h x w tokens stay affordable; the finer
# levels get the volume through depth-wise attention. The paper profile is Stable Diffusion 1.5's UNet (860 M).
_UNET_SMOKE = dict(block_out_channels=(32, 64, 96), layers_per_block=1, cross_attention_dim=64,
                   attention_head_dim=(1, 2, 3), down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=16)
_UNET_SMALL = dict(block_out_channels=(64, 128, 192, 256), layers_per_block=1, cross_attention_dim=256,
                   attention_head_dim=(2, 4, 6, 8), norm_num_groups=32,
                   down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
_UNET_SD15 = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                  attention_head_dim=8, norm_num_groups=32,
                  down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
# Pixel-space models need zero terminal SNR with v-prediction (Gen3DFaceModel.noise_scheduler says why); the
# paper's VAE latents keep SD's epsilon setting.
_PIXEL = dict(codec="pixel", codec_factor=2, prediction_type="v_prediction", zero_terminal_snr=True)

PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", image_size=64, n_views=8, n_synth_views=16, n_identities=4, volume_size=16,
                     frustum_depth=16, ddim_steps=10, batch_size=2, train_steps=60, device="cpu",
                     model=dict(_PIXEL, unet_config=_UNET_SMOKE, volume_channels=8),
                     recon=dict(),  # ReconConfig's defaults: about a CPU minute
                     diffusion_toy=dict(image_size=16, unet_steps=320, unet_batch=32, toy_steps=1500, toy_batch=256,
                                        n_samples=8),
                     synthesis_demo=dict(identities=10, views=24, res=96, defect_rate=0.5, top_k=8, detect_n=6)),
    "small": Profile("small", image_size=128, n_views=16, n_synth_views=48, n_identities=512, volume_size=32,
                     frustum_depth=32, ddim_steps=50, batch_size=8, train_steps=6000, device="cuda",
                     model=dict(_PIXEL, unet_config=_UNET_SMALL, volume_channels=16),
                     recon=dict(grid_sizes=(48, 96), iters=(300, 700), rays_per_batch=4096, fine_samples=24,
                                mesh_resolution=192),  # a few GPU seconds or CPU minutes
                     diffusion_toy=dict(image_size=32, unet_steps=3000, unet_batch=64, toy_steps=4000, toy_batch=512,
                                        n_samples=16),
                     synthesis_demo=dict(identities=100, views=48, res=128, defect_rate=0.2, top_k=85, detect_n=30)),
    "paper": Profile("paper", image_size=256, n_views=16, n_synth_views=48, n_identities=25000, volume_size=32,
                     frustum_depth=48, ddim_steps=50, batch_size=8, train_steps=48000, device="cuda",
                     model=dict(unet_config=_UNET_SD15, codec="vae", volume_channels=16, frustum_size=256 // 8),
                     recon=dict(grid_sizes=(64, 128, 192), iters=(400, 800, 1300), rays_per_batch=16384,
                                fine_samples=32, mesh_resolution=256),  # an H100 in <= 60 s
                     diffusion_toy=dict(image_size=32, unet_steps=8000, unet_batch=128, toy_steps=6000,
                                        toy_batch=1024, n_samples=16),
                     synthesis_demo=dict(identities=1000, views=48, res=256, defect_rate=0.2, top_k=850,
                                         detect_n=50)),
}


def get_profile(name: str | Profile) -> Profile:
    """The named profile; raises :class:`InputError` for an unknown name."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def pick_device(profile: Profile | str = "smoke") -> str:
    """The profile's device if present, else CPU."""
    import torch

    want = get_profile(profile).device
    return "cuda" if want == "cuda" and torch.cuda.is_available() else "cpu"
