"""Procedural 360-degree heads: the offline stand-in for PanoHead's identities.

Every identity is a :class:`~gen3dface.synth.head_params.HeadParams` drawn from a seed
(:mod:`gen3dface.synth.head_params`), and :func:`build_head` turns it into a coloured
triangle mesh in the canonical head frame of :mod:`gen3dface.core.cameras` (+Y up, the face looks along +Z, +X is
the subject's left, everything inside [-1, 1]^3, eyes at about y = 0). The mesh is assembled from:

* the head: a sphere whose directions are mapped onto a squircle-ellipsoid skull with a tapered jaw, then
  pushed along +Z by smooth fields that make the eye sockets, brow ridge, nose, cheeks, lips and chin; the
  eyelids follow the eyeballs and open along an almond curve, so eyes are crisp at any resolution;
* eyeballs with iris and pupil rings, ears (cupped flattened ellipsoids), a neck with a shirt collar;
* hair: an offset shell over the scalp with a style-dependent hairline (short, long, bun, ponytail,
  curly, bald), drawn two-sided.

Facial colour (lips, brows, lash lines, nostrils, blush) is painted into the vertex colours.
Typical use::

    head = build_head(sample_head_params(7, style="toon"))
    out = render(head, synthesis_grid(image_size=128))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gen3dface.core.errors import InputError
from gen3dface.synth.head_params import (
    BROW,
    CLAY_COLORS,
    CLOTH,
    EYE,
    EYE_Y,
    HAIR,
    HAIR_STYLES,
    LIP,
    SKIN,
    HeadParams,
    sample_head_params,
)
from gen3dface.synth.render import Mesh
from gen3dface.synth.shading import check_style


@dataclass
class HeadMesh(Mesh):
    """A :class:`gen3dface.synth.render.Mesh` with part ``labels (N,)`` (indices into :data:`PARTS`) and its params."""

    params: HeadParams | None = None


# --------------------------------------------------------------------------------------- mesh helpers
def smoothstep(e0: float, e1: float, x: torch.Tensor) -> torch.Tensor:
    """0 at ``e0`` (and beyond), 1 at ``e1`` (and beyond), the cubic Hermite ramp between; ``x`` any shape."""
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _gauss(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, sx: float, sy: float) -> torch.Tensor:
    return torch.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _warp(t: torch.Tensor, a: float) -> torch.Tensor:
    """Monotone map of [-1, 1] onto itself with slope ``1 - a`` at 0: samples ``1 / (1 - a)`` times denser there."""
    return t + a * (t**3 - t)


def _sphere_grid(n_lon: int, n_lat: int, warp_lon: float = 0.0, warp_lat: float = 0.0):
    """A latitude-longitude sphere with poles on +-Y, optionally denser around the +Z direction.

    Returns:
        ``lon (N,)`` (0 = +Z, +pi/2 = +X), ``lat (N,)`` in [-pi/2, pi/2], unit ``dirs (N, 3)`` and outward
        counter-clockwise ``faces (F, 3)``, F = 2 * n_lon * (n_lat - 1).
    """
    lon = math.pi * _warp(-1 + 2 * torch.arange(n_lon) / n_lon, warp_lon)
    lat = 0.5 * math.pi * _warp(torch.linspace(-1, 1, n_lat + 1)[1:-1], warp_lat)
    LA, LO = torch.meshgrid(lat, lon, indexing="ij")
    lon_all = torch.cat([torch.zeros(1), LO.reshape(-1), torch.zeros(1)])
    lat_all = torch.cat([torch.tensor([-math.pi / 2]), LA.reshape(-1), torch.tensor([math.pi / 2])])
    dirs = torch.stack([lat_all.cos() * lon_all.sin(), lat_all.sin(), lat_all.cos() * lon_all.cos()], -1)
    rows = n_lat - 1
    ring = lambda r: 1 + r * n_lon + torch.arange(n_lon)  # noqa: E731
    nxt = lambda r: 1 + r * n_lon + (torch.arange(n_lon) + 1) % n_lon  # noqa: E731
    faces = [torch.stack([torch.zeros(n_lon, dtype=torch.long), nxt(0), ring(0)], 1)]
    for r in range(rows - 1):
        a, b, c, d = ring(r), nxt(r), ring(r + 1), nxt(r + 1)
        faces += [torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)]
    top = torch.full((n_lon,), len(dirs) - 1)
    faces.append(torch.stack([ring(rows - 1), nxt(rows - 1), top], 1))
    return lon_all, lat_all, dirs, torch.cat(faces)


def _rot_y(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _rot_x(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _mirror_x(v: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror a part to the other side of the face, keeping faces counter-clockwise."""
    return v * torch.tensor([-1.0, 1.0, 1.0]), f[:, [0, 2, 1]]


