"""How the identity embedder's threshold was calibrated: cosine similarities between different people and within
one person, on real face photos that the installed packages ship (never used for training).

``python scripts/calibrate_identity.py`` prints the table; the figures documented in
:mod:`gen3dface.faces.arcface` (``MATCH_THRESHOLD``, ``IMPOSTOR_MEAN``, ``IMPOSTOR_P95``) come from it.
"""

from __future__ import annotations

import numpy as np

from gen3dface.evaluation.identity import backend_note, embed_images, resolve_backend
from gen3dface.evaluation.real_photos import all_faces, cut_face


def shipped_face_photos() -> dict[str, np.ndarray]:
    """Real face photos that the installed packages ship, one person each: name -> RGB uint8 ``(H, W, 3)``.

    insightface's ``t1.jpg`` cut into its six faces (:func:`gen3dface.evaluation.real_photos.all_faces`,
    :func:`~gen3dface.evaluation.real_photos.cut_face`) and ``Tom_Hanks_54745.png``, scikit-image's ``camera``,
    and ``data/samples/`` (scikit-image's astronaut, matplotlib's Grace Hopper). Small faces are kept: the
    embedder sees 112 px. For calibration and tests only: never train on them.
    """
    from pathlib import Path

    import insightface
    import skimage.data

    from gen3dface.core.images import load_image
    from gen3dface.core.samples import SAMPLES, sample_photo

    images = Path(insightface.__file__).parent / "data" / "images"
    photos = {name: load_image(sample_photo(name)).rgb for name in SAMPLES}
    photos["camera"] = np.repeat(skimage.data.camera()[..., None], 3, axis=2)
    photos["tom_hanks"] = load_image(images / "Tom_Hanks_54745.png").rgb
    group = load_image(images / "t1.jpg").rgb
    for i, face in enumerate(all_faces(group)):
        cut = cut_face(group, face)
        if not isinstance(cut, str):  # (a string says why it could not be cut out alone)
            photos[f"t1_face{i + 1}"] = cut[0]
    return photos


def same_person_variants(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Photos of the same person made from one photo: its mirror image, the photo at 60 % of its size, an
    off-centre crop of 85 % of it, and the mirrored smaller copy (name -> RGB uint8)."""
    import cv2

    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w * 3 // 5), max(1, h * 3 // 5)), interpolation=cv2.INTER_AREA)
    return {
        "mirror": np.ascontiguousarray(rgb[:, ::-1]),
        "60% size": small,
        "85% crop": np.ascontiguousarray(rgb[h - h * 17 // 20 :, : w * 17 // 20]),
        "mirror, 60% size": np.ascontiguousarray(small[:, ::-1]),
    }


def identity_calibration(backend: str = "auto", photos: dict[str, np.ndarray] | None = None) -> dict:
    """Cosine similarities of ``backend``'s embeddings between different people and within one person.

    Args:
        photos: name -> RGB photo of one person each (default :func:`shipped_face_photos`).
    Returns:
        ``{"backend", "note", "people": names with a face found, "impostor": {(a, b): cosine} over pairs of
        different people's photos, "impostor_variants": {((a, variant), (b, variant)): cosine} over every pair
        of different people's photos and variants, "genuine": {(name, variant): cosine} of each photo against
        each of its :func:`same_person_variants`, "missing": photos or variants where no face was found}``.
    """
    used = resolve_backend(backend)
    photos = shipped_face_photos() if photos is None else photos
    items = [(name, "photo", rgb) for name, rgb in photos.items()]
    items += [(name, v, img) for name, rgb in photos.items() for v, img in same_person_variants(rgb).items()]
    emb, found = embed_images([img for *_, img in items], used, workers=1)
    unit = {(n, v): e / np.linalg.norm(e) for (n, v, _), e, ok in zip(items, emb, found) if ok}
    people = [n for n in photos if (n, "photo") in unit]
    impostor = {
        (a, b): float(unit[a, "photo"] @ unit[b, "photo"])
        for i, a in enumerate(people)
        for b in people[i + 1 :]
    }
    keys = list(unit)
    impostor_variants = {
        (a, b): float(unit[a] @ unit[b]) for i, a in enumerate(keys) for b in keys[i + 1 :] if a[0] != b[0]
    }
    genuine = {
        (n, v): float(unit[n, "photo"] @ e) for (n, v), e in unit.items() if v != "photo" and n in people
    }
    missing = [f"{n} ({v})" for (n, v, _), ok in zip(items, found) if not ok]
    return {
        "backend": used,
        "note": backend_note(used),
        "people": people,
        "impostor": impostor,
        "impostor_variants": impostor_variants,
        "genuine": genuine,
        "missing": missing,
    }


def calibration_table(result: dict, threshold: float | None = None) -> str:
    """A Markdown table of :func:`identity_calibration`'s result: mean, 95th percentile and max of the
    impostor cosines, mean and min of the genuine ones, and how many of each reach ``threshold``."""
    rows = [
        "| pairs | n | mean | p95 | max | min | >= threshold |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, vals in (
        ("different people", result["impostor"]),
        ("different people, any variants", result["impostor_variants"]),
        ("same person (mirror, 60 % size, 85 % crop)", result["genuine"]),
    ):
        v = np.asarray(list(vals.values()), np.float64)
        if not len(v):
            rows.append(f"| {name} | 0 | | | | | |")
            continue
        hits = f"{int((v >= threshold).sum())} of {len(v)}" if threshold is not None else ""
        rows.append(
            f"| {name} | {len(v)} | {v.mean():.3f} | {np.percentile(v, 95):.3f} | {v.max():.3f} | "
            f"{v.min():.3f} | {hits} |"
        )
    return "\n".join(rows)
