"""Multi-view diffusion on top of diffusers' schedulers (paper Sec. 3.1, Eqs. 1-4).

Tensors: target views ``x (B, V, C, H, W)`` (C, H, W: image or latent), input view ``y (B, C', H', W')``,
timesteps ``t (B,)`` shared by all views of a sample (the forward process adds noise to every view
*independently*, at the same t).

The noise predictor every sampler drives is any callable

    model(x_t (B, V, C, H, W), t (B,), y, cameras, views=None) -> eps (B, V', C, H, W)

``views=None`` asks for all V views at once (the paper's *joint* generation: one call, attention across
views); ``views=LongTensor (K,)`` asks for those views only, with all of ``x_t`` still given as context
(the *sequential* scheme of SyncDreamer / Morphable Diffusion: one call per view, views tied only through
what the model builds from all of ``x_t``, e.g. the feature volume).
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from gen3dface.core.progress import progress_bar

from gen3dface.core.cameras import Cameras
from gen3dface.core.errors import InputError

#: beta schedules by name: diffusers' parameters for each
SCHEDULES: dict[str, dict] = {
    "linear": dict(beta_schedule="linear", beta_start=1e-4, beta_end=2e-2),  # DDPM (Ho et al.)
    "scaled_linear": dict(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    ),  # Stable Diffusion
    "cosine": dict(beta_schedule="squaredcos_cap_v2"),  # improved DDPM (Nichol & Dhariwal)
}

Scheduler = DDPMScheduler | DDIMScheduler


def make_scheduler(
    kind: Literal["ddpm", "ddim"] = "ddim",
    schedule: str = "scaled_linear",
    num_train_timesteps: int = 1000,
    **overrides,
) -> Scheduler:
    """A diffusers scheduler with one of :data:`SCHEDULES`, epsilon prediction, no clipping (latents
    are not bounded to [-1, 1]). Stable Diffusion's spacing conventions (``steps_offset=1``)."""
    if schedule not in SCHEDULES:
        raise InputError(f"unknown noise schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    cfg = dict(
        num_train_timesteps=num_train_timesteps,
        prediction_type="epsilon",
        clip_sample=False,
        **SCHEDULES[schedule],
    )
    if kind == "ddim":
        cfg.update(set_alpha_to_one=False, steps_offset=1)
        cls = DDIMScheduler
    elif kind == "ddpm":
        cls = DDPMScheduler
    else:
        raise InputError(f"unknown scheduler kind {kind!r}; choose 'ddpm' or 'ddim'")
    cfg.update(overrides)
    return cls(**cfg)


def alphas_cumprod(scheduler: Scheduler) -> torch.Tensor:
    """ᾱ_t for t = 0..T-1, ``(T,)`` float64."""
    return scheduler.alphas_cumprod.double()


def snr(scheduler: Scheduler) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t), ``(T,)``."""
    a = alphas_cumprod(scheduler)
    return a / (1 - a)


def _per_sample(v: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Gather ``v[t]`` for ``t (B,)`` and shape it ``(B, 1, ..., 1)`` with ``ndim`` dims in total."""
    out = v.to(t.device)[t.long()]
    return out.reshape(out.shape + (1,) * (ndim - out.dim()))


