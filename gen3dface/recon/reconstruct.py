"""Surface reconstruction: N posed views (with masks) -> a signed distance field -> a coloured mesh.

The paper hands its 16 generated views to NeuS2. Offline we fit the same kind of representation, an SDF
rendered by NeuS-style volume rendering, but store it in a dense voxel grid (values at grid nodes,
trilinearly interpolated, as in DVGO / Voxurf) so that it fits in seconds on a GPU and in a minute or two on
a laptop CPU. Typical use::

    result = reconstruct_views("outputs/synth/id_000000", profile="smoke")
    result.save_mesh("head.glb")                 # also .obj / .ply (trimesh)
    result.save_turntable("head.gif")            # rendered from the fitted field (.gif or .mp4)

How a view is rendered from the field (:func:`render_rays`):

1. each pixel's ray (``Cameras.rays``) is clipped to the head cube [-1, 1]^3;
2. a cheap pass without gradients evaluates the SDF at ``~2R`` points along it and finds where the ray
   first crosses the zero level (or, if it never does, where it comes closest);
3. ``fine_samples`` points are spread over a band of a few voxels around that place; between consecutive
   points the NeuS opacity ``alpha = max(0, (Phi(f_i) - Phi(f_i+1)) / Phi(f_i))`` with
   ``Phi = sigmoid(s * sdf)`` turns the SDF into a density that peaks on the zero level set;
4. colours are alpha-composited front to back over the background colour of the views.

Fitting (:func:`fit`) starts from the visual hull of the masks (or a sphere), minimises photometric
error + mask BCE + an eikonal term ``(|grad f| - 1)^2`` near the surface + small smoothness terms with
Adam, sharpening ``s`` and refining the grid coarse to fine. :func:`extract_mesh` runs marching cubes
(scikit-image) on the SDF and colours the vertices from the colour grid.

Tensors: views ``rgb (V, H, W, 3)`` in [0, 1], ``mask (V, H, W)``; points ``(P, 3)`` in the head frame of
:mod:`gen3dface.core.cameras`; grids ``(1, C, R, R, R)`` indexed ``[z, y, x]`` (``grid_sample``'s order).
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras, orbit_cameras
from gen3dface.core.errors import InputError
from gen3dface.core.storage import MESH_FORMATS, atomic_path, atomic_write_bytes

#: Mesh formats :func:`save_mesh` writes.
#: Turntable formats :func:`save_turntable` writes.
VIDEO_FORMATS = (".gif", ".mp4")


# --------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class ReconConfig:
    """How a field is fitted.

    Attributes:
        grid_sizes: SDF grid side R of each coarse-to-fine stage (nodes per side over [-1, 1]).
        iters: Adam steps of each stage.
        rays_per_batch: rays per step (3/4 drawn near the foreground, 1/4 anywhere).
        blur: standard deviation (voxels) of a 3x3x3 Gaussian applied to the SDF grid before use (0 = off).
        fine_samples: graded samples per ray inside the surface band.
        band_voxels: half-width of the band, in voxels of the current grid.
        sharpness: ``s * voxel`` at the start and the end of fitting (the NeuS logistic gets sharper; a soft
            one inflates the surface, so it starts at a few voxels and ends well under one).
        lr_sdf, lr_rgb: Adam learning rates of the SDF (head-frame units) and colour (logits) grids;
            both decay by 10x over the fit.
        w_mask, w_eikonal, w_smooth, w_rgb_smooth: loss weights (mask BCE, eikonal, SDF Laplacian,
            colour total variation).
        init: ``"hull"`` (visual hull of the masks, the default) or ``"sphere"`` (radius 0.7).
        mesh_resolution: marching-cubes grid side.
        min_component: connected mesh pieces with fewer faces than this fraction of the largest are dropped.
        seed: makes ray sampling repeatable.
    """

    grid_sizes: tuple[int, ...] = (40, 64)
    blur: float = 0.0
    iters: tuple[int, ...] = (150, 250)
    rays_per_batch: int = 2048
    fine_samples: int = 20
    band_voxels: float = 3.0
    sharpness: tuple[float, float] = (4.0, 16.0)
    lr_sdf: float = 3e-3
    lr_rgb: float = 8e-2
    w_mask: float = 0.3
    w_eikonal: float = 0.05
    w_smooth: float = 2e-3
    w_rgb_smooth: float = 1e-3
    init: str = "hull"
    mesh_resolution: int = 96
    min_component: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if len(self.grid_sizes) != len(self.iters) or not self.grid_sizes:
            raise InputError("recon: give one iteration count per grid size")
        if any(r < 8 or r > 512 for r in self.grid_sizes):
            raise InputError(f"recon: grid sizes must lie in 8..512, got {self.grid_sizes}")
        if any(n < 0 for n in self.iters) or self.rays_per_batch < 1 or self.fine_samples < 2:
            raise InputError("recon: iterations >= 0, rays_per_batch >= 1 and fine_samples >= 2 please")
        if self.init not in ("hull", "sphere"):
            raise InputError(f"recon: init must be 'hull' or 'sphere', got {self.init!r}")

    @property
    def total_iters(self) -> int:
        return int(sum(self.iters))

    def to_dict(self) -> dict:
        return asdict(self)


def config_for(profile: str = "smoke", **changes) -> ReconConfig:
    """The profile's :class:`ReconConfig` (``Profile.recon``) with ``changes`` applied (e.g. ``iters=(50, 50)``)."""
    from gen3dface.core.profiles import get_profile

    return ReconConfig(**{**get_profile(profile).recon, **changes})


