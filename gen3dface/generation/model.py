"""The Gen3D-Face noise predictor (paper Sec. 3.2, "Multi-view joint generation").

One :class:`Gen3DFaceModel` call denoises every target view of a sample at once:

* backbone: a diffusers ``UNet2DConditionModel`` (Stable Diffusion's when the user has it, via
  :meth:`Gen3DFaceModel.from_stable_diffusion`; a random-init small config otherwise);
* frames: the UNet runs on ``1 + N`` frames per sample, the clean input view first, then the N noisy
  target views; every frame also gets the input view concatenated on its channels (zero123-style) and, in a
  model configured with ``reprojection=True``, the input view carried into that target view through the
  estimated mesh with its visibility (:mod:`gen3dface.volume.reprojection`; not in the paper: see there);
* camera + time: a camera encoder's output is added to the UNet's time embedding of each frame (the input
  frame gets an "input view" flag instead of a camera);
* volume conditioning: :class:`gen3dface.volume.conditioning.HybridVolume` builds F_H from the noisy views and the
  estimated mesh, :class:`~gen3dface.volume.conditioning.FrustumNet` samples it along each target view's rays, and
  :class:`~gen3dface.volume.conditioning.DepthWiseAttention` injects those frustum features into the UNet;
* joint generation: every self-attention layer of the UNet attends over the tokens of all frames at once
  (3D self-attention). The *sequential* baseline lets each target view attend only to itself and the
  input view, so target views are tied only through the volume.

Images live in a codec space ("latents"): ``pixel`` (a lossless pixel-unshuffle by ``factor``, the offline
small models) or ``vae`` (Stable Diffusion's AutoencoderKL). Shapes: input view ``y["image"] (B, 3, H, W)``
in [-1, 1]; latents ``(B, N, C, h, w)``; cameras :class:`gen3dface.core.cameras.Cameras` of batch shape
``(B, N)`` at image resolution.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from torch import nn
from torch.profiler import record_function

from gen3dface.core.cameras import Cameras
from gen3dface.volume.conditioning import DepthWiseAttention, FrustumNet, HybridVolume, camera_embedding
from gen3dface.core.errors import InputError
from gen3dface.core.profiles import get_profile
from gen3dface.generation.codecs import PixelCodec, VAECodec
from gen3dface.volume.grid import voxelize_mesh
from gen3dface.volume.reprojection import MIRROR_MODES, reproject

ATTENTION_MODES = ("joint", "sequential")
PREDICTION_TYPES = ("epsilon", "v_prediction")
CAMERA_DIM = 7  # camera_embedding's 6 values + an "input view" flag


# ------------------------------------------------------------------------------------ 3D self-attention
class MultiViewAttnProcessor:
    """Self-attention over the tokens of all frames of a sample (the paper's 3D self-attention).

    The UNet sees ``B * F`` frames (frame 0 the input view); ``owner.frames`` tells how many frames each
    sample has. ``joint``: one attention over ``F * L`` tokens. ``sequential``: the input frame attends to
    itself; each target frame attends to itself and the input frame (no other target view).
    """

    def __init__(self, owner: "Gen3DFaceModel"):
        self.owner = owner

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ):
        if encoder_hidden_states is not None or attn.group_norm is not None or attn.spatial_norm is not None:
            raise RuntimeError("MultiViewAttnProcessor is for plain self-attention layers (attn1)")
        frames, mode = self.owner._frames, self.owner._mode
        BF, L, C = hidden_states.shape
        B = BF // frames
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        heads = attn.heads

        def split(t: torch.Tensor, n: int) -> torch.Tensor:  # (b, n, C) -> (b, heads, n, C/heads)
            return t.reshape(t.shape[0], n, heads, -1).transpose(1, 2)

        if mode == "joint" or frames == 1:
            sh = (B, frames * L, -1)
            out = F.scaled_dot_product_attention(
                split(q.reshape(sh), frames * L),
                split(k.reshape(sh), frames * L),
                split(v.reshape(sh), frames * L),
            )
            out = out.transpose(1, 2).reshape(BF, L, -1)
        else:
            q, k, v = (t.reshape(B, frames, L, -1) for t in (q, k, v))
            first = F.scaled_dot_product_attention(split(q[:, 0], L), split(k[:, 0], L), split(v[:, 0], L))
            T = frames - 1
            kk = torch.cat([k[:, 1:], k[:, :1].expand(-1, T, -1, -1)], 2).reshape(B * T, 2 * L, -1)
            vv = torch.cat([v[:, 1:], v[:, :1].expand(-1, T, -1, -1)], 2).reshape(B * T, 2 * L, -1)
            rest = F.scaled_dot_product_attention(
                split(q[:, 1:].reshape(B * T, L, -1), L), split(kk, 2 * L), split(vv, 2 * L)
            )
            out = torch.cat(
                [first.transpose(1, 2).reshape(B, 1, L, -1), rest.transpose(1, 2).reshape(B, T, L, -1)], 1
            ).reshape(BF, L, -1)
        out = attn.to_out[1](attn.to_out[0](out.to(q.dtype)))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


# ----------------------------------------------------------------------------------------- the model
class InputEncoder(nn.Module):
    """Tokens of the input view for the UNet's cross-attention: ``(B, C, h, w)`` -> ``(B, (h/8)(w/8), D)``.

    Takes CLIP's image-embedding role in zero123 (a learned encoder here, so nothing is downloaded).
    """

    def __init__(self, cin: int, dim: int):
        super().__init__()
        w = max(32, dim // 4)
        self.net = nn.Sequential(
            nn.Conv2d(cin, w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(4 * w, dim, 4, 2, 1),
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(y).flatten(2).transpose(1, 2))


class Gen3DFaceModel(ModelMixin, ConfigMixin):
    """The multi-view noise predictor ``model(x_t, t, y, cameras, views=None) -> eps`` of
    :mod:`gen3dface.generation.diffusion`.

    Args:
        unet_config: ``UNet2DConditionModel`` config (block sizes, attention, cross-attention width).
        image_size: side of input and target views, pixels.
        codec: ``"pixel"`` (lossless pixel-unshuffle by ``codec_factor``) or ``"vae"`` (SD's autoencoder,
            attached with :meth:`set_vae`; not stored in the checkpoint).
        volume_size, volume_channels, frustum_depth: V, F and D of the volume conditioning.
        frustum_size: latent resolution of the finest frustum level (levels halve twice); depth-wise
            attention is injected into every UNet block at one of those resolutions.
        attention: ``"joint"`` (3D self-attention across all views, the paper) or ``"sequential"``.
        n_views: N, the number of target views it was trained for (informational; any N works).
        prediction_type: what the network predicts, ``"epsilon"`` (the paper's Eq. 4) or ``"v_prediction"``.
        zero_terminal_snr: train and sample with SD's betas rescaled to reach zero SNR at t = T (needs
            v-prediction); see :meth:`noise_scheduler`.
        reprojection: also read the input view reprojected into every target view through the estimated mesh
            (``y["reprojection"]``, :meth:`condition`); ``False`` is the paper's model. ``reprojection_mirror``:
            how the photo's mirror image is used (``reproject``'s ``mirror``: ``True`` fills what the photo misses).
    """

    config_name = "config.json"
    supports_volume_groups = True  # see forward's volume_groups

    @register_to_config
    def __init__(
        self,
        unet_config: dict | None = None,
        image_size: int = 64,
        codec: str = "pixel",
        codec_factor: int = 1,
        volume_size: int = 16,
        volume_channels: int = 16,
        frustum_depth: int = 16,
        frustum_size: int | None = None,
        attention: str = "joint",
        n_views: int = 16,
        latent_channels: int = 4,
        prediction_type: str = "epsilon",
        zero_terminal_snr: bool = False,
        reprojection: bool = False,
        reprojection_mirror: bool | str = False,
    ):
        super().__init__()
        if reprojection_mirror not in MIRROR_MODES:
            raise InputError(f"reprojection_mirror {reprojection_mirror!r}: choose one of {MIRROR_MODES}")
        if attention not in ATTENTION_MODES:
            raise InputError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTION_MODES)}")
        if prediction_type not in PREDICTION_TYPES:
            raise InputError(
                f"unknown prediction type {prediction_type!r}; choose one of {', '.join(PREDICTION_TYPES)}"
            )
        if zero_terminal_snr and prediction_type != "v_prediction":
            raise InputError(
                "a zero-terminal-SNR schedule needs prediction_type='v_prediction' (epsilon is "
                "undefined where no signal is left)"
            )
        # the codec is held, not registered: a VAE belongs to the pipeline and is not saved with the model
        if codec == "pixel":
            object.__setattr__(self, "codec", PixelCodec(codec_factor))
            channels = self.codec.channels
        elif codec == "vae":
            object.__setattr__(self, "codec", None)  # attached by set_vae
            channels = latent_channels
            codec_factor = 8
        else:
            raise InputError(f"unknown codec {codec!r}; choose 'pixel' or 'vae'")
        if image_size % (codec_factor * 8):
            raise InputError(f"image_size {image_size} must be a multiple of {codec_factor * 8}")
        self.channels = channels
        self.latent_size = image_size // codec_factor
        cfg = dict(get_profile("smoke").model["unet_config"] if unet_config is None else unet_config)
        extra = channels + 1 if reprojection else 0  # the reprojected input view's latent and its visibility
        cfg.update(sample_size=self.latent_size, in_channels=2 * channels + extra, out_channels=channels)
        self.unet = UNet2DConditionModel(**cfg)
        temb_dim = self.unet.time_embedding.linear_2.out_features
        self.camera_encoder = nn.Sequential(
            nn.Linear(CAMERA_DIM, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim)
        )
        nn.init.zeros_(self.camera_encoder[2].weight)
        nn.init.zeros_(self.camera_encoder[2].bias)
        self.input_encoder = InputEncoder(channels, self.unet.config.cross_attention_dim)
        self.volume = HybridVolume(channels, volume_channels, temb_dim, volume_size)
        self.frustum = FrustumNet(volume_channels, temb_dim, frustum_depth)
        self.frustum_size = frustum_size or max(8, self.latent_size // 2)
        levels = [self.frustum_size // 2**i for i in range(3)]
        self._dwa_sites = []  # (module name, resolution)
        dwa = {}
        res = self.latent_size
        for i, block in enumerate(self.unet.down_blocks):
            if res in levels:
                dwa[f"down{i}"] = DepthWiseAttention(block.resnets[0].conv2.out_channels, volume_channels)
                self._dwa_sites.append((f"down{i}", block.resnets[0], res))
            res = res // 2 if getattr(block, "downsamplers", None) else res
        for i, block in enumerate(self.unet.up_blocks):
            if res in levels:
                dwa[f"up{i}"] = DepthWiseAttention(block.resnets[0].conv2.out_channels, volume_channels)
                self._dwa_sites.append((f"up{i}", block.resnets[0], res))
            res = res * 2 if getattr(block, "upsamplers", None) else res
        self.dwa = nn.ModuleDict(dwa)
        self._ctx: dict[str, Any] = {}
        self._frames, self._mode = 1, attention
        self._install_hooks()

    # ------------------------------------------------------------------------------------ plumbing
    def _install_hooks(self) -> None:
        self.unet.time_embedding.register_forward_hook(self._add_camera)
        for name, module, res in self._dwa_sites:
            module.register_forward_hook(self._make_dwa_hook(name, res))
        procs = {}
        for name in self.unet.attn_processors:
            procs[name] = (
                MultiViewAttnProcessor(self)
                if name.endswith("attn1.processor")
                else self.unet.attn_processors[name]
            )
        self.unet.set_attn_processor(procs)

    def _add_camera(self, module, args, out):
        cam = self._ctx.get("camera")
        return out if cam is None else out + cam.to(out.dtype)

    def _make_dwa_hook(self, name: str, res: int):
        def hook(module, args, out):
            frustum = self._ctx.get("frustum")
            if frustum is None:
                return out
            ctx = frustum[res]  # (B, T, F, D, h, w)
            B, T = ctx.shape[:2]
            x = out.unflatten(0, (B, 1 + T))
            with record_function("gen3dface.depthwise_attention"):
                targets = self.dwa[name](x[:, 1:].flatten(0, 1), ctx.flatten(0, 1).to(out.dtype))
            return torch.cat([x[:, :1], targets.unflatten(0, (B, T))], 1).flatten(0, 1)

        return hook

    def noise_scheduler(self, kind: str = "ddim"):
        """The diffusers scheduler this model was trained with (``"ddpm"``) or samples with (``"ddim"``).

        The paper's setting is SD's scaled-linear betas with epsilon prediction. Those betas leave
        sqrt(alpha_bar_T) = 0.068 of the image at t = T; in a VAE's latent space that residue is faint, but in
        the offline models' pixel space a view's colour layout stays readable from x_T (averaged over 16 x 16
        pixels its SNR is above 1), so a model learns to take colours from the noisy targets rather than
        from the input view, and at sampling time (pure noise) falls back to a mean head. Models configured
        with ``zero_terminal_snr`` use the same betas rescaled to reach SNR 0 at t = T (Lin et al. 2024,
        "Common diffusion noise schedules and sample steps are flawed"), v-prediction and trailing DDIM
        timesteps, so the first sampling step starts from pure noise and must read the input view."""
        from gen3dface.generation.diffusion import make_scheduler

        extra = {"prediction_type": self.config.prediction_type}
        if self.config.zero_terminal_snr:
            extra["rescale_betas_zero_snr"] = True
            if kind == "ddim":
                extra["timestep_spacing"] = "trailing"
        return make_scheduler(kind, **extra)

    def speed_up(self, compile: bool = True) -> "Gen3DFaceModel":
        """Make sampling faster on a GPU; returns ``self``. The UNet's weights go to channels-last memory format
        (cuDNN's fast layout for fp16 convolutions) and, with ``compile``, the UNet is compiled in place by
        ``torch.compile`` (fused normalisation/activation kernels; its first call takes a minute or two). The
        weights, ``state_dict`` and results (up to float rounding) are unchanged. Measured on an H100, paper
        profile, 16 views, 50 steps: 2.82 s -> 2.33 s (``scripts/bench_sampling.py``)."""
        self.unet.to(memory_format=torch.channels_last)
        if compile:
            self.unet.compile()
        return self

    @property
    def view_shape(self) -> tuple[int, int, int]:
        """``(C, h, w)`` of one target view's latent."""
        return self.channels, self.latent_size, self.latent_size

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def set_vae(self, vae) -> None:
        """Attach Stable Diffusion's ``AutoencoderKL`` (``codec="vae"`` models)."""
        object.__setattr__(self, "codec", VAECodec(vae))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(..., 3, H, W)`` in [-1, 1] -> latents ``(..., C, h, w)``."""
        if self.codec is None:
            raise InputError("this model works in a VAE's latent space: call set_vae(AutoencoderKL...) first")
        return self.codec.encode(images)

    def condition(
        self,
        images: torch.Tensor,
        vertices,
        faces,
        cameras: Cameras | None = None,
        input_cameras: Cameras | None = None,
        reprojected: tuple[torch.Tensor, torch.Tensor] | None = None,
        source: tuple[torch.Tensor, Cameras] | None = None,
    ) -> dict:
        """The condition ``y`` of :meth:`forward` for input views ``images (B, 3, S, S)`` in [-1, 1] and the meshes
        estimated from them: ``vertices (B, P, 3)`` (or a list of ``(P_b, 3)``) sharing ``faces (T, 3)``. Each mesh
        is voxelised where its vertices are (on the CPU for a NumPy mesh) and moved to the images' device.

        A ``reprojection`` model also needs the target ``cameras (B, N)`` and the ``input_cameras (B,)`` (in the
        input views' pixels, :func:`gen3dface.volume.reprojection.crop_cameras`), or the already computed
        ``reprojected = (warped (B, N, 3, S, S), visible (B, N, 1, S, S))``; it adds ``y["reprojection"]``
        ``(B, N, C + 1, h, w)``: the warped views' latents and the visibility averaged to latent pixels, and
        ``y["reprojection_visible"]`` ``(B, N, 1, S, S)``: the visibility itself (what ``keep_photo`` reads; the
        network does not).
        ``source``: ``(images (B, 3, kS, kS), their cameras (B,))`` to carry from instead (a larger crop)."""
        V = self.config.volume_size
        voxels = []
        for v in vertices:
            v = torch.as_tensor(v, dtype=torch.float32)
            f = torch.as_tensor(faces, dtype=torch.long, device=v.device)
            voxels.append(voxelize_mesh(v, f, V).to(images.device))
        y = {"latent": self.encode(images), "mesh_voxels": voxels}
        if self.config.reprojection:
            if reprojected is None:
                if cameras is None or input_cameras is None:
                    raise InputError("a reprojection model needs the target cameras and the input cameras")
                verts = torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in vertices])
                mirror = self.config.reprojection_mirror
                src = source or (images, input_cameras)
                reprojected = reproject(*src, verts, torch.as_tensor(faces), cameras, mirror=mirror)
            warped, visible = (r.to(images.device, images.dtype) for r in reprojected)
            vis = F.adaptive_avg_pool2d(visible.flatten(0, 1), self.latent_size).unflatten(
                0, visible.shape[:2]
            )
            y["reprojection"] = torch.cat([self.encode(warped), vis], 2)
            y["reprojection_visible"] = visible
        return y

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(..., C, h, w)`` -> images ``(..., 3, H, W)`` (about [-1, 1])."""
        if self.codec is None:
            raise InputError("this model works in a VAE's latent space: call set_vae(AutoencoderKL...) first")
        return self.codec.decode(latents)

    # ------------------------------------------------------------------------------------- forward
    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        y: dict,
        cameras: Cameras,
        views: torch.Tensor | None = None,
        attention: str | None = None,
        volume_groups: int = 1,
    ) -> torch.Tensor:
        """Predict the noise of target views.

        Args:
            x_t: noisy target latents ``(B, N, C, h, w)``.
            t: timesteps ``(B,)``.
            y: the condition: ``{"latent": (B, C, h, w)`` input-view latent (zeros = unconditional),
                ``"mesh_voxels": [ (n_b, 3) ]`` voxel indices of each sample's estimated mesh at
                ``volume_size`` (:func:`gen3dface.volume.grid.voxelize_mesh`), and for a ``reprojection`` model
                ``"reprojection": (B, N, C + 1, h, w)`` (:meth:`condition`; zeros = unconditional)}.
            cameras: the N target cameras ``(B, N)`` at image resolution.
            views: ``None`` for every view in one call (joint); a ``(K,)`` index for those views only (the
                volume still sees all of ``x_t``).
            attention: override of the config's attention mode for this call.
            volume_groups: G > 1 says that the batch is G stacked copies of the same ``x_t``, ``t``, cameras and
                mesh that differ only in ``y["latent"]`` (classifier-free guidance stacks the conditional and
                the unconditional half). F_H and the frustum volumes do not read the input view, so they are
                computed once for ``B / G`` samples and shared: the same result, with less work.
        Returns:
            ``eps (B, K, C, h, w)``."""
        B, N = x_t.shape[:2]
        if views is None:
            views = torch.arange(N, device=x_t.device)
        mode = attention or self.config.attention
        K = len(views)
        dtype = x_t.dtype
        lat_cams = cameras.resized(self.latent_size).to(x_t.device)
        temb = self.unet.time_embedding(self.unet.time_proj(t).to(dtype))  # (B, E), no camera yet
        sel = lat_cams[:, views]
        G = volume_groups
        if G < 1 or B % G:
            raise InputError(f"volume_groups {G} must divide the batch size {B}")
        u = B // G
        with record_function("gen3dface.volume.grid"):
            f_h = self.volume(x_t[:u], temb[:u], lat_cams[:u], y["mesh_voxels"][:u])
        with record_function("gen3dface.frustum"):
            levels = self.frustum(f_h, temb[:u], sel[:u], self.frustum_size)
        frustum = {lv.shape[-1]: lv.repeat(G, *([1] * (lv.dim() - 1))) if G > 1 else lv for lv in levels}
        y_lat = y["latent"].to(dtype)
        frames = torch.cat([y_lat[:, None], x_t[:, views]], 1)  # (B, 1 + K, C, h, w)
        parts = [frames, y_lat[:, None].expand_as(frames)]
        if self.config.reprojection:  # the input frame gets zeros: it is the input view itself
            rep = y["reprojection"][:, views].to(dtype)
            parts.append(torch.cat([torch.zeros_like(rep[:, :1]), rep], 1))
        unet_in = torch.cat(parts, 2).flatten(0, 1)
        tf = torch.cat([torch.zeros_like(t)[:, None], t[:, None].expand(B, K)], 1).flatten()
        cam = torch.zeros(B, 1 + K, CAMERA_DIM, device=x_t.device, dtype=dtype)
        cam[:, 0, -1] = 1
        cam[:, 1:, :-1] = camera_embedding(sel).to(dtype)
        tokens = self.input_encoder(y_lat)
        tokens = tokens[:, None].expand(B, 1 + K, *tokens.shape[1:]).flatten(0, 1)
        self._ctx = {"camera": self.camera_encoder(cam.flatten(0, 1)), "frustum": frustum}
        self._frames, self._mode = 1 + K, mode
        try:
            with record_function("gen3dface.unet"):
                out = self.unet(unet_in, tf, encoder_hidden_states=tokens).sample
        finally:
            self._ctx = {}
        return out.unflatten(0, (B, 1 + K))[:, 1:]

    # ---------------------------------------------------------------------------------- construction
    @classmethod
    def from_profile(cls, profile: str = "smoke", **overrides) -> "Gen3DFaceModel":
        """A random-init model of a profile: ``smoke`` (tiny, CPU tests), ``small`` (the shipped model's
        architecture: 128 px, pixel-unshuffle 2, 16 views), ``paper`` (SD 1.5's UNet, 256 px, VAE latents).
        The pixel-space profiles use v-prediction with a zero-terminal-SNR schedule, the paper profile SD's
        epsilon prediction (:meth:`noise_scheduler` says why)."""
        p = get_profile(profile)
        kw = dict(
            p.model,
            image_size=p.image_size,
            volume_size=p.volume_size,
            frustum_depth=p.frustum_depth,
            n_views=p.n_views,
        )
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def from_stable_diffusion(cls, path: str | os.PathLike, image_size: int = 256, **kw) -> "Gen3DFaceModel":
        """Build on a Stable Diffusion checkpoint (a diffusers folder with ``unet/`` and ``vae/``): its UNet's
        weights, ``conv_in`` widened for the concatenated input view (new channels start at zero, so the
        pretrained UNet is unchanged at initialisation), and its VAE as the codec."""
        from diffusers import AutoencoderKL

        path = Path(path)
        if not (path / "unet").is_dir():
            raise InputError(f"{path} is not a diffusers Stable Diffusion folder (no unet/ inside)")
        sd_unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae") if (path / "vae").is_dir() else None
        keep = {
            k: v
            for k, v in sd_unet.config.items()
            if not k.startswith("_") and k not in ("sample_size", "in_channels", "out_channels")
        }
        model = cls(
            unet_config=keep,
            image_size=image_size,
            codec="vae",
            latent_channels=sd_unet.config.in_channels,
            **kw,
        )
        state = copy.copy(sd_unet.state_dict())
        state["conv_in.weight"] = widened_input(state["conv_in.weight"], model.unet.conv_in.in_channels)
        missing, unexpected = model.unet.load_state_dict(state, strict=False)
        if unexpected or missing:
            raise InputError(
                f"{path}: UNet weights do not fit ({len(missing)} missing, {len(unexpected)} unexpected)"
            )
        if vae is not None:
            model.set_vae(vae)
        return model


def widened_input(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A conv weight ``(out, c, k, k)`` widened to ``in_channels`` inputs, the new ones zero: the layer computes what
    it did for the old inputs and ignores the new ones until trained."""
    wide = torch.zeros(weight.shape[0], in_channels, *weight.shape[2:], dtype=weight.dtype)
    wide[:, : weight.shape[1]] = weight
    return wide


def add_reprojection(model: Gen3DFaceModel) -> Gen3DFaceModel:
    """``model`` as a ``reprojection=True`` model: the same weights, ``conv_in`` widened for the reprojected
    view's channels with zeros, so it starts out computing exactly what ``model`` computes (fine-tuning a trained
    paper-faithful model into one that reads the reprojection)."""
    if model.config.reprojection:
        return model
    new = Gen3DFaceModel(**{**dict(model.config), "reprojection": True})
    state = copy.copy(model.state_dict())
    w = state["unet.conv_in.weight"]
    state["unet.conv_in.weight"] = widened_input(w, new.unet.conv_in.in_channels)
    new.load_state_dict(state)
    new.to(w.device)
    return new if w.dtype == torch.float32 else new.to(dtype=w.dtype)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def attention_to_views(
    model: Gen3DFaceModel,
    x_t: torch.Tensor,
    t: torch.Tensor,
    y: dict,
    cameras: Cameras,
    query_view: int,
    layer: int = 0,
    attention: str | None = None,
) -> torch.Tensor:
    """Where the tokens of one target view look, in one 3D self-attention layer.

    Runs the model once, captures the input of the ``layer``-th self-attention (``attn1``) layer, and returns the
    attention probabilities of ``query_view``'s tokens (averaged over its tokens and the heads) over the tokens
    of every frame: ``(B, 1 + N, h, w)`` (frame 0 = the input view), summing to 1 per sample."""
    mods = [m for n, m in model.unet.named_modules() if n.endswith("attn1")]
    attn = mods[layer]
    seen = {}

    def grab(module, args, kwargs):
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(x_t, t, y, cameras, attention=attention)
    finally:
        handle.remove()
    hs = seen["x"]  # (B * F, L, C)
    F_ = 1 + x_t.shape[1]
    B, L = hs.shape[0] // F_, hs.shape[1]
    heads = attn.heads
    q = attn.to_q(hs).reshape(B, F_, L, heads, -1)[:, 1 + query_view]  # (B, L, heads, c)
    k = attn.to_k(hs).reshape(B, F_ * L, heads, -1)
    scores = torch.einsum("blhc,bmhc->bhlm", q, k) * q.shape[-1] ** -0.5
    mode = attention or model.config.attention
    if mode == "sequential":  # the query view sees itself and the input frame only
        keep = torch.zeros(F_, dtype=torch.bool, device=hs.device)
        keep[[0, 1 + query_view]] = True
        scores = scores.masked_fill(~keep.repeat_interleave(L)[None, None, None], float("-inf"))
    p = scores.softmax(-1).mean((1, 2))  # (B, F * L)
    side = int(round(L**0.5))
    return p.reshape(B, F_, side, side)
