"""Photos prepared on one machine, generated on another, scored back on the first.

Preparing a photo (crop, face mesh, camera: :func:`gen3dface.generation.inputs.photo_condition`) and scoring the
views (face detection and embedding) need the face models; generating needs only the model. A lent GPU may lack
the face models, so the real-photo benchmark can run in three steps (``scripts/bench_real_photos.py``):
:func:`save_conditions` where the face models run, generation from :func:`load_conditions` on the GPU
(:func:`save_views`), and scoring of :func:`load_views` where the face models run.

Both files are ``.npz`` archives of plain arrays plus one JSON record (read with ``allow_pickle=False``): safe to
take from anywhere, unlike a pickle.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from gen3dface.core.cameras import Cameras
from gen3dface.core.errors import InputError
from gen3dface.core.storage import atomic_write_bytes

CONDITIONS_FORMAT = "gen3dface-photo-conditions/1"
VIEWS_FORMAT = "gen3dface-generated-views/1"
_CROP_FIELDS = ("image", "mask", "transform", "landmarks", "keypoints", "quad")


def _write_npz(path: Path, arrays: dict[str, np.ndarray], record: dict) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, record=np.array(json.dumps(record)), **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def _read_npz(path: Path, fmt: str) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        record = json.loads(str(arrays.pop("record")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path} is not a readable {fmt} file: {e}") from None
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise InputError(f"{path} is not a {fmt} file")
    return record, arrays


def _put_camera(arrays: dict, key: str, cam: Cameras | None) -> list[int] | None:
    if cam is None:
        return None
    arrays[f"{key}.K"], arrays[f"{key}.c2w"] = cam.K.cpu().numpy(), cam.c2w.cpu().numpy()
    return [cam.height, cam.width]


def _get_camera(arrays: dict, key: str, size: list[int] | None) -> Cameras | None:
    if size is None:
        return None
    return Cameras(torch.from_numpy(arrays[f"{key}.K"]), torch.from_numpy(arrays[f"{key}.c2w"]), *size)


def save_conditions(
    path: str | Path, prepared: list[tuple[str, dict]], skipped: list[dict] | None = None
) -> None:
    """Write ``(name, photo_condition(...))`` pairs (and the photos ``skipped``, ``{"input", "reason"}``) to
    ``path``."""
    arrays: dict[str, np.ndarray] = {}
    items = []
    for i, (name, p) in enumerate(prepared):
        k = f"{i}"
        mesh, crop = p["mesh"], p["crop"]
        arrays[f"{k}.input"] = p["input"].cpu().numpy()
        if "source" in p:
            arrays[f"{k}.source"] = p["source"].cpu().numpy()
        arrays[f"{k}.mesh.vertices"], arrays[f"{k}.mesh.faces"] = (
            np.asarray(mesh.vertices),
            np.asarray(mesh.faces),
        )
        for f in _CROP_FIELDS:
            arrays[f"{k}.crop.{f}"] = np.asarray(getattr(crop, f))
        items.append(
            {
                "name": name,
                "notes": list(p.get("notes", [])),
                "source": "source" in p,
                "camera": _put_camera(arrays, f"{k}.camera", p.get("camera")),
                "source_camera": _put_camera(arrays, f"{k}.source_camera", p.get("source_camera")),
                "mesh": {
                    "pose": {a: float(v) for a, v in mesh.pose.items()},
                    "confidence": float(mesh.confidence),
                    "backend": mesh.backend,
                    "camera": _put_camera(arrays, f"{k}.mesh.camera", mesh.camera),
                },
            }
        )
    _write_npz(path, arrays, {"format": CONDITIONS_FORMAT, "items": items, "skipped": list(skipped or [])})


def load_conditions(path: str | Path) -> tuple[list[tuple[str, dict]], list[dict]]:
    """The ``(name, condition)`` pairs and the skipped photos of a :func:`save_conditions` file; each condition
    as :func:`gen3dface.generation.inputs.photo_condition` returns it."""
    from gen3dface.faces.detect import AlignedCrop
    from gen3dface.mesh.facemesh import FaceMesh

    record, a = _read_npz(path, CONDITIONS_FORMAT)
    out = []
    try:
        for i, it in enumerate(record["items"]):
            k, m = f"{i}", it["mesh"]
            mesh = FaceMesh(
                a[f"{k}.mesh.vertices"],
                a[f"{k}.mesh.faces"],
                dict(m["pose"]),
                m["confidence"],
                m["backend"],
                _get_camera(a, f"{k}.mesh.camera", m["camera"]),
            )
            p = {
                "input": torch.from_numpy(a[f"{k}.input"]),
                "crop": AlignedCrop(*(a[f"{k}.crop.{f}"] for f in _CROP_FIELDS)),
                "mesh": mesh,
                "camera": _get_camera(a, f"{k}.camera", it["camera"]),
                "notes": list(it["notes"]),
            }
            if it["source"]:
                p["source"] = torch.from_numpy(a[f"{k}.source"])
                p["source_camera"] = _get_camera(a, f"{k}.source_camera", it["source_camera"])
            out.append((str(it["name"]), p))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: a damaged photo-conditions file ({e})") from None
    return out, list(record.get("skipped", []))


def save_views(
    path: str | Path,
    names: list[str],
    crops: np.ndarray,
    views: dict[int, np.ndarray],
    input_yaw: list[float],
    settings: dict,
    skipped: list[dict] | None = None,
) -> None:
    """Write generated views for scoring elsewhere: ``crops (P, S, S, 3)`` uint8 input views, ``views`` per seed
    ``(P, N, S, S, 3)`` uint8, each input's estimated yaw (degrees) and the generation settings."""
    arrays = {"crops": np.asarray(crops, np.uint8)}
    arrays.update({f"views.{s}": np.asarray(v, np.uint8) for s, v in views.items()})
    record = {
        "format": VIEWS_FORMAT,
        "names": list(names),
        "seeds": [int(s) for s in views],
        "input_yaw": [float(y) for y in input_yaw],
        "settings": settings,
        "skipped": list(skipped or []),
    }
    _write_npz(path, arrays, record)


