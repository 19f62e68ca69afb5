"""Varied appearance for training data whose colours cannot be memorised (towards "any face").

A model trained on procedural heads painted from a few palettes learns the palettes: shown a real photo, it
paints a stock head in the nearest palette colour. Repainting each head's skin, hair and clothing with content
drawn from a wide pool — natural-image crops (scikit-image's data set, never its astronaut or other people),
multi-octave noise, stripes, checks, spots, gradients, flat colours — under a random colour cast leaves one way
to get a target view right: take the appearance from the input view through the geometry (for a
``reprojection`` model, :mod:`gen3dface.volume.reprojection`).

The pattern is fixed to the head, not to a view: three planar patterns (front ``xy``, side ``zy``, top
``xz``) are blended by how much a point faces each axis (triplanar mapping), so every view of an identity
shows the same painted surface. The face's fine painting (eyes, brows, lips, in the head's texture) is patterned
too, but less, so a face detector still finds the face.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.synth.head_params import BROW, CLOTH, EYE, HAIR, LIP, SKIN
from gen3dface.synth.heads import FACE_TEXTURE_BOX, HeadMesh, smoothstep

#: scikit-image sample images used as patterns: objects, textures, scenes; no faces or people.
NATURAL_IMAGES = (
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "page",
    "text",
    "clock",
    "horse",
    "cell",
)
#: Fraction of repainted heads that also get decals over the face (:func:`_decals`).
DECAL_RATE = 0.6
PATTERN_KINDS = ("natural", "noise", "stripes", "checks", "spots", "gradient", "flat")
#: How strongly each part is repainted: a (low, high) range of the blend weight, drawn per identity.
PART_STRENGTH = {SKIN: (0.25, 0.85), HAIR: (0.45, 1.0), CLOTH: (0.5, 1.0), LIP: (0.1, 0.5), BROW: (0.0, 0.3)}
#: ``plain_back``: where the pattern fades out, as the z component of the unit direction from the head's centre:
#: fully patterned in front of ``hi`` (within about 63 degrees of the face's direction), plain behind ``lo``
#: (about 87 degrees: the ears sit near 0). A fade from -0.25 to 0.15 left 0.53 back "faces" per training head,
#: this one 0.23 (48 heads, README).
PLAIN_BACK_FADE = (0.05, 0.45)


@lru_cache(maxsize=1)
def _natural_images() -> list[np.ndarray]:
    """The available :data:`NATURAL_IMAGES` as float RGB ``(H, W, 3)`` in [0, 1] (skipping any a scikit-image
    version lacks)."""
    import skimage.data

    out = []
    for name in NATURAL_IMAGES:
        try:
            img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
        except Exception:  # noqa: BLE001 - absent in this scikit-image version, or needs a download
            continue
        img = img / (255.0 if img.max() > 1.5 else 1.0)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, -1)
        out.append(np.ascontiguousarray(img[..., :3]))
    return out


def _colour(rng: np.random.Generator) -> torch.Tensor:
    return torch.tensor(rng.uniform(0, 1, 3), dtype=torch.float32)


def random_pattern(rng: np.random.Generator, size: int = 128) -> torch.Tensor:
    """One random pattern ``(3, size, size)`` in [0, 1] of a kind drawn from :data:`PATTERN_KINDS`."""
    kind = PATTERN_KINDS[int(rng.integers(len(PATTERN_KINDS)))]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    a, b = _colour(rng), _colour(rng)
    if kind == "natural" and _natural_images():
        pool = _natural_images()
        img = pool[int(rng.integers(len(pool)))]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.25, 1.0) * min(h, w))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = torch.from_numpy(img[y0 : y0 + side, x0 : x0 + side]).permute(2, 0, 1)[None]
        pat = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        if rng.random() < 0.5:  # recoloured: grey level mapped between two random colours
            g = pat.mean(0, keepdim=True)
            pat = a[:, None, None] * (1 - g) + b[:, None, None] * g
        return pat.clamp(0, 1)
    if kind == "noise":
        field = torch.zeros(1, 1, size, size)
        for octave in range(int(rng.integers(2, 6))):
            n = 2 ** (octave + 2)
            grid = torch.from_numpy(rng.standard_normal((1, 1, n, n)).astype(np.float32))
            field += F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False) / 1.6**octave
        t = torch.sigmoid(field[0] * rng.uniform(0.8, 3.0))
    elif kind == "stripes":
        ang = rng.uniform(0, np.pi)
        freq = rng.uniform(2, 14)
        s = torch.sin((xs * np.cos(ang) + ys * np.sin(ang)) * freq * np.pi + rng.uniform(0, 6.3))
        t = ((s > 0).float() if rng.random() < 0.5 else (s + 1) / 2)[None]
    elif kind == "checks":
        freq = rng.uniform(2, 10)
        t = ((torch.floor((xs + 1) * freq) + torch.floor((ys + 1) * freq)) % 2)[None]
    elif kind == "spots":
        t = torch.zeros(1, size, size)
        for _ in range(int(rng.integers(5, 40))):
            cx, cy, r = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.03, 0.25)
            t = torch.maximum(t, torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * r * r))[None])
    elif kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        t = ((xs * np.cos(ang) + ys * np.sin(ang)) * 0.5 + 0.5)[None]
    else:
        t = torch.zeros(1, size, size)
    return (a[:, None, None] * (1 - t) + b[:, None, None] * t).clamp(0, 1)


def _sample(pattern: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``pattern (3, H, W)`` at coordinates ``u, v (P,)`` in [-1, 1] (mirrored beyond): ``(P, 3)``."""
    grid = torch.stack([u, v], -1).clamp(-1, 1)[None, None]
    return F.grid_sample(pattern[None], grid, align_corners=False, padding_mode="reflection")[0, :, 0].T


