"""Face detectors and landmarks behind :mod:`gen3dface.faces.detect`: mediapipe (offline default), dlib
(offline), insightface.

Each backend turns an RGB uint8 image ``(H, W, 3)`` into a list of :class:`gen3dface.faces.detect.Face`
records (box, score, landmarks in pixels, five key points); dlib and insightface also embed faces.
Models are created once per process and reused. The ArcFace-class embedder is :mod:`gen3dface.faces.arcface`.

* mediapipe 0.10.21: BlazeFace detection (short- and full-range models) + Face Mesh, 478 3D landmarks.
* dlib: HOG frontal detector, 68-point shape predictor and the 128-D ResNet face descriptor shipped by
  ``face-recognition-models`` (distance 0.6 is dlib's same-person rule).
* insightface: ``buffalo_l`` (RetinaFace detector + ArcFace 512-D) when its model files are on disk;
  it is never downloaded by this package.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from gen3dface.core.errors import BackendUnavailable

os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging: warnings and info off
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_lock = threading.Lock()


@contextmanager
def quiet_native_stderr():
    """Silence C++ log lines (absl/TFLite "W0000 ..." chatter) written straight to file descriptor 2.

    mediapipe reports real failures as Python exceptions, which are unaffected.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. some notebook front ends)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Semantic landmark indices of mediapipe's 478-point face mesh ("left" = the subject's left).
MP_RIGHT_EYE = [7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246]
MP_LEFT_EYE = [249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466]
MP_NOSE_TIP, MP_MOUTH_RIGHT, MP_MOUTH_LEFT = 1, 61, 291
# dlib 68-point indices.
DLIB_RIGHT_EYE, DLIB_LEFT_EYE = list(range(36, 42)), list(range(42, 48))
DLIB_NOSE_TIP, DLIB_MOUTH_RIGHT, DLIB_MOUTH_LEFT = 30, 48, 54
#: HOG detections below this score are mostly false positives (badges, textures); real faces score ~1.
DLIB_MIN_SCORE = 0.4


def five_points(landmarks: np.ndarray, backend: str) -> np.ndarray:
    """Five key points ``(5, 2)`` from a backend's landmarks, in insightface's order:
    subject's right eye, left eye, nose tip, right mouth corner, left mouth corner."""
    xy = landmarks[:, :2]
    if backend == "mediapipe":
        idx = (MP_RIGHT_EYE, MP_LEFT_EYE, MP_NOSE_TIP, MP_MOUTH_RIGHT, MP_MOUTH_LEFT)
    elif backend == "dlib":
        idx = (DLIB_RIGHT_EYE, DLIB_LEFT_EYE, DLIB_NOSE_TIP, DLIB_MOUTH_RIGHT, DLIB_MOUTH_LEFT)
    else:
        raise ValueError(f"no five-point rule for backend {backend!r}")
    return np.stack([xy[i].mean(0) if isinstance(i, list) else xy[i] for i in idx]).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --------------------------------------------------------------------------------------- mediapipe
@lru_cache(maxsize=None)
def mediapipe_models() -> dict:
    """mediapipe's face detectors (short and full range), face meshes (one face, several) and selfie
    segmenter, created once per process."""
    try:
        import mediapipe as mp
    except ImportError as e:  # pragma: no cover - a broken install
        raise BackendUnavailable(f"mediapipe is not importable ({e}); run `make install`") from None
    sol = mp.solutions
    with quiet_native_stderr():
        return _mp_create(sol)


def _mp_create(sol) -> dict:
    return {
        "det_short": sol.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5),
        "det_full": sol.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5),
        "mesh": sol.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
        ),
        "mesh_many": sol.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=8, refine_landmarks=True, min_detection_confidence=0.5
        ),
        "selfie": sol.selfie_segmentation.SelfieSegmentation(model_selection=0),
    }


def _mp_detect(rgb: np.ndarray, x0: int = 0, y0: int = 0) -> list[tuple[np.ndarray, float]]:
    """BlazeFace boxes ``[x0, y0, x1, y1]`` (offset by ``x0, y0``) with scores, short and full range."""
    h, w = rgb.shape[:2]
    models = mediapipe_models()
    found = []
    for key in ("det_short", "det_full"):
        with _lock, quiet_native_stderr():
            res = models[key].process(np.ascontiguousarray(rgb))
        for d in res.detections or []:
            bb = d.location_data.relative_bounding_box
            box = np.array(
                [
                    bb.xmin * w + x0,
                    bb.ymin * h + y0,
                    (bb.xmin + bb.width) * w + x0,
                    (bb.ymin + bb.height) * h + y0,
                ]
            )
            found.append((box, float(d.score[0])))
    return found


def mediapipe_face_score(rgb: np.ndarray) -> float:
    """BlazeFace's best face score ``[0, 1]`` on the whole of ``rgb (H, W, 3)`` (0 when it sees no face); on a
    head crop, how much it looks like an upright face."""
    return max((s for _, s in _mp_detect(np.ascontiguousarray(rgb))), default=0.0)


