import pytest
import torch

from gen3dface.core.cameras import target_ring
from gen3dface.generation.diffusion import (
    ddim_step,
    make_scheduler,
    multiview_loss,
    posterior_mean,
    predict_noise,
    q_sample,
    sample,
    snr,
)
from gen3dface.core.errors import InputError


class ViewwiseModel(torch.nn.Module):
    """A noise predictor that treats each view on its own (it ignores the other views), counting calls."""

    view_shape = (2, 4, 4)

    def __init__(self):
        super().__init__()
        self.calls = 0
        torch.manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(2, 2) * 0.3)

    def forward(self, x_t, t, y, cameras, views=None):
        self.calls += 1
        x = x_t if views is None else x_t[:, views]
        scale = (t.float() / 1000).reshape(-1, 1, 1, 1, 1)
        return torch.einsum("bvchw,cd->bvdhw", x, self.w) * scale + y.mean((1, 2, 3)).reshape(-1, 1, 1, 1, 1)


def test_q_sample_matches_closed_form():
    sch = make_scheduler("ddpm", "linear")
    x0 = torch.full((4000, 3, 1, 2, 2), 0.7)
    t = torch.full((4000,), 300)
    g = torch.Generator().manual_seed(0)
    x_t, noise = q_sample(sch, x0, t, generator=g)
    abar = sch.alphas_cumprod[300].double()
    assert abs(x_t.double().mean() - abar.sqrt() * 0.7) < 0.01
    assert abs(x_t.double().var() - (1 - abar)) < 0.01
    # independent noise per view
    c = torch.corrcoef(noise[:, :, 0, 0, 0].T)
    assert (c - torch.eye(3)).abs().max() < 0.06
    # diffusers' add_noise agrees
    assert torch.allclose(x_t, sch.add_noise(x0, noise, t), atol=1e-6)


def test_posterior_mean_is_ddpm_mean():
    sch = make_scheduler("ddpm", "scaled_linear")
    g = torch.Generator().manual_seed(1)
    x_t, eps = torch.randn(3, 4, 2, 3, 3, generator=g), torch.randn(3, 4, 2, 3, 3, generator=g)
    t = torch.tensor([999, 500, 20])
    mu = posterior_mean(sch, x_t, eps, t)
    for b in range(3):
        tb = int(t[b])
        out = sch.step(eps[b], tb, x_t[b], generator=torch.Generator().manual_seed(0))
        # diffusers: mean = c0 * x0_pred + ct * x_t; prev = mean + sigma * z
        ab, ab_prev = sch.alphas_cumprod[tb], sch.alphas_cumprod[tb - 1]
        beta = 1 - ab / ab_prev
        c0 = ab_prev.sqrt() * beta / (1 - ab)
        ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
        mean = c0 * out.pred_original_sample + ct * x_t[b]
        assert torch.allclose(mu[b], mean, atol=1e-4)
        sigma = sch._get_variance(tb).sqrt()
        z = torch.randn(eps[b].shape, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(out.prev_sample, mean + sigma * z, atol=1e-4)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_our_ddim_step_equals_diffusers(eta):
    sch = make_scheduler("ddim")
    sch.set_timesteps(25)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 8, 8, generator=g)
    for t in sch.timesteps[[0, 7, 24]]:
        eps = torch.randn(x.shape, generator=g)
        z = torch.randn(x.shape, generator=g)
        theirs = sch.step(eps, t, x, eta=eta, variance_noise=z).prev_sample
        ours = ddim_step(sch, eps, int(t), x, eta=eta, noise=z)
        assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_joint_and_sequential_agree_for_a_viewwise_predictor(eta):
    model = ViewwiseModel()
    y = torch.randn(2, 3, 8, 8)
    cams = torch.randn(2, 5, 12)
    outs = {}
    for s in ("joint", "sequential"):
        model.calls = 0
        outs[s] = sample(
            model,
            y,
            cams,
            steps=6,
            guidance=2.5,
            sampler=s,
            eta=eta,
            generator=torch.Generator().manual_seed(3),
        )
        outs[s + "_calls"] = model.calls
    assert outs["joint"].shape == outs["sequential"].shape == (2, 5, 2, 4, 4)
    assert torch.allclose(outs["joint"], outs["sequential"], atol=1e-5)
    assert outs["joint_calls"] == 6 and outs["sequential_calls"] == 6 * 5  # one call per step vs per view


