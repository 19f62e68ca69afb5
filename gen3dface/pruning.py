"""Data pruning as in the paper (Sec. 3.2): a Janus filter on back views and an identity-consistency top-K.

* Janus: every back view (|azimuth| > 90) gets a *front-face score*; views scoring above τ are removed.
  The paper scores with CLIP zero-shot ("back of human head" vs "human front face"); offline the score
  is the confidence of mediapipe's face detector (0 when it finds no face), thresholded the same way.
* Identity consistency: each identity's views with a visible face (|azimuth| <= 67.5) are embedded
  (ArcFace with insightface models, dlib's 128-D descriptor offline) and scored by the mean pairwise
  cosine similarity; the top-K identities are kept.

Results go to ``ROOT/pruning.json``; with the synthesis defect labels, precision and recall of both
filters are reported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError, NoFaceError
from .faces import detect_faces, embed, find_face
from .images import load_image
from .storage import atomic_write_text

BACK_AZIMUTH = 90.0
FACE_AZIMUTH = 67.5


def front_face_score(rgb: np.ndarray) -> float:
    """Offline front-face score of one view in [0, 1]: the detector confidence of the best face that
    mediapipe's face mesh also fits (the detector alone fires on hair at 0.5-0.7), 0 if none."""
    faces = detect_faces(rgb, "mediapipe")
    return max((0.5 if math.isnan(f.score) else f.score for f in faces), default=0.0)


def identity_embeddings(images: list[np.ndarray], backend: str = "dlib") -> np.ndarray:
    """Embeddings ``(M, D)`` of the views where a face is found (mediapipe finds it, ``backend`` embeds)."""
    out = []
    for rgb in images:
        try:
            face = find_face(rgb) if backend == "dlib" else None
        except NoFaceError:
            continue
        out.append(embed(rgb, face, backend=backend))
    return np.asarray(out, dtype=np.float32).reshape(len(out), -1)


def consistency_score(embeddings: np.ndarray) -> float:
    """Mean pairwise cosine similarity of ``(M, D)`` embeddings; NaN when fewer than two."""
    if len(embeddings) < 2:
        return float("nan")
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sim = e @ e.T
    m = len(e)
    return float((sim.sum() - np.trace(sim)) / (m * (m - 1)))


def precision_recall(predicted: set, actual: set) -> dict:
    tp = len(predicted & actual)
    return {"precision": tp / len(predicted) if predicted else float("nan"),
            "recall": tp / len(actual) if actual else float("nan"), "flagged": len(predicted), "actual": len(actual)}


def prune(root: str | Path, top_k: int | None = None, tau: float = 0.5, embed_backend: str = "dlib",
          progress: bool = True) -> dict:
    """Score every identity of the dataset at ``root`` and write ``pruning.json``. Returns the record.

    Args:
        top_k: identities to keep (default: the best 90%).
        tau: front-face score above which a back view is a Janus view.
    """
    root = Path(root)
    manifest_file = root / "manifest.json"
    if not manifest_file.is_file():
        raise InputError(f"{root} is not a gen3dface dataset (no manifest.json); make one with `gen3dface synth`")
    ids = json.loads(manifest_file.read_text())["identities"]
    if not ids:
        raise InputError(f"{root} holds no identities")
    if top_k is None:
        top_k = math.ceil(0.9 * len(ids))
    if top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {top_k}")
    if not 0.0 <= tau <= 1.0:
        raise InputError(f"--tau is a score threshold in [0, 1], got {tau}")
    records = []
    for item in tqdm(ids, desc="pruning", disable=not progress, unit="id"):
        folder = root / item["folder"]
        meta = json.loads((folder / "meta.json").read_text())
        az = np.asarray(meta["azimuth_deg"])
        back = [int(k) for k in np.nonzero(np.abs(az) > BACK_AZIMUTH)[0]]
        scores = {k: front_face_score(load_image(folder / f"view_{k:02d}.png").rgb) for k in back}
        front = [load_image(folder / f"view_{k:02d}.png").rgb for k in np.nonzero(np.abs(az) <= FACE_AZIMUTH)[0]]
        emb = identity_embeddings(front, embed_backend)
        janus_views = [k for k in meta["defect_views"] if abs(az[k]) > BACK_AZIMUTH] if meta["defect"] == "janus" else []
        records.append({"folder": item["folder"], "defect": meta["defect"], "janus_views": janus_views,
                        "janus_scores": {str(k): round(v, 4) for k, v in scores.items()},
                        "janus_rejected": [k for k, v in scores.items() if v > tau],
                        "id_score": consistency_score(emb), "faces_embedded": len(emb), "face_views": len(front)})
    order = sorted(range(len(records)), key=lambda j: -np.nan_to_num(records[j]["id_score"], nan=-2.0))
    for rank, j in enumerate(order):
        records[j]["kept"] = rank < top_k
    janus_pred = {(r["folder"], k) for r in records for k in r["janus_rejected"]}
    janus_true = {(r["folder"], k) for r in records for k in r["janus_views"]}
    drift_pred = {r["folder"] for r in records if not r["kept"]}
    drift_true = {r["folder"] for r in records if r["defect"] == "drift"}
    result = {"tau": tau, "top_k": top_k, "embed_backend": embed_backend, "identities": records,
              "janus_filter": precision_recall(janus_pred, janus_true),
              "identity_filter": precision_recall(drift_pred, drift_true),
              "kept": sum(r["kept"] for r in records),
              "views_removed": len(janus_pred)}
    atomic_write_text(root / "pruning.json", json.dumps(result, indent=1))
    return result

