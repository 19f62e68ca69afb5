"""Checkers for the notebooks' exercises: each takes the student's function, tests it against the
package's reference on random cases, prints a clear pass/fail line and returns ``True``/``False``."""

from __future__ import annotations

import traceback
from typing import Callable

import numpy as np
import torch


def _report(name: str, ok: bool, detail: str = "") -> bool:
    print(("PASS  " if ok else "FAIL  ") + name + (f": {detail}" if detail else ""))
    return ok


def _run(name: str, body: Callable[[], str | None]) -> bool:
    """Run a checker body; it returns None on success or a reason string."""
    try:
        reason = body()
    except NotImplementedError:
        return _report(name, False, "not implemented yet")
    except Exception as e:  # noqa: BLE001 - a student's bug is a failed check, not a crash
        last = traceback.extract_tb(e.__traceback__)[-1]
        return _report(name, False, f"raised {e.__class__.__name__}: {e} (line {last.lineno})")
    return _report(name, reason is None, reason or "")


def _close(got, want, atol: float) -> str | None:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    err = float(np.abs(got - want).max())
    return None if err <= atol else f"largest error {err:.4g} (allowed {atol:g})"


# ------------------------------------------------------------------------------------- notebook 00
def check_orbit_position(fn: Callable[[float, float, float], np.ndarray]) -> bool:
    """``fn(azimuth_deg, elevation_deg, radius) -> (3,)`` camera centre in the canonical head frame."""
    from gen3dface.core.cameras import orbit_position

    def body():
        rng = np.random.default_rng(0)
        for az, el, r in [(0, 0, 4), (90, 0, 2), (180, 10, 3)] + [tuple(rng.uniform([-180, -80, 1], [180, 80, 5]))
                                                                  for _ in range(20)]:
            why = _close(fn(float(az), float(el), float(r)), orbit_position(az, el, r).numpy(), 1e-4)
            if why:
                return f"azimuth {az:.1f}, elevation {el:.1f}, radius {r:.1f}: {why}"
        return None
    return _run("exercise: orbit_position", body)


def check_project(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> bool:
    """``fn(K (3,3), w2c (4,4), points (P,3)) -> (P,2)`` pixel coordinates."""
    from gen3dface.core.cameras import orbit_cameras

    def body():
        rng = np.random.default_rng(1)
        for _ in range(10):
            cam = orbit_cameras([rng.uniform(-180, 180)], [rng.uniform(-60, 60)], fov_deg=rng.uniform(15, 60),
                                image_size=int(rng.integers(32, 512)))
            pts = rng.uniform(-1, 1, (25, 3))
            want, _ = cam.project(torch.tensor(pts, dtype=torch.float64)[None])
            why = _close(fn(cam.K[0].double().numpy(), cam.w2c[0].double().numpy(), pts), want[0].numpy(), 1e-3)
            if why:
                return why
        return None
    return _run("exercise: project", body)


def check_pixel_ray(fn: Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]) -> bool:
    """``fn(K, c2w, column, row) -> (3,)`` unit world direction of the ray through that pixel's centre."""
    from gen3dface.core.cameras import orbit_cameras

    def body():
        rng = np.random.default_rng(2)
        for _ in range(10):
            size = int(rng.integers(8, 40))
            cam = orbit_cameras([rng.uniform(-180, 180)], [rng.uniform(-60, 60)], image_size=size)
            _, dirs = cam.rays()
            col, row = int(rng.integers(0, size)), int(rng.integers(0, size))
            why = _close(fn(cam.K[0].double().numpy(), cam.c2w[0].double().numpy(), col, row),
                         dirs[0, row, col].numpy(), 1e-4)
            if why:
                return f"pixel (column {col}, row {row}) of a {size}x{size} image: {why}"
        return None
    return _run("exercise: pixel_ray", body)


