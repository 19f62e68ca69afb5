"""A batched triangle rasteriser in plain torch (CPU or GPU): the offline stand-in for PanoHead's renderer.

Meshes live in the canonical head frame and are seen through :class:`gen3dface.core.cameras.Cameras` (OpenCV
pinhole cameras; pixel (i, j) covers [i, i+1) x [j, j+1) and is sampled at its centre). Typical use::

    head = build_head(sample_head_params(seed))
    out = render(head, synthesis_grid(image_size=128))   # out["rgb"]: (1, 48, 3, 128, 128) in [-1, 1]

How it works, in two stages (like nvdiffrast's ``rasterize`` + ``interpolate``):

1. :func:`rasterize`: every vertex is projected once per view; every front-facing triangle gets the
   integer box of pixel centres it may cover. Triangles are grouped by box size (a few pixels for a head
   at 128 px) and each group enumerates its (triangle, pixel) candidates with a fixed offset grid, so
   no work is spent on pixel x triangle pairs that cannot meet. Inside candidates write a 64-bit key
   ``(1/z bits << 32) | triangle`` into a z-buffer with ``scatter_reduce(amax)``: the nearest surface
   wins and its triangle comes with it.
2. :func:`render`: per covered pixel, perspective-correct barycentrics of the winning triangle
   interpolate colour, normal and world position; a style-dependent shader (:class:`Shading`) lights
   them in the head frame, so lighting is consistent across views.

Supersampling (``ssaa=2``) renders at twice the size and average-pools, which anti-aliases edges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras
from gen3dface.core.errors import InputError

#: Rendering styles: smooth realistic shading, flat cel shading with outlines, monochrome clay, pencil.
STYLES = ("photo", "toon", "clay", "sketch")
#: Triangles with a vertex nearer than this (camera z) are dropped (no near-plane clipping).
NEAR = 1e-2
#: Barycentric tolerance of the inside test: shared edges are covered by both triangles, never neither.
_EPS = 1e-5
#: Box sizes (pixels) of the triangle groups; boxes larger than the last are enumerated at their own size.
_BINS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
_SQUARE_BINS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Candidate pairs evaluated at once (bounds memory: about 40 bytes per pair).
_CHUNK = 1 << 22
#: Pixel samples (views x supersampled pixels) rendered in one pass (CPU, GPU); more are split into passes.
_MAX_SAMPLES = 1 << 22
_MAX_SAMPLES_CUDA = 1 << 25


def check_style(style: str) -> str:
    """Return ``style`` or raise :class:`InputError` naming the known ones."""
    if style not in STYLES:
        raise InputError(f"unknown rendering style {style!r}; choose one of {', '.join(STYLES)}")
    return style


@dataclass
class Shading:
    """How a mesh is lit and drawn; light directions are in the head frame (they turn with the head).

    Attributes:
        style: one of :data:`STYLES`.
        light_dir: ``(3,)`` direction *towards* the key light (normalised when used).
        key: key light intensity.
        fill: intensity of a weak fill light mirrored left-right and from below.
        ambient: hemispheric ambient intensity (sky above slightly brighter than below).
        specular: Blinn-Phong highlight strength; ``shininess`` its exponent.
    """

    style: str = "photo"
    light_dir: tuple[float, float, float] = (0.35, 0.45, 1.0)
    key: float = 0.85
    fill: float = 0.2
    ambient: float = 0.35
    specular: float = 0.08
    shininess: float = 24.0

    def __post_init__(self):
        check_style(self.style)


@dataclass
class Mesh:
    """A triangle mesh with per-vertex colour.

    Attributes:
        vertices: ``(N, 3)`` float32 positions in the head frame.
        faces: ``(F, 3)`` int64 vertex indices, counter-clockwise seen from outside (outward normals).
        colors: ``(N, 3)`` float32 albedo in [0, 1].
        normals: ``(N, 3)`` unit vertex normals; computed from the faces when ``None``.
        labels: ``(N,)`` int64 part labels (e.g. skin, hair, eye); optional.
        uv: ``(N, 3)`` optional texture coordinates (u, v) in ``grid_sample``'s [-1, 1] convention (u along
            the texture's width, v down its height) and a blend weight w in [0, 1]: the albedo is
            ``colors + w * a * (rgb - colors)`` with ``(rgb, a)`` sampled from ``texture``.
        texture: ``(4, Ht, Wt)`` RGBA in [0, 1] detail painted over the vertex colours (needs ``uv``); it is
            sampled bilinearly with border padding, so give it a transparent rim to fade out at its edges.
        two_sided: ``(F,)`` bool, faces drawn from both sides (open shells such as hair); optional.
        shading: how to light and draw it; :class:`Shading` defaults when ``None``.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    colors: torch.Tensor
    normals: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    uv: torch.Tensor | None = None
    texture: torch.Tensor | None = None
    two_sided: torch.Tensor | None = None
    shading: Shading | None = field(default=None)

    def __post_init__(self):
        if self.normals is None:
            self.normals = vertex_normals(self.vertices, self.faces)

    def to(self, device) -> Mesh:
        """A copy with every tensor on ``device``."""
        kw = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return type(self)(**kw)


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[idx]`` along dim 0 for any index shape (``index_select`` is much faster than advanced indexing)."""
    return x.index_select(0, idx.reshape(-1)).view(*idx.shape, *x.shape[1:])


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``(N, 3)`` of a mesh ``vertices (N, 3)``, ``faces (F, 3)``."""
    v = _take(vertices, faces)
    fn = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    n = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, 0))
    return F.normalize(n, dim=-1, eps=1e-12)