# --------------------------------------------------------------------------------------- skull and face
_JAW_BOX = 3.2  # exponent of the vertical profile of the lower face (2 would be an ellipsoid)


def _skull(dirs: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Skull surface point ``(N, 3)`` along each unit direction ``(N, 3)`` (before facial features)."""
    x, y, z = dirs.unbind(-1)
    ay = torch.where(y > 0, torch.tensor(p.skull_top - EYE_Y), torch.tensor(EYE_Y - p.chin_y))
    az = torch.where(z > 0, torch.tensor(p.face_depth), torch.tensor(p.back_depth))
    n = p.squircle
    m = 2 + (_JAW_BOX - 2) * smoothstep(0.0, 0.5, z) * (y < 0)  # a boxy lower face: chin below the lips
    horiz = ((x / p.skull_width).abs() ** n + (z / az).abs() ** n) ** (1 / n)
    r = 1.0 / (horiz**m + (y / ay).abs() ** m) ** (1 / m)
    pos = dirs * r[:, None]
    pos[:, 1] += EYE_Y
    jaw = smoothstep(EYE_Y - 0.05, p.chin_y, pos[:, 1]) ** 1.2  # 0 above the cheekbones, 1 at the chin
    pos[:, 0] *= 1 - (1 - p.jaw_width) * jaw
    pos[:, 0] *= 1 + 0.05 * smoothstep(0.0, -0.6, pos[:, 2]) * smoothstep(EYE_Y - 0.3, 0.4, pos[:, 1])
    return pos


def _eye_centres(p: HeadParams) -> torch.Tensor:
    """Eyeball centres ``(2, 3)``: subject's right (x < 0) then left."""
    x = torch.tensor([p.eye_spacing])
    n = p.squircle
    z_skin = p.face_depth * (1 - (x / p.skull_width) ** n).clamp(min=0) ** (1 / n)
    zc = float(z_skin) - 0.035 - p.eye_size
    return torch.tensor([[-p.eye_spacing, EYE_Y, zc], [p.eye_spacing, EYE_Y, zc]])


def _almond(dx: torch.Tensor, dy: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Eye-opening distance: < 1 inside the almond-shaped lid opening around an eye centre.

    ``dx`` is measured towards the temple, ``dy`` up; the upper lid peaks a little inward."""
    half_w = 1.05 * p.eye_size
    half_h = 0.45 * p.eye_size * p.eye_open
    tilt = dy - 0.08 * half_h * dx / half_w - 0.15 * half_h * (1 - (dx / half_w + 0.15) ** 2).clamp(min=0)
    h = torch.where(tilt > 0, torch.tensor(half_h), torch.tensor(0.8 * half_h))
    return torch.sqrt((dx / half_w) ** 2 + (tilt / h) ** 2)


def _face_relief(x: torch.Tensor, y: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Forward (+Z) displacement of the front of the head at ``(x, y)``: sockets, brows, nose, lips, chin."""
    ax, es = x.abs(), p.eye_spacing
    y_tip, y_mouth = EYE_Y - p.nose_length, EYE_Y - p.nose_length - 0.115
    d = -0.06 * _gauss(ax, y, es, EYE_Y, 0.08, 0.06)  # eye sockets
    d += 0.03 * _gauss(ax, y, es * 0.9, EYE_Y + 0.13, 0.11, 0.035) + 0.02 * _gauss(
        x, y, 0, EYE_Y + 0.1, 0.06, 0.05
    )
    t = ((EYE_Y + 0.06 - y) / (EYE_Y + 0.06 - y_tip)).clamp(0, 1)  # 0 at the bridge, 1 at the tip
    width = 0.03 + (0.55 * p.nose_width - 0.03) * t**2
    ridge = p.nose_height * (0.25 + 0.75 * t**1.6) * torch.exp(-0.5 * (x / width) ** 2)
    below = torch.exp(-0.5 * ((y - y_tip).clamp(max=0) / 0.028) ** 2)
    d += ridge * below * smoothstep(EYE_Y + 0.12, EYE_Y + 0.02, y)
    d += 0.3 * p.nose_height * _gauss(ax, y, 0.7 * p.nose_width, y_tip + 0.01, 0.035, 0.03)  # nostril wings
    d += 0.025 * _gauss(x, y, 0, y_mouth + 0.04, 0.12, 0.06)  # upper-lip region
    lips = torch.exp(-((ax / p.mouth_width) ** 4))
    d += (
        p.lip_thickness
        * lips
        * (_gauss(x, y, 0, y_mouth + 0.016, 1, 0.014) + 1.1 * _gauss(x, y, 0, y_mouth - 0.024, 1, 0.017))
    )
    d -= 0.012 * lips * _gauss(x, y, 0, y_mouth, 1, 0.005)
    d -= 0.012 * _gauss(x, y, 0, y_mouth - 0.075, 0.08, 0.02)  # chin crease
    d += (0.02 + p.chin_forward) * _gauss(x, y, 0, p.chin_y + 0.1, 0.1, 0.07)
    d += (0.01 + p.cheek) * _gauss(ax, y, 0.27, EYE_Y - 0.16, 0.09, 0.08)
    return d


def _head_surface(dirs: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Head surface ``(N, 3)``: the skull plus the face relief and eyelids wrapped around the eyeballs."""
    pos = _skull(dirs, p)
    x, y = pos[:, 0], pos[:, 1]
    front = smoothstep(0.05, 0.35, pos[:, 2])
    pos[:, 2] += front * _face_relief(x, y, p)
    for c in _eye_centres(p):
        dx, dy = (x - c[0]) * torch.sign(c[0]), y - c[1]
        rho = _almond(dx, dy, p)
        ball = c[2] + torch.sqrt((p.eye_size**2 - dx**2 - dy**2).clamp(min=0))
        lid = ball + 0.02 * (rho - 1)
        w = smoothstep(2.4, 1.5, rho) * front
        pos[:, 2] = (1 - w) * pos[:, 2] + w * torch.maximum(lid, pos[:, 2] - 0.05 * (rho < 1))
    return pos


def _front_z(x: torch.Tensor, y: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Depth of the face surface at ``(x, y)`` (skull front plus relief; no eyelids); for painting."""
    ay = torch.where(y > EYE_Y, torch.tensor(p.skull_top - EYE_Y), torch.tensor(EYE_Y - p.chin_y))
    jaw = smoothstep(EYE_Y - 0.05, p.chin_y, y) ** 1.2
    xs = x / (1 - (1 - p.jaw_width) * jaw)
    n, m = p.squircle, torch.where(y < EYE_Y, _JAW_BOX, 2.0)
    h = (1 - ((y - EYE_Y) / ay).abs() ** m).clamp(min=0) ** (1 / m)
    horiz = h**n - (xs / p.skull_width).abs() ** n
    z = p.face_depth * horiz.clamp(min=0) ** (1 / n)
    return z + smoothstep(0.05, 0.35, z) * _face_relief(x, y, p)


def _paint_face(
    x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, p: HeadParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Skin colours ``(N, 3)`` and labels ``(N,)`` at face points ``(N,)``: blush, lids, brows, lips, nostrils."""
    ax = x.abs()
    front = smoothstep(0.1, 0.4, z)
    col = torch.tensor(p.skin_tone).expand(len(x), 3).clone()
    labels = torch.full((len(x),), SKIN, dtype=torch.long)
    red = torch.tensor([0.85, 0.42, 0.4])
    y_tip, y_mouth = EYE_Y - p.nose_length, EYE_Y - p.nose_length - 0.115
    blush = 0.12 * _gauss(ax, y, 0.26, EYE_Y - 0.18, 0.08, 0.07) + 0.08 * _gauss(x, y, 0, y_tip, 0.05, 0.04)
    col = col + (front * blush)[:, None] * (red - col)
    for c in _eye_centres(p):  # darker sockets, upper lid crease, lash lines
        dx, dy = (x - c[0]) * torch.sign(c[0]), y - c[1]
        rho = _almond(dx, dy, p)
        shade = 0.2 * _gauss(dx, dy, 0, 0.01, 0.11, 0.06) + 0.22 * smoothstep(2.0, 1.6, rho) * (dy > 0)
        lash = smoothstep(1.32, 1.08, rho) * torch.where(dy > 0, 1.0, 0.4)
        col = col * (1 - (front * shade)[:, None])
        col = col + (front * lash)[:, None] * (torch.tensor([0.06, 0.04, 0.035]) - col)
    # eyebrows: arcs above the eyes, thinning towards the temples, with a hint of hairs
    u = (ax - 0.04) / (p.eye_spacing + 0.14 - 0.04)
    arc = EYE_Y + 0.125 + 0.035 * torch.sin(math.pi * u.clamp(0, 1) ** 0.8)
    half = 0.5 * p.brow_thickness * (1.15 - 0.6 * u.clamp(0, 1))
    brow = (
        smoothstep(1.0, 0.75, (y - arc).abs() / half) * smoothstep(-0.04, 0.04, u) * smoothstep(1.05, 0.95, u)
    )
    brow = brow * front * (0.85 + 0.15 * torch.sin(x * 900 + y * 300))
    col = col + 0.92 * brow[:, None] * (torch.tensor(p.brow_color) - col)
    labels[brow > 0.5] = BROW
    # lips: a bowed upper lip and a fuller lower lip around a dark mouth line
    t = (ax / p.mouth_width).clamp(max=1)
    y_line = y_mouth + 0.004 * t**2
    y_up = y_mouth + 1.3 * p.lip_thickness * (1 - t**2) ** 0.5 * (1 - 0.2 * torch.exp(-((x / 0.018) ** 2)))
    y_lo = y_mouth - 1.6 * p.lip_thickness * (1 - t**2) ** 0.6
    soft = 0.004
    inside = smoothstep(1.0, 0.96, ax / p.mouth_width)
    lip = (smoothstep(-soft, soft, y_up - y) * smoothstep(-soft, soft, y - y_lo)) * inside * front
    col = col + lip[:, None] * (torch.tensor(p.lip_color) - col)
    labels[lip > 0.5] = LIP
    line = torch.exp(-0.5 * ((y - y_line) / 0.0045) ** 2) * smoothstep(1.05, 0.9, ax / p.mouth_width)
    col = col * (1 - 0.65 * (line * front)[:, None])
    nostril = _gauss(ax, y, 0.42 * p.nose_width, y_tip - 0.032, 0.02, 0.011) * (z > 0.55)
    col = col * (1 - 0.75 * nostril[:, None])
    return col.clamp(0, 1), labels


#: Face region covered by the head's texture: x0, x1, y0, y1 in the head frame.
FACE_TEXTURE_BOX = (-0.56, 0.56, -0.9, 0.62)


def _face_uv(pos: torch.Tensor) -> torch.Tensor:
    """Planar texture coordinates ``(N, 3)`` (u, v, weight) of head vertices: the front is textured."""
    x0, x1, y0, y1 = FACE_TEXTURE_BOX
    u = 2 * (pos[:, 0] - x0) / (x1 - x0) - 1
    v = 2 * (y1 - pos[:, 1]) / (y1 - y0) - 1
    return torch.stack([u, v, smoothstep(0.1, 0.3, pos[:, 2])], 1)


def _face_texture(p: HeadParams, height: int) -> torch.Tensor:
    """The painted face ``(4, H, W)`` RGBA over :data:`FACE_TEXTURE_BOX`, in the style's palette."""
    x0, x1, y0, y1 = FACE_TEXTURE_BOX
    width = round(height * (x1 - x0) / (y1 - y0))
    ys = y1 - (torch.arange(height) + 0.5) / height * (y1 - y0)
    xs = x0 + (torch.arange(width) + 0.5) / width * (x1 - x0)
    Y, X = torch.meshgrid(ys, xs, indexing="ij")
    x, y = X.reshape(-1), Y.reshape(-1)
    col, labels = _paint_face(x, y, _front_z(x, y, p), p)
    col = _stylise(col, labels, p)
    tex = torch.cat([col, torch.ones(len(col), 1)], 1).T.reshape(4, height, width).contiguous()
    tex[3, [0, -1], :] = 0  # a transparent rim: with border padding the detail fades into the vertex colours
    tex[3, :, [0, -1]] = 0
    return tex


# --------------------------------------------------------------------------------------- other parts
def _eyeball(c: torch.Tensor, p: HeadParams, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Front half of an eyeball at ``c`` looking along +Z: vertices, faces, colours (sclera, iris, pupil)."""
    lon, _, dirs, faces = _sphere_grid(n, n // 2)
    d = dirs @ _rot_x(-90.0).T  # the +Y pole now looks along +Z
    polar = torch.acos(d[:, 2].clamp(-1, 1))
    keep = polar < math.radians(110)
    iris = math.asin(min(0.52, 0.55 * 0.085 / p.eye_size))
    sclera = torch.tensor([0.93, 0.91, 0.88]) * (1 - 0.15 * smoothstep(0.6, 1.6, polar))[:, None]
    ring = 0.75 + 0.35 * torch.cos(lon * 9) * 0.3 + 0.5 * (polar / iris)
    col = torch.where(
        (polar < iris)[:, None], torch.tensor(p.eye_color) * ring[:, None].clamp(0.5, 1.2), sclera
    )
    col = torch.where((polar > 0.88 * iris)[:, None] & (polar < iris)[:, None], col * 0.55, col)
    col = torch.where((polar < 0.42 * iris)[:, None], torch.tensor([0.03, 0.03, 0.03]), col)
    v, f, (col,) = _submesh(d * p.eye_size + c, faces, keep, col.clamp(0, 1))
    return v, f, col


def _submesh(v: torch.Tensor, f: torch.Tensor, keep: torch.Tensor, *attrs: torch.Tensor):
    """The faces whose three vertices are in ``keep (N,)``, without unused vertices: ``v, f, attrs``."""
    fk = f[keep[f].all(1)]
    used = torch.zeros(len(v), dtype=torch.bool)
    used[fk.reshape(-1)] = True
    remap = torch.cumsum(used.long(), 0) - 1
    return v[used], remap[fk], tuple(a[used] for a in attrs)


def _ear(p: HeadParams, head_at: callable, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The subject's left ear (+X): a cupped, flattened ellipsoid tilted back; vertices and faces."""
    _, _, dirs, faces = _sphere_grid(n, n // 2)
    s = p.ear_size
    half = torch.tensor([0.045, 0.2 * s, 0.11 * s])  # thickness (x), height (y), width (z)
    v = dirs * half
    outer = v[:, 0] > 0
    cup = 0.9 * half[0] * _gauss(v[:, 1], v[:, 2], -0.02 * s, 0.0, 0.09 * s, 0.06 * s)
    v[:, 0] -= torch.where(outer, cup, torch.zeros_like(cup))
    v = v @ _rot_x(-12.0).T @ _rot_y(-20.0).T
    y, z = EYE_Y - 0.1, -0.06
    v += torch.tensor([head_at(y, z) + 0.02, y, z])
    return v, faces


def _neck(p: HeadParams, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A capped elliptic tube from under the skull to the bottom of the cube; vertices, faces, labels."""
    rows = 12
    t = torch.linspace(0, 1, rows)  # 0 at the bottom
    a = 2 * math.pi * torch.arange(n) / n
    T, A = torch.meshgrid(t, a, indexing="ij")
    y = -0.97 + T * (0.97 - 0.3)
    collar = (y < -0.8).float()
    flare = 1 + 0.25 * smoothstep(-0.75, -0.97, y) + 0.08 * collar
    rx, rz = p.neck_width * flare, p.neck_width * 1.08 * flare
    v = torch.stack([rx * A.sin(), y, -0.1 + rz * A.cos()], -1).reshape(-1, 3)
    idx = torch.arange(rows * n).view(rows, n)
    a0, b0 = idx[:-1], idx[:-1].roll(-1, 1)
    a1, b1 = idx[1:], idx[1:].roll(-1, 1)
    faces = torch.cat(
        [torch.stack([a0, b0, b1], -1).reshape(-1, 3), torch.stack([a0, b1, a1], -1).reshape(-1, 3)]
    )
    centre = torch.tensor([[0.0, -0.97, -0.1]])
    cap = torch.stack([torch.full((n,), rows * n), idx[0].roll(-1), idx[0]], 1)
    labels = torch.where(collar.reshape(-1) > 0, CLOTH, SKIN)
    return torch.cat([v, centre]), torch.cat([faces, cap]), torch.cat([labels, torch.tensor([CLOTH])])


def _hairline(lon: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Latitude (radians) of the hair's lower edge at each longitude (0 = forehead, pi = nape)."""
    knots_deg = torch.tensor([0.0, 30, 55, 75, 95, 115, 140, 180])
    lat_deg = torch.tensor([46.0, 42, 30, 22, 24, 5, -18, -32])
    a = lon.abs().rad2deg().clamp(0, 180)
    i = torch.bucketize(a, knots_deg).clamp(1, len(knots_deg) - 1)
    w = (a - knots_deg[i - 1]) / (knots_deg[i] - knots_deg[i - 1])
    lat = lat_deg[i - 1] + w * (lat_deg[i] - lat_deg[i - 1])
    lat = lat + p.hairline * smoothstep(70, 20, a)  # receding (+) or a fringe (-) over the forehead
    if p.hair_style in ("bun", "ponytail"):
        lat = lat + 4.0
    return lat.deg2rad()


def _hair(p: HeadParams, n: int, rng: np.random.Generator):
    """The hair shell (and bun / ponytail), or ``None`` when bald: vertices, faces."""
    if p.hair_style == "bald":
        return None
    lon, lat, dirs, faces = _sphere_grid(n, (2 * n) // 3)
    line = _hairline(lon, p)
    cover = smoothstep(-0.1, 0.12, lat - line)
    thick = p.hair_volume * (0.6 + 0.4 * smoothstep(-0.3, 0.9, lat))
    if p.hair_style == "curly":
        centres = torch.from_numpy(rng.normal(size=(90, 3))).float()
        centres = centres / centres.norm(dim=1, keepdim=True)
        bumps = torch.exp((dirs @ centres.T - 1) / 0.012).sum(1)
        thick = thick + 0.035 * bumps.clamp(max=1.5)
    pos = _skull(dirs, p)
    pos = pos + dirs * (thick * cover - 0.05 * (1 - cover))[:, None]  # sinks under the skin at the hairline
    keep = cover > 0.005
    if p.hair_style == "long":  # below the eye line, beside and behind the face, the hair falls
        side = smoothstep(math.radians(p.hair_side), math.radians(p.hair_side + 14), lon.abs())
        cover = torch.maximum(cover, side * smoothstep(-0.3, 0.0, lat))  # over the ears
        pos = _skull(dirs, p) + dirs * (thick * cover - 0.05 * (1 - cover))[:, None]
        keep = (cover > 0.005) | (side > 0)
        keep &= lat > math.radians(-80)
        ring = torch.stack([lon.sin(), torch.zeros_like(lon), lon.cos()], -1)
        eq = _skull(ring, p) + ring * (p.hair_volume + 0.03)
        fall = (lat / math.radians(-80)).clamp(0, 1)  # 0 at the eye line, 1 at the tips
        length = p.hair_length + 0.05 * torch.sin(7 * lon + float(rng.uniform(0, 6.3)))
        curtain = eq * (1 - 0.15 * fall)[:, None]
        curtain[:, 1] = EYE_Y - fall * (length + EYE_Y)
        curtain[:, 2] -= 0.08 * fall * smoothstep(0.5, 1.0, side)
        w = (side * smoothstep(0.0, -0.15, lat))[:, None]
        pos = pos + w * (curtain - pos)
    v, f, _ = _submesh(pos, faces, keep)
    extra = []
    if p.hair_style == "bun":
        _, _, d2, f2 = _sphere_grid(n // 3, n // 5)
        extra.append((d2 * torch.tensor([0.16, 0.15, 0.14]) + torch.tensor([0.0, 0.52, -0.66]), f2))
    if p.hair_style == "ponytail":
        _, _, d2, f2 = _sphere_grid(n // 3, n // 3)
        tail = d2 * torch.tensor([0.1, 0.5 * p.hair_length, 0.1])
        tail[:, 2] -= 0.1 * (tail[:, 1] / (0.5 * p.hair_length)) ** 2  # hangs away from the neck
        extra.append((tail + torch.tensor([0.0, 0.28 - 0.5 * p.hair_length, -0.74]), f2))
    for v2, f2 in extra:
        f = torch.cat([f, f2 + len(v)])
        v = torch.cat([v, v2])
    return v, f


def _hair_colors(v: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Hair colour ``(N, 3)`` with strand-like streaks and a sheen that darkens towards the tips."""
    lon = torch.atan2(v[:, 0], v[:, 2])
    streak = 1 + 0.12 * torch.sin(lon * 37 + v[:, 1] * 3) + 0.08 * torch.sin(lon * 91 + 1.3)
    depth = 1 - 0.25 * smoothstep(0.3, -0.9, v[:, 1])
    return (torch.tensor(p.hair_color) * (streak * depth)[:, None]).clamp(0, 1)


def _stylise(col: torch.Tensor, labels: torch.Tensor, p: HeadParams) -> torch.Tensor:
    """Per-style palette: toon posterises and saturates, clay is monochrome, photo and sketch are kept."""
    if p.style == "toon":
        grey = col.mean(1, keepdim=True)
        col = (grey + 1.35 * (col - grey)).clamp(0, 1)
        return torch.round(col * 6) / 6
    if p.style == "clay":
        clay = torch.tensor(CLAY_COLORS[p.seed % len(CLAY_COLORS)])
        lum = (col * torch.tensor([0.3, 0.59, 0.11])).sum(1, keepdim=True)
        painted = (labels == EYE) | (labels == BROW)  # sculpted eyes and brows read as slightly darker
        return clay * torch.where(painted[:, None], 0.55 + 0.45 * lum, torch.ones_like(lum))
    return col


# --------------------------------------------------------------------------------------- assembly
def build_head(params: HeadParams, resolution: int = 96, texture_size: int = 256) -> HeadMesh:
    """The mesh of one identity in the canonical head frame.

    Args:
        params: from :func:`sample_head_params`.
        resolution: longitude segments of the head sphere (latitude gets 2/3 as many); the other parts
            scale with it. 96 gives about 14k triangles, 64 about 7k.
        texture_size: height in texels of the painted face texture (brows, lids, lips at any resolution).
    Returns:
        :class:`HeadMesh` with ``vertices (N, 3)``, ``faces (F, 3)``, ``colors (N, 3)``, ``normals (N, 3)``,
        ``labels (N,)`` (indices into :data:`PARTS`), ``two_sided (F,)`` (the hair), the face's ``uv (N, 3)``
        and ``texture (4, Ht, Wt)`` (same painting as the vertex colours, finer), and ``shading``.
    """
    check_style(params.style)
    if params.hair_style not in HAIR_STYLES:
        raise InputError(f"unknown hair style {params.hair_style!r}; choose one of {', '.join(HAIR_STYLES)}")
    if not 24 <= resolution <= 512:
        raise InputError(f"head resolution must be between 24 and 512 segments, got {resolution}")
    rng = np.random.default_rng([abs(params.seed), 0x4A1E])
    _, _, dirs, faces = _sphere_grid(resolution, (2 * resolution) // 3, warp_lon=0.55, warp_lat=0.45)
    head = _head_surface(dirs, params)
    head_col, head_lab = _paint_face(*head.unbind(-1), params)
    parts = [(head, faces, head_col, head_lab, False)]

    for c in _eye_centres(params):
        v, f, col = _eyeball(c, params, max(16, resolution // 3))
        parts.append((v, f, col, torch.full((len(v),), EYE), False))

    def head_x(y: float, z: float) -> float:
        """Half-width of the skull at height y, depth z (where the ears attach)."""
        d = torch.nn.functional.normalize(torch.tensor([[1.0, y - EYE_Y, z]]), dim=1)
        for _ in range(3):  # the skull is star-shaped: refine the direction towards (x, y, z)
            pt = _skull(d, params)[0]
            d = torch.nn.functional.normalize(torch.tensor([[float(pt[0]), y - EYE_Y, z]]), dim=1)
        return float(_skull(d, params)[0, 0])

    ear_v, ear_f = _ear(params, head_x, max(12, resolution // 4))
    ear_c = torch.tensor(params.skin_tone) * torch.tensor([0.97, 0.9, 0.88])
    ear_col = (
        ear_c.expand(len(ear_v), 3)
        * (1 - 0.3 * smoothstep(0.03, -0.02, ear_v[:, 0] - ear_v[:, 0].max() + 0.05))[:, None]
    )
    for v, f in (
        ((ear_v, ear_f), _mirror_x(ear_v, ear_f)) if params.hair_style != "long" else ()
    ):  # long hair hides them
        parts.append((v, f, ear_col.clamp(0, 1), torch.full((len(v),), SKIN), False))

    nv, nf, nl = _neck(params, max(16, resolution // 3))
    ncol = torch.where(
        (nl == CLOTH)[:, None], torch.tensor(params.cloth_color), torch.tensor(params.skin_tone)
    )
    parts.append((nv, nf, ncol * torch.where((nl == SKIN), 0.92, 1.0)[:, None], nl, False))

    hair = _hair(params, resolution, rng)
    if hair is not None:
        hv, hf = hair
        parts.append((hv, hf, _hair_colors(hv, params), torch.full((len(hv),), HAIR), True))

    verts, faces, cols, labels, two = [], [], [], [], []
    offset = 0
    for v, f, c, lab, two_sided in parts:
        verts.append(v)
        faces.append(f + offset)
        cols.append(c)
        labels.append(lab)
        two.append(torch.full((len(f),), two_sided))
        offset += len(v)
    vertices = torch.cat(verts).float()
    extent = float(vertices.abs().max())
    if extent > 0.985:  # keep everything inside the [-1, 1]^3 feature volume
        vertices = vertices * (0.985 / extent)
    labels = torch.cat(labels).long()
    colors = _stylise(torch.cat(cols).float(), labels, params)
    uv = torch.zeros(len(vertices), 3)
    uv[: len(head)] = _face_uv(head)
    return HeadMesh(
        vertices,
        torch.cat(faces).long(),
        colors,
        labels=labels,
        uv=uv,
        texture=_face_texture(params, texture_size),
        two_sided=torch.cat(two),
        shading=params.shading,
        params=params,
    )


def random_heads(n: int, seed: int = 0, style: str = "photo", resolution: int = 96) -> list[HeadMesh]:
    """``n`` identities with seeds ``seed, seed + 1, ...``."""
    return [build_head(sample_head_params(seed + i, style), resolution) for i in range(n)]
