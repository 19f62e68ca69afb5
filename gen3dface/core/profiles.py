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
        mesh_evaluation: notebook 03's measurement of the estimated face mesh on synthetic heads (keyword
            arguments of ``evaluate_on_synthetic``: identities, input azimuths and elevations).
        volume_demo: notebook 04's sizes (``n_views``: views unprojected into the volume).
        training_demo: notebook 05's sizes (``model_profile``: the model built to count parameters; ``identities``
            and ``train_steps`` of the CPU training run; ``sample_steps`` and ``guidance`` for the shipped model).
        evaluation_demo: notebook 06's sizes (``identities``: held-out identities evaluated; ``sample_steps`` and
            ``guidance`` for the shipped model).
        ablation_run: notebook 08's sizes (``model_profile``: the model trained, small (the shipped model's
            size) in every profile but smoke; ``data_folder``: the prepared data under ``outputs/``;
            ``tiny_data``: keyword arguments of ``ablation.make_ablation_data`` for a set made on the spot, or None to
            prepare the full size once; ``steps``, ``batch``; ``sample_steps`` when generating; ``indomain``:
            held-out identities generated, None for all).
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
    mesh_evaluation: dict[str, Any]
    volume_demo: dict[str, int]
    training_demo: dict[str, Any]
    evaluation_demo: dict[str, Any]
    ablation_run: dict[str, Any]

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "Profile":
        return replace(self, **changes)


# UNet configs (diffusers ``UNet2DConditionModel``). ``attention_head_dim`` is diffusers' legacy name for the number
# of heads per block (head width 32 in the offline configs); attention (3D across views, and cross-attention to
# the input) sits at the two coarsest resolutions, where 17 frames x h x w tokens stay affordable; the finer
# levels get the volume through depth-wise attention. The paper profile is Stable Diffusion 1.5's UNet (860 M).
_UNET_SMOKE = dict(
    block_out_channels=(32, 64, 96),
    layers_per_block=1,
    cross_attention_dim=64,
    attention_head_dim=(1, 2, 3),
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=16,
)
_UNET_SMALL = dict(
    block_out_channels=(64, 128, 192, 256),
    layers_per_block=1,
    cross_attention_dim=256,
    attention_head_dim=(2, 4, 6, 8),
    norm_num_groups=32,
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
)
_UNET_SD15 = dict(
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)
# Pixel-space models need zero terminal SNR with v-prediction (Gen3DFaceModel.noise_scheduler says why); the
# paper's VAE latents keep SD's epsilon setting.
_PIXEL = dict(codec="pixel", codec_factor=2, prediction_type="v_prediction", zero_terminal_snr=True)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        image_size=64,
        n_views=8,
        n_synth_views=16,
        n_identities=4,
        volume_size=16,
        frustum_depth=16,
        ddim_steps=10,
        batch_size=2,
        train_steps=60,
        device="cpu",
        model=dict(_PIXEL, unet_config=_UNET_SMOKE, volume_channels=8),
        recon=dict(),  # ReconConfig's defaults: about a CPU minute
        diffusion_toy=dict(
            image_size=16, unet_steps=320, unet_batch=32, toy_steps=1500, toy_batch=256, n_samples=8
        ),
        synthesis_demo=dict(identities=10, views=24, res=96, defect_rate=0.5, top_k=8, detect_n=6),
        mesh_evaluation=dict(n_identities=2, azimuths=(-60, -30, 0, 30, 60), elevations=(0,)),
        volume_demo=dict(n_views=8),
        training_demo=dict(model_profile="smoke", identities=3, train_steps=24, sample_steps=5, guidance=1.0),
        evaluation_demo=dict(identities=1, sample_steps=5, guidance=1.0),
        ablation_run=dict(
            model_profile="smoke",
            data_folder="ablation_smoke",
            tiny_data=dict(identities=10, heldout=2, ood_per_style=1, per_identity=2),
            steps=3,
            batch=2,
            sample_steps=2,
            indomain=None,
        ),
    ),
    "small": Profile(
        "small",
        image_size=128,
        n_views=16,
        n_synth_views=48,
        n_identities=512,
        volume_size=32,
        frustum_depth=32,
        ddim_steps=50,
        batch_size=8,
        train_steps=6000,
        device="cuda",
        model=dict(_PIXEL, unet_config=_UNET_SMALL, volume_channels=16),
        recon=dict(
            grid_sizes=(48, 96), iters=(300, 700), rays_per_batch=4096, fine_samples=24, mesh_resolution=192
        ),  # a few GPU seconds or CPU minutes
        diffusion_toy=dict(
            image_size=32, unet_steps=3000, unet_batch=64, toy_steps=4000, toy_batch=512, n_samples=16
        ),
        synthesis_demo=dict(identities=100, views=48, res=128, defect_rate=0.2, top_k=85, detect_n=30),
        mesh_evaluation=dict(
            n_identities=6, azimuths=(-60, -40, -20, 0, 20, 40, 60), elevations=(-30, 0, 30)
        ),
        volume_demo=dict(n_views=16),
        training_demo=dict(
            model_profile="small", identities=16, train_steps=400, sample_steps=50, guidance=2.0
        ),
        evaluation_demo=dict(identities=8, sample_steps=50, guidance=2.0),
        ablation_run=dict(
            model_profile="small",
            data_folder="ablate",
            tiny_data=None,
            steps=600,
            batch=16,
            sample_steps=25,
            indomain=16,
        ),
    ),
    "paper": Profile(
        "paper",
        image_size=256,
        n_views=16,
        n_synth_views=48,
        n_identities=25000,
        volume_size=32,
        frustum_depth=48,
        ddim_steps=50,
        batch_size=8,
        train_steps=48000,
        device="cuda",
        model=dict(unet_config=_UNET_SD15, codec="vae", volume_channels=16, frustum_size=256 // 8),
        recon=dict(
            grid_sizes=(64, 128, 192),
            iters=(400, 800, 1300),
            rays_per_batch=16384,
            fine_samples=32,
            mesh_resolution=256,
        ),  # an H100 in <= 60 s
        diffusion_toy=dict(
            image_size=32, unet_steps=8000, unet_batch=128, toy_steps=6000, toy_batch=1024, n_samples=16
        ),
        synthesis_demo=dict(identities=1000, views=48, res=256, defect_rate=0.2, top_k=850, detect_n=50),
        mesh_evaluation=dict(
            n_identities=20, azimuths=(-60, -45, -30, -15, 0, 15, 30, 45, 60), elevations=(-30, 0, 30)
        ),
        volume_demo=dict(n_views=16),
        training_demo=dict(
            model_profile="small", identities=16, train_steps=400, sample_steps=50, guidance=2.0
        ),
        evaluation_demo=dict(identities=8, sample_steps=50, guidance=2.0),
        ablation_run=dict(
            model_profile="small",
            data_folder="ablate",
            tiny_data=None,
            steps=600,
            batch=16,
            sample_steps=25,
            indomain=16,
        ),
    ),
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
