"""One small interface over the face backends: detect, landmarks, align + crop, identity embeddings.

Typical use::

    photo = load_image("me.jpg")
    face = find_face(photo)                  # the largest face; warns when there are several
    crop = align_crop(photo, face, size=256) # the model's input view y (+ mask)
    emb = embed(photo, face)                 # ArcFace-class 512-D (gen3dface.faces.arcface), or dlib 128-D

All coordinates are pixels of the image they refer to, (x, y) = (column, row), origin top-left.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from gen3dface.faces import backends as fb
from gen3dface.faces.arcface import arcface_embedding
from gen3dface.core.errors import BackendUnavailable, InputError, NoFaceError
from gen3dface.core.images import Photo, as_photo

BACKENDS = ("mediapipe", "dlib", "insightface")
#: Head framing of the aligned crop: the FFHQ face square enlarged by this factor so hair, ears and
#: chin are in view (PanoHead-style full-head crops).
HEAD_SCALE = 1.6


#: below this mean foreground over the face's landmark box, background segmentation has missed the person
MIN_FACE_FOREGROUND = 0.5
#: Orientation (:func:`upright_faces`): a face whose up direction (mouth to eyes) is turned more than this many
#: degrees from the photo's up is searched for again on the photo turned by a multiple of 90 degrees.
MAX_ROLL_DEG = 45.0
#: Face Mesh fits an upright face to an upside-down one; its crop is then recognised as upside down when the
#: face detector scores the crop turned by 180 degrees at least this high, and this much above the crop as it is.
UPSIDE_DOWN_SCORE, UPSIDE_DOWN_MARGIN = 0.7, 0.2
#: side in pixels of the head crop that the orientation check looks at
ORIENTATION_CROP = 160
#: a face the detector finds with less confidence than this is doubtful: on the real photos that packages ship
#: (the benchmark's and the group photos') real faces score 0.79-0.97, and the one false face found, long hair
#: under a face that the photo's edge cuts off, 0.54
DOUBTFUL_FACE_SCORE = 0.7


class InputNote(UserWarning):
    """Something about the photo the user should know; the command line prints it as a ``note:`` line."""


class MultipleFacesWarning(InputNote):
    """Several faces were found; the largest is used."""


class BackgroundKeptNote(InputNote):
    """Background segmentation did not find the person in the crop, so the photo's background is kept."""


class DoubtfulFaceNote(InputNote):
    """The face found is doubtful (:data:`DOUBTFUL_FACE_SCORE`): perhaps no face, or one cut off or hidden."""


class TurnedPhotoNote(InputNote):
    """The face was sideways or upside down: it was found on the photo turned upright (the landmarks are still
    given in the photo as it is, and the crop is upright)."""