def test_stochastic_ddim_from_a_zero_snr_start_stays_finite():
    # eta = 1 on the shipped model's schedule (zero terminal SNR, v-prediction, trailing steps) gave NaN at the first
    # step in diffusers for 39 of the step counts 1-100, 50 among them (the square root of a rounding-negative 0)
    from gen3dface.generation.model import Gen3DFaceModel

    sch = Gen3DFaceModel.from_profile(
        "smoke", zero_terminal_snr=True, prediction_type="v_prediction"
    ).noise_scheduler()
    assert float(sch.alphas_cumprod[-1]) == 0.0
    model = ViewwiseModel()
    out = sample(
        model,
        torch.randn(1, 3, 8, 8),
        torch.randn(1, 3, 12),
        steps=50,
        eta=1.0,
        scheduler=sch,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(out).all() and out.abs().max() > 0
    with pytest.raises(InputError, match="eta must be between 0 and 1"):
        sample(model, torch.randn(1, 3, 8, 8), torch.randn(1, 3, 12), steps=2, eta=1.5, scheduler=sch)


def test_guidance_batching_equals_two_calls():
    model = ViewwiseModel()
    g = torch.Generator().manual_seed(4)
    x_t, y = torch.randn(3, 4, 2, 4, 4, generator=g), torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([900, 400, 10])
    model.calls = 0
    eps = predict_noise(model, x_t, t, y, None, guidance=3.0)
    assert model.calls == 1
    eps_c, eps_u = model(x_t, t, y, None), model(x_t, t, torch.zeros_like(y), None)
    assert torch.allclose(eps, eps_u + 3.0 * (eps_c - eps_u), atol=1e-6)


def test_guidance_batches_camera_objects():
    model = ViewwiseModel()
    cams = target_ring(4, image_size=8)
    cams = type(cams)(cams.K[None], cams.c2w[None], 8, 8)
    out = sample(
        model,
        torch.randn(1, 3, 8, 8),
        cams,
        steps=3,
        guidance=2.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (1, 4, 2, 4, 4)


def test_multiview_loss_trains_and_drops_condition():
    model = ViewwiseModel()
    sch = make_scheduler("ddpm")
    g = torch.Generator().manual_seed(5)
    x0, y = torch.randn(4, 3, 2, 4, 4, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    loss = multiview_loss(model, sch, x0, y, None, generator=g)
    loss.backward()
    assert loss.item() > 0 and model.w.grad is not None and model.w.grad.abs().sum() > 0
    # with t fixed and zero-noise predictor the loss is E[eps^2] = 1
    zero = lambda x_t, t, y, c, views=None: torch.zeros_like(x_t)  # noqa: E731
    big = torch.randn(64, 4, 2, 8, 8, generator=g)
    assert abs(multiview_loss(zero, sch, big, big[:, 0], None, generator=g).item() - 1) < 0.05
    seen = []
    spy = lambda x_t, t, y, c, views=None: seen.append(y.clone()) or torch.zeros_like(x_t)  # noqa: E731
    multiview_loss(spy, sch, x0, torch.ones(4, 3, 8, 8), None, generator=g, cond_drop_prob=1.0)
    assert seen[0].abs().max() == 0


def test_schedules_and_errors():
    for name in ("linear", "scaled_linear", "cosine"):
        s = snr(make_scheduler("ddpm", name))
        assert bool((s[1:] < s[:-1]).all())  # SNR falls monotonically
    with pytest.raises(InputError):
        make_scheduler("ddim", "quadratic-ish")
    with pytest.raises(InputError):
        sample(ViewwiseModel(), torch.randn(1, 3, 8, 8), torch.randn(1, 2, 3), sampler="parallel")
    with pytest.raises(InputError):
        sample(ViewwiseModel(), torch.randn(1, 3, 8, 8), torch.randn(1, 2, 3), steps=0)


def test_v_prediction_target_is_diffusers_velocity():
    from gen3dface.generation.diffusion import loss_target

    sch = make_scheduler("ddpm", prediction_type="v_prediction", rescale_betas_zero_snr=True)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 2, 4, 5, 5, generator=g), torch.randn(3, 2, 4, 5, 5, generator=g)
    t = torch.tensor([0, 500, 999])
    v = loss_target(sch, x0, noise, t)
    assert torch.allclose(v, sch.get_velocity(x0, noise, t), atol=1e-6)
    assert torch.allclose(v[2], -x0[2], atol=1e-6)  # zero SNR at t = T: v is minus the clean sample
    assert torch.equal(loss_target(make_scheduler("ddpm"), x0, noise, t), noise)
