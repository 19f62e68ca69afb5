"""Who a procedural head is: :class:`HeadParams` (skull, face, hair, colours, light), drawn from a seed by
:func:`sample_head_params`, with the palettes and part labels they use. :mod:`gen3dface.synth.heads` builds the
mesh from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gen3dface.synth.shading import Shading, check_style

#: Part labels of :attr:`HeadMesh.labels` (index = label).
PARTS = ("skin", "hair", "eye", "lip", "brow", "cloth")
SKIN, HAIR, EYE, LIP, BROW, CLOTH = range(len(PARTS))
HAIR_STYLES = ("short", "long", "bun", "ponytail", "curly", "bald")
#: Eye line height in the head frame.
EYE_Y = 0.02

#: Human skin tones from light to deep (sRGB in [0, 1]); identities interpolate between neighbours.
SKIN_TONES = (
    (0.98, 0.87, 0.78),
    (0.94, 0.78, 0.66),
    (0.88, 0.69, 0.55),
    (0.78, 0.58, 0.43),
    (0.66, 0.46, 0.32),
    (0.53, 0.35, 0.24),
    (0.41, 0.27, 0.19),
    (0.31, 0.2, 0.14),
)
HAIR_COLORS = (
    (0.07, 0.06, 0.05),
    (0.18, 0.12, 0.08),
    (0.33, 0.21, 0.12),
    (0.48, 0.22, 0.1),
    (0.76, 0.62, 0.4),
    (0.58, 0.57, 0.56),
    (0.12, 0.1, 0.09),
)
TOON_HAIR_COLORS = (
    (0.15, 0.3, 0.75),
    (0.85, 0.35, 0.6),
    (0.45, 0.25, 0.7),
    (0.95, 0.8, 0.3),
    (0.2, 0.15, 0.12),
    (0.8, 0.3, 0.15),
)
EYE_COLORS = (
    (0.27, 0.16, 0.09),
    (0.16, 0.1, 0.06),
    (0.4, 0.3, 0.15),
    (0.25, 0.4, 0.25),
    (0.3, 0.45, 0.65),
    (0.45, 0.5, 0.55),
)
CLAY_COLORS = ((0.72, 0.5, 0.38), (0.7, 0.7, 0.68), (0.6, 0.47, 0.3), (0.86, 0.84, 0.8))


@dataclass(frozen=True)
class HeadParams:
    """One identity. Lengths are in head-frame units (about 15 cm); colours are sRGB in [0, 1].

    Skull: ``skull_width`` half-width, ``skull_top`` height of the crown, ``face_depth`` / ``back_depth``
    forehead and occiput distance from the centre, ``jaw_width`` jaw half-width as a fraction of the
    skull's, ``chin_y`` height of the chin (negative), ``chin_forward`` chin protrusion, ``cheek`` cheekbone
    fullness. Eyes: ``eye_spacing`` half the distance between eye centres, ``eye_size`` eyeball radius,
    ``eye_open`` eyelid opening (1 = average). Nose: ``nose_length`` (eye line to tip), ``nose_width``
    (half-width of the nostril wings), ``nose_height`` (projection). Mouth: ``mouth_width`` (half),
    ``lip_thickness``. ``ear_size`` scale, ``neck_width`` half-width. Hair: ``hair_style`` in
    :data:`HAIR_STYLES`, ``hair_volume`` shell thickness, ``hairline`` raise (+) or fringe (-) in degrees,
    ``hair_length`` of long hair and ponytails. Light: ``light_azimuth`` / ``light_elevation`` degrees of
    the key light in the head frame, ``light_intensity``, ``ambient``. ``squircle``: the exponent of the
    skull's horizontal cross-section (not drawn per identity: :class:`gen3dface.synth.synthesis.SynthConfig`
    sets it for a whole dataset): 2 an ellipse, larger flattens the face and the sides of the head.
    ``hair_side``: the longitude in degrees (0 = the front) from which long hair falls as a curtain beside the
    face, fully 14 degrees further round (likewise set for a whole dataset).
    """

    seed: int
    style: str
    skull_width: float
    skull_top: float
    face_depth: float
    back_depth: float
    jaw_width: float
    chin_y: float
    chin_forward: float
    cheek: float
    eye_spacing: float
    eye_size: float
    eye_open: float
    nose_length: float
    nose_width: float
    nose_height: float
    mouth_width: float
    lip_thickness: float
    ear_size: float
    neck_width: float
    hair_style: str
    hair_volume: float
    hairline: float
    hair_length: float
    hair_color: tuple[float, float, float]
    skin_tone: tuple[float, float, float]
    eye_color: tuple[float, float, float]
    lip_color: tuple[float, float, float]
    brow_thickness: float
    brow_color: tuple[float, float, float]
    cloth_color: tuple[float, float, float]
    light_azimuth: float
    light_elevation: float
    light_intensity: float
    ambient: float
    squircle: float = 2.5
    hair_side: float = 56.0

    @property
    def shading(self) -> Shading:
        """The key light and drawing style as a :class:`gen3dface.synth.shading.Shading`."""
        az, el = math.radians(self.light_azimuth), math.radians(self.light_elevation)
        direction = (math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az))
        spec = {"photo": 0.06, "toon": 0.0, "clay": 0.18, "sketch": 0.0}[self.style]
        return Shading(self.style, direction, self.light_intensity, 0.22, self.ambient, spec)


# --------------------------------------------------------------------------------------- sampling
def _mix(rng: np.random.Generator, palette, jitter: float = 0.03) -> tuple[float, float, float]:
    """A colour between two neighbours of ``palette`` with a little per-channel jitter."""
    t = rng.uniform(0, len(palette) - 1)
    i = min(int(t), len(palette) - 2)
    c = (1 - (t - i)) * np.array(palette[i]) + (t - i) * np.array(palette[i + 1])
    return tuple(float(v) for v in np.clip(c + rng.normal(0, jitter, 3), 0, 1))


def _pick(rng: np.random.Generator, palette, jitter: float = 0.03) -> tuple[float, float, float]:
    c = np.array(palette[rng.integers(len(palette))])
    return tuple(float(v) for v in np.clip(c + rng.normal(0, jitter, 3), 0, 1))


def sample_head_params(seed: int, style: str = "photo") -> HeadParams:
    """A random identity, the same for the same ``seed`` (any int) and ``style`` (one of ``STYLES``)."""
    check_style(style)
    rng = np.random.default_rng([abs(int(seed)), 0x6E3D])
    u = rng.uniform
    skin = _mix(rng, SKIN_TONES, 0.015)
    hair_style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.3, 0.24, 0.1, 0.1, 0.14, 0.12])]
    hair = _pick(rng, TOON_HAIR_COLORS if style == "toon" and rng.random() < 0.5 else HAIR_COLORS)
    dark_brows = np.array(hair) * 0.6 if np.mean(hair) < 0.45 else np.array([0.3, 0.22, 0.16])
    lip = np.array(skin) * np.array([0.8, 0.5, 0.5]) + np.array([0.12, 0.02, 0.03]) * u(0.5, 1.2)
    return HeadParams(
        seed=int(seed),
        style=style,
        skull_width=u(0.5, 0.56),
        skull_top=u(0.76, 0.84),
        face_depth=u(0.58, 0.63),
        back_depth=u(0.62, 0.68),
        jaw_width=u(0.68, 0.86),
        chin_y=u(-0.8, -0.7),
        chin_forward=u(0.0, 0.035),
        cheek=u(0.0, 0.03),
        eye_spacing=u(0.19, 0.22),
        eye_size=u(0.075, 0.085) * (1.12 if style == "toon" else 1.0),
        eye_open=u(0.85, 1.15),
        nose_length=u(0.28, 0.36),
        nose_width=u(0.08, 0.11),
        nose_height=u(0.12, 0.18),
        mouth_width=u(0.14, 0.18),
        lip_thickness=u(0.018, 0.035),
        ear_size=u(0.9, 1.1),
        neck_width=u(0.23, 0.28),
        hair_style=hair_style,
        hair_volume=u(0.04, 0.08) if hair_style != "curly" else u(0.1, 0.15),
        hairline=u(-12, 8),
        hair_length=u(0.7, 0.95),
        hair_color=hair,
        skin_tone=skin,
        eye_color=_pick(rng, EYE_COLORS),
        lip_color=tuple(float(v) for v in np.clip(lip, 0, 1)),
        brow_thickness=u(0.022, 0.04),
        brow_color=tuple(float(v) for v in dark_brows),
        cloth_color=tuple(float(v) for v in rng.uniform(0.1, 0.8, 3)),
        light_azimuth=u(-55, 55),
        light_elevation=u(10, 50),
        light_intensity=u(0.75, 0.95),
        ambient=u(0.32, 0.45),
    )
