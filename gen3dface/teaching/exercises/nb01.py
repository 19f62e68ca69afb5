"""Checkers for notebook 01 (diffusion preliminaries): exercises ``q_sample`` (the forward process),
``ddim_step`` (one deterministic DDIM step), ``multiview_loss`` (the paper's Eq. 4) and ``snr_one`` (the step
at which signal and noise are equal)."""

from __future__ import annotations

from typing import Callable

import torch

from gen3dface.generation.diffusion import make_scheduler, q_sample
from gen3dface.teaching.checking import ExerciseFailed, expect_close, require, require_function, run_check

#: how far from SNR = 1 (in log10) exercise ``snr_one`` accepts
SNR_TOLERANCE = 0.1


def check_q_sample(
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> bool:
    """``fn(alphas_cumprod (T,), x0 (B, V, C, H, W), t (B,), noise like x0) -> x_t``."""

    def body():
        require_function(fn, "my_q_sample")
        g = torch.Generator().manual_seed(3)
        for schedule in ("linear", "cosine"):
            sch = make_scheduler("ddpm", schedule)
            x0 = torch.randn(5, 3, 2, 4, 4, generator=g)
            t = torch.randint(0, 1000, (5,), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            want, _ = q_sample(sch, x0, t, noise)
            expect_close(fn(sch.alphas_cumprod.clone(), x0, t, noise), want, 1e-5, f"{schedule} schedule")
        return "x_t matches gen3dface.generation.diffusion.q_sample on the linear and cosine schedules"

    return run_check("q_sample", body)


def check_ddim_step(fn: Callable[[torch.Tensor, torch.Tensor, int, int, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(alphas_cumprod (T,), eps, t, t_prev, x_t) -> x_{t_prev}``, deterministic DDIM (η = 0);
    ``t_prev < 0`` means the final step (use ᾱ = alphas_cumprod[0], as Stable Diffusion's scheduler does)."""

    def body():
        require_function(fn, "my_ddim_step")
        g = torch.Generator().manual_seed(4)
        sch = make_scheduler("ddim")
        sch.set_timesteps(20)
        x = torch.randn(2, 4, 3, 8, 8, generator=g)
        ratio = sch.config.num_train_timesteps // sch.num_inference_steps
        for t in sch.timesteps[[0, 10, 19]]:
            eps = torch.randn(x.shape, generator=g)
            want = sch.step(eps, t, x, eta=0.0).prev_sample
            expect_close(
                fn(sch.alphas_cumprod.clone(), eps, int(t), int(t) - ratio, x), want, 1e-4, f"t = {int(t)}"
            )
        return "the first, a middle and the last step match diffusers' DDIMScheduler"

    return run_check("ddim_step", body)


def check_multiview_loss(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(model, alphas_cumprod, x0 (B, V, C, H, W), y, cameras, t (B,), noise) -> scalar loss`` (Eq. 4)."""

    def body():
        require_function(fn, "my_multiview_loss")
        g = torch.Generator().manual_seed(5)
        sch = make_scheduler("ddpm")
        w = torch.randn(3, 3, generator=g)

        def model(x_t, t, y, cameras, views=None):
            return (
                torch.einsum("bvchw,cd->bvdhw", x_t, w) * (t.float()[:, None, None, None, None] / 1000)
                + y[:, None]
                + cameras[:, :, :, None, None]
            )

        x0 = torch.randn(4, 5, 3, 6, 6, generator=g)
        y, cams = torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, 5, 3, generator=g)
        t = torch.randint(0, 1000, (4,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        x_t, _ = q_sample(sch, x0, t, noise)
        want = ((model(x_t, t, y, cams) - noise) ** 2).mean()
        expect_close(fn(model, sch.alphas_cumprod.clone(), x0, y, cams, t, noise), want, 1e-4)
        return f"loss {float(want):.4f} on a batch of 4 samples x 5 views, as Eq. (4)"

    return run_check("multiview_loss", body)


def check_snr_one(t: int | None, schedule: str = "scaled_linear") -> bool:
    """``t``: a timestep at which the ``schedule``'s signal-to-noise ratio ᾱ_t / (1 - ᾱ_t) is 1 (within
    :data:`SNR_TOLERANCE` in log10): as much signal as noise."""

    def body():
        step = int(require(t, "t_half", "set the timestep you found and re-run the cell"))
        if not 0 <= step < 1000:
            raise ExerciseFailed(f"t = {step} is outside the schedule's steps 0 to 999")
        ab = float(make_scheduler("ddpm", schedule).alphas_cumprod[step])
        log_snr = float(torch.log10(torch.tensor(ab / (1 - ab))))
        if abs(log_snr) > SNR_TOLERANCE:
            way = "later" if log_snr > 0 else "earlier"
            raise ExerciseFailed(f"at t = {step} log10 SNR is {log_snr:+.2f}, not 0: look {way}")
        return f"at t = {step} the {schedule} schedule keeps ᾱ = {ab:.3f}: signal and noise are equal"

    return run_check("snr_one", body)