# --------------------------------------------------------------------------------------- rasterisation
def _triangle_setup(
    screen: torch.Tensor, tris: torch.Tensor, two_sided: torch.Tensor, height: int, width: int
):
    """Per-triangle pixel boxes and edge equations; drops culled, clipped and pixel-less triangles.

    Args:
        screen: ``(P, 3)`` projected vertices (u, v, camera z).
        tris: ``(T, 3)`` indices into ``screen``.
        two_sided: ``(T,)`` bool, keep back-facing triangles too.
    Returns:
        ``keep (T',)`` indices of the surviving triangles, ``box (T', 4)`` int64 [i0, j0, w, h] (first
        pixel column and row, box width and height), and ``coef (T', 3, 3)`` rows (A, B, C) of the
        planes w0, w1, 1/z = A * du + B * dv + C in pixels relative to the centre of pixel (i0, j0).
    """
    p = _take(screen, tris)  # (T, 3, 3)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # Outward counter-clockwise faces appear clockwise in the y-down image: front faces have area < 0.
    ok = (z.min(1).values > NEAR) & ((area < -1e-12) | (two_sided & (area > 1e-12)))
    i0 = torch.ceil(x.min(1).values - 0.5).clamp(min=0)
    i1 = torch.floor(x.max(1).values - 0.5).clamp(max=width - 1)
    j0 = torch.ceil(y.min(1).values - 0.5).clamp(min=0)
    j1 = torch.floor(y.max(1).values - 0.5).clamp(max=height - 1)
    ok &= (i1 >= i0) & (j1 >= j0)
    keep = ok.nonzero().squeeze(1)
    x, y, z, area, i0, i1, j0, j1 = (_take(a, keep) for a in (x, y, z, area, i0, i1, j0, j1))
    box = torch.stack([i0, j0, i1 - i0 + 1, j1 - j0 + 1], 1).long()
    x = x - (i0 + 0.5)[:, None]  # relative coordinates keep float32 precise
    y = y - (j0 + 0.5)[:, None]
    inv = 1.0 / area
    # w_k (barycentric of vertex k) = (A_k du + B_k dv + C_k), edges opposite to vertex k.
    a0, b0, c0 = (
        (y[:, 1] - y[:, 2]) * inv,
        (x[:, 2] - x[:, 1]) * inv,
        (x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1]) * inv,
    )
    a1, b1, c1 = (
        (y[:, 2] - y[:, 0]) * inv,
        (x[:, 0] - x[:, 2]) * inv,
        (x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2]) * inv,
    )
    q = 1.0 / z
    qa, qb = q[:, 0] - q[:, 2], q[:, 1] - q[:, 2]
    az, bz, cz = a0 * qa + a1 * qb, b0 * qa + b1 * qb, c0 * qa + c1 * qb + q[:, 2]
    coef = torch.stack(
        [torch.stack([a0, b0, c0], 1), torch.stack([a1, b1, c1], 1), torch.stack([az, bz, cz], 1)], 1
    )
    return keep, box, coef