def triplanar(
    patterns: list[torch.Tensor], points: torch.Tensor, scale: float = 1.0, symmetric: bool = False
) -> torch.Tensor:
    """Colour ``(P, 3)`` at head-frame ``points (P, 3)`` from three planar ``patterns`` (front xy, side zy, top
    xz), blended by how much the direction from the head's centre faces each axis. ``symmetric``: the same
    colour at ``(x, y, z)`` and ``(-x, y, z)`` (the side pattern is so already)."""
    p = points / scale
    if symmetric:
        p = torch.cat([p[:, :1].abs(), p[:, 1:]], 1)
    d = F.normalize(points, dim=-1).abs() ** 4
    w = d / d.sum(-1, keepdim=True).clamp(min=1e-8)
    front = _sample(patterns[0], p[:, 0], -p[:, 1])
    side = _sample(patterns[1], p[:, 2], -p[:, 1])
    top = _sample(patterns[2], p[:, 0], p[:, 2])
    return w[:, 2:3] * front + w[:, 0:1] * side + w[:, 1:2] * top


def _decals(rgb: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """1-4 patterns pasted over the face painting ``(3, H, W)`` in soft ellipses of random place, size and opacity:
    eyes, brows and mouth are sometimes covered, so the face's details cannot be drawn from memory."""
    _, H, W = rgb.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    for _ in range(int(rng.integers(1, 5))):
        pat = F.interpolate(random_pattern(rng)[None], size=(H, W), mode="bilinear", align_corners=False)[0]
        cx, cy = rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)
        rx, ry = rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.5)
        d = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
        alpha = float(rng.uniform(0.6, 1.0)) * torch.clamp((1.2 - d) / 0.4, 0, 1)
        rgb = rgb + alpha * (pat - rgb)
    return rgb