def load_views(path: str | Path) -> tuple[dict, np.ndarray, dict[int, np.ndarray]]:
    """A :func:`save_views` file: ``(record, crops (P, S, S, 3), {seed: views (P, N, S, S, 3)})``."""
    record, a = _read_npz(path, VIEWS_FORMAT)
    try:
        crops = a["crops"]
        views = {int(s): a[f"views.{s}"] for s in record["seeds"]}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: a damaged generated-views file ({e})") from None
    P = len(record["names"])
    if crops.shape[0] != P or any(v.shape[0] != P or v.dtype != np.uint8 for v in views.values()):
        raise InputError(f"{path}: its arrays do not match its {P} names")
    return record, crops, views


def mirror_views(
    record: dict, crops: np.ndarray, views: dict[int, np.ndarray]
) -> tuple[dict, np.ndarray, dict[int, np.ndarray]]:
    """:func:`load_views`' result seen in a mirror: every image flipped left to right, each ring reordered so the
    view at azimuth ``a`` (:func:`gen3dface.core.cameras.ring_azimuths`) holds the mirror image of the view at
    ``-a`` (what the mirrored head shows there), the inputs' yaws negated, ``mirrored`` turned over in its
    settings. The same faces, turned the other way: scored again, it shows how much a face detector's finds depend
    on which way a turned face looks."""
    n = next(iter(views.values())).shape[1]
    order = (-np.arange(n)) % n
    settings = record.get("settings", {})
    flipped = {s: np.ascontiguousarray(v[:, order, :, ::-1]) for s, v in views.items()}
    return (
        {
            **record,
            "input_yaw": [-float(y) for y in record["input_yaw"]],
            "settings": {**settings, "mirrored": not settings.get("mirrored", False)},
        },
        np.ascontiguousarray(crops[:, :, ::-1]),
        flipped,
    )