def _scatter_group(
    zbuf: torch.Tensor,
    ids: torch.Tensor,
    pix0: torch.Tensor,
    coef: torch.Tensor,
    box: torch.Tensor,
    bw: int,
    bh: int,
    width: int,
) -> None:
    """Z-test every (triangle, pixel) candidate of one group of triangles with boxes up to ``bw x bh``.

    Args:
        zbuf: ``(S*H*W,)`` int64 keys, updated in place.
        ids: ``(n,)`` triangle ids written into the keys; ``pix0 (n,)`` flat index of each box's first pixel.
        coef: ``(n, 3, 3)`` plane equations (see :func:`_triangle_setup`); ``box (n, 4)`` the boxes.
    """
    dev = coef.device
    oy, ox = torch.meshgrid(torch.arange(bh, device=dev), torch.arange(bw, device=dev), indexing="ij")
    ox, oy = ox.reshape(-1, 1), oy.reshape(-1, 1)  # (k, 1): candidates offset-major, triangles minor
    fx, fy = ox.to(coef.dtype), oy.to(coef.dtype)
    c = coef.permute(1, 2, 0).contiguous()  # (3 planes, 3 coefficients, n)
    w0 = torch.addcmul(c[0, 2], c[0, 0], fx).addcmul_(c[0, 1], fy)
    w1 = torch.addcmul(c[1, 2], c[1, 0], fx).addcmul_(c[1, 1], fy)
    inside = (torch.minimum(w0, w1) >= -_EPS) & ((w0 + w1) <= 1.0 + _EPS)
    if bw > 1 or bh > 1:
        inside &= (ox < box[:, 2]) & (oy < box[:, 3])
    k_idx, t_idx = inside.nonzero(as_tuple=True)
    cz = _take(c[2].T, t_idx)  # (m, 3)
    invz = torch.addcmul(
        torch.addcmul(cz[:, 2], cz[:, 0], _take(fx[:, 0], k_idx)), cz[:, 1], _take(fy[:, 0], k_idx)
    )
    key = (invz.contiguous().view(torch.int32).to(torch.int64) << 32) | _take(ids, t_idx)
    pix = _take(pix0, t_idx) + _take(oy[:, 0] * width + ox[:, 0], k_idx)
    zbuf.scatter_reduce_(0, pix, key, reduce="amax")


