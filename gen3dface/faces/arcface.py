"""ArcFace-class identity embeddings (the paper's ArcFace role): 512-D, unit norm, compared by cosine.

Which model embeds (:func:`arcface_source`), first found wins:

1. ``$INSIGHTFACE_ARCFACE``: an ArcFace ``.onnx`` file the user names;
2. insightface's ``buffalo_l`` recognition model (``w600k_r50.onnx``) when the user has unpacked the pack
   under ``$INSIGHTFACE_HOME`` (default ``~/.insightface``); this package never downloads it;
3. ``fr_feature.onnx`` of the npm package ``faceplugin-face-recognition-js`` 0.0.1 (MIT as its package
   states; its training data is not documented), kept in the cache ``$GEN3DFACE_CACHE`` (default
   ``~/.cache/gen3dface``) and fetched from the npm registry's tarball on first use (:func:`fetch_arcface`,
   also run by ``scripts/install.sh`` and ``gen3dface fetch-models``), its SHA-256 checked before it is used.

Every model sees the same crop: the face warped by the least-squares similarity transform that takes its five
key points onto ArcFace's 112 x 112 template (:func:`align_arcface`, the rule of insightface's ``norm_crop``).
The npm model is run with onnxruntime on the CPU with its JavaScript's preprocessing (RGB,
``(p - 127) / 128``, ``1 x 3 x 112 x 112``); insightface's models with insightface's own loader, which knows
their normalisation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gen3dface.core.downloads import cache_root, fetch_members, npm_tarball_url, sha256_of
from gen3dface.core.errors import BackendUnavailable
from gen3dface.faces.backends import insightface_root

#: ArcFace's five-point template in the 112 x 112 crop (x, y): subject's right eye (image left), left eye,
#: nose tip, right and left mouth corners; insightface's ``arcface_dst`` and the npm package's points.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_SIZE = 112
EMBEDDING_DIM = 512

NPM_PACKAGE, NPM_VERSION = "faceplugin-face-recognition-js", "0.0.1"
NPM_TARBALL_URL = npm_tarball_url(NPM_PACKAGE, NPM_VERSION)
NPM_MEMBER = "package/model/fr_feature.onnx"
NPM_SHA256 = "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
NPM_LABEL = "ArcFace-class 512-D (faceplugin fr_feature.onnx, training data undocumented)"
#: seconds a connection or a read of the download may stall before it is given up
FETCH_TIMEOUT_S = 60.0

# Calibration of the npm model on real faces that the installed packages ship (insightface's t1.jpg cut into
# its six faces, its Tom_Hanks_54745.png, scikit-image's astronaut and camera, matplotlib's Grace Hopper:
# 10 people; gen3dface.evaluation.identity_calibration.shipped_face_photos), measured by
# `python scripts/calibrate_identity.py` (gen3dface.evaluation.identity_calibration.identity_calibration):
#   different people, 45 pairs:                      cosine mean 0.044, 95th percentile 0.208, max 0.318;
#   different people, every pair of their photos and
#   variants (mirror, 60 % size, 85 % crop), 1125:    mean 0.044, p95 0.225, max 0.371 (1.7 % reach 0.30);
#   one person, a photo against each variant, 40:     mean 0.971, min 0.897 (all reach 0.30).
# The same-person pairs share one photo, so they test invariance to mirroring, scale and crop only: these
# packages ship no two different photos of one person.
#: Two faces whose cosine similarity is at least this are called the same person (1 of the 45 pairs of
#: different people measured above reaches it, 1.7 % of their variant pairs; every same-person pair does).
MATCH_THRESHOLD = 0.30
#: What two different real people score (the chance level of input-to-output ID), measured as above.
IMPOSTOR_MEAN, IMPOSTOR_P95 = 0.044, 0.208


@dataclass(frozen=True)
class ArcFaceSource:
    """Where the ArcFace-class model comes from.

    Attributes:
        path: the ``.onnx`` file.
        kind: ``"insightface"`` (run by insightface's loader) or ``"npm"`` (the faceplugin model).
        label: how metric notes name it.
    """

    path: Path
    kind: str
    label: str


def npm_model_path() -> Path:
    """Where the npm model ``fr_feature.onnx`` is kept in the cache."""
    return cache_root() / "models" / f"{NPM_PACKAGE}-{NPM_VERSION}" / "fr_feature.onnx"


@lru_cache(maxsize=8)
def _verified(path: str, size: int, mtime_ns: int) -> bool:
    """Whether the file (as of this size and time) has the npm model's checksum; hashed once per process."""
    return sha256_of(path) == NPM_SHA256


def npm_model_ok(path: Path | None = None) -> bool:
    """Whether the npm model is in the cache, complete and with its published checksum."""
    path = path or npm_model_path()
    try:
        st = path.stat()
    except OSError:
        return False
    return _verified(str(path), st.st_size, st.st_mtime_ns)


def fetch_arcface(
    dest: str | os.PathLike | None = None,
    url: str = NPM_TARBALL_URL,
    timeout: float = FETCH_TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Download the npm model into the cache (or ``dest``) and return its path; a no-op when it is there.

    The registry's tarball (41 MB) is streamed, only ``package/model/fr_feature.onnx`` (4.9 MB) is kept, its
    SHA-256 is checked against :data:`NPM_SHA256`, and it is written atomically: a failed or interrupted fetch
    leaves no file behind. Offline, an unwritable cache or a wrong checksum raise
    :class:`gen3dface.core.errors.BackendUnavailable` with one line saying what to do.
    """
    dest = Path(dest) if dest is not None else npm_model_path()
    if npm_model_ok(dest):
        return dest
    todo = (
        f"connect to the internet and run `gen3dface fetch-models`, or put that tarball's {NPM_MEMBER} "
        f"(SHA-256 {NPM_SHA256}) at {dest}"
    )
    desc = f"downloading {NPM_PACKAGE} {NPM_VERSION}"
    fetch_members(
        url, {NPM_MEMBER: (NPM_SHA256, dest)}, "the ArcFace-class face model", todo, timeout, progress, desc
    )
    return dest


def buffalo_model_path(name: str = "buffalo_l") -> Path | None:
    """The recognition (ArcFace) ONNX file of the insightface model pack ``name`` on disk, or ``None``."""
    pack = insightface_root() / "models" / name
    for pattern in ("w600k*.onnx", "*glint*.onnx", "*arcface*.onnx"):
        hits = sorted(pack.glob(pattern))
        if hits:
            return hits[0]
    return None


#: Why fetching into a destination failed in this process (so an offline machine does not wait for the network
#: at every call); clear it to try again.
FETCH_FAILURES: dict[str, str] = {}


def arcface_source(fetch: bool = True) -> ArcFaceSource:
    """The ArcFace-class model to use (see the module's docstring for the order).

    ``fetch``: download the npm model when it is the one left and not yet in the cache (tried once per
    process: later calls report the first failure, see :data:`FETCH_FAILURES`). Raises
    :class:`BackendUnavailable` (one line) when none is usable.
    """
    explicit = os.environ.get("INSIGHTFACE_ARCFACE")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BackendUnavailable(
                f"ArcFace model not found at {path} (INSIGHTFACE_ARCFACE); point it at an ArcFace .onnx "
                "file or unset it to use the default model"
            )
        return ArcFaceSource(path, "insightface", f"ArcFace ({path.name}, INSIGHTFACE_ARCFACE)")
    pack = buffalo_model_path()
    if pack is not None:
        return ArcFaceSource(pack, "insightface", f"ArcFace (insightface buffalo_l {pack.name})")
    path = npm_model_path()
    if not npm_model_ok(path):
        if not fetch:
            raise BackendUnavailable(
                f"the ArcFace-class face model is not in {path.parent} yet; run `gen3dface fetch-models`"
            )
        if str(path) in FETCH_FAILURES:
            raise BackendUnavailable(FETCH_FAILURES[str(path)])
        try:
            fetch_arcface(path)
        except BackendUnavailable as e:
            FETCH_FAILURES[str(path)] = str(e)
            raise
    return ArcFaceSource(path, "npm", NPM_LABEL)


class ArcFaceModel:
    """One loaded ArcFace-class model (created once per process by :func:`arcface_model`)."""

    def __init__(self, source: ArcFaceSource):
        """Load ``source``'s model (an onnxruntime CPU session for the npm model, else insightface's loader)."""
        self.source = source
        if source.kind == "npm":
            self._session = _onnx_session(source.path)
            self._input = self._session.get_inputs()[0].name
        else:
            self._insightface = _insightface_model(source.path)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        """Unit-norm embeddings ``(N, 512)`` float32 of aligned RGB uint8 crops ``(N, 112, 112, 3)``."""
        aligned = np.asarray(aligned, np.uint8).reshape(-1, ARCFACE_SIZE, ARCFACE_SIZE, 3)
        feats = np.stack([self._embed_one(a).reshape(-1) for a in aligned]).astype(np.float32)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def _embed_one(self, aligned: np.ndarray) -> np.ndarray:
        """The raw feature of one crop ``(112, 112, 3)`` (the models' batch size is fixed at 1)."""
        if self.source.kind == "npm":  # the package's JavaScript: RGB, (p - 127) / 128, 1 x 3 x 112 x 112
            x = ((aligned.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
            return self._session.run(None, {self._input: np.ascontiguousarray(x)})[0]
        return self._insightface.get_feat(np.ascontiguousarray(aligned[..., ::-1]))  # insightface wants BGR


def _onnx_session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BackendUnavailable(f"onnxruntime is not importable ({e}); run `make install`") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS") or 0)  # 1 in worker processes
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _insightface_model(path: Path):
    try:
        from insightface.model_zoo import get_model
    except ImportError as e:
        raise BackendUnavailable(f"insightface is not importable ({e})") from None
    model = get_model(str(path), providers=["CPUExecutionProvider"])
    if model is None or type(model).__name__ != "ArcFaceONNX":
        raise BackendUnavailable(f"{path} is not an ArcFace recognition model (expected input 3x112x112)")
    model.prepare(ctx_id=-1)
    return model


@lru_cache(maxsize=4)
def load_arcface(source: ArcFaceSource) -> ArcFaceModel:
    """:class:`ArcFaceModel` of ``source``, loaded once per process (one onnxruntime session per model)."""
    return ArcFaceModel(source)


def arcface_model(fetch: bool = True) -> ArcFaceModel:
    """The ArcFace-class model of :func:`arcface_source`, loaded once per process."""
    return load_arcface(arcface_source(fetch))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking ``src`` onto
    ``dst``.

    Args:
        src, dst: ``(P, 2)`` corresponding points (x, y), ``P >= 2``.
    Returns:
        ``(2, 3)`` affine matrix ``M`` with ``dst ≈ src @ M[:, :2].T + M[:, 2]`` (as ``cv2.warpAffine`` takes).
    """
    s = np.asarray(src, np.float64) @ np.array([1.0, 1j])
    d = np.asarray(dst, np.float64) @ np.array([1.0, 1j])
    s0, d0 = s - s.mean(), d - d.mean()
    denom = float(np.sum(np.abs(s0) ** 2))
    if denom < 1e-12:
        raise ValueError("similarity_transform: the source points coincide")
    a = np.sum(d0 * np.conj(s0)) / denom  # scale * e^{i angle}
    b = d.mean() - a * s.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def align_arcface(rgb: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The face with five ``keypoints (5, 2)`` (insightface's order) warped onto :data:`ARCFACE_TEMPLATE`:
    uint8 ``(112, 112, 3)``, black outside the photo (as insightface's ``norm_crop``)."""
    import cv2

    M = similarity_transform(np.asarray(keypoints, np.float64)[:5, :2], ARCFACE_TEMPLATE)
    return cv2.warpAffine(
        np.ascontiguousarray(rgb), M, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0.0
    )


def arcface_embedding(rgb: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """ArcFace-class embedding ``(512,)`` (unit norm) of the face with five ``keypoints (5, 2)``
    (insightface's order, pixels) in ``rgb (H, W, 3)`` uint8."""
    return arcface_model().embed(align_arcface(rgb, keypoints)[None])[0]


def arcface_status() -> str:
    """Which ArcFace-class model is used, for ``gen3dface info`` (nothing is downloaded)."""
    try:
        src = arcface_source(fetch=False)
    except BackendUnavailable as e:
        return f"{e} (identity metrics fall back to dlib)"
    return f"ok ({src.label}: {src.path})"
