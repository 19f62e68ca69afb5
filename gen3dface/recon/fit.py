"""Fitting an :class:`~gen3dface.recon.field.SDFGrid` to posed views, and the whole step in one call.

:func:`fit` starts from the visual hull of the masks (or a sphere), minimises photometric error + mask BCE
+ an eikonal term ``(|grad f| - 1)^2`` near the surface + small smoothness terms with Adam, sharpening the
NeuS ``s`` and refining the grid coarse to fine. :func:`reconstruct_views` fits, then extracts the
coloured mesh::

    result = reconstruct_views("outputs/synth/id_000000", profile="smoke")
    result.save_mesh("head.glb")                 # also .obj / .ply (trimesh)
    result.save_turntable("head.gif")            # rendered from the fitted field (.gif or .mp4)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras
from gen3dface.core.errors import InputError
from gen3dface.core.progress import progress_bar
from gen3dface.recon.config import ReconConfig, config_for
from gen3dface.recon.export import (
    VIDEO_FORMATS,
    check_output_path,
    extract_mesh,
    save_mesh,
    save_turntable,
    turntable_cameras,
)
from gen3dface.recon.field import SDFGrid, initial_field
from gen3dface.recon.photo import PhotoView, paint_from_photo
from gen3dface.recon.rendering import ray_box, render_field, render_rays
from gen3dface.recon.views import ViewSet, as_views


def _sharpness(cfg: ReconConfig, frac: float, voxel: float) -> float:
    """NeuS ``s`` at fraction ``frac`` of the fit: ``cfg.sharpness`` (``s * voxel``) interpolated linearly."""
    s0, s1 = cfg.sharpness
    return (s0 + (s1 - s0) * min(max(frac, 0.0), 1.0)) / voxel


@dataclass
class FitState:
    """What :func:`fit` hands its callback after each step."""

    step: int
    total: int
    field: SDFGrid
    s: float
    losses: dict


def fit(
    views: ViewSet,
    cfg: ReconConfig | None = None,
    device=None,
    progress: bool = True,
    callback: Callable[[FitState], None] | None = None,
) -> tuple[SDFGrid, list[dict]]:
    """Fit an :class:`SDFGrid` to ``views``; returns the field and the per-step loss history."""

    cfg = cfg or ReconConfig()
    device = torch.device(device or "cpu")
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    cams = views.cameras.to(device)
    o, d = cams.rays()
    _V, H, W = o.shape[:3]
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    target = views.rgb.to(device).reshape(-1, 3)
    mask = views.mask.to(device)
    near, far = ray_box(o, d)
    hit = far > near
    r = max(1, round(0.06 * max(H, W)))
    focus_map = F.max_pool2d(mask[:, None], 2 * r + 1, 1, r)[:, 0].reshape(-1) > 0.01
    focus = (hit & focus_map).nonzero().squeeze(1).cpu()
    anywhere = hit.nonzero().squeeze(1).cpu()
    if len(anywhere) == 0:
        raise InputError("no camera ray passes through the head cube [-1, 1]^3; check cameras.json")
    if len(focus) == 0:
        focus = anywhere
    mask = mask.reshape(-1)
    bg = views.background.to(device)
    field = initial_field(views, cfg.grid_sizes[0], cfg.init, device)
    field.blur = cfg.blur
    history: list[dict] = []
    total, step = cfg.total_iters, 0
    n_focus = (3 * cfg.rays_per_batch) // 4
    bar = progress_bar(total=total, desc="fitting SDF", disable=not progress, unit="step")
    for R, n_iter in zip(cfg.grid_sizes, cfg.iters):
        if R != field.R:
            field = field.resized(R)
        opt = torch.optim.Adam(
            [{"params": [field.sdf], "lr": cfg.lr_sdf}, {"params": [field.rgb], "lr": cfg.lr_rgb}],
            betas=(0.9, 0.99),
        )
        base = [g["lr"] for g in opt.param_groups]
        band = cfg.band_voxels * field.voxel
        for _ in range(n_iter):
            frac = step / max(total - 1, 1)
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * 0.1**frac
            s = _sharpness(cfg, frac, field.voxel)
            idx = torch.cat(
                [
                    focus[torch.randint(len(focus), (n_focus,), generator=gen)],
                    anywhere[torch.randint(len(anywhere), (cfg.rays_per_batch - n_focus,), generator=gen)],
                ]
            )
            idx = idx.to(device)
            out = render_rays(field, o[idx], d[idx], s, bg, cfg.fine_samples, cfg.band_voxels, jitter=True)
            mse = F.mse_loss(out["rgb"], target[idx])
            bce = F.binary_cross_entropy(out["opacity"].clamp(1e-4, 1 - 1e-4), mask[idx])
            eik = field.eikonal_loss(band)
            lap, tv = field.smooth_loss()
            loss = mse + cfg.w_mask * bce + cfg.w_eikonal * eik + cfg.w_smooth * lap + cfg.w_rgb_smooth * tv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses = {
                "step": step,
                "grid": R,
                "s": s,
                "loss": float(loss.detach()),
                "rgb_mse": float(mse.detach()),
                "psnr": float(-10 * torch.log10(mse.detach().clamp(min=1e-10))),
                "mask_bce": float(bce.detach()),
                "eikonal": float(eik.detach()),
                "laplacian": float(lap.detach()),
            }
            history.append(losses)
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(psnr=f"{losses['psnr']:.1f}", grid=R, refresh=False)
            if callback is not None:
                callback(FitState(step, total, field, s, losses))
    bar.close()
    return field, history


@dataclass
class ReconResult:
    """What :func:`reconstruct_views` returns.

    Attributes:
        field: the fitted :class:`SDFGrid`; ``s`` its final NeuS sharpness (render with these).
        mesh: the coloured ``trimesh.Trimesh`` in the head frame.
        views: the :class:`ViewSet` it was fitted to.
        history: per-step losses (dicts).
        snapshots: ``(step, image (H, W, 3) float)`` renders of one input view during fitting.
        seconds: wall time of ``fit`` and ``mesh`` (and ``photo``, the colouring from the input photo).
        config: the :class:`ReconConfig` used.
        photo: what the input photo did to the mesh's colours (:func:`paint_from_photo`'s record, or
            ``{"used": False}``).
    """

    field: SDFGrid
    s: float
    mesh: object
    views: ViewSet
    history: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    config: ReconConfig | None = None
    photo: dict = field(default_factory=lambda: {"used": False})

    def render(self, cameras: Cameras, **kw) -> dict[str, np.ndarray]:
        """Render the fitted field from ``cameras`` (see :func:`render_field`)."""
        kw.setdefault("fine_samples", self.config.fine_samples if self.config else 24)
        kw.setdefault("band_voxels", self.config.band_voxels if self.config else 3.0)
        return render_field(self.field, cameras, self.s, self.views.background.tolist(), **kw)

    def turntable(
        self,
        n_frames: int = 36,
        elevation_deg: float = 10.0,
        image_size: int | None = None,
        geometry: bool = False,
    ) -> np.ndarray:
        """Frames ``(T, H, W, 3)`` float of the fitted field going once round (``geometry``: shaded
        geometry beside the colour)."""
        size = image_size or self.views.cameras.height
        r = self.render(turntable_cameras(n_frames, elevation_deg, size, like=self.views.cameras))
        return np.concatenate([r["rgb"], r["shaded"]], 2) if geometry else r["rgb"]

    def save_mesh(self, path) -> Path:
        return save_mesh(self.mesh, path)

    def save_turntable(
        self, path, n_frames: int = 36, elevation_deg: float = 10.0, fps: int = 12, geometry: bool = True
    ) -> Path:
        check_output_path(path, VIDEO_FORMATS, "turntable")
        return save_turntable(self.turntable(n_frames, elevation_deg, geometry=geometry), path, fps)

    def summary(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {
            "views": len(self.views),
            "size": [self.views.cameras.height, self.views.cameras.width],
            "grid": self.field.R,
            "steps": len(self.history),
            "train_psnr": last.get("psnr"),
            "vertices": len(self.mesh.vertices),
            "faces": len(self.mesh.faces),
            "seconds": self.seconds,
            "config": self.config.to_dict() if self.config else None,
            "photo": self.photo,
        }


def reconstruct_views(
    views_dir_or_arrays,
    cameras: Cameras | None = None,
    masks=None,
    *,
    profile: str = "smoke",
    config: ReconConfig | None = None,
    device=None,
    progress: bool = True,
    snapshot_every: int = 0,
    snapshot_view: int | None = None,
    callback: Callable[[FitState], None] | None = None,
    photo: PhotoView | str | None = "auto",
) -> ReconResult:
    """Posed views -> fitted SDF field + coloured mesh (the whole recon step in one call).

    Args:
        views_dir_or_arrays: a views folder (``gen3dface synth`` identity or ``gen3dface generate`` output),
            a :class:`ViewSet`, or images as accepted by :func:`views_from_arrays` (then give ``cameras``
            and optionally ``masks``).
        profile: ``smoke`` / ``small`` / ``paper`` sizes (``Profile.recon``); ``config`` overrides it.
        device: ``"cpu"``, ``"cuda"``...; default: CUDA when present.
        snapshot_every: every that many steps, render input view ``snapshot_view`` (default: the one
            nearest the face) into ``result.snapshots``.
        photo: colour the mesh from the input photo at its camera too (:func:`paint_from_photo`): ``"auto"``
            (default) uses the one beside a views folder (``input_photo.png`` + ``input_camera.json``, as
            ``gen3dface generate`` writes them) when it is there; a :class:`PhotoView` uses that; ``None`` none.
    Raises:
        InputError: unusable views (missing folder, no cameras.json, counts that do not match, unreadable
        images, an empty visual hull).
    """
    views = as_views(views_dir_or_arrays, cameras, masks)
    cfg = config or config_for(profile)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    snaps: list = []
    if snapshot_view is None:
        snapshot_view = int(views.cameras.azimuth_deg.abs().argmin())
    snap_cam = views.cameras[snapshot_view : snapshot_view + 1]
    snap_cam = snap_cam.resized(
        min(64, snap_cam.height), round(min(64, snap_cam.height) * snap_cam.width / snap_cam.height)
    )

    def on_step(state: FitState):
        if snapshot_every and (state.step % snapshot_every == 0 or state.step == state.total):
            r = render_field(
                state.field, snap_cam, state.s, views.background.tolist(), cfg.fine_samples, cfg.band_voxels
            )
            snaps.append((state.step, np.concatenate([r["rgb"][0], r["shaded"][0]], 1)))
        if callback is not None:
            callback(state)

    start = time.perf_counter()
    if snapshot_every:
        f0 = initial_field(views, cfg.grid_sizes[0], cfg.init, device)
        r = render_field(
            f0,
            snap_cam,
            _sharpness(cfg, 0, f0.voxel),
            views.background.tolist(),
            cfg.fine_samples,
            cfg.band_voxels,
        )
        snaps.append((0, np.concatenate([r["rgb"][0], r["shaded"][0]], 1)))
    fld, history = fit(views, cfg, device, progress, on_step)
    t_fit = time.perf_counter() - start
    start = time.perf_counter()
    mesh = extract_mesh(fld, cfg.mesh_resolution, cfg.min_component)
    t_mesh = time.perf_counter() - start
    seconds = {"fit": t_fit, "mesh": t_mesh}
    if isinstance(photo, str) and photo == "auto":
        photo = views.photo
    elif photo is not None and not isinstance(photo, PhotoView):
        raise InputError(f"reconstruct_views: photo must be 'auto', a PhotoView or None, got {photo!r}")
    record = {"used": False}
    if photo is not None:
        start = time.perf_counter()
        mesh, record = paint_from_photo(mesh, photo)
        seconds["photo"] = time.perf_counter() - start
    return ReconResult(
        fld, _sharpness(cfg, 1.0, fld.voxel), mesh, views, history, snaps, seconds, cfg, record
    )