def rasterize(
    screen: torch.Tensor,
    tris: torch.Tensor,
    slots: torch.Tensor,
    n_slots: int,
    height: int,
    width: int,
    two_sided: torch.Tensor | None = None,
    square_bins: bool | None = None,
) -> torch.Tensor:
    """Visible triangle per pixel of ``n_slots`` images.

    Args:
        screen: ``(P, 3)`` projected vertices: pixel u, pixel v, camera-frame z.
        tris: ``(T, 3)`` int64 indices into ``screen``, counter-clockwise seen from outside.
        slots: ``(T,)`` int64 image each triangle is drawn into, in ``[0, n_slots)``.
        two_sided: ``(T,)`` bool, triangles also drawn when seen from behind (default: none).
        square_bins: group triangles by the larger side of their box in powers of two (few groups, more
            candidate pixels: best on a GPU, where each group costs kernel launches) instead of by width and
            height separately (fewest candidates: best on a CPU). Default: square on CUDA. Same result.
    Returns:
        ``(n_slots, H, W)`` int64 index into ``tris`` of the nearest triangle covering each pixel
        centre, -1 where none does.
    """
    if square_bins is None:
        square_bins = screen.device.type == "cuda"
    dev = screen.device
    if two_sided is None:
        two_sided = torch.zeros(len(tris), dtype=torch.bool, device=dev)
    if len(tris) >= 2**31:
        raise ValueError("rasterize: at most 2^31 triangles per call; render fewer views at once")
    zbuf = torch.full((n_slots * height * width,), -1, dtype=torch.int64, device=dev)
    keep, box, coef = _triangle_setup(screen, tris, two_sided, height, width)
    pix0 = _take(slots, keep) * (height * width) + box[:, 1] * width + box[:, 0]
    sizes = _SQUARE_BINS if square_bins else _BINS
    bins = torch.tensor(sizes, device=dev)
    if square_bins:
        bin_w = bin_h = torch.bucketize(box[:, 2:4].amax(1).contiguous(), bins)
    else:
        bin_w = torch.bucketize(
            box[:, 2].contiguous(), bins
        )  # index of the smallest bin >= size (len if larger)
        bin_h = torch.bucketize(box[:, 3].contiguous(), bins)
    group = bin_w * (len(sizes) + 1) + bin_h
    order = torch.argsort(group)
    group_sorted = group[order]
    uniq, counts = torch.unique_consecutive(group_sorted, return_counts=True)
    start = 0
    for g, n in zip(uniq.tolist(), counts.tolist()):
        sel = order[start : start + n]
        start += n
        gw, gh = divmod(g, len(sizes) + 1)
        bw = sizes[gw] if gw < len(sizes) else int(box[sel, 2].max())
        bh = sizes[gh] if gh < len(sizes) else int(box[sel, 3].max())
        step = max(1, (_CHUNK * 8 if square_bins else _CHUNK) // (bw * bh))  # GPUs take bigger bites
        for s in range(0, n, step):
            part = sel[s : s + step]
            _scatter_group(
                zbuf, _take(keep, part), _take(pix0, part), _take(coef, part), _take(box, part), bw, bh, width
            )
    face = torch.where(zbuf >= 0, zbuf & 0xFFFFFFFF, torch.full_like(zbuf, -1))
    return face.view(n_slots, height, width)


def barycentrics(
    screen: torch.Tensor, tris: torch.Tensor, pixels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics and depth at pixel centres.

    Args:
        screen: ``(P, 3)`` projected vertices (u, v, camera z); ``tris (n, 3)`` the triangle of each pixel.
        pixels: ``(n, 2)`` float (u, v) sample positions.
    Returns:
        ``bary (n, 3)`` weights for the triangle's vertices (sum 1) and ``depth (n,)`` camera z.
    """
    p = _take(screen, tris)
    d = p[..., :2] - pixels[:, None, :]  # vertices relative to the sample
    x, y, z = d[..., 0], d[..., 1], p[..., 2]
    e = torch.stack(
        [
            x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1],
            x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2],
            x[:, 0] * y[:, 1] - x[:, 1] * y[:, 0],
        ],
        1,
    )
    e = e / e.sum(1, keepdim=True)
    q = e.clamp(min=0) / z
    s = q.sum(1, keepdim=True).clamp(min=1e-12)
    return q / s, 1.0 / s.squeeze(1)


def _apply_textures(
    albedo: torch.Tensor,
    uvw: torch.Tensor,
    mesh_id: torch.Tensor,
    textures: dict[int, torch.Tensor],
    n_meshes: int,
) -> torch.Tensor:
    """Blend texture detail over per-pixel vertex colours.

    Args:
        albedo: ``(n, 3)`` interpolated vertex colours; ``uvw (n, 3)`` interpolated (u, v, weight);
        mesh_id: ``(n,)`` mesh of each pixel, in ``[0, n_meshes)``; textures: mesh index -> ``(4, Ht, Wt)`` RGBA.

    Textures of one shape are sampled in a single call, stacked as the depth axis of a 3D texture: the
    depth coordinate of a pixel is the centre of its mesh's slice, so trilinear sampling is bilinear within
    that texture (border padding as in 2D), without one device sync per mesh.
    """
    albedo = albedo.clone()
    groups: dict[tuple, list[int]] = {}
    for b, tex in sorted(textures.items()):
        groups.setdefault(tuple(tex.shape), []).append(b)
    for ids in groups.values():
        slot = torch.full((n_meshes,), -1, dtype=torch.long, device=albedo.device)
        slot[torch.tensor(ids, device=albedo.device)] = torch.arange(len(ids), device=albedo.device)
        s = _take(slot, mesh_id)
        m = ((s >= 0) & (uvw[:, 2] > 0)).nonzero().squeeze(1)
        if len(m) == 0:
            continue
        q, d = _take(uvw, m), _take(s, m).to(uvw.dtype)
        vol = torch.stack([textures[b] for b in ids], 1)[None].to(albedo)  # (1, 4, D, Ht, Wt)
        grid = torch.cat([q[:, :2], ((2 * d + 1) / len(ids) - 1)[:, None]], 1)  # (x, y, depth) in [-1, 1]
        smp = F.grid_sample(vol, grid[None, None, None], align_corners=False, padding_mode="border")[
            0, :, 0, 0
        ].T
        a = smp[:, 3:] * q[:, 2:]
        base = _take(albedo, m)
        albedo.index_copy_(0, m, base + a * (smp[:, :3] - base))
    return albedo


# --------------------------------------------------------------------------------------- shading
def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return c.clamp(0, 1) ** 2.2


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    return c.clamp(0, 1) ** (1 / 2.2)


def _lights(s: Shading, dev) -> tuple[torch.Tensor, torch.Tensor]:
    key = F.normalize(torch.tensor(s.light_dir, dtype=torch.float32, device=dev), dim=0)
    fill = F.normalize(key * torch.tensor([-1.0, -0.3, 1.0], device=dev), dim=0)
    return key, fill


def _shade_style(
    style: str, albedo: torch.Tensor, normal: torch.Tensor, view: torch.Tensor, p: dict[str, torch.Tensor]
) -> torch.Tensor:
    """:func:`shade` for one style with light parameters ``p`` as tensors broadcasting against ``(n, 1)``
    (``key_dir`` and ``fill_dir`` against ``(n, 3)``): one set for all samples, or one per sample."""
    ndl = (normal * p["key_dir"]).sum(-1, keepdim=True).clamp(min=0)
    ndf = (normal * p["fill_dir"]).sum(-1, keepdim=True).clamp(min=0)
    hemi = 0.8 + 0.2 * normal[:, 1:2]
    if style == "toon":
        level = torch.where(ndl > 0.45, 1.0, torch.where(ndl > 0.08, 0.78, 0.58))
        return (albedo * level * (p["key"] + p["ambient"]) / 1.2).clamp(0, 1)
    half = F.normalize(p["key_dir"] + view, dim=-1)
    spec = p["specular"] * (normal * half).sum(-1, keepdim=True).clamp(min=0) ** p["shininess"] * (ndl > 0)
    light = p["ambient"] * hemi + p["key"] * ndl + p["fill"] * ndf
    rgb = _linear_to_srgb(_srgb_to_linear(albedo) * light + spec)
    if style == "sketch":
        lum = (rgb * torch.tensor([0.3, 0.59, 0.11], device=rgb.device)).sum(-1, keepdim=True)
        tone = torch.floor(lum.clamp(0, 0.999) * 4) / 3  # four pencil tones
        return (0.35 + 0.65 * tone).expand(-1, 3) * torch.tensor([1.0, 0.98, 0.93], device=rgb.device)
    return rgb


def _light_params(shadings: Sequence[Shading], dev) -> dict[str, torch.Tensor]:
    """Light parameters of several shadings stacked: ``key_dir``/``fill_dir (B, 3)``, the rest ``(B, 1)``."""
    dirs = [_lights(s, dev) for s in shadings]
    col = lambda name: torch.tensor([[float(getattr(s, name))] for s in shadings], device=dev)  # noqa: E731
    return {
        "key_dir": torch.stack([k for k, _ in dirs]),
        "fill_dir": torch.stack([f for _, f in dirs]),
        **{name: col(name) for name in ("key", "fill", "ambient", "specular", "shininess")},
    }


def shade(albedo: torch.Tensor, normal: torch.Tensor, view: torch.Tensor, s: Shading) -> torch.Tensor:
    """Lit colour ``(n, 3)`` in [0, 1] of surface samples.

    Args:
        albedo: ``(n, 3)`` in [0, 1]; ``normal (n, 3)`` unit normals facing the camera; ``view (n, 3)``
            unit directions from the surface to the camera, all in the head frame.
    """
    return _shade_style(s.style, albedo, normal, view, _light_params([s], albedo.device))


def shade_meshes(
    albedo: torch.Tensor,
    normal: torch.Tensor,
    view: torch.Tensor,
    mesh_id: torch.Tensor,
    shadings: Sequence[Shading],
) -> torch.Tensor:
    """:func:`shade` for samples of several meshes at once: sample ``i`` lit by ``shadings[mesh_id[i]]``.
    One pass per style present (not per mesh), so a batch of heads costs no device sync per head."""
    p = {k: _take(v, mesh_id) for k, v in _light_params(shadings, albedo.device).items()}
    styles = sorted({s.style for s in shadings})
    if len(styles) == 1:
        return _shade_style(styles[0], albedo, normal, view, p)
    style_of = torch.tensor([STYLES.index(s.style) for s in shadings], device=albedo.device)
    px_style = _take(style_of, mesh_id)
    color = torch.empty_like(albedo)
    for st in styles:
        m = (px_style == STYLES.index(st)).nonzero().squeeze(1)
        color.index_copy_(
            0,
            m,
            _shade_style(
                st, _take(albedo, m), _take(normal, m), _take(view, m), {k: _take(v, m) for k, v in p.items()}
            ),
        )
    return color


def _outlines(depth: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """Line mask ``(S, 1, H, W)``: foreground side of depth jumps and one side of part-label changes.

    Args:
        depth: ``(S, 1, H, W)`` camera z (``inf`` = background); ``parts (S, 1, H, W)`` labels (-1 = background).
    """
    d = torch.where(torch.isinf(depth), torch.full_like(depth, 1e3), depth)
    p = parts.float()
    dp, pp = F.pad(d, (1, 1, 1, 1), mode="replicate"), F.pad(p, (1, 1, 1, 1), mode="replicate")
    H, W = d.shape[-2:]
    edge = torch.zeros_like(d, dtype=torch.bool)
    for dy, dx in ((0, 1), (1, 0), (2, 1), (1, 2)):
        nd, np_ = dp[..., dy : dy + H, dx : dx + W], pp[..., dy : dy + H, dx : dx + W]
        edge |= (nd > d + 0.05 * d) | ((np_ != p) & (p > np_))
    return edge & (parts >= 0)


# --------------------------------------------------------------------------------------- render
def _as_meshes(meshes) -> list[Mesh]:
    if isinstance(meshes, Mesh):
        return [meshes]
    meshes = list(meshes)
    if not meshes or not all(isinstance(m, Mesh) for m in meshes):
        raise InputError("render: give a Mesh or a non-empty list of Mesh objects (e.g. from build_head)")
    return meshes


def _camera_batch(cameras: Cameras, n_meshes: int) -> Cameras:
    """Cameras shaped ``(B, V)``: a ``(V,)`` batch is shared by every mesh, a single camera is V = 1."""
    shape = cameras.shape
    if len(shape) == 0:
        cameras = cameras[None]
        shape = cameras.shape
    if len(shape) == 1:
        K = cameras.K[None].expand(n_meshes, *cameras.K.shape)
        c2w = cameras.c2w[None].expand(n_meshes, *cameras.c2w.shape)
        return Cameras(K, c2w, cameras.height, cameras.width)
    if len(shape) == 2 and shape[0] == n_meshes:
        return cameras
    raise InputError(
        f"render: cameras of shape {tuple(shape)} do not fit {n_meshes} meshes; give (V,) cameras "
        f"shared by all meshes or ({n_meshes}, V) cameras"
    )


def _pack(meshes: list[Mesh], cams: Cameras, dev) -> dict:
    """Project every mesh into each of its views and concatenate into one triangle soup.

    Returns a dict: ``screen (P, 3)`` projected vertices of all (mesh, view) slots, ``tris (T, 3)`` into
    ``screen``, ``verts (T, 3)`` the same corners as indices into the concatenated mesh vertices,
    ``slots (T,)``, ``two_sided (T,)``, the concatenated vertex attributes ``attrs (N_total, 12)`` (colour,
    position, normal, texture uvw) and ``labels (N_total,)``.
    """
    V = cams.shape[1]
    screen, tris, verts, slots, two = [], [], [], [], []
    p_off = v_off = 0
    for b, m in enumerate(meshes):
        n, f = len(m.vertices), len(m.faces)
        uv, z = cams[b].project(m.vertices.to(dev))  # (V, n, 2), (V, n)
        screen.append(torch.cat([uv, z[..., None]], -1).reshape(-1, 3))
        faces = m.faces.to(dev)
        view_off = p_off + n * torch.arange(V, device=dev)
        tris.append((faces[None] + view_off[:, None, None]).reshape(-1, 3))
        verts.append((faces + v_off).repeat(V, 1))
        slots.append((b * V + torch.arange(V, device=dev)).repeat_interleave(f))
        ts = m.two_sided.to(dev) if m.two_sided is not None else torch.zeros(f, dtype=torch.bool, device=dev)
        two.append(ts.repeat(V))
        p_off += V * n
        v_off += n
    cat = lambda xs: torch.cat([x.to(dev) for x in xs])  # noqa: E731
    labels = [
        m.labels if m.labels is not None else torch.zeros(len(m.vertices), dtype=torch.int64) for m in meshes
    ]
    uvw = [m.uv.float() if m.uv is not None else torch.zeros(len(m.vertices), 3) for m in meshes]
    attrs = [
        torch.cat([m.colors.float(), m.vertices.float(), m.normals.float(), t], 1)
        for m, t in zip(meshes, uvw)
    ]
    return {
        "screen": cat(screen),
        "tris": cat(tris),
        "verts": cat(verts),
        "slots": cat(slots),
        "two_sided": cat(two),
        "attrs": cat(attrs),
        "labels": cat(labels),
    }


@torch.no_grad()
def render(
    meshes: Mesh | Sequence[Mesh],
    cameras: Cameras,
    *,
    shading: Shading | Sequence[Shading] | None = None,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    ssaa: int = 1,
    device=None,
) -> dict[str, torch.Tensor]:
    """Render ``B`` meshes from ``V`` views each.

    Args:
        meshes: a :class:`Mesh` (B = 1) or a list of them (e.g. :class:`gen3dface.synth.heads.HeadMesh`).
        cameras: ``(V,)`` cameras shared by all meshes, ``(B, V)`` per mesh, or a single camera (V = 1).
        shading: one :class:`Shading` for all, one per mesh, or ``None`` to use each mesh's ``shading``.
        background: RGB in [0, 1] behind the meshes.
        ssaa: supersampling factor (1 = none, 2 = render 2x larger and average-pool: anti-aliased edges).
        device: where to render; defaults to the cameras' device.
    Returns:
        dict of tensors on ``device``:
        ``rgb (B, V, 3, H, W)`` in [-1, 1] (the models' convention; ``images.to_uint8`` makes PNGs),
        ``alpha (B, V, 1, H, W)`` coverage in [0, 1],
        ``depth (B, V, 1, H, W)`` camera-frame z of the nearest surface (the nearest sub-sample with
        ``ssaa``), ``inf`` where empty,
        ``normals (B, V, 3, H, W)`` unit world (head-frame) normals, 0 where empty,
        ``parts (B, V, H, W)`` int64 part label of the mesh's ``labels`` (one sub-sample), -1 where empty.
    """
    meshes = _as_meshes(meshes)
    if ssaa not in (1, 2, 3, 4):
        raise InputError(f"ssaa must be 1, 2, 3 or 4, got {ssaa}")
    dev = torch.device(device) if device is not None else cameras.K.device
    B = len(meshes)
    if shading is None:
        shadings = [m.shading or Shading() for m in meshes]
    elif isinstance(shading, Shading):
        shadings = [shading] * B
    else:
        shadings = list(shading)
        if len(shadings) != B:
            raise InputError(
                f"render: {len(shadings)} shadings for {B} meshes; give one per mesh or one for all"
            )
    cams = _camera_batch(cameras, B).to(dev)
    if ssaa > 1:
        cams = cams.resized(cameras.height * ssaa, cameras.width * ssaa)
    V = cams.shape[1]
    budget = _MAX_SAMPLES_CUDA if dev.type == "cuda" else _MAX_SAMPLES
    step = max(1, budget // (B * cams.height * cams.width))  # views per pass: bounds memory
    parts = [
        _render_views(meshes, cams[:, v : v + step], shadings, background, ssaa, dev)
        for v in range(0, V, step)
    ]
    return {k: torch.cat([p[k] for p in parts], 1) for k in parts[0]}


def _render_views(
    meshes: list[Mesh], cams: Cameras, shadings: list[Shading], background: Sequence[float], ssaa: int, dev
) -> dict[str, torch.Tensor]:
    """:func:`render` for ``(B, V)`` cameras already at the supersampled size."""
    B, V, H, W = len(meshes), cams.shape[1], cams.height, cams.width
    S = B * V
    pk = _pack(meshes, cams, dev)
    face = rasterize(pk["screen"], pk["tris"], pk["slots"], S, H, W, pk["two_sided"]).view(-1)

    covered = (face >= 0).nonzero().squeeze(1)
    t = _take(face, covered)
    slot, pix = covered // (H * W), covered % (H * W)
    uv = torch.stack([(pix % W).float() + 0.5, (pix // W).float() + 0.5], 1)
    bary, z = barycentrics(pk["screen"], _take(pk["tris"], t), uv)
    corners = _take(pk["verts"], t)  # (n, 3) vertex ids
    attrs = torch.einsum("nkc,nk->nc", _take(pk["attrs"], corners), bary)  # one gather for all attributes
    albedo, pos, normal, uvw = attrs.split([3, 3, 3, 3], dim=1)
    normal = F.normalize(normal, dim=-1, eps=1e-12)
    mesh_id = slot // V
    textured = [b for b, m in enumerate(meshes) if m.texture is not None and m.uv is not None]
    if textured:
        albedo = _apply_textures(albedo, uvw, mesh_id, {b: meshes[b].texture for b in textured}, B)
    label = _take(pk["labels"], corners.gather(1, bary.argmax(1, keepdim=True)).squeeze(1))
    view = F.normalize(_take(cams.centers.reshape(S, 3), slot) - pos, dim=-1, eps=1e-12)
    if pk["two_sided"].any():  # back faces of two-sided shells are lit from the side we see (only those:
        # one-sided faces keep their normals, also where they graze the silhouette)
        flip = _take(pk["two_sided"], t)[:, None] & ((normal * view).sum(-1, keepdim=True) < 0)
        normal = torch.where(flip, -normal, normal)

    color = shade_meshes(albedo, normal, view, mesh_id, shadings)

    def canvas(values: torch.Tensor, fill) -> torch.Tensor:
        """Per-pixel ``values (n, C)`` scattered onto ``(S, C, H, W)`` images filled with ``fill``."""
        img = torch.as_tensor(fill, dtype=values.dtype, device=dev).reshape(1, -1).repeat(S * H * W, 1)
        img = img.expand(-1, values.shape[1]).contiguous() if img.shape[1] == 1 else img
        return img.index_copy_(0, covered, values).view(S, H, W, -1).permute(0, 3, 1, 2)

    rgb = canvas(color, background).contiguous()
    alpha = canvas(torch.ones_like(z)[:, None], 0.0)
    depth = canvas(z[:, None], math.inf)
    nrm = canvas(normal, 0.0)
    parts = canvas(label[:, None], -1)

    lined = [b for b, s in enumerate(shadings) if s.style in ("toon", "sketch")]
    if lined:
        idx = torch.tensor([b * V + v for b in lined for v in range(V)], device=dev)
        edge = _outlines(_take(depth, idx), _take(parts, idx))
        ink = torch.tensor([0.12, 0.1, 0.1], device=dev).view(1, 3, 1, 1)
        rgb.index_copy_(0, idx, torch.where(edge, ink, _take(rgb, idx)))
    if ssaa > 1:
        rgb, alpha, nrm = (F.avg_pool2d(x, ssaa) for x in (rgb, alpha, nrm))
        nrm = F.normalize(nrm, dim=1, eps=1e-12)
        depth = -F.max_pool2d(-depth, ssaa)
        o = ssaa // 2
        parts = parts[..., o::ssaa, o::ssaa]
    out = {"rgb": rgb * 2 - 1, "alpha": alpha, "depth": depth, "normals": nrm, "parts": parts.squeeze(1)}
    return {k: v.reshape(B, V, *v.shape[1:]) for k, v in out.items()}