def q_sample(
    scheduler: Scheduler,
    x0: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I) for every view, independent noise per view.

    Args:
        x0: clean views ``(B, V, C, H, W)`` (any ``(B, ...)`` works).
        t: timesteps ``(B,)``, one per sample, shared by its views.
        noise: ``ε`` like ``x0``; drawn with ``generator`` when ``None``.
    Returns:
        ``(x_t, noise)``, both like ``x0``.
    """
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    a = _per_sample(scheduler.alphas_cumprod.to(x0.dtype), t, x0.dim())
    return a.sqrt() * x0 + (1 - a).sqrt() * noise, noise


def posterior_mean(
    scheduler: Scheduler, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """The learnable mean of Eq. (3), per view: μ_θ = (x_t − β_t / √(1 − ᾱ_t) · ε_θ) / √α_t.

    ``x_t, eps (B, V, C, H, W)``, ``t (B,)``; the DDPM reverse step is N(μ_θ, σ_t² I).
    """
    betas = scheduler.betas.to(x_t.dtype)
    alphas = 1 - betas
    abar = scheduler.alphas_cumprod.to(x_t.dtype)
    b, a, ab = (_per_sample(v, t, x_t.dim()) for v in (betas, alphas, abar))
    return (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()


def ddim_step(
    scheduler: DDIMScheduler,
    eps: torch.Tensor,
    t: int,
    x_t: torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One DDIM update x_t -> x_{t_prev} written out (Song et al., Eq. 12), for teaching and for checking
    diffusers' ``DDIMScheduler.step``; the samplers call diffusers. ``scheduler.set_timesteps`` must have
    been called (it fixes the previous timestep).

    x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t;  σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev);
    x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε + σ z.
    """
    prev = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    abar = scheduler.alphas_cumprod.to(x_t.dtype)
    a_t = abar[t]
    a_prev = abar[prev] if prev >= 0 else scheduler.final_alpha_cumprod.to(x_t.dtype)
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    sigma = eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()
    out = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).sqrt() * eps
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs the noise z")
        out = out + sigma * noise
    return out


#: keys of a dict condition that classifier-free guidance blanks (the input view and what is reprojected from it);
#: others (the mesh) stay
NULL_KEYS = ("latent", "image", "reprojection")


def null_like(y: Any) -> Any:
    """The unconditional input for classifier-free guidance: zeros shaped like ``y``; for a dict condition,
    its :data:`NULL_KEYS` entries zeroed and the rest kept."""
    if isinstance(y, torch.Tensor):
        return torch.zeros_like(y)
    if isinstance(y, dict):
        return {k: torch.zeros_like(v) if k in NULL_KEYS else v for k, v in y.items()}
    return y