# --------------------------------------------------------------------------------------- the views
@dataclass
class ViewSet:
    """Posed views to reconstruct from.

    Attributes:
        rgb: ``(V, H, W, 3)`` float in [0, 1].
        mask: ``(V, H, W)`` float in [0, 1], the foreground.
        cameras: ``(V,)`` :class:`Cameras` of size H x W.
        background: ``(3,)`` colour behind the head (estimated from the pixels outside the masks).
        source: where the views came from (a folder, or ``"arrays"``).
        mask_source: ``"files"``, ``"alpha"``, ``"background"`` or ``"given"``.
        gt_mesh: path of a ground-truth ``mesh.ply`` beside the views (``synth`` writes one), else ``None``.
    """

    rgb: torch.Tensor
    mask: torch.Tensor
    cameras: Cameras
    background: torch.Tensor
    source: str = "arrays"
    mask_source: str = "given"
    gt_mesh: Path | None = None

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def subset(self, idx) -> ViewSet:
        """The views ``idx`` (a list of indices or a bool mask)."""
        idx = torch.as_tensor(idx)
        return ViewSet(
            self.rgb[idx],
            self.mask[idx],
            self.cameras[idx],
            self.background,
            self.source,
            self.mask_source,
            self.gt_mesh,
        )


def _estimate_background(rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = rgb[mask < 0.5]
    if len(out) < 16:
        return torch.ones(3)
    return out.median(0).values.clamp(0, 1)


def _mask_from_background(rgb: torch.Tensor, threshold: float = 12 / 255) -> torch.Tensor:
    """Soft foreground masks ``(V, H, W)`` of views on a plain background.

    The median colour of the image borders is the background; pixels that differ from it, with holes
    filled, are the head. On its outline a pixel's coverage is estimated as its difference from the
    background over the largest difference among its 3x3 neighbours (anti-aliased edges are partly
    covered), so a 0.5 threshold of the mask does not grow the silhouette by half a pixel.
    """
    from scipy.ndimage import binary_erosion, binary_fill_holes, binary_opening

    border = torch.cat([rgb[:, 0], rgb[:, -1], rgb[:, :, 0], rgb[:, :, -1]], 1).reshape(-1, 3)
    bg = border.median(0).values
    diff = (rgb - bg).abs().amax(-1)
    fg = np.stack([binary_fill_holes(binary_opening(m, iterations=1)) for m in (diff > threshold).numpy()])
    inner = np.stack([binary_erosion(m) for m in fg])
    fg_t = torch.from_numpy(fg)
    ref = F.max_pool2d((diff * fg_t)[:, None], 3, 1, 1)[:, 0].clamp(min=threshold)
    soft = torch.where(fg_t, (diff / ref).clamp(0, 1), torch.zeros_like(diff))
    return torch.where(torch.from_numpy(inner), torch.ones_like(soft), soft).float()


def views_from_arrays(
    images, cameras: Cameras, masks=None, background=None, source: str = "arrays"
) -> ViewSet:
    """A :class:`ViewSet` from in-memory views.

    Args:
        images: uint8 ``(V, H, W, 3|4)`` (numpy or torch), or float ``(V, 3, H, W)`` / ``(1, V, 3, H, W)``
            torch tensors in [-1, 1] (the models' convention, e.g. the sampler's output).
        cameras: ``(V,)`` cameras (the image size may differ from theirs if the aspect ratio is the same).
        masks: optional ``(V, H, W)`` in [0, 1] (float) or 0..255 (uint8). Without them, an alpha channel
            is used, else the masks are derived from the plain background.
        background: optional ``(3,)`` background colour in [0, 1].
    """
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        x = images.detach().float().cpu()
        if x.dim() == 5 and x.shape[0] == 1:
            x = x[0]
        if x.dim() != 4 or x.shape[1] not in (3, 4):
            raise InputError(f"float views must be (V, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        x = ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
    else:
        a = np.asarray(images.cpu() if isinstance(images, torch.Tensor) else images)
        if a.ndim != 4 or a.shape[-1] not in (3, 4) or a.dtype != np.uint8:
            raise InputError(f"uint8 views must be (V, H, W, 3|4), got {a.shape} {a.dtype}")
        x = torch.from_numpy(a.astype(np.float32) / 255.0)
    if len(cameras.shape) != 1:
        cameras = (
            cameras[None]
            if len(cameras.shape) == 0
            else Cameras(
                cameras.K.reshape(-1, 3, 3), cameras.c2w.reshape(-1, 4, 4), cameras.height, cameras.width
            )
        )
    V, H, W = x.shape[:3]
    if len(cameras) != V:
        raise InputError(f"{V} views but {len(cameras)} cameras; give one camera per view")
    if (H, W) != (cameras.height, cameras.width):
        if abs(H / W - cameras.height / cameras.width) > 1e-3:
            raise InputError(f"views are {W}x{H} pixels but the cameras are {cameras.width}x{cameras.height}")
        cameras = cameras.resized(H, W)
    mask_source = "given"
    if masks is not None:
        m = torch.as_tensor(np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks))
        m = m.float() / 255.0 if m.dtype == torch.uint8 else m.float()
        if m.dim() == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if tuple(m.shape) != (V, H, W):
            raise InputError(f"masks must be (V, H, W) = {(V, H, W)}, got {tuple(m.shape)}")
    elif x.shape[-1] == 4 and float(x[..., 3].min()) < 1.0:
        m, mask_source = x[..., 3].clone(), "alpha"
    else:
        m, mask_source = _mask_from_background(x[..., :3]), "background"
    rgb = x[..., :3]
    if x.shape[-1] == 4:  # composite transparent pixels onto white
        rgb = rgb * x[..., 3:] + (1 - x[..., 3:])
    m = m.clamp(0, 1)
    bg = (
        torch.as_tensor(background, dtype=torch.float32)
        if background is not None
        else _estimate_background(rgb, m)
    )
    return ViewSet(rgb.contiguous(), m.contiguous(), cameras.to(dtype=torch.float32), bg, source, mask_source)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("RGBA", "LA") or (mode == "P" and "transparency" in img.info):
                return np.asarray(img.convert("RGBA"))
            if mode in ("L", "I;16", "I", "F", "1"):
                return np.asarray(img.convert("L"))
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InputError(f"cannot read {path}: {e.__class__.__name__}: {e}") from None


def load_views(folder) -> ViewSet:
    """Read a views folder: ``view_*.png`` + ``cameras.json`` (+ optional ``mask_*.png``, ``mesh.ply``).

    That is one identity folder of ``gen3dface synth`` or the output folder of ``gen3dface generate``.
    Every problem raises :class:`InputError` with a one-line reason.
    """
    p = Path(folder)
    if not p.exists():
        raise InputError(f"views folder not found: {p}")
    if not p.is_dir():
        raise InputError(f"{p} is not a folder; give a folder with view_XX.png files and cameras.json")
    if not (p / "cameras.json").is_file():
        ids = sorted(q.name for q in p.glob("id_[0-9]*") if q.is_dir())
        if ids:
            raise InputError(
                f"{p} is a dataset of {len(ids)} identities; give one identity folder, e.g. {p / ids[0]}"
            )
        raise InputError(
            f"{p} has no cameras.json; a views folder holds view_XX.png files and their cameras.json"
        )
    files = sorted(p.glob("view_*.png"))
    if not files:
        raise InputError(f"{p} has cameras.json but no view_XX.png images")
    cams = Cameras.load(p / "cameras.json")
    cams = Cameras(cams.K.reshape(-1, 3, 3), cams.c2w.reshape(-1, 4, 4), cams.height, cams.width)
    if len(cams) != len(files):
        raise InputError(f"{p}: {len(files)} view images but cameras.json has {len(cams)} cameras")
    imgs = [_read_png(f) for f in files]
    shapes = {im.shape[:2] for im in imgs}
    if len(shapes) != 1:
        raise InputError(f"{p}: the views differ in size ({sorted(shapes)}); they must all be the same size")
    imgs = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in imgs]
    if len({im.shape[-1] for im in imgs}) != 1:
        imgs = [im[..., :3] for im in imgs]
    mask_files = sorted(p.glob("mask_*.png"))
    masks = None
    if mask_files:
        if [f.name[5:] for f in mask_files] != [f.name[5:] for f in files]:
            raise InputError(
                f"{p}: {len(mask_files)} mask_XX.png files do not match the {len(files)} view_XX.png files"
            )
        ms = []
        for f in mask_files:
            m = _read_png(f)
            m = m[..., -1] if m.ndim == 3 and m.shape[-1] == 4 else (m[..., 0] if m.ndim == 3 else m)
            if m.shape != imgs[0].shape[:2]:
                raise InputError(
                    f"{f} is {m.shape[1]}x{m.shape[0]} pixels but the views are "
                    f"{imgs[0].shape[1]}x{imgs[0].shape[0]}"
                )
            ms.append(m)
        masks = np.stack(ms)
    views = views_from_arrays(np.stack(imgs), cams, masks, source=str(p))
    if masks is not None:
        views.mask_source = "files"
    if (p / "mesh.ply").is_file():
        views.gt_mesh = p / "mesh.ply"
    return views