def plain_behind(paint: torch.Tensor, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``paint (P, 3)`` at head-frame ``points (P, 3)`` with the pattern kept on the face's side and faded towards
    the sides (:data:`PLAIN_BACK_FADE`) into one flat colour per part ``labels (P,)``: the mean of that part's
    patterned front. The back of a head is then a plain surface in the colours the front shows."""
    lo, hi = PLAIN_BACK_FADE
    front = smoothstep(lo, hi, F.normalize(points, dim=-1)[:, 2])[:, None]
    n = int(labels.max()) + 1
    weight = torch.zeros(n).index_add_(0, labels, front[:, 0])
    total = torch.zeros(n, 3).index_add_(0, labels, paint * front)
    overall = (
        torch.zeros(n, 3).index_add_(0, labels, paint)
        / torch.bincount(labels, minlength=n).clamp(min=1)[:, None]
    )
    flat = torch.where(weight[:, None] > 1e-3, total / weight.clamp(min=1e-3)[:, None], overall)
    return front * paint + (1 - front) * flat[labels]


def vary_appearance(
    mesh: HeadMesh,
    seed: int,
    symmetric: bool = False,
    plain_back: bool = False,
    decal_rate: float = DECAL_RATE,
) -> HeadMesh:
    """``mesh`` with its skin, hair, clothing, lips and brows repainted by random patterns (deterministic in
    ``seed``), eyes kept, under a random colour cast; geometry, shading and labels unchanged.

    ``symmetric``: the painting is mirror-symmetric about the face's plane (``x = 0``), as a real face's
    colours nearly are: the half a photo does not show is then the mirror of the half it shows, which a model
    can learn to use (``reproject(mirror=True)``).

    ``plain_back``: the patterns stay on the face's side; from the ears back each part takes the mean colour of
    its patterned front (:func:`plain_behind`). Patterns on the back of a head (spots, checks, crops of photos)
    read as faces to a face detector: the training heads' backs show 1.48 "faces" per head repainted, 0.23 so.

    ``decal_rate``: the probability that patterns are also pasted over the face's features (:func:`_decals`); the
    draw is made whatever the rate, so the rest of the painting does not depend on it."""
    if mesh.labels is None:
        raise ValueError("vary_appearance needs a head with part labels (gen3dface.synth.heads.build_head)")
    rng = np.random.default_rng([abs(int(seed)), 0xA99])
    patterns = [random_pattern(rng) for _ in range(3)]
    strength = torch.zeros(int(mesh.labels.max()) + 1)
    for part, (lo, hi) in PART_STRENGTH.items():
        if part < len(strength):
            strength[part] = float(rng.uniform(lo, hi))
    strength[EYE] = 0.0
    cast = torch.tensor(np.clip(1 + rng.normal(0, 0.12, 3), 0.7, 1.3), dtype=torch.float32)
    scale = float(rng.uniform(0.6, 1.6))
    s = strength[mesh.labels][:, None]
    paint = triplanar(patterns, mesh.vertices, scale, symmetric)
    if plain_back:
        paint = plain_behind(paint, mesh.vertices, mesh.labels.long())
    colors = ((mesh.colors + s * (paint - mesh.colors)) * cast).clamp(0, 1)
    texture = mesh.texture
    if texture is not None:  # the face's painting, over FACE_TEXTURE_BOX (the front: z taken as 0.6)
        x0, x1, y0, y1 = FACE_TEXTURE_BOX
        _, H, W = texture.shape
        ys = y1 - (torch.arange(H) + 0.5) / H * (y1 - y0)
        xs = x0 + (torch.arange(W) + 0.5) / W * (x1 - x0)
        Y, X = torch.meshgrid(ys, xs, indexing="ij")
        pts = torch.stack([X.reshape(-1), Y.reshape(-1), torch.full((H * W,), 0.6)], -1)
        pat = triplanar(patterns, pts, scale, symmetric).T.reshape(3, H, W)
        k = 0.8 * float(strength[SKIN])
        rgb = texture[:3] + k * (pat - texture[:3])
        if rng.random() < decal_rate:
            rgb = _decals(rgb, rng)
        if symmetric:  # the box is centred on x = 0: its right half mirrored onto its left
            rgb = torch.where(X[None] < 0, rgb.flip(-1), rgb)
        rgb = (rgb * cast[:, None, None]).clamp(0, 1)
        texture = torch.cat([rgb, texture[3:]], 0)
    return dataclasses.replace(mesh, colors=colors, texture=texture)