def batch_cat(a: Any, b: Any) -> Any:
    """Concatenate two conditioning objects along the batch: tensors, :class:`Cameras`, dicts, lists, None."""
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b], 0)
    if isinstance(a, Cameras):
        return Cameras(torch.cat([a.K, b.K], 0), torch.cat([a.c2w, b.c2w], 0), a.height, a.width)
    if isinstance(a, dict):
        return {k: batch_cat(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return a + b
    raise TypeError(f"cannot batch conditioning of type {type(a).__name__}")


def drop_condition(y: Any, drop: torch.Tensor) -> Any:
    """``y`` with the samples where ``drop (B,)`` is true replaced by :func:`null_like` (condition dropout)."""
    null = null_like(y)
    if isinstance(y, torch.Tensor):
        return torch.where(drop.reshape((-1,) + (1,) * (y.dim() - 1)), null, y)
    if isinstance(y, dict):
        return {k: drop_condition(v, drop) if k in NULL_KEYS else v for k, v in y.items()}
    return y


def multiview_loss(
    model: Callable,
    scheduler: Scheduler,
    x0: torch.Tensor,
    y: Any,
    cameras: Any,
    generator: torch.Generator | None = None,
    cond_drop_prob: float = 0.0,
    t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. (4): E_{t, ε} ‖ε − ε_θ(x_t, t, y, c)‖² over all target views, one t per sample.

    Args:
        x0: clean target views ``(B, V, C, H, W)``; ``y``: input views ``(B, ...)``; ``cameras``: the model's
            camera conditioning for the V views.
        cond_drop_prob: probability of replacing a sample's ``y`` by :func:`null_like` (trains the
            unconditional branch used by classifier-free guidance).
        t: timesteps ``(B,)``; uniform over the training range when ``None``.
    """
    B = x0.shape[0]
    T = scheduler.config.num_train_timesteps
    if t is None:
        t = torch.randint(0, T, (B,), generator=generator, device=x0.device)
    x_t, noise = q_sample(scheduler, x0, t, generator=generator)
    if cond_drop_prob > 0:
        drop = torch.rand(B, generator=generator, device=x0.device) < cond_drop_prob
        y = drop_condition(y, drop)
    out = model(x_t, t, y, cameras)
    return torch.nn.functional.mse_loss(out.float(), loss_target(scheduler, x0, noise, t).float())


def loss_target(scheduler: Scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the network regresses: ε (``prediction_type="epsilon"``, Eq. 4) or the velocity
    v = sqrt(ᾱ_t) ε − sqrt(1 − ᾱ_t) x_0 (``"v_prediction"``); shaped like ``x0 (B, ...)``, ``t (B,)``."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        a = _per_sample(scheduler.alphas_cumprod.to(x0.device, torch.float32), t, x0.dim())
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    raise InputError(f"unsupported prediction type {kind!r}")


def predict_noise(
    model: Callable,
    x_t: torch.Tensor,
    t: torch.Tensor,
    y: Any,
    cameras: Any,
    sampler: str = "joint",
    guidance: float = 1.0,
    null_y: Any = None,
) -> torch.Tensor:
    """ε for every view of ``x_t (B, V, C, H, W)`` at one step, with classifier-free guidance.

    Guidance batches the conditional and unconditional inputs into *one* call of size 2B:
    ε = ε_u + w (ε_c − ε_u). ``joint`` calls the model once for all views; ``sequential`` once per view.
    """
    kw = {}
    if guidance != 1.0:
        x_in = torch.cat([x_t, x_t], 0)
        t_in = torch.cat([t, t], 0)
        y_in = batch_cat(y, null_like(y) if null_y is None else null_y)
        c_in = batch_cat(cameras, cameras)
        if null_y is None and getattr(model, "supports_volume_groups", False):
            kw["volume_groups"] = 2  # both halves share x_t, t, cameras and mesh: one volume serves both
    else:
        x_in, t_in, y_in, c_in = x_t, t, y, cameras
    if sampler == "joint":
        eps = model(x_in, t_in, y_in, c_in, **kw)
    elif sampler == "sequential":
        V = x_t.shape[1]
        eps = torch.cat(
            [
                model(x_in, t_in, y_in, c_in, views=torch.arange(n, n + 1, device=x_t.device), **kw)
                for n in range(V)
            ],
            1,
        )
    else:
        raise InputError(f"unknown sampler {sampler!r}; choose 'joint' or 'sequential'")
    if guidance != 1.0:
        eps_c, eps_u = eps.chunk(2, 0)
        eps = eps_u + guidance * (eps_c - eps_u)
    return eps


def keep_known(
    scheduler: Scheduler, x: torch.Tensor, keep: tuple[torch.Tensor, torch.Tensor], i: int, generator=None
) -> torch.Tensor:
    """``x`` (just stepped to the timestep after ``scheduler.timesteps[i]``) with the known ``keep = (x0,
    weight)`` put back: ``weight * q(x0, t_next) + (1 - weight) * x``; after the last step, ``x0`` itself."""
    x0, w = keep
    ts = scheduler.timesteps
    if i + 1 < len(ts):
        t_next = int(ts[i + 1])
        a = scheduler.alphas_cumprod.to(x.device)[t_next].to(x.dtype)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        known = a.sqrt() * x0.to(x.dtype) + (1 - a).sqrt() * noise
    else:
        known = x0.to(x.dtype)
    return w.to(x.dtype) * known + (1 - w.to(x.dtype)) * x


@torch.no_grad()
def sample(
    model: Callable,
    y: Any,
    cameras: Any,
    steps: int = 50,
    guidance: float = 1.0,
    sampler: Literal["joint", "sequential"] = "joint",
    generator: torch.Generator | None = None,
    *,
    view_shape: tuple[int, int, int] | None = None,
    num_views: int | None = None,
    batch_size: int | None = None,
    scheduler: Scheduler | None = None,
    eta: float = 0.0,
    null_y: Any = None,
    x_T: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    keep: tuple[torch.Tensor, torch.Tensor] | None = None,
    keep_until: float = 1.0,
) -> torch.Tensor:
    """Generate all target views from pure noise: ``(B, V, C, H, W)``.

    Args:
        model: the noise predictor (see module docstring).
        y: input views ``(B, ...)`` (or any conditioning :func:`batch_cat` handles).
        cameras: the target cameras' conditioning; V is read from ``cameras.shape[1]`` (a :class:`Cameras`
            of batch shape ``(B, V)`` or a tensor ``(B, V, ...)``) unless ``num_views`` is given.
        steps: number of denoising steps; guidance: classifier-free guidance weight w (1 = off).
        sampler: ``"joint"`` (one model call per step for all views) or ``"sequential"`` (one per view).
        view_shape: ``(C, H, W)`` of one view; defaults to ``model.view_shape``.
        scheduler: a diffusers DDIM or DDPM scheduler; default: the model's own (``model.noise_scheduler("ddim")``)
            when it has one, else :func:`make_scheduler`'s DDIM.
        eta: DDIM's η (0 = deterministic).
        x_T: start noise; drawn from ``generator`` when ``None``.
        callback: called as ``callback(i, t, x_t)`` after every step.
        keep: ``(x0 (B, V, C, H, W), weight (B, V, 1 or C, H, W))``: known content to keep (inpainting in the manner
            of RePaint, Lugmayr et al. 2022): after each of the first ``keep_until`` of the steps, ``x_t`` becomes
            ``weight * q(x0, t) + (1 - weight) * x_t`` at the step's new timestep, so where the weight is 1 the
            views follow ``x0`` and elsewhere the model fills in what fits it.
    """
    if sampler not in ("joint", "sequential"):
        raise InputError(f"unknown sampler {sampler!r}; choose 'joint' or 'sequential'")
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    if not 0.0 <= eta <= 1.0:
        raise InputError(f"eta must be between 0 and 1, got {eta}")
    if scheduler is None:
        scheduler = (
            model.noise_scheduler("ddim") if hasattr(model, "noise_scheduler") else make_scheduler("ddim")
        )
    view_shape = tuple(view_shape or model.view_shape)
    if num_views is None:
        num_views = int(cameras.shape[1])
    if batch_size is None:
        batch_size = int(y.shape[0]) if hasattr(y, "shape") else int(cameras.shape[0])
    if device is None:
        device = y.device if isinstance(y, torch.Tensor) else "cpu"
    shape = (batch_size, num_views, *view_shape)
    x = x_T.to(device) if x_T is not None else torch.randn(shape, generator=generator, device=device)
    if tuple(x.shape) != shape:
        raise InputError(f"x_T has shape {tuple(x.shape)}, expected {shape}")
    x = x * scheduler.init_noise_sigma
    scheduler.set_timesteps(steps, device=device)
    # at eta = 1 the first step from a zero-terminal-SNR start (alpha_bar_T = 0) has sigma^2 = 1 - alpha_bar_prev, so
    # diffusers' sqrt(1 - alpha_bar_prev - sigma^2) is sqrt(0), which float rounding can make NaN: every view came out
    # black. 1 - 1e-5 is the same sampler to float32 precision and keeps the argument positive.
    extra = {"eta": min(eta, 1 - 1e-5)} if isinstance(scheduler, DDIMScheduler) else {}
    for i, t in enumerate(
        progress_bar(scheduler.timesteps, desc=f"{sampler} sampling", disable=not progress, leave=False)
    ):
        tb = torch.full((batch_size,), int(t), device=device, dtype=torch.long)
        x_in = scheduler.scale_model_input(x, t)
        eps = predict_noise(model, x_in, tb, y, cameras, sampler=sampler, guidance=guidance, null_y=null_y)
        x = scheduler.step(eps, t, x, generator=generator, **extra).prev_sample
        if keep is not None and i < round(keep_until * steps):
            x = keep_known(scheduler, x, keep, i, generator)
        if callback is not None:
            callback(i, int(t), x)
    return x