#: a photo at least this many times longer than wide (or wider than high) is searched in square windows: the
#: detector letterboxes the whole image into its square thumbnail, where a face in a panorama or a tall
#: screenshot shrinks by this factor or more (a 200 x 4000 strip: a face 40 px high becomes 2 px)
ELONGATED = 2.0
#: finer tiles than this many (about 8 ms each) are not searched: a 300 x 33000 strip stops after its 220 squares
MAX_TILES = 512


def _tiles(h: int, w: int, n: int) -> list[tuple[int, int, int, int]]:
    """An ``n x n`` grid of overlapping square-ish tiles ``(y0, y1, x0, x1)`` covering the image."""
    th, tw = int(np.ceil(h / n * 1.5)), int(np.ceil(w / n * 1.5))
    ys = np.linspace(0, h - th, n).astype(int) if n > 1 else [0]
    xs = np.linspace(0, w - tw, n).astype(int) if n > 1 else [0]
    return [(y, y + th, x, x + tw) for y in ys for x in xs]


def _square_tiles(h: int, w: int, n: int) -> list[tuple[int, int, int, int]]:
    """Square tiles ``(y0, y1, x0, x1)`` overlapping by half and covering an elongated image: ``n`` across its
    short side (side ``short`` for n = 1, else ``1.5 * short / n``)."""
    side = min(h, w) if n == 1 else int(np.ceil(min(h, w) / n * 1.5))

    def starts(length: int) -> np.ndarray:
        count = 1 + int(np.ceil(max(0, length - side) / (side / 2)))
        return np.linspace(0, length - side, count).astype(int)

    return [(y, y + side, x, x + side) for y in starts(h) for x in starts(w)]


def _mp_boxes(rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Face boxes with scores, merged by NMS. BlazeFace sees a 128-192 px thumbnail, so when the whole
    image yields nothing (small faces in a large photo) overlapping tiles are searched too; an elongated image
    (:data:`ELONGATED`) is searched in square tiles only, from the largest down."""
    h, w = rgb.shape[:2]
    elongated = max(h, w) >= ELONGATED * min(h, w)
    found = [] if elongated else _mp_detect(rgb)
    for n in (1, 2, 3, 5) if elongated else (2, 3, 5):
        tiles = _square_tiles(h, w, n) if elongated else _tiles(h, w, n)
        small = (min(h, w) * 1.5 if elongated else max(h, w)) / n < 96
        if found or (n > 1 and (small or len(tiles) > MAX_TILES)):
            break
        for y0, y1, x0, x1 in tiles:
            found += _mp_detect(rgb[y0:y1, x0:x1], x0, y0)
    found.sort(key=lambda t: -t[1])
    kept: list[tuple[np.ndarray, float]] = []
    for box, s in found:
        if all(_iou(box, k[0]) < 0.4 for k in kept):
            kept.append((box, s))
    return kept


def _mp_mesh(rgb: np.ndarray, many: bool = False) -> list[np.ndarray]:
    """Face-mesh landmarks ``(478, 3)`` in pixels (z in the same pixel scale, smaller = nearer)."""
    h, w = rgb.shape[:2]
    models = mediapipe_models()
    with _lock, quiet_native_stderr():
        res = models["mesh_many" if many else "mesh"].process(rgb)
    out = []
    for f in res.multi_face_landmarks or []:
        lm = np.array([[p.x, p.y, p.z] for p in f.landmark], dtype=np.float32)
        out.append(lm * np.array([w, h, w], dtype=np.float32))
    return out


def mediapipe_faces(rgb: np.ndarray) -> list[dict]:
    """Detect faces and fit the 478-point mesh to each.

    Each detection box is cropped with a margin (upscaled when small) and meshed on its own, so small
    faces in large photos and several faces per photo both work. Where the detector finds nothing,
    Face Mesh's own detector gets the whole image.
    """
    import cv2

    h, w = rgb.shape[:2]
    faces = []
    for box, score in _mp_boxes(rgb):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = 2.2 * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        crop = rgb[y0:y1, x0:x1]
        scale = max(1.0, 256.0 / max(crop.shape[:2]))
        if scale > 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        meshes = _mp_mesh(np.ascontiguousarray(crop))
        if not meshes:
            continue
        lm = meshes[0] / scale + np.array([x0, y0, 0], dtype=np.float32)
        faces.append({"box": box, "score": score, "landmarks": lm})
    if not faces:
        for lm in _mp_mesh(rgb, many=True):
            box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
            faces.append({"box": box, "score": float("nan"), "landmarks": lm})
    # one face per person: two boxes of one face can mesh to the same landmarks
    unique = []
    for f in sorted(faces, key=lambda f: -(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1])):
        lb = np.r_[f["landmarks"][:, :2].min(0), f["landmarks"][:, :2].max(0)]
        if all(
            _iou(lb, np.r_[u["landmarks"][:, :2].min(0), u["landmarks"][:, :2].max(0)]) < 0.5 for u in unique
        ):
            unique.append(f)
    return unique


def selfie_mask(rgb: np.ndarray) -> np.ndarray:
    """Person/foreground probability ``(H, W)`` float32 in [0, 1] from mediapipe's selfie segmenter."""
    models = mediapipe_models()
    with _lock, quiet_native_stderr():
        res = models["selfie"].process(np.ascontiguousarray(rgb))
    return np.clip(res.segmentation_mask.astype(np.float32), 0.0, 1.0)


# --------------------------------------------------------------------------------------- dlib
@lru_cache(maxsize=None)
def dlib_models() -> dict:
    """dlib's HOG detector, 68-point shape predictor and 128-D face descriptor (and the ``dlib`` module),
    created once per process."""
    try:
        import warnings

        import dlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
            import face_recognition_models as frm
    except ImportError as e:
        raise BackendUnavailable(
            f"dlib backend needs dlib-bin and face-recognition-models ({e}); run `make install`"
        ) from None
    return {
        "detector": dlib.get_frontal_face_detector(),
        "shape": dlib.shape_predictor(frm.pose_predictor_model_location()),
        "embed": dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
        "dlib": dlib,
    }


def dlib_faces(rgb: np.ndarray) -> list[dict]:
    """dlib HOG detections (upsampled once) with 68 landmarks each (z = 0)."""
    m = dlib_models()
    rects, scores, _ = m["detector"].run(rgb, 1, 0.0)
    faces = []
    for r, s in zip(rects, scores):
        if s < DLIB_MIN_SCORE:
            continue
        shape = m["shape"](rgb, r)
        lm = np.array([[p.x, p.y, 0.0] for p in shape.parts()], dtype=np.float32)
        faces.append(
            {
                "box": np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64),
                "score": float(s),
                "landmarks": lm,
            }
        )
    return faces