@dataclass
class Face:
    """One detected face.

    Attributes:
        box: ``(4,)`` detector box ``[x0, y0, x1, y1]`` in pixels.
        score: detector confidence (NaN when the backend gives none).
        landmarks: ``(L, 3)`` pixels (x, y) and relative depth z in the same scale (0 when the backend
            is 2D): L = 478 for mediapipe, 68 for dlib, 5 for insightface.
        keypoints: ``(5, 2)`` subject's right eye, left eye, nose tip, right and left mouth corners.
        backend: which backend found it.
        embedding: identity embedding when the backend computes one with detection (insightface).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    keypoints: np.ndarray
    backend: str
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self) -> float:
        """Area of the landmarks' bounding box (robust to loose detector boxes), pixels^2."""
        lo, hi = self.landmarks[:, :2].min(0), self.landmarks[:, :2].max(0)
        return float(np.prod(np.maximum(hi - lo, 1.0)))

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "box": self.box.tolist(),
            "score": None if np.isnan(self.score) else self.score,
            "keypoints": self.keypoints.tolist(),
            "landmarks": self.landmarks.tolist(),
        }


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise InputError(f"unknown face backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def detect_faces(image, backend: str = "mediapipe") -> list[Face]:
    """All faces in ``image`` (path, :class:`Photo`, PIL image or array), largest first."""
    _check_backend(backend)
    rgb = as_photo(image).rgb
    raw = {"mediapipe": fb.mediapipe_faces, "dlib": fb.dlib_faces, "insightface": fb.insightface_faces}[
        backend
    ](rgb)
    faces = []
    for r in raw:
        kps = r["kps"] if "kps" in r else fb.five_points(r["landmarks"], backend)
        faces.append(
            Face(
                np.asarray(r["box"], float),
                float(r["score"]),
                np.asarray(r["landmarks"], np.float32),
                np.asarray(kps, np.float32),
                backend,
                r.get("embedding"),
            )
        )
    return sorted(faces, key=lambda f: -f.area)


def is_doubtful(face: Face, threshold: float = DOUBTFUL_FACE_SCORE) -> bool:
    """Whether the detector found ``face`` with less confidence than ``threshold`` (a face without a score,
    from a backend that gives none, is not doubtful)."""
    return float(np.nan_to_num(face.score, nan=1.0)) < threshold


def find_face(image, backend: str = "mediapipe", upright: bool | None = None) -> Face:
    """The largest face in ``image``. Raises :class:`NoFaceError`; warns with
    :class:`MultipleFacesWarning` when there are several. With ``upright``, a face lying on its side or upside
    down is found on the photo turned upright (:func:`upright_faces`), with a :class:`TurnedPhotoNote`; by
    default for a photo read from a file (a phone's photo may have lost its orientation), not for an array (a
    render or a view, upright by construction, and often many of them: the check costs a few detections)."""
    photo = as_photo(image)
    faces = detect_faces(photo, backend)
    name = str(photo.path) if photo.path else "the image"
    turn = 0
    if upright or (upright is None and photo.path is not None):
        faces, turn = upright_faces(photo, faces, backend)
    if turn:
        how = {1: "90 deg counterclockwise", 2: "180 deg", 3: "90 deg clockwise"}[turn]
        warnings.warn(
            TurnedPhotoNote(
                f"the photo was rotated by {how} to put the face upright ({name} shows it "
                f"{'upside down' if turn == 2 else 'on its side'}); the crop is upright"
            ),
            stacklevel=2,
        )
    if not faces:
        h, w = photo.size
        hint = (
            " (it is small: a face needs roughly 40 px between the eyes' outer corners)"
            if min(h, w) < 128
            else ""
        )
        raise NoFaceError(
            f"no face found in {name} by the {backend} detector{hint}; use a photo where one face "
            "is visible, roughly frontal (up to about 60 degrees of turn), not heavily occluded"
        )
    if is_doubtful(faces[0]) and (upright or (upright is None and photo.path is not None)):
        warnings.warn(
            DoubtfulFaceNote(
                f"the face found in {name} is doubtful (detector confidence {faces[0].score:.2f} < "
                f"{DOUBTFUL_FACE_SCORE}); "
                "if the face is cut off by the photo's edge, hidden or not there, the result will not show a person"
            ),
            stacklevel=2,
        )
    if len(faces) > 1:
        warnings.warn(
            f"{len(faces)} faces found in {name}; using the largest (box "
            f"{', '.join(f'{v:.0f}' for v in faces[0].box)})",
            MultipleFacesWarning,
            stacklevel=2,
        )
    return faces[0]


def face_roll(face: Face) -> float:
    """Degrees by which the face's up direction (mouth to eyes) is turned clockwise from the image's up: 0 for
    an upright face, 90 for one whose head points right, +-180 upside down."""
    k = face.keypoints.astype(np.float64)
    up = (k[0] + k[1]) / 2 - (k[3] + k[4]) / 2
    return float(np.degrees(np.arctan2(up[0], -up[1])))


def upright_scores(rgb: np.ndarray, face: Face) -> tuple[float, float]:
    """The face detector's scores on the face's head crop (levelled by its landmarks) as it is and turned by
    180 degrees: ``(upright, upside_down)``. Face Mesh fits an upright face to an upside-down one, and then the
    second score is the higher."""
    crop, *_ = warp_quad(Photo(rgb), crop_quad(face.keypoints), ORIENTATION_CROP)
    return fb.mediapipe_face_score(crop), fb.mediapipe_face_score(np.rot90(crop, 2))


def turned_points(xy: np.ndarray, turn: int, height: int, width: int) -> np.ndarray:
    """Points ``(..., 2)`` of the photo turned by ``np.rot90(rgb, turn)`` (``turn`` quarter turns
    counterclockwise) back in the pixels of the ``height x width`` photo."""
    x, y = xy[..., 0], xy[..., 1]
    back = {0: (x, y), 1: (width - y, x), 2: (width - x, height - y), 3: (y, height - x)}[turn % 4]
    return np.stack(back, -1).astype(xy.dtype)


def _face_back(face: Face, turn: int, height: int, width: int) -> Face:
    lm = face.landmarks.copy()
    lm[:, :2] = turned_points(lm[:, :2], turn, height, width)
    corners = turned_points(face.box.reshape(2, 2), turn, height, width)
    box = np.r_[corners.min(0), corners.max(0)]
    kps = turned_points(face.keypoints, turn, height, width)
    return Face(box, face.score, lm, kps, face.backend, face.embedding)


def upright_faces(photo: Photo, faces: list[Face], backend: str) -> tuple[list[Face], int]:
    """``faces`` (of ``photo``, largest first) found again on the photo turned upright when the largest lies on
    its side or upside down, or when there is none; returns the faces, in ``photo``'s pixels, and the quarter
    turns (counterclockwise, 0..3) that put the photo upright (0: ``faces`` as given).

    The largest face's roll (:func:`face_roll`) says which way is up, except that Face Mesh fits an upright face
    to an upside-down one: :func:`upright_scores` tells those apart. A face found on a turned photo is taken only
    when it is upright there and the face detector is confident of it.
    """
    h, w = photo.size
    try:
        if faces:
            up, down = upright_scores(photo.rgb, faces[0])
            roll = face_roll(faces[0]) + (
                180.0 if down >= max(UPSIDE_DOWN_SCORE, up + UPSIDE_DOWN_MARGIN) else 0.0
            )
            turn = int(np.round(roll / 90.0)) % 4
            candidates = [turn] if turn else []
        else:
            candidates = [2, 1, 3]
        for turn in candidates:
            rgb = np.ascontiguousarray(np.rot90(photo.rgb, turn))
            found = detect_faces(Photo(rgb), backend)
            if not found or abs(face_roll(found[0])) > MAX_ROLL_DEG:
                continue
            up, down = upright_scores(rgb, found[0])
            if up >= UPSIDE_DOWN_SCORE and up > down:
                return [_face_back(f, turn, h, w) for f in found], turn
    except BackendUnavailable:  # no mediapipe to judge by: take the faces as found
        pass
    return faces, 0


@dataclass
class AlignedCrop:
    """The model's input view.

    Attributes:
        image: ``(S, S, 3)`` uint8 aligned head crop (background outside the photo is white).
        mask: ``(S, S)`` float32 foreground in [0, 1]: the photo's alpha when it had one, else mediapipe's
            selfie segmentation; always 0 outside the photo.
        transform: ``(2, 3)`` affine map from photo pixels to crop pixels (a similarity: no shear).
        landmarks: ``(L, 3)`` the face's landmarks in crop pixels (z scaled with the crop).
        keypoints: ``(5, 2)`` the five key points in crop pixels.
        quad: ``(4, 2)`` the crop square's corners in photo pixels (top-left, bottom-left, bottom-right,
            top-right).
    """

    image: np.ndarray
    mask: np.ndarray
    transform: np.ndarray
    landmarks: np.ndarray
    keypoints: np.ndarray
    quad: np.ndarray

    @property
    def size(self) -> int:
        return self.image.shape[0]


def crop_quad(keypoints: np.ndarray, scale: float = HEAD_SCALE) -> np.ndarray:
    """The crop square ``(4, 2)`` (top-left, bottom-left, bottom-right, top-right) from five key points.

    FFHQ's alignment rule: the square is centred a little below the eyes, rotated so the eyes are level,
    with half-side ``max(2 * eye distance, 1.8 * eye-to-mouth distance)``; ``scale`` enlarges it.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    eye_l, eye_r = k[0], k[1]  # subject's right eye is on the image left
    eye_avg, mouth_avg = (eye_l + eye_r) / 2, (k[3] + k[4]) / 2
    eye_to_eye, eye_to_mouth = eye_r - eye_l, mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # rotate eye->mouth by -90 degrees
    n = np.hypot(*x)
    if n < 1e-6:
        raise NoFaceError("face key points are degenerate (eyes and mouth coincide); try another photo")
    x = x / n * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) * scale
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def warp_quad(
    image, quad: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Warp the square ``quad (4, 2)`` of a photo (corners in photo pixels, as :attr:`AlignedCrop.quad`) to an
    upright ``size x size`` image; a large photo is box-filtered down first so the result is not aliased.

    Returns:
        ``rgb (S, S, 3)`` uint8 (white outside the photo), ``transform (2, 3)`` photo px -> these pixels,
        ``inside (S, S)`` float32 (1 inside the photo, 0 outside) and ``alpha (S, S)`` float32, the photo's
        alpha channel warped the same way (``None`` when it has none).
    """
    import cv2

    photo = as_photo(image)
    src = np.float32(quad[[0, 3, 1]])  # top-left, top-right, bottom-left
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    rgb = photo.rgb
    side = float(np.hypot(*(quad[3] - quad[0])))
    shrink = int(side // (2 * size))
    if shrink >= 2:
        rgb = cv2.resize(rgb, (rgb.shape[1] // shrink, rgb.shape[0] // shrink), interpolation=cv2.INTER_AREA)
        src = src * np.float32([rgb.shape[1] / photo.rgb.shape[1], rgb.shape[0] / photo.rgb.shape[0]])
    M_small = cv2.getAffineTransform(src, dst)
    out = cv2.warpAffine(
        rgb,
        M_small,
        (size, size),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(255, 255, 255),
    )
    M = cv2.getAffineTransform(np.float32(quad[[0, 3, 1]]), dst).astype(np.float64)  # photo px -> crop px

    def warp(channel: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(
            channel, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

    inside = warp(np.ones(photo.rgb.shape[:2], np.float32))
    alpha = None if photo.alpha is None else warp(photo.alpha)
    return out, M, inside, alpha


def align_crop(
    image, face: Face, size: int = 256, scale: float = HEAD_SCALE, mask: bool = True
) -> AlignedCrop:
    """Warp the head around ``face`` to an upright ``size x size`` square (the input view y).

    Large photos are box-filtered down first so the crop is not aliased (:func:`warp_quad`).
    """
    if size < 16:
        raise InputError(f"crop size must be at least 16 px, got {size}")
    photo = as_photo(image)
    quad = crop_quad(face.keypoints, scale)
    out, M, inside, alpha = warp_quad(photo, quad, size)
    fg = inside
    if mask and alpha is not None:
        fg = alpha
    scale_xy = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    lm = face.landmarks.astype(np.float64)
    lm_xy = lm[:, :2] @ M[:, :2].T + M[:, 2]
    if mask and photo.alpha is None:
        fg = fb.selfie_mask(out) * inside
        x0, y0 = np.clip(np.floor(lm_xy.min(0)).astype(int), 0, size - 1)
        x1, y1 = np.clip(np.ceil(lm_xy.max(0)).astype(int), x0 + 1, size)
        if float(fg[y0:y1, x0:x1].mean()) < MIN_FACE_FOREGROUND:  # e.g. a tight, low-resolution face crop
            warnings.warn(
                BackgroundKeptNote(
                    "background segmentation did not find the person in the crop, so the photo's "
                    "background is kept"
                ),
                stacklevel=2,
            )
            fg = inside
    lm_crop = np.c_[lm_xy, lm[:, 2] * scale_xy].astype(np.float32)
    kps = (face.keypoints.astype(np.float64) @ M[:, :2].T + M[:, 2]).astype(np.float32)
    return AlignedCrop(out, fg.astype(np.float32), M, lm_crop, kps, quad)


def embed(image, face: Face | None = None, backend: str = "dlib") -> np.ndarray:
    """Identity embedding of ``face`` (found with ``backend`` when not given).

    ``dlib`` gives the 128-D descriptor (compare with Euclidean distance, same person below 0.6);
    ``insightface`` gives the 512-D normed ArcFace embedding (compare with cosine similarity) of the face
    aligned by its five key points (any backend's), with the ArcFace-class model of gen3dface.faces.arcface.
    """
    _check_backend(backend)
    if backend == "mediapipe":
        raise InputError("mediapipe computes no identity embedding; use backend='dlib' or 'insightface'")
    photo = as_photo(image)
    if backend == "insightface":
        if face is not None and face.embedding is not None:
            return face.embedding
        if face is None:
            face = find_face(photo, "mediapipe")
        return face_embedding(photo.rgb, face, "arcface")
    if face is None:
        face = find_face(photo, "dlib")
    return face_embedding(photo.rgb, face, "dlib")


def face_embedding(rgb: np.ndarray, face: Face, backend: str) -> np.ndarray:
    """Identity embedding of ``face`` (found in ``rgb`` or in an image of the same framing) in ``rgb (H, W, 3)``.

    ``backend``: ``"arcface"`` (``(512,)`` unit norm, the face aligned by its five key points) or ``"dlib"``
    (``(128,)``, the face's dlib box, or for another backend's face a dlib-like box from its key points).
    """
    if backend == "arcface":
        return arcface_embedding(rgb, face.keypoints)
    return fb.dlib_embedding(rgb, face.box if face.backend == "dlib" else _square_box(face))


def _square_box(face: Face) -> np.ndarray:
    """A dlib-like face box (eyebrows to chin) from another backend's key points."""
    k = face.keypoints
    c = k.mean(0)
    half = 1.1 * max(np.hypot(*(k[1] - k[0])), np.hypot(*((k[3] + k[4]) / 2 - (k[0] + k[1]) / 2)))
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two embeddings (dlib's rule: same person below 0.6)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def crop_face(
    image, size: int = 256, backend: str = "mediapipe", scale: float = HEAD_SCALE
) -> tuple[Photo, Face, AlignedCrop]:
    """Photo -> (photo, largest face, aligned crop with mask): the first step of the pipeline."""
    photo = as_photo(image)
    face = find_face(photo, backend)
    return photo, face, align_crop(photo, face, size=size, scale=scale)
