"""How a rendered pixel is lit: the drawing styles (photo, toon, clay, sketch), :class:`Shading` (key light,
fill, ambient, specular), the shaders (in linear light, in the head frame, so lighting agrees across views) and
the toon style's outlines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gen3dface.core.errors import InputError
from gen3dface.synth.raster import take

#: Rendering styles: smooth realistic shading, flat cel shading with outlines, monochrome clay, pencil.
STYLES = ("photo", "toon", "clay", "sketch")


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
    p = {k: take(v, mesh_id) for k, v in _light_params(shadings, albedo.device).items()}
    styles = sorted({s.style for s in shadings})
    if len(styles) == 1:
        return _shade_style(styles[0], albedo, normal, view, p)
    style_of = torch.tensor([STYLES.index(s.style) for s in shadings], device=albedo.device)
    px_style = take(style_of, mesh_id)
    color = torch.empty_like(albedo)
    for st in styles:
        m = (px_style == STYLES.index(st)).nonzero().squeeze(1)
        color.index_copy_(
            0,
            m,
            _shade_style(
                st, take(albedo, m), take(normal, m), take(view, m), {k: take(v, m) for k, v in p.items()}
            ),
        )
    return color


def outlines(depth: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
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
