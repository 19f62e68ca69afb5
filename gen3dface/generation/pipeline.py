"""Photo -> 16 views: :class:`Gen3DFacePipeline`, a diffusers ``DiffusionPipeline``.

Steps (paper Fig. 2): find the largest face and crop the head like FFHQ (:func:`gen3dface.faces.detect.align_crop`,
background made white with the photo's alpha or a selfie mask); estimate the face mesh from the photo
(:func:`gen3dface.mesh.estimate.estimate_mesh`) and voxelise it; denoise all target views with
:func:`gen3dface.generation.diffusion.sample` (joint: one model call per step for every view; sequential: one per
view); decode. The shipped checkpoint lives in ``data/checkpoints/gen3dface-small``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline

from gen3dface.core.cameras import Cameras, target_ring
from gen3dface.generation.diffusion import sample
from gen3dface.core.errors import InputError
from gen3dface.core.limits import check_model_config_file
from gen3dface.core.images import to_tensor, to_uint8
from gen3dface.generation.inputs import photo_condition
from gen3dface.generation.codecs import PixelCodec
from gen3dface.generation.model import Gen3DFaceModel

#: the shipped small model, trained by scripts/train_small.py (see its MODEL_CARD.md)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "data" / "checkpoints" / "gen3dface-small"
CHECKPOINT_ENV = "GEN3DFACE_CHECKPOINT"


@dataclass
class Gen3DFaceOutput:
    """What the pipeline returns.

    Attributes:
        views: ``(N, S, S, 3)`` uint8 generated views, view ``N // 2`` facing the camera.
        cameras: their cameras ``(N,)`` (:func:`gen3dface.core.cameras.target_ring`).
        input_view: ``(S, S, 3)`` uint8 the crop the model saw; mesh: the estimated
            :class:`gen3dface.mesh.facemesh.FaceMesh`; notes: warnings for the user (several faces, ...).
    """

    views: np.ndarray
    cameras: Cameras
    input_view: np.ndarray
    mesh: object
    notes: list[str]


def default_checkpoint() -> Path:
    """``$GEN3DFACE_CHECKPOINT`` when set, else the shipped small model."""
    return Path(os.environ.get(CHECKPOINT_ENV, DEFAULT_CHECKPOINT))


def start_latents(
    model: Gen3DFaceModel, scheduler, image: torch.Tensor, noise: torch.Tensor, steps: int
) -> torch.Tensor:
    """x_T for sampling: the forward process applied to a heavily blurred input view (4 x 4 colour layout).

    SD's scaled-linear schedule does not reach zero SNR: at the first DDIM step, training inputs still hold
    sqrt(alpha_bar) ~ 0.07 of the clean image, so a model trained on them takes its global colour and background
    from that residue. Pure noise there pulls every sample to a grey mean; starting from the training marginal
    with the input's coarse layout (white background, head colour) does not. For a zero-terminal-SNR model
    (:meth:`Gen3DFaceModel.noise_scheduler`) alpha_bar is 0 at the first step and this is the noise itself.
    ``image (1, 3, S, S)``, ``noise (1, N, C, h, w)`` -> ``(1, N, C, h, w)``.
    """
    import torch.nn.functional as F

    scheduler.set_timesteps(steps, device=noise.device)
    a = scheduler.alphas_cumprod.to(noise.device)[int(scheduler.timesteps[0])].to(noise.dtype)
    low = F.interpolate(
        F.adaptive_avg_pool2d(image.float(), 4), size=image.shape[-2:], mode="bilinear", align_corners=False
    ).to(noise.dtype)
    prior = model.encode(low)[:, None].expand_as(noise)
    return a.sqrt() * prior + (1 - a).sqrt() * noise


#: weight files that are pickles (loading one can run code), as diffusers and torch name them
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_weights(folder: str | os.PathLike, trust_pickle: bool = False) -> bool:
    """Whether the model ``folder`` holds safetensors weights; :class:`InputError` when it holds no weights, or
    pickles only (``diffusion_pytorch_model.bin``, ...) and ``trust_pickle`` (CLI: ``--trust-pickle``) is not
    set, since unpickling can run any code the file holds. Cheap: call it before any work."""
    folder = Path(folder)
    files = [f.name for f in folder.iterdir() if f.is_file()] if folder.is_dir() else []
    safe = any(n.endswith(".safetensors") for n in files)
    pickles = sorted(n for n in files if n.endswith(PICKLE_WEIGHTS))
    if not safe and not pickles:
        raise InputError(f"no model weights in {folder} (expected a .safetensors file beside config.json)")
    if not safe and not trust_pickle:
        raise InputError(
            f"the model weights in {folder} are a pickle ({pickles[0]}), which can run code when loaded; pass "
            "--trust-pickle (trust_pickle=True) only for a file whose source you trust, or convert it to "
            "safetensors"
        )
    return safe


def checkpoint_folder(path: str | os.PathLike | None = None, trust_pickle: bool = False) -> Path:
    """The model folder of checkpoint ``path`` (default :func:`default_checkpoint`; the folder itself or its
    ``model/``), its config and weights checked (:func:`check_weights`) without loading them."""
    path = Path(path) if path is not None else default_checkpoint()
    folder = path / "model" if (path / "model" / "config.json").exists() else path
    if not (folder / "config.json").exists():
        raise InputError(f"no gen3dface model in {path} (expected config.json and a .safetensors file)")
    check_weights(folder, trust_pickle)
    return folder


def load_model(folder: str | os.PathLike, trust_pickle: bool = False, **kw) -> Gen3DFaceModel:
    """``Gen3DFaceModel.from_pretrained(folder, **kw)``, safetensors weights only unless ``trust_pickle``
    (:func:`check_weights`)."""
    safe = check_weights(folder, trust_pickle)
    try:
        return Gen3DFaceModel.from_pretrained(folder, use_safetensors=safe, **kw)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"cannot load the model in {folder}: {str(e).splitlines()[0]}") from None


class Gen3DFacePipeline(DiffusionPipeline):
    """``pipe(photo) -> Gen3DFaceOutput``; load with :meth:`from_checkpoint` (or diffusers'
    ``from_pretrained`` on a saved pipeline folder)."""

    def __init__(self, model: Gen3DFaceModel, scheduler: DDIMScheduler):
        super().__init__()
        self.register_modules(model=model, scheduler=scheduler)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
        trust_pickle: bool = False,
    ) -> "Gen3DFacePipeline":
        """A pipeline around a trained model folder (``config.json`` + safetensors, or a folder holding
        ``model/``). Raises :class:`InputError` when it is missing or not a model, or holds pickle weights only
        and ``trust_pickle`` is not set (:func:`load_model`). The UNet runs in channels-last memory format
        (faster on CPU and GPU); ``compile`` also compiles it (:meth:`Gen3DFaceModel.speed_up`)."""
        folder = checkpoint_folder(path, trust_pickle)
        check_model_config_file(folder / "config.json")  # absurd sizes fail here, not in an allocation
        model = load_model(folder, trust_pickle, torch_dtype=dtype)
        pipe = cls(model.eval(), model.noise_scheduler("ddim"))
        if device is not None:
            pipe.to(device)
        model.speed_up(compile=compile)
        return pipe

    @classmethod
    def from_model(cls, model: Gen3DFaceModel) -> "Gen3DFacePipeline":
        """A pipeline around an in-memory model (e.g. one being trained) and its DDIM scheduler. The model is
        used as it is: its device, dtype and train/eval mode (call ``model.eval()`` first to sample)."""
        return cls(model, model.noise_scheduler("ddim"))

    def prepare(self, photo, mesh_backend: str = "mediapipe", mask: bool = True) -> dict:
        """Crop and mesh a photo (path, array, PIL image): ``{"input": (1, 3, S, S), "crop", "mesh", "camera",
        "source", "source_camera" (only for a model that reprojects the photo), "notes"}``. Raises the package's
        errors for unreadable photos or no face. See :func:`photo_condition`."""
        return photo_condition(photo, self.model.image_size, mesh_backend, mask, source=self.needs_source)

    @property
    def needs_source(self) -> bool:
        """Whether photos for this model need the larger crop the photo is carried from (``"source"``,
        ``"source_camera"``): a model that reprojects the photo."""
        return bool(self.model.config.reprojection)

    def keep_photo_for(self, keep_photo: float | None) -> float:
        """The ``keep_photo`` a call uses: ``None`` -> :data:`KEEP_PHOTO` for a reprojection model, else 0; raises
        :class:`InputError` outside [0, 1] or for a positive value with a model that does not reproject."""
        if keep_photo is None:
            return KEEP_PHOTO if self.model.config.reprojection else 0.0
        if not 0.0 <= keep_photo <= 1.0:
            raise InputError(f"--keep-photo must be between 0 and 1, got {keep_photo}")
        if keep_photo > 0 and not self.model.config.reprojection:
            raise InputError(
                "--keep-photo needs a model trained with the reprojected photo (reprojection=True)"
            )
        return float(keep_photo)

    def guidance_for(self, guidance: float | None, keep_photo: float | None = None) -> float:
        """The guidance weight a call uses: ``guidance`` when given, else :data:`GUIDANCE_KEEPING_PHOTO` when the
        call keeps the photo's pixels (``keep_photo`` as :meth:`keep_photo_for` resolves it is > 0), else
        :data:`GUIDANCE`."""
        if guidance is not None:
            return float(guidance)
        return GUIDANCE_KEEPING_PHOTO if self.keep_photo_for(keep_photo) > 0 else GUIDANCE

    def check_settings(self, num_views: int | None, steps: int, guidance: float | None, init: str) -> int:
        """The number of views to generate; raises :class:`InputError` for settings out of range (``guidance``
        ``None``: the default, :meth:`guidance_for`)."""
        if init not in ("input", "noise"):
            raise InputError(f"unknown init {init!r}; choose input or noise")
        N = self.model.config.n_views if num_views is None else num_views
        if N < 1 or N > 64:
            raise InputError(f"--views must be between 1 and 64, got {N}")
        if steps < 1 or steps > 1000:
            raise InputError(f"--steps must be between 1 and 1000, got {steps}")
        if guidance is not None and not 0.0 <= guidance <= 30.0:
            raise InputError(f"--guidance must be between 0 and 30, got {guidance}")
        return N

    @torch.no_grad()
    def __call__(
        self,
        photo,
        num_views: int | None = None,
        steps: int = 50,
        guidance: float | None = None,
        sampler: str = "joint",
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        mesh_backend: str = "mediapipe",
        progress: bool = True,
        prepared: dict | None = None,
        init: str = "input",
        callback=None,
        keep_photo: float | None = None,
    ) -> Gen3DFaceOutput:
        """Generate ``num_views`` (default: what the model was trained for) views of the head in ``photo``.

        Args:
            steps: DDIM steps; guidance: classifier-free guidance weight (1 = off); sampler: ``"joint"``
                (the paper) or ``"sequential"``; seed / generator: the start noise.
            prepared: the output of :meth:`prepare` (skips cropping and meshing).
            init: ``"input"`` (default; see :func:`start_latents`) or ``"noise"`` (pure Gaussian noise).
        """
        N = self.check_settings(num_views, steps, guidance, init)
        prep = prepared if prepared is not None else self.prepare(photo, mesh_backend)
        return self.generate_batch(
            [prep],
            num_views=N,
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            seed=seed,
            generator=generator,
            progress=progress,
            init=init,
            callback=callback,
            keep_photo=keep_photo,
        )[0]

    @torch.no_grad()
    def generate_batch(
        self,
        prepared: list[dict],
        num_views: int | None = None,
        steps: int = 50,
        guidance: float | None = None,
        sampler: str = "joint",
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        progress: bool = False,
        init: str = "input",
        callback=None,
        keep_photo: float | None = None,
    ) -> list[Gen3DFaceOutput]:
        """Generate the views of several prepared photos (:meth:`prepare` / :func:`photo_condition`) in one
        sampling run (:meth:`generate_views`: the seeding rule, settings and sampling are its).
        Returns one :class:`Gen3DFaceOutput` per photo, in order.
        """
        N = self.check_settings(num_views, steps, guidance, init)
        if not prepared:
            return []
        faces = prepared[0]["mesh"].faces
        if any(
            p["mesh"].faces.shape != faces.shape or (p["mesh"].faces != faces).any() for p in prepared[1:]
        ):
            raise InputError("the photos' meshes must share one topology (one mesh backend) to be batched")
        cams = source = None
        if self.model.config.reprojection:
            if any(p.get("camera") is None for p in prepared):
                raise InputError("this model reprojects the photo: its mesh backend must estimate the camera")
            cams = batch_cameras([p["camera"] for p in prepared])
            if any(p.get("source_camera") is None for p in prepared):
                raise InputError(
                    "this model carries the photo from its larger crop: prepare the photos with this pipeline's "
                    "prepare() (or photo_condition(..., source=True))"
                )
            source = (
                torch.cat([p["source"] for p in prepared]),
                batch_cameras([p["source_camera"] for p in prepared]),
            )
        views = self.generate_views(
            torch.cat([p["input"] for p in prepared]),
            [p["mesh"].vertices for p in prepared],
            faces,
            input_cameras=cams,
            source=source,
            num_views=N,
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            seed=seed,
            generator=generator,
            progress=progress,
            init=init,
            callback=callback,
            keep_photo=keep_photo,
        )
        ring = target_ring(N, image_size=self.model.image_size)
        return [
            Gen3DFaceOutput(views[i], ring, p["crop"].image, p["mesh"], p["notes"])
            for i, p in enumerate(prepared)
        ]

    @torch.no_grad()
    def photo_views(self, prepared: list[dict], num_views: int | None = None) -> np.ndarray:
        """The photo's pixels alone carried into the target views through the head proxy, as a reprojection model
        reads them (its mirror mode, from the larger crop), on white where the photo does not reach: no model, no
        sampling. What the views could keep of the photo, to score beside what the model makes of it.

        Args:
            prepared: photos prepared by :meth:`prepare` for this (reprojection) model, sharing one mesh topology.
        Returns:
            ``(B, N, S, S, 3)`` uint8.
        """
        from gen3dface.volume.reprojection import reproject

        if not self.model.config.reprojection:
            raise InputError(
                "photo_views needs a model trained with the reprojected photo (reprojection=True)"
            )
        N = num_views or self.model.config.n_views
        S = self.model.image_size
        B = len(prepared)
        if B == 0:
            return np.zeros((0, N, S, S, 3), np.uint8)
        src = torch.cat([torch.as_tensor(p["source"]) for p in prepared]).to(self.device, torch.float32)
        verts = torch.stack([torch.as_tensor(p["mesh"].vertices, dtype=torch.float32) for p in prepared])
        warped, visible = reproject(
            src,
            batch_cameras([p["source_camera"] for p in prepared]).to(self.device),
            verts.to(self.device),
            torch.as_tensor(prepared[0]["mesh"].faces),
            target_ring(N, image_size=S).batched(B).to(self.device),
            mirror=self.model.config.reprojection_mirror,
        )
        return to_uint8(warped * visible + (1 - visible))

    @torch.no_grad()
    def generate_views(
        self,
        images: torch.Tensor | np.ndarray,
        vertices,
        faces,
        input_cameras: Cameras | None = None,
        source: tuple[torch.Tensor, Cameras] | None = None,
        num_views: int | None = None,
        steps: int = 50,
        keep_photo: float | None = None,
        guidance: float | None = None,
        sampler: str = "joint",
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        progress: bool = False,
        init: str = "input",
        callback=None,
    ) -> np.ndarray:
        """Generate the target views of conditioned inputs (photos prepared by :meth:`prepare`, or a training
        batch) in one sampling run: one model call per step for all ``B x num_views`` views (and both halves of
        classifier-free guidance). Every way of sampling the model goes through here.

        Args:
            images: the input views, ``(B, 3, S, S)`` float in [-1, 1] or ``(B, S, S, 3)`` uint8 (tensor or array).
            vertices: their meshes ``(B, P, 3)`` (or a list of ``(P, 3)``), sharing ``faces (T, 3)``.
            input_cameras: ``(B,)`` the input views' cameras in their pixels (``prepare(...)["camera"]``, a
                training batch's ``"input_cameras"``); needed by ``reprojection`` models only.
            source: ``reprojection`` models: ``(images (B, 3, kS, kS) in [-1, 1], cameras (B,))``, the inputs as
                larger crops (``prepare(...)["source"]`` / ``["source_camera"]``) that the photo is carried into
                the views from; ``None``: from ``images`` themselves.
            keep_photo: ``reprojection`` models only: in [0, 1], how firmly the views keep the photo's pixels where
                the mesh says the photo sees them (:func:`keep_weights`; sampling then inpaints the rest, see
                :func:`gen3dface.generation.diffusion.sample`'s ``keep``); 0 leaves it to the model alone; ``None``:
                :data:`KEEP_PHOTO` for reprojection models, else 0.
            num_views: target views on :func:`gen3dface.core.cameras.target_ring` (default: the model's).
            steps: DDIM steps; guidance: classifier-free guidance weight (1 = off; ``None``:
                :meth:`guidance_for`); sampler: ``"joint"`` (the paper) or ``"sequential"``; init: ``"input"`` (see
                :func:`start_latents`) or ``"noise"``.
            seed: every input starts from the same noise ``(1, N, C, h, w)``, drawn from a generator seeded with
                ``seed``, so an input's views do not depend on what it is batched with and equal a call for it
                alone (up to floating-point summation order). ``generator`` (one input only) replaces that seeding.
            progress: a progress bar; callback: ``callback(i, t, x_t)`` after every step.
        Returns:
            ``(B, N, S, S, 3)`` uint8 views, view ``N // 2`` facing the camera. Runs in the model's dtype; wrap
            the call in ``torch.autocast`` for mixed precision.
        """
        N = self.check_settings(num_views, steps, guidance, init)
        model = self.model
        S = model.image_size
        if len(images) == 0:
            return np.zeros((0, N, S, S, 3), np.uint8)
        if generator is not None and len(images) != 1:
            raise InputError("generator= seeds one photo; give seed= for a batch")
        dev = self.device
        dtype = next(model.parameters()).dtype
        ring = target_ring(N, image_size=S)
        B = len(images)
        if generator is None:
            generator = torch.Generator(device=dev).manual_seed(0 if seed is None else seed)
        # every input starts from the same seeded draw: what a call for that input alone would draw
        noise = (
            torch.randn(1, N, *model.view_shape, generator=generator, device=dev)
            .to(dtype)
            .repeat(B, 1, 1, 1, 1)
        )
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
            images = images.cpu().numpy()
        if isinstance(images, np.ndarray) and images.dtype == np.uint8:
            images = to_tensor(images)
        x = torch.as_tensor(images).to(dev, dtype)
        if source is not None:
            source = (torch.as_tensor(source[0]).to(dev, dtype), source[1])
        y = model.condition(
            x, vertices, faces, cameras=ring.batched(B), input_cameras=input_cameras, source=source
        )
        x_T = start_latents(model, self.scheduler, x, noise, steps) if init == "input" else noise
        guidance = self.guidance_for(guidance, keep_photo)
        keep_photo = self.keep_photo_for(keep_photo)
        keep = keep_weights(model, y, keep_photo) if keep_photo > 0 else None
        z = sample(
            model,
            y,
            ring.batched(B).to(dev),
            steps=steps,
            guidance=guidance,
            sampler=sampler,
            generator=generator,
            scheduler=self.scheduler,
            x_T=x_T,
            device=dev,
            progress=progress,
            callback=callback,
            keep=keep,
            keep_until=KEEP_UNTIL,
        )
        return to_uint8(model.decode(z))


#: keep_photo's default for reprojection models (paper-faithful models: 0)
KEEP_PHOTO = 1.0
#: keep_photo holds the photo's pixels for this fraction of the sampling steps. Every step: letting the model
#: run free for the last 20 % (to soften seams) lets it redraw the face's fine detail from its procedural prior,
#: and the views lose the person (3 real photos, 20 steps: 50 % of near-frontal views matched at 0.8, 100 % at 1.0).
KEEP_UNTIL = 1.0
#: Classifier-free guidance weight when none is given, for a model that draws the views alone (keep_photo 0).
GUIDANCE = 2.0
#: ... and while the photo's pixels are kept (keep_photo > 0): 1, guidance off, one model call per step instead
#: of two. 9 real photos, 50 steps, the shipped model, five paired runs (four GPU seeds, one CPU run;
#: scripts/bench_real_photos.py's measures): guidance 1 minus 2 is +0.004 on average in input-to-output ID
#: (-0.044 to +0.029) and 0.000 in output-to-output ID; the same within the seed spread, at half the time.
GUIDANCE_KEEPING_PHOTO = 1.0


def keep_weights(model: Gen3DFaceModel, y: dict, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``keep_photo`` keeps: the reprojected photo's latents ``(B, N, C, h, w)`` and a weight: ``strength``
    where a latent pixel is wholly visible from the photo, falling to 0 where at most half of it is (silhouettes
    and grazing surfaces, where the head proxy is least trustworthy).

    In the pixel models' latents (:class:`PixelCodec`: a latent channel is one pixel's colour) the weight is per
    channel, ``(B, N, C, h, w)``, and 0 on the pixels the photo does not see: a partly visible latent pixel keeps
    its visible pixels and leaves the others to the model. (Kept whole, its hidden pixels were pulled towards the
    warp's 0, mid-grey, and the seam between the photo's pixels and the model's came out dotted.) A VAE's latent
    channels mix their pixels, so there the weight is ``(B, N, 1, h, w)``."""
    if not model.config.reprojection:
        raise InputError("keep_photo needs a model trained with the reprojected photo (reprojection=True)")
    rep = y["reprojection"]
    C = model.channels
    w = strength * (2 * rep[:, :, C:] - 1).clamp(0, 1)
    if isinstance(model.codec, PixelCodec):
        v = y["reprojection_visible"].to(w.device, w.dtype)
        w = w * model.encode(v.expand(*v.shape[:2], 3, *v.shape[-2:]))
    return rep[:, :, :C], w


def batch_cameras(cameras: list[Cameras]) -> Cameras:
    """One-camera :class:`Cameras` (each of shape ``()`` or ``(1,)``) of the same size as one ``(B,)`` batch."""
    c0 = cameras[0]
    K = torch.stack([c.K.reshape(3, 3) for c in cameras])
    c2w = torch.stack([c.c2w.reshape(4, 4) for c in cameras])
    return Cameras(K, c2w, c0.height, c0.width)


def contact_sheet(views: np.ndarray, input_view: np.ndarray | None = None, columns: int = 8) -> np.ndarray:
    """Views ``(N, S, S, 3)`` (and the input first, when given) tiled into one ``(rows*S, columns*S, 3)``
    uint8 image, white where empty."""
    tiles = ([input_view] if input_view is not None else []) + list(views)
    S = views.shape[1]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * S, columns * S, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        if t.shape[:2] != (S, S):
            import cv2

            t = cv2.resize(t, (S, S), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, columns)
        sheet[r * S : (r + 1) * S, c * S : (c + 1) * S] = t
    return sheet