# ------------------------------------------------------------------------------------- notebook 01
def check_q_sample(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(alphas_cumprod (T,), x0 (B, V, C, H, W), t (B,), noise like x0) -> x_t``."""
    from gen3dface.generation.diffusion import make_scheduler, q_sample

    def body():
        g = torch.Generator().manual_seed(3)
        for schedule in ("linear", "cosine"):
            sch = make_scheduler("ddpm", schedule)
            x0 = torch.randn(5, 3, 2, 4, 4, generator=g)
            t = torch.randint(0, 1000, (5,), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            want, _ = q_sample(sch, x0, t, noise)
            why = _close(fn(sch.alphas_cumprod.clone(), x0, t, noise).detach(), want, 1e-5)
            if why:
                return f"{schedule} schedule: {why}"
        return None
    return _run("exercise: q_sample", body)


def check_ddim_step(fn: Callable[[torch.Tensor, torch.Tensor, int, int, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(alphas_cumprod (T,), eps, t, t_prev, x_t) -> x_{t_prev}``, deterministic DDIM (η = 0);
    ``t_prev < 0`` means the final step (use ᾱ = alphas_cumprod[0], as Stable Diffusion's scheduler does)."""
    from gen3dface.generation.diffusion import make_scheduler

    def body():
        g = torch.Generator().manual_seed(4)
        sch = make_scheduler("ddim")
        sch.set_timesteps(20)
        x = torch.randn(2, 4, 3, 8, 8, generator=g)
        ratio = sch.config.num_train_timesteps // sch.num_inference_steps
        for t in sch.timesteps[[0, 10, 19]]:
            eps = torch.randn(x.shape, generator=g)
            want = sch.step(eps, t, x, eta=0.0).prev_sample
            why = _close(fn(sch.alphas_cumprod.clone(), eps, int(t), int(t) - ratio, x), want, 1e-4)
            if why:
                return f"t = {int(t)}: {why}"
        return None
    return _run("exercise: ddim_step", body)


def check_multiview_loss(fn: Callable[..., torch.Tensor]) -> bool:
    """``fn(model, alphas_cumprod, x0 (B, V, C, H, W), y, cameras, t (B,), noise) -> scalar loss`` (Eq. 4)."""
    from gen3dface.generation.diffusion import make_scheduler, q_sample

    def body():
        g = torch.Generator().manual_seed(5)
        sch = make_scheduler("ddpm")
        w = torch.randn(3, 3, generator=g)

        def model(x_t, t, y, cameras, views=None):
            return torch.einsum("bvchw,cd->bvdhw", x_t, w) * (t.float()[:, None, None, None, None] / 1000) \
                + y[:, None] + cameras[:, :, :, None, None]
        x0 = torch.randn(4, 5, 3, 6, 6, generator=g)
        y, cams = torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, 5, 3, generator=g)
        t = torch.randint(0, 1000, (4,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        x_t, _ = q_sample(sch, x0, t, noise)
        want = ((model(x_t, t, y, cams) - noise) ** 2).mean()
        got = fn(model, sch.alphas_cumprod.clone(), x0, y, cams, t, noise)
        return _close(torch.as_tensor(got).detach(), want, 1e-4)
    return _run("exercise: multiview_loss", body)


# ------------------------------------------------------------------------------------- notebook 02
def check_grid_angles(fn: Callable[[], list[tuple[float, float]]]) -> bool:
    """``fn() -> [(azimuth, elevation), ...]``: the paper's 48 synthesis views as in
    :func:`gen3dface.core.cameras.synthesis_grid` (elevation-major: -40, 0, 40; azimuths from -180 in 22.5° steps)."""
    from gen3dface.core.cameras import synthesis_grid

    def body():
        grid = synthesis_grid()
        want = [(round((float(a) + 180) % 360 - 180, 3), round(float(e), 3))
                for a, e in zip(grid.azimuth_deg, grid.elevation_deg)]
        want = [(-180.0 if a == 180.0 else a, e) for a, e in want]
        got = [(round(float(a), 3), round(float(e), 3)) for a, e in fn()]
        if len(got) != 48:
            return f"{len(got)} views, expected 48"
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        return None if not bad else f"view {bad[0]}: got {got[bad[0]]}, expected {want[bad[0]]}"
    return _run("exercise: grid_angles", body)


def check_consistency_score(fn: Callable[[np.ndarray], float]) -> bool:
    """``fn(embeddings (M, D)) -> float``: the mean pairwise cosine similarity over distinct pairs."""
    from gen3dface.synth.pruning import consistency_score

    def body():
        rng = np.random.default_rng(6)
        for m in (2, 3, 7):
            e = rng.normal(size=(m, 16)) * rng.uniform(0.5, 3, (m, 1))
            why = _close(fn(e), consistency_score(e), 1e-5)
            if why:
                return f"{m} embeddings: {why}"
        return None
    return _run("exercise: consistency_score", body)


# ------------------------------------------------------------------------------------- notebook 04
def check_voxel_index(fn: Callable[[np.ndarray, int], tuple[int, int, int]]) -> bool:
    """``fn(point (3,), V) -> (iz, iy, ix)``: the voxel of the [-1, 1]^3 grid holding a world point."""
    def body():
        rng = np.random.default_rng(8)
        for _ in range(50):
            V = int(rng.integers(2, 64))
            p = rng.uniform(-0.999, 0.999, 3)
            want = tuple(int(i) for i in np.floor((p + 1) / 2 * V)[::-1])
            got = tuple(int(i) for i in fn(p, V))
            if got != want:
                return f"point {np.round(p, 3)}, V = {V}: got {got}, expected {want} (order z, y, x)"
        return None
    return _run("exercise: voxel_index", body)


def check_grid_coords(fn: Callable[[np.ndarray, int, int], np.ndarray]) -> bool:
    """``fn(uv (P, 2) pixels, height, width) -> (P, 2)`` grid_sample coordinates (align_corners=False)."""
    from gen3dface.volume.grid import pixel_grid

    def body():
        rng = np.random.default_rng(9)
        for _ in range(10):
            h, w = (int(x) for x in rng.integers(4, 300, 2))
            uv = rng.uniform(0, 1, (20, 2)) * [w, h]
            why = _close(fn(uv, h, w), pixel_grid(torch.tensor(uv), h, w).numpy(), 1e-6)
            if why:
                return f"{h}x{w} image: {why}"
        return None
    return _run("exercise: grid_coords", body)
