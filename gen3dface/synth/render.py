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
from gen3dface.synth.raster import barycentrics, rasterize, take
from gen3dface.synth.shading import Shading, outlines, shade_meshes

#: Pixel samples (views x supersampled pixels) rendered in one pass (CPU, GPU); more are split into passes.
_MAX_SAMPLES = 1 << 22
_MAX_SAMPLES_CUDA = 1 << 25


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


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``(N, 3)`` of a mesh ``vertices (N, 3)``, ``faces (F, 3)``."""
    v = take(vertices, faces)
    fn = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    n = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), fn.repeat_interleave(3, 0))
    return F.normalize(n, dim=-1, eps=1e-12)


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
        s = take(slot, mesh_id)
        m = ((s >= 0) & (uvw[:, 2] > 0)).nonzero().squeeze(1)
        if len(m) == 0:
            continue
        q, d = take(uvw, m), take(s, m).to(uvw.dtype)
        vol = torch.stack([textures[b] for b in ids], 1)[None].to(albedo)  # (1, 4, D, Ht, Wt)
        grid = torch.cat([q[:, :2], ((2 * d + 1) / len(ids) - 1)[:, None]], 1)  # (x, y, depth) in [-1, 1]
        smp = F.grid_sample(vol, grid[None, None, None], align_corners=False, padding_mode="border")[
            0, :, 0, 0
        ].T
        a = smp[:, 3:] * q[:, 2:]
        base = take(albedo, m)
        albedo.index_copy_(0, m, base + a * (smp[:, :3] - base))
    return albedo


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
    t = take(face, covered)
    slot, pix = covered // (H * W), covered % (H * W)
    uv = torch.stack([(pix % W).float() + 0.5, (pix // W).float() + 0.5], 1)
    bary, z = barycentrics(pk["screen"], take(pk["tris"], t), uv)
    corners = take(pk["verts"], t)  # (n, 3) vertex ids
    attrs = torch.einsum("nkc,nk->nc", take(pk["attrs"], corners), bary)  # one gather for all attributes
    albedo, pos, normal, uvw = attrs.split([3, 3, 3, 3], dim=1)
    normal = F.normalize(normal, dim=-1, eps=1e-12)
    mesh_id = slot // V
    textured = [b for b, m in enumerate(meshes) if m.texture is not None and m.uv is not None]
    if textured:
        albedo = _apply_textures(albedo, uvw, mesh_id, {b: meshes[b].texture for b in textured}, B)
    label = take(pk["labels"], corners.gather(1, bary.argmax(1, keepdim=True)).squeeze(1))
    view = F.normalize(take(cams.centers.reshape(S, 3), slot) - pos, dim=-1, eps=1e-12)
    if pk["two_sided"].any():  # back faces of two-sided shells are lit from the side we see (only those:
        # one-sided faces keep their normals, also where they graze the silhouette)
        flip = take(pk["two_sided"], t)[:, None] & ((normal * view).sum(-1, keepdim=True) < 0)
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
        edge = outlines(take(depth, idx), take(parts, idx))
        ink = torch.tensor([0.12, 0.1, 0.1], device=dev).view(1, 3, 1, 1)
        rgb.index_copy_(0, idx, torch.where(edge, ink, take(rgb, idx)))
    if ssaa > 1:
        rgb, alpha, nrm = (F.avg_pool2d(x, ssaa) for x in (rgb, alpha, nrm))
        nrm = F.normalize(nrm, dim=1, eps=1e-12)
        depth = -F.max_pool2d(-depth, ssaa)
        o = ssaa // 2
        parts = parts[..., o::ssaa, o::ssaa]
    out = {"rgb": rgb * 2 - 1, "alpha": alpha, "depth": depth, "normals": nrm, "parts": parts.squeeze(1)}
    return {k: v.reshape(B, V, *v.shape[1:]) for k, v in out.items()}