def dlib_embedding(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """dlib's 128-D face descriptor ``(128,)`` of the face in ``box`` (its 68 points are refitted)."""
    m = dlib_models()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    rect = m["dlib"].rectangle(x0, y0, x1, y1)
    shape = m["shape"](rgb, rect)
    return np.asarray(m["embed"].compute_face_descriptor(np.ascontiguousarray(rgb), shape), dtype=np.float32)


# --------------------------------------------------------------------------------------- insightface
def insightface_root() -> Path:
    """Where insightface model packs are looked for: ``$INSIGHTFACE_HOME`` or ``~/.insightface``."""
    return Path(os.environ.get("INSIGHTFACE_HOME", Path.home() / ".insightface"))


@lru_cache(maxsize=None)
def insightface_app(name: str = "buffalo_l"):
    """insightface's ``FaceAnalysis`` of the model pack ``name`` on the CPU, created once per process."""
    model_dir = insightface_root() / "models" / name
    if not model_dir.is_dir() or not any(model_dir.glob("*.onnx")):
        raise BackendUnavailable(
            f"insightface model pack {name!r} not found in {model_dir}; download it "
            "from insightface's model zoo and unpack it there (this package never downloads it)"
        )
    try:
        from insightface.app import FaceAnalysis
    except ImportError as e:
        raise BackendUnavailable(f"insightface is not importable ({e})") from None
    app = FaceAnalysis(name=name, root=str(insightface_root()), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640))
    return app


def insightface_faces(rgb: np.ndarray) -> list[dict]:
    """RetinaFace detections with 5 key points and the ArcFace embedding (normed, 512-D)."""
    app = insightface_app()
    out = []
    for f in app.get(np.ascontiguousarray(rgb[..., ::-1])):  # insightface wants BGR
        kps = np.asarray(f.kps, dtype=np.float32)
        out.append(
            {
                "box": np.asarray(f.bbox, dtype=np.float64),
                "score": float(f.det_score),
                "landmarks": np.c_[kps, np.zeros(len(kps), np.float32)],
                "kps": kps,
                "embedding": np.asarray(f.normed_embedding, dtype=np.float32),
            }
        )
    return out


def available_backends() -> dict[str, str]:
    """Each backend's state: ``"ok"`` or the reason it is unavailable."""
    state = {}
    for name, probe in (
        ("mediapipe", mediapipe_models),
        ("dlib", dlib_models),
        ("insightface", insightface_app),
    ):
        try:
            probe()
            state[name] = "ok"
        except BackendUnavailable as e:
            state[name] = str(e)
    return state


def warm_face_models() -> None:
    """Load the offline face models (mediapipe, dlib) now, e.g. as a worker process starts, so that its first
    task does not wait for them; one that is unavailable is left for its first use to report."""
    for load in (mediapipe_models, dlib_models):
        try:
            load()
        except BackendUnavailable:
            pass