def as_views(source, cameras: Cameras | None = None, masks=None) -> ViewSet:
    """A :class:`ViewSet` from a folder path, a ViewSet, or arrays + ``cameras``."""
    if isinstance(source, ViewSet):
        return source
    if isinstance(source, (str, Path)):
        return load_views(source)
    if cameras is None:
        raise InputError("reconstruct_views: arrays of views need their cameras")
    return views_from_arrays(source, cameras, masks)


# --------------------------------------------------------------------------------------- the field
class SDFGrid(torch.nn.Module):
    """Signed distance (positive outside) and colour on a dense ``R^3`` grid of nodes over [-1, 1]^3.

    Values between nodes are trilinear (``grid_sample`` with ``align_corners=True``); outside the cube the
    border values are repeated. Colour is stored as logits (``sigmoid`` gives RGB in [0, 1]).
    """

    def __init__(self, sdf: torch.Tensor, rgb_logits: torch.Tensor, blur: float = 0.0):
        super().__init__()
        self.sdf = torch.nn.Parameter(sdf.reshape(1, 1, *sdf.shape[-3:]).float().contiguous())
        self.rgb = torch.nn.Parameter(rgb_logits.reshape(1, 3, *rgb_logits.shape[-3:]).float().contiguous())
        self.blur = float(blur)

    def sdf_volume(self) -> torch.Tensor:
        """The SDF grid ``(1, 1, R, R, R)`` as rendered: the parameters, smoothed by a 3x3x3 Gaussian of
        standard deviation ``blur`` voxels when ``blur > 0`` (a grid SDF otherwise picks up voxel noise)."""
        if self.blur <= 0:
            return self.sdf
        k = torch.exp(-0.5 * (torch.arange(-1.0, 2.0, device=self.sdf.device) / self.blur) ** 2)
        k = k / k.sum()
        x = self.sdf
        for dim in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + dim] = 3
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = 1
            x = F.conv3d(F.pad(x, pad, mode="replicate"), k.view(shape))
        return x

    @property
    def R(self) -> int:
        return self.sdf.shape[-1]

    @property
    def voxel(self) -> float:
        """Distance between neighbouring nodes (head-frame units)."""
        return 2.0 / (self.R - 1)

    @staticmethod
    def nodes(R: int, device=None) -> torch.Tensor:
        """Node positions ``(R, R, R, 3)`` (x, y, z), indexed ``[z, y, x]``."""
        t = torch.linspace(-1, 1, R, device=device)
        z, y, x = torch.meshgrid(t, t, t, indexing="ij")
        return torch.stack([x, y, z], -1)

    @classmethod
    def sphere(cls, R: int, radius: float = 0.7, device=None) -> SDFGrid:
        sdf = cls.nodes(R, device).norm(dim=-1) - radius
        return cls(sdf, torch.zeros(3, R, R, R, device=device))

    def query(self, points: torch.Tensor, rgb: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """SDF ``(...)`` and colour ``(..., 3)`` (``None`` when ``rgb=False``) at ``points (..., 3)``."""
        shape = points.shape[:-1]
        g = points.reshape(1, -1, 1, 1, 3)
        sdf = self.sdf_volume()
        vol = torch.cat([sdf, self.rgb], 1) if rgb else sdf
        out = F.grid_sample(vol, g, mode="bilinear", padding_mode="border", align_corners=True)
        out = out.reshape(vol.shape[1], -1)
        sdf = out[0].reshape(shape)
        return sdf, (torch.sigmoid(out[1:].T).reshape(*shape, 3) if rgb else None)

    def normals(self, points: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """Unit SDF gradients ``(..., 3)`` at ``points (..., 3)`` by central differences."""
        eps = eps or 0.5 * self.voxel
        offs = torch.eye(3, device=points.device) * eps
        def f(q):
            return self.query(q, rgb=False)[0]

        g = torch.stack([f(points + offs[i]) - f(points - offs[i]) for i in range(3)], -1)
        return F.normalize(g, dim=-1, eps=1e-9)

    def resized(self, R: int) -> SDFGrid:
        """The same field on an ``R^3`` grid (trilinear resampling)."""
        def up(x):
            return F.interpolate(x.detach(), size=(R, R, R), mode="trilinear", align_corners=True)

        return SDFGrid(up(self.sdf_volume()), up(self.rgb), self.blur)

    def eikonal_loss(self, band: float) -> torch.Tensor:
        """Mean ``(|grad f| - 1)^2`` over grid cells within ``band`` of the zero level (forward
        differences)."""
        d = self.sdf_volume()[0, 0]
        gx = d[:-1, :-1, 1:] - d[:-1, :-1, :-1]
        gy = d[:-1, 1:, :-1] - d[:-1, :-1, :-1]
        gz = d[1:, :-1, :-1] - d[:-1, :-1, :-1]
        norm = torch.sqrt(gx**2 + gy**2 + gz**2 + 1e-12) / self.voxel
        near = (d[:-1, :-1, :-1].detach().abs() < band).float()
        return ((norm - 1) ** 2 * near).sum() / near.sum().clamp(min=1)

    def smooth_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Discrete Laplacian energy of the SDF (in voxels) and total variation of the colour logits."""
        d = self.sdf_volume()[0, 0] / self.voxel
        lap = (
            d[2:, 1:-1, 1:-1]
            + d[:-2, 1:-1, 1:-1]
            + d[1:-1, 2:, 1:-1]
            + d[1:-1, :-2, 1:-1]
            + d[1:-1, 1:-1, 2:]
            + d[1:-1, 1:-1, :-2]
            - 6 * d[1:-1, 1:-1, 1:-1]
        )
        c = self.rgb[0]
        tv = (
            (c[:, 1:] - c[:, :-1]).abs().mean()
            + (c[:, :, 1:] - c[:, :, :-1]).abs().mean()
            + (c[:, :, :, 1:] - c[:, :, :, :-1]).abs().mean()
        )
        return (lap**2).mean(), tv


def visual_hull(views: ViewSet, R: int, device=None, tolerance: int = 0) -> torch.Tensor:
    """Occupancy ``(R, R, R)`` bool of the grid nodes: inside the mask of every view that sees them
    (``tolerance`` views may disagree). Nodes outside a view's image are not carved by it."""
    device = device or views.rgb.device
    pts = SDFGrid.nodes(R, device).reshape(-1, 3)
    cams = views.cameras.to(device)
    masks = views.mask.to(device)[:, None]  # (V, 1, H, W)
    carved = torch.zeros(len(pts), dtype=torch.int32, device=device)
    for v in range(len(cams)):
        uv, z = cams[v].project(pts)
        grid = torch.stack([uv[:, 0] / cams.width * 2 - 1, uv[:, 1] / cams.height * 2 - 1], -1)
        m = F.grid_sample(masks[v : v + 1], grid[None, None], align_corners=False)[0, 0, 0]
        inside = (grid.abs() <= 1).all(-1) & (z > 0)
        carved += (inside & (m < 0.5)).int()
    return (carved <= tolerance).reshape(R, R, R)


def sdf_from_occupancy(occ: torch.Tensor) -> torch.Tensor:
    """Signed distance ``(R, R, R)`` (head-frame units, positive outside) of an occupancy grid."""
    from scipy.ndimage import distance_transform_edt

    o = occ.cpu().numpy()
    voxel = 2.0 / (occ.shape[-1] - 1)
    if not o.any():
        raise InputError("the masks leave nothing of the head (the visual hull is empty); check the cameras")
    out = distance_transform_edt(~o) - distance_transform_edt(o)
    out = np.where(o, out + 0.5, out - 0.5) * voxel
    return torch.from_numpy(out.astype(np.float32)).to(occ.device)


def initial_field(views: ViewSet, R: int, init: str = "hull", device=None) -> SDFGrid:
    """The starting field: the visual hull's SDF (``init="hull"``) or a sphere; grey colour."""
    if init == "sphere":
        return SDFGrid.sphere(R, device=device)
    sdf = sdf_from_occupancy(visual_hull(views, R, device))
    return SDFGrid(sdf, torch.zeros(3, R, R, R, device=sdf.device))


# --------------------------------------------------------------------------------------- rendering
def ray_box(
    origins: torch.Tensor, dirs: torch.Tensor, extent: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances ``(B,)`` of rays ``(B, 3)`` through the cube [-extent, extent]^3
    (``near >= far`` for rays that miss it)."""
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-extent - origins) / safe, (extent - origins) / safe
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far


def neus_alpha(sdf: torch.Tensor, s: float) -> torch.Tensor:
    """NeuS's discrete opacity of the sections between consecutive samples of ``sdf (B, S)`` along rays:
    ``alpha_i = max(0, (Phi(f_i) - Phi(f_i+1)) / Phi(f_i))`` with ``Phi(f) = sigmoid(s f)``; ``(B, S-1)``.

    Outside the surface ``Phi`` is about 1 and flat (nothing there), it falls to 0 across the zero level
    (all the opacity sits there), and inside it is about 0 and the ray has already been stopped.
    """
    phi = torch.sigmoid(s * sdf)
    return ((phi[:, :-1] - phi[:, 1:]) / (phi[:, :-1] + 1e-6)).clamp(0, 1)


def composite_weights(alpha: torch.Tensor) -> torch.Tensor:
    """Front-to-back compositing weights ``w_i = alpha_i prod_{j<i} (1 - alpha_j)`` of ``alpha (B, S)``."""
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-7], 1), 1)
    return trans * alpha


@torch.no_grad()
def _surface_guess(
    field: SDFGrid, o: torch.Tensor, d: torch.Tensor, near: torch.Tensor, far: torch.Tensor
) -> torch.Tensor:
    """Distance ``(B,)`` along each ray to its first zero crossing of the SDF, else to its closest
    approach."""
    n = math.ceil(3.5 / field.voxel) + 2
    u = torch.linspace(0, 1, n, device=o.device)
    t = near[:, None] + (far - near).clamp(min=0)[:, None] * u
    f, _ = field.query(o[:, None] + d[:, None] * t[..., None], rgb=False)
    cross = (f[:, :-1] > 0) & (f[:, 1:] <= 0)
    has = cross.any(1)
    i = cross.float().argmax(1, keepdim=True)
    f0, f1 = f.gather(1, i), f.gather(1, i + 1)
    t0, t1 = t.gather(1, i), t.gather(1, i + 1)
    tc = (t0 + (t1 - t0) * f0 / (f0 - f1).clamp(min=1e-9))[:, 0]
    tmin = t.gather(1, f.argmin(1, keepdim=True))[:, 0]
    tc = torch.where(has, tc, tmin)
    return torch.where(f[:, 0] <= 0, near, tc)


def render_rays(
    field: SDFGrid,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    s: float,
    background: torch.Tensor,
    fine_samples: int = 20,
    band_voxels: float = 3.0,
    jitter: bool = False,
) -> dict[str, torch.Tensor]:
    """NeuS-style volume rendering of rays ``(B, 3)`` through the field (see the module docstring).

    Returns ``rgb (B, 3)`` composited over ``background``, ``opacity (B,)``, ``depth (B,)`` (expected
    distance along the ray, valid where opacity > 0) and ``weights (B, S-1)``.
    """
    near, far = ray_box(origins, dirs)
    hit = far > near
    far = torch.where(hit, far, near)
    tc = _surface_guess(field, origins, dirs, near, far)
    band = band_voxels * field.voxel
    lo = torch.minimum(torch.maximum(tc - band, near), far)
    hi = torch.maximum(torch.minimum(tc + band, far), lo)
    k = torch.arange(fine_samples, device=origins.device, dtype=origins.dtype)
    offs = k + (torch.rand(len(origins), fine_samples, device=origins.device) if jitter else 0.5)
    t = lo[:, None] + (hi - lo)[:, None] * offs / fine_samples
    f, rgb = field.query(origins[:, None] + dirs[:, None] * t[..., None])
    alpha = neus_alpha(f, s) * hit[:, None]
    w = composite_weights(alpha)
    opacity = w.sum(1)
    col = (w[..., None] * 0.5 * (rgb[:, :-1] + rgb[:, 1:])).sum(1) + (1 - opacity[:, None]) * background
    tm = 0.5 * (t[:, :-1] + t[:, 1:])
    depth = (w * tm).sum(1) / opacity.clamp(min=1e-6)
    return {"rgb": col, "opacity": opacity, "depth": depth, "weights": w}


@torch.no_grad()
def render_field(
    field: SDFGrid,
    cameras: Cameras,
    s: float,
    background=(1.0, 1.0, 1.0),
    fine_samples: int = 24,
    band_voxels: float = 3.0,
    chunk: int = 16384,
    light=(-0.4, -0.5, -1.0),
) -> dict[str, np.ndarray]:
    """Render the field from ``cameras (V,)``.

    Returns numpy arrays: ``rgb (V, H, W, 3)`` in [0, 1], ``opacity (V, H, W)``, ``depth (V, H, W)``
    (distance along the ray, ``inf`` where empty) and ``shaded (V, H, W, 3)``: the geometry alone, lit by a
    light that moves with the camera (``light``: direction towards it in camera coordinates, x right,
    y down, z forward; the default is above left of the viewer).
    """
    dev = field.sdf.device
    cams = cameras if len(cameras.shape) else cameras[None]
    cams = cams.to(dev)
    o, d = cams.rays()
    V, H, W = o.shape[:3]
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    bg = torch.as_tensor(background, dtype=torch.float32, device=dev)
    out = {k: [] for k in ("rgb", "opacity", "depth", "normal")}
    for i in range(0, len(o), chunk):
        r = render_rays(field, o[i : i + chunk], d[i : i + chunk], s, bg, fine_samples, band_voxels)
        p = o[i : i + chunk] + d[i : i + chunk] * r["depth"][:, None]
        out["normal"].append(field.normals(p))
        for k in ("rgb", "opacity", "depth"):
            out[k].append(r[k])
    res = {k: torch.cat(v).reshape(V, H, W, -1).squeeze(-1) for k, v in out.items()}
    res["depth"] = torch.where(res["opacity"] > 0.5, res["depth"], torch.full_like(res["depth"], math.inf))
    R = cams.c2w[:, :3, :3]  # (V, 3, 3) camera -> world
    n_cam = torch.einsum("vij,vhwi->vhwj", R, res["normal"])  # world -> camera: R^T n
    ldir = F.normalize(torch.as_tensor(light, dtype=torch.float32, device=dev), dim=0)
    lam = (n_cam * ldir).sum(-1).clamp(min=0)
    a = res["opacity"][..., None]
    shaded = (0.25 + 0.75 * lam[..., None]) * torch.tensor([0.85, 0.83, 0.8], device=dev)
    res["shaded"] = a * shaded + (1 - a) * bg
    del res["normal"]
    return {k: v.float().cpu().numpy() for k, v in res.items()}


# --------------------------------------------------------------------------------------- fitting
def _sharpness(cfg: ReconConfig, frac: float, voxel: float) -> float:
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
    from tqdm.auto import tqdm

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
    bar = tqdm(total=total, desc="fitting SDF", disable=not progress, unit="step")
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
                bar.set_postfix(psnr=f"{losses['psnr']:.1f}", grid=R)
            if callback is not None:
                callback(FitState(step, total, field, s, losses))
    bar.close()
    return field, history


# --------------------------------------------------------------------------------------- mesh
@torch.no_grad()
def extract_mesh(field: SDFGrid, resolution: int = 128, min_component: float = 0.05):
    """Marching cubes of the zero level set on a ``resolution^3`` grid; vertex colours from the colour grid.

    Returns a ``trimesh.Trimesh`` in the head frame with outward (counter-clockwise) faces and uint8 RGBA
    vertex colours; pieces with fewer faces than ``min_component`` x the largest piece are dropped.
    """
    import trimesh
    from skimage.measure import marching_cubes

    dev = field.sdf.device
    n = resolution
    t = torch.linspace(-1, 1, n, device=dev)
    vol = torch.empty(n, n, n)
    for k in range(n):  # one z slice at a time bounds memory
        y, x = torch.meshgrid(t, t, indexing="ij")
        pts = torch.stack([x, y, torch.full_like(x, float(t[k]))], -1)
        vol[k] = field.query(pts, rgb=False)[0].cpu()
    vol = F.pad(vol, (1, 1, 1, 1, 1, 1), value=1.0).numpy()  # close the surface at the cube's faces
    if vol.min() >= 0 or vol.max() <= 0:
        raise InputError(
            "the fitted field has no surface (the SDF does not change sign); check views and masks"
        )
    step = 2.0 / (n - 1)
    verts, faces, _, _ = marching_cubes(vol, level=0.0, spacing=(step, step, step))
    verts = verts[:, ::-1] - (1.0 + step)  # (z, y, x) index order -> (x, y, z), undo the padding
    faces = faces.astype(np.int64)
    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:
        mesh.invert()
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        biggest = max(len(p.faces) for p in parts)
        mesh = trimesh.util.concatenate([p for p in parts if len(p.faces) >= min_component * biggest])
    v = torch.as_tensor(mesh.vertices, dtype=torch.float32, device=dev)
    _, rgb = field.query(v)
    rgba = np.concatenate(
        [(rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8), np.full((len(v), 1), 255, np.uint8)], 1
    )
    return trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=rgba, process=False)


def check_output_path(path, formats=MESH_FORMATS, what: str = "mesh") -> Path:
    """``path`` as a Path, or :class:`InputError` when its extension is not one of ``formats``."""
    p = Path(path)
    if p.suffix.lower() not in formats:
        raise InputError(f"{what} file must end in {', '.join(formats)}; got {p.name!r}")
    if p.is_dir():
        raise InputError(f"{p} is a folder; give a {what} file name ({', '.join(formats)})")
    return p


def save_mesh(mesh, path) -> Path:
    """Write a trimesh mesh atomically as ``.glb``, ``.obj`` or ``.ply`` (by extension)."""
    p = check_output_path(path)
    data = mesh.export(file_type=p.suffix.lower()[1:])
    atomic_write_bytes(p, data if isinstance(data, bytes) else data.encode())
    return p


# --------------------------------------------------------------------------------------- turntables
def turntable_cameras(
    n_frames: int = 36, elevation_deg: float = 10.0, image_size: int = 128, like: Cameras | None = None
) -> Cameras:
    """``n_frames`` cameras going once round the head, starting in front of the face. With ``like``, its
    first camera's radius and focal length are used (the inputs' framing)."""
    from gen3dface.core.cameras import DEFAULT_FOV_DEG, DEFAULT_RADIUS

    radius, fov = DEFAULT_RADIUS, DEFAULT_FOV_DEG
    if like is not None:
        c = like if len(like.shape) == 1 else like[None]
        radius = float(c.radius.reshape(-1)[0])
        fov = math.degrees(2 * math.atan(0.5 * c.height / float(c.K.reshape(-1, 3, 3)[0, 1, 1])))
    az = torch.arange(n_frames, dtype=torch.float32) * 360.0 / n_frames
    return orbit_cameras(az, elevation_deg, radius, fov, image_size)


def frames_to_bytes(frames: np.ndarray, fmt: str = ".gif", fps: int = 12) -> bytes:
    """Encode ``frames (T, H, W, 3)`` (uint8 or float in [0, 1]) as an animated GIF (Pillow)."""
    from PIL import Image

    if fmt != ".gif":
        raise InputError(f"frames_to_bytes encodes .gif only, not {fmt}")
    f = np.asarray(frames)
    if f.dtype != np.uint8:
        f = np.clip(f * 255 + 0.5, 0, 255).astype(np.uint8)
    imgs = [Image.fromarray(x) for x in f]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    return buf.getvalue()


def save_turntable(frames: np.ndarray, path, fps: int = 12) -> Path:
    """Write ``frames (T, H, W, 3)`` as ``.gif`` (Pillow) or ``.mp4`` (OpenCV, mp4v), atomically."""
    p = check_output_path(path, VIDEO_FORMATS, "turntable")
    f = np.asarray(frames)
    if f.dtype != np.uint8:
        f = np.clip(f * 255 + 0.5, 0, 255).astype(np.uint8)
    if p.suffix.lower() == ".gif":
        atomic_write_bytes(p, frames_to_bytes(f, ".gif", fps))
        return p
    import cv2

    with atomic_path(p) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (f.shape[2], f.shape[1]))
        if not writer.isOpened():
            raise InputError("this OpenCV build cannot write MP4; use a .gif turntable")
        for x in f:
            writer.write(np.ascontiguousarray(x[..., ::-1]))
        writer.release()
    return p


# --------------------------------------------------------------------------------------- metrics
def psnr(a, b, mask=None) -> float:
    """PSNR (dB) of images in [0, 1] (any matching shapes); ``mask`` restricts the pixels compared."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    err = (a - b) ** 2
    if mask is not None:
        m = np.broadcast_to(
            np.asarray(mask, bool)[..., None]
            if err.ndim == np.asarray(mask).ndim + 1
            else np.asarray(mask, bool),
            err.shape,
        )
        err = err[m]
    return float(-10 * np.log10(max(err.mean(), 1e-12)))


def _as_trimesh(mesh):
    import trimesh

    if isinstance(mesh, trimesh.Trimesh):
        return mesh
    if isinstance(mesh, (str, Path)):
        return trimesh.load(mesh, force="mesh", process=False)
    v, f = mesh.vertices, mesh.faces  # gen3dface.synth.render.Mesh
    v = v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    f = f.cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
    return trimesh.Trimesh(v, f, process=False)


def _visible_points(
    mesh, points: np.ndarray, normals: np.ndarray, cameras: Cameras, tol: float
) -> np.ndarray:
    """Which ``points (P, 3)`` of ``mesh`` some camera sees (depth test against the mesh rendered there)."""
    from gen3dface.synth.render import Mesh, render

    tm = _as_trimesh(mesh)
    m = Mesh(
        torch.as_tensor(tm.vertices, dtype=torch.float32),
        torch.as_tensor(tm.faces, dtype=torch.int64),
        torch.full((len(tm.vertices), 3), 0.5),
        two_sided=torch.ones(len(tm.faces), dtype=torch.bool),
    )
    depth = render(m, cameras)["depth"][0, :, 0]  # (V, H, W)
    pts = torch.as_tensor(points, dtype=torch.float32)
    uv, z = cameras.project(pts[None].expand(len(cameras), -1, -1))
    i, j = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    ok = (i >= 0) & (i < cameras.width) & (j >= 0) & (j < cameras.height) & (z > 0)
    dz = depth[
        torch.arange(len(cameras))[:, None], j.clamp(0, cameras.height - 1), i.clamp(0, cameras.width - 1)
    ]
    return (ok & (z <= dz + tol)).any(0).numpy()


def chamfer_distance(pred, gt, n_points: int = 30000, cameras: Cameras | None = None, seed: int = 0) -> dict:
    """Chamfer distance between two meshes, in head-frame units and in head widths.

    Both surfaces are sampled uniformly (``n_points`` each). With ``cameras``, only points some camera can
    see are kept on both (the scalp under the hair, the inside of the eyeballs and the bottom of the
    neck cannot be reconstructed from images). Head width = x extent of ``gt``.

    Returns ``accuracy`` (mean distance pred -> gt), ``completeness`` (gt -> pred), ``chamfer`` (their
    mean), the same three ``*_hw`` divided by the head width, and ``head_width``.
    """
    import trimesh
    from scipy.spatial import cKDTree

    a, b = _as_trimesh(pred), _as_trimesh(gt)
    pa, fa = trimesh.sample.sample_surface(a, n_points, seed=seed)
    pb, fb = trimesh.sample.sample_surface(b, n_points, seed=seed + 1)
    if cameras is not None:
        pa = pa[_visible_points(a, pa, a.face_normals[fa], cameras, 0.02)]
        pb = pb[_visible_points(b, pb, b.face_normals[fb], cameras, 0.02)]
    acc = float(cKDTree(pb).query(pa)[0].mean())
    comp = float(cKDTree(pa).query(pb)[0].mean())
    width = float(np.ptp(b.vertices[:, 0]))
    ch = 0.5 * (acc + comp)
    return {
        "accuracy": acc,
        "completeness": comp,
        "chamfer": ch,
        "head_width": width,
        "accuracy_hw": acc / width,
        "completeness_hw": comp / width,
        "chamfer_hw": ch / width,
    }


# --------------------------------------------------------------------------------------- one call
@dataclass
class ReconResult:
    """What :func:`reconstruct_views` returns.

    Attributes:
        field: the fitted :class:`SDFGrid`; ``s`` its final NeuS sharpness (render with these).
        mesh: the coloured ``trimesh.Trimesh`` in the head frame.
        views: the :class:`ViewSet` it was fitted to.
        history: per-step losses (dicts).
        snapshots: ``(step, image (H, W, 3) float)`` renders of one input view during fitting.
        seconds: wall time of ``fit`` and ``mesh``.
        config: the :class:`ReconConfig` used.
    """

    field: SDFGrid
    s: float
    mesh: object
    views: ViewSet
    history: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    config: ReconConfig | None = None

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
    return ReconResult(
        fld, _sharpness(cfg, 1.0, fld.voxel), mesh, views, history, snaps, {"fit": t_fit, "mesh": t_mesh}, cfg
    )


# --------------------------------------------------------------------------------------- pictures
def mesh_figure(mesh, title: str = "", max_faces: int = 60000):
    """Interactive plotly 3D view of a vertex-coloured trimesh (+Y up, looking at the face)."""
    import plotly.graph_objects as go

    m = _as_trimesh(mesh)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    if len(f) > max_faces:
        f = f[np.random.default_rng(0).choice(len(f), max_faces, replace=False)]
    colors = None
    vc = getattr(m.visual, "vertex_colors", None)
    if vc is not None and len(vc) == len(v):
        colors = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in np.asarray(vc)[:, :3].astype(int)]
    fig = go.Figure(
        go.Mesh3d(
            x=v[:, 0],
            y=v[:, 1],
            z=v[:, 2],
            i=f[:, 0],
            j=f[:, 1],
            k=f[:, 2],
            vertexcolor=colors,
            color=None if colors else "lightgray",
            flatshading=False,
            lighting={"ambient": 0.55, "diffuse": 0.6, "specular": 0.1, "roughness": 0.8},
            lightposition={"x": 100, "y": 200, "z": 300},
        )
    )
    fig.update_layout(
        title=title,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        height=520,
        scene={
            "aspectmode": "data",
            "camera": {"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 0.4, "y": 0.2, "z": 1.8}},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "zaxis": {"visible": False},
        },
    )
    return fig


def comparison_strip(inputs: np.ndarray, renders: np.ndarray) -> np.ndarray:
    """Inputs over re-renders: ``(2H, V*W, 3)`` float in [0, 1] from two ``(V, H, W, 3)`` stacks."""
    return np.concatenate([np.concatenate(list(inputs), 1), np.concatenate(list(renders), 1)], 0)


def write_report(result: ReconResult, path) -> None:
    """``result.summary()`` as JSON, atomically."""
    from gen3dface.core.storage import atomic_write_text

    atomic_write_text(path, json.dumps(result.summary(), indent=1, default=float))
