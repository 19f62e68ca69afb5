"""How good is the estimated face mesh? Procedural heads with known geometry and cameras are rendered
(:func:`render_synthetic_view`), meshes estimated from the renders, and their placement, shape and pose
errors tabulated per range of azimuth (:func:`evaluate_on_synthetic`, :func:`format_table`)."""

from __future__ import annotations

import numpy as np

from gen3dface.core.cameras import orbit_cameras
from gen3dface.core.errors import NoFaceError
from gen3dface.core.images import to_uint8
from gen3dface.mesh.estimate import estimate_mesh
from gen3dface.mesh.surface import MeshSurface, head_surface

#: Azimuth bins (|azimuth| upper edges, degrees) of :func:`evaluate_on_synthetic`'s table.
AZIMUTH_BINS = (20.0, 40.0, 60.0)


def render_synthetic_view(seed: int, azimuth: float, elevation: float = 0.0, image_size: int = 256):
    """A procedural identity photographed from one orbit camera.

    Returns ``(rgb (S, S, 3) uint8, head mesh, camera)``.
    """
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.head_params import sample_head_params
    from gen3dface.synth.render import render

    head = build_head(sample_head_params(seed))
    cam = orbit_cameras([float(azimuth)], float(elevation), image_size=image_size)
    return to_uint8(render(head, cam, ssaa=2)["rgb"][0, 0]), head, cam[0]


def _angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def evaluate_on_synthetic(
    n_identities: int = 20,
    azimuths=(-60, -45, -30, -15, 0, 15, 30, 45, 60),
    elevations=(-30, 0, 30),
    image_size: int = 256,
    seed: int = 0,
    backend: str = "mediapipe",
    **backend_kwargs,
) -> dict:
    """Estimate meshes from renders of procedural heads with known geometry and cameras; measure them.

    Identities ``seed .. seed + n_identities - 1`` (photo style) are rendered from every (azimuth,
    elevation) at ``image_size`` px with the package's default camera (radius 4, 30 degree field of view,
    which the estimator also assumes). Per view:

    * ``raw_err``: mean distance from the estimated vertices, as placed in the canonical frame, to the true
      head surface (everything but the shirt), in head widths (2 x ``HeadParams.skull_width``, ~15 cm);
    * ``shape_err``: the same after a similarity ICP onto the surface: the shape error alone;
    * ``yaw_err``, ``pitch_err``, ``roll_err``: estimated pose minus the camera's azimuth, elevation, 0.

    Returns:
        ``{"rows": [per view dict], "table": [per |azimuth| bin dict], "overall": dict, "settings": dict}``;
        bins are ``|azimuth| <= 20, <= 40, <= 60``; angle errors are averaged as absolute values, and
        views where no face was found count in ``missed``.
    """
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.head_params import sample_head_params
    from gen3dface.synth.render import render

    az, el = np.meshgrid(np.asarray(azimuths, float), np.asarray(elevations, float), indexing="ij")
    cams = orbit_cameras(az.reshape(-1), el.reshape(-1), image_size=image_size)
    rows = []
    for ident in range(seed, seed + n_identities):
        head = build_head(sample_head_params(ident))
        images = to_uint8(render(head, cams, ssaa=2)["rgb"][0])
        surface = MeshSurface(*head_surface(head))
        width = 2 * head.params.skull_width
        for img, a, e in zip(images, az.reshape(-1), el.reshape(-1)):
            row = {"identity": ident, "azimuth": float(a), "elevation": float(e), "found": False}
            try:
                est = estimate_mesh(img, backend, **backend_kwargs)
            except NoFaceError:
                rows.append(row)
                continue
            d_raw = surface.closest(est.vertices)[1]
            d_shape = surface.closest(surface.align(est.vertices))[1]
            row.update(
                found=True,
                raw_err=float(d_raw.mean() / width),
                shape_err=float(d_shape.mean() / width),
                yaw_err=_angle_diff(est.pose["yaw"], a),
                pitch_err=est.pose["pitch"] - e,
                roll_err=est.pose["roll"],
                confidence=est.confidence,
            )
            rows.append(row)
    table = [
        _summarise(
            [r for r in rows if lo < abs(r["azimuth"]) <= hi or (lo == -1 and abs(r["azimuth"]) <= hi)],
            f"|az| <= {hi:g}" if lo < 0 else f"{lo:g} < |az| <= {hi:g}",
        )
        for lo, hi in zip((-1.0,) + AZIMUTH_BINS[:-1], AZIMUTH_BINS)
    ]
    settings = {
        "n_identities": n_identities,
        "azimuths": list(map(float, azimuths)),
        "elevations": list(map(float, elevations)),
        "image_size": image_size,
        "backend": backend,
    }
    return {"rows": rows, "table": table, "overall": _summarise(rows, "all"), "settings": settings}


def _summarise(rows: list[dict], name: str) -> dict:
    found = [r for r in rows if r["found"]]
    mean = lambda k, f=float: float(np.mean([f(r[k]) for r in found])) if found else float("nan")  # noqa: E731
    return {
        "views": name,
        "n": len(rows),
        "missed": len(rows) - len(found),
        "raw_err": mean("raw_err"),
        "shape_err": mean("shape_err"),
        "yaw_err": mean("yaw_err", abs),
        "pitch_err": mean("pitch_err", abs),
        "roll_err": mean("roll_err", abs),
        "confidence": mean("confidence"),
    }


def format_table(result: dict) -> str:
    """:func:`evaluate_on_synthetic`'s table as aligned text (errors in head widths and degrees)."""
    head = (
        f"{'views':>16} {'n':>4} {'missed':>6} {'raw err (hw)':>12} {'shape err (hw)':>14} {'|yaw| deg':>9} "
        f"{'|pitch| deg':>11} {'|roll| deg':>10} {'conf':>5}"
    )
    lines = [head, "-" * len(head)]
    for r in result["table"] + [result["overall"]]:
        lines.append(
            f"{r['views']:>16} {r['n']:>4} {r['missed']:>6} {r['raw_err']:>12.4f} {r['shape_err']:>14.4f} "
            f"{r['yaw_err']:>9.2f} {r['pitch_err']:>11.2f} {r['roll_err']:>10.2f} {r['confidence']:>5.2f}"
        )
    return "\n".join(lines)
