"""Input-conditioned face mesh estimation: the paper's *face geometry prior* (Sec. 3.2).

Gen3D-Face conditions its multi-view diffusion on a face mesh **estimated from the input photo** (FLAME via
DECA in the paper) instead of a ground-truth mesh: real photos have none, and a ground-truth prior makes the
model lean on it and ignore the photo. One entry point::

    mesh = estimate_mesh("me.jpg")                      # offline default: mediapipe's 468-point face mesh
    mesh.save("me.obj"); mesh.pose                      # {"yaw": ..., "pitch": ..., "roll": ...} degrees
    mesh = estimate_mesh("me.jpg", backend="flame", flame_model="generic_model.pkl", trust_pickle=True)
    mesh = estimate_mesh("me.jpg", backend="flame", flame_model="generic_model.pkl", trust_pickle=True,
                         deca_model="deca_model.tar")         # FLAME codes from DECA's encoder (the paper's way)
    mesh = estimate_mesh(None, backend="ground_truth", head=7)   # a synthetic identity's true mesh

Backends
    ``"mediapipe"``: mediapipe's 478 landmarks (pixels x, y and relative depth z in the same pixel scale)
    are lifted to 3D under a pinhole camera of assumed field of view (:func:`deperspective`) and put into
    the canonical head frame of :mod:`gen3dface.core.cameras` by the similarity transform (Umeyama, robustly
    reweighted) that best maps them onto :func:`face_template`. The triangles are mediapipe's face-mesh
    tesselation (:func:`tesselation_triangles`). The 10 iris points (indices 468..477, from
    ``refine_landmarks``) are not part of the tesselation and sit on the eyeball, not the skin: they are
    dropped from the mesh and from the alignment, so every backend's face mesh has 468 vertices.
    ``"flame"``: the FLAME 2020 model (the user's licence-gated ``generic_model.pkl``), fitted to the
    mediapipe mesh (rigid + scale + the first shape coefficients; see :func:`fit_flame`), or, with
    ``deca_model=`` (DECA's ``deca_model.tar``), driven by DECA's coarse encoder as in the paper
    (:mod:`gen3dface.mesh.deca`; the result's backend is ``"deca"``).
    ``"ground_truth"``: the known mesh of a procedural head (:mod:`gen3dface.synth.heads`), for the paper's
    mesh-prior ablation.

Pose convention (degrees), the pose of the *camera* in the canonical head frame, so it reads like
:mod:`gen3dface.core.cameras`' orbit angles:
    ``yaw`` = the camera's azimuth: positive when the camera sits towards the subject's left, i.e. the
    face is turned towards the subject's own right (it then looks towards the image's left);
    ``pitch`` = the camera's elevation: positive when the camera looks down on the face (head tilted
    forward, chin down);
    ``roll`` = rotation of the camera about its viewing axis relative to the upright orbit camera of
    :func:`gen3dface.core.cameras.look_at`; positive when the head appears turned counter-clockwise in the
    image (``PIL.Image.rotate(+a)`` of an upright photo gives roll ≈ +a).
The rotation is ``R = R_lookat(yaw, pitch) @ R_z(roll)`` (camera-to-world, :func:`rotation_from_pose`).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from gen3dface.core.cameras import DEFAULT_FOV_DEG, Cameras, intrinsics_from_fov, look_at, orbit_cameras, orbit_position
from gen3dface.core.storage import MESH_FORMATS
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.core.images import as_photo

BACKENDS = ("mediapipe", "flame", "ground_truth")
#: Mesh formats :meth:`FaceMesh.save` writes (chosen by the file extension).
#: mediapipe landmarks covered by the tesselation; 468..477 are the iris points (dropped, see module doc).
MESH_POINTS = 468
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "assets" / "face_template.npy"
#: Identities the shipped template averages (disjoint from the evaluation's seeds 0..999).
TEMPLATE_SEEDS = tuple(range(10_000, 10_008))
#: Where the FLAME model is looked for when ``flame_model`` is not given.
FLAME_ENV = "GEN3DFACE_FLAME_MODEL"
#: Robust alignment: residuals are down-weighted beyond this multiple of their median (Cauchy weights).
_ROBUST_C = 3.0
#: Confidence: RMS alignment residuals up to _CONF_FREE of the template's radius (differences between people)
#: cost nothing; beyond, confidence falls by 1/e per _CONF_SCALE.
_CONF_FREE, _CONF_SCALE = 0.10, 0.05


# --------------------------------------------------------------------------------------- the result
@dataclass
class FaceMesh:
    """An estimated face (or head) mesh in the canonical head frame.

    Attributes:
        vertices: ``(N, 3)`` float32, canonical head frame (+Y up, face looks +Z, +X subject's left).
        faces: ``(F, 3)`` int64, counter-clockwise seen from outside.
        pose: ``{"yaw", "pitch", "roll"}`` degrees of the input camera (see the module docstring).
        confidence: in [0, 1]; how well the observed landmarks fit a rigidly placed face.
        backend: the backend that made it.
        camera: the estimated input camera (``()``-shaped :class:`Cameras`, intrinsics from the assumed
            field of view) so that ``camera.project(vertices)`` lands on the photo's landmarks; ``None``
            when unknown.
    """

    vertices: np.ndarray
    faces: np.ndarray
    pose: dict[str, float]
    confidence: float
    backend: str
    camera: Cameras | None = field(default=None, repr=False)

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    def to_dict(self) -> dict:
        """JSON-ready summary (what the CLI writes next to the mesh)."""
        return {"backend": self.backend, "pose_deg": {k: round(float(v), 3) for k, v in self.pose.items()},
                "confidence": round(float(self.confidence), 4), "n_vertices": int(len(self.vertices)),
                "n_faces": int(len(self.faces)),
                "frame": "gen3dface canonical head frame: +Y up, face looks +Z, +X subject's left",
                "camera": self.camera[None].to_dict() if self.camera is not None else None}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``.obj``, ``.ply`` or ``.glb`` (by extension) atomically; returns the path."""
        from gen3dface.core.storage import atomic_path

        path = Path(path)
        ext = check_mesh_path(path)
        with atomic_path(path) as tmp:
            self.to_trimesh().export(tmp, file_type=ext[1:])
        return path


def check_mesh_path(path: str | os.PathLike) -> str:
    """The lower-case extension of a mesh output path; :class:`InputError` when it is not a mesh format."""
    ext = Path(path).suffix.lower()
    if ext not in MESH_FORMATS:
        raise InputError(f"cannot write a mesh to {Path(path).name!r}: use one of the extensions "
                         f"{', '.join(MESH_FORMATS)}")
    return ext


# --------------------------------------------------------------------------------------- topology and template
@lru_cache(maxsize=None)
def tesselation_triangles() -> np.ndarray:
    """Triangles ``(F, 3)`` int64 of mediapipe's face mesh, from its edge list ``FACEMESH_TESSELATION``.

    Every triangle of the tesselation is a 3-clique of its edge graph; a few 3-cliques are not triangles
    (three triangles' edges closing a loop around a vertex), recognisable because each of their edges is
    then shared by three cliques. Those are removed, leaving a manifold surface with holes at the eyes and
    the mouth; winding is made consistent and outward (towards +Z on :func:`face_template`).
    """
    import trimesh
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    neighbours: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    cliques = sorted({tuple(sorted((a, b, c))) for a, b in FACEMESH_TESSELATION for c in neighbours[a] & neighbours[b]})
    tri = np.array(cliques, dtype=np.int64)
    edges = np.sort(tri[:, [[0, 1], [1, 2], [0, 2]]], axis=-1).reshape(-1, 2)
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    uses = counts[inverse.reshape(-1)].reshape(-1, 3)
    tri = tri[~(uses > 2).all(1)]
    mesh = trimesh.Trimesh(face_template(), tri, process=False)
    trimesh.repair.fix_winding(mesh)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if mesh.face_normals[:, 2].sum() < 0:
        faces = faces[:, ::-1].copy()
    return faces


@lru_cache(maxsize=None)
def face_template() -> np.ndarray:
    """The canonical template face ``(468, 3)`` float32 in the head frame (shipped in ``assets/``).

    It is the mean over the procedural identities :data:`TEMPLATE_SEEDS` of mediapipe's 3D landmarks
    (:func:`deperspective`) found on a frontal render, each placed in the canonical frame by the similarity
    that best maps them onto the same landmarks lifted to the true surface through the render's depth map.
    So the template has mediapipe's own depth relief (a frontal face comes out at pose 0) and sits where
    real faces sit in the head frame; :func:`build_template` remakes it.
    """
    if not TEMPLATE_PATH.is_file():
        raise BackendUnavailable(f"face template missing at {TEMPLATE_PATH}; reinstall gen3dface or run "
                                 "gen3dface.mesh.geometry.build_template(save=True)")
    return np.load(TEMPLATE_PATH).astype(np.float32)


def build_template(seeds=TEMPLATE_SEEDS, image_size: int = 512, save: bool = False) -> np.ndarray:
    """Make the template ``(468, 3)``: frontal renders of procedural heads, mediapipe landmarks lifted
    onto the rendered depth, averaged over ``seeds``. ``save=True`` writes it to :data:`TEMPLATE_PATH`."""
    from gen3dface.faces.detect import find_face
    from gen3dface.synth.heads import build_head, sample_head_params
    from gen3dface.core.images import to_uint8
    from gen3dface.synth.render import render

    cam = orbit_cameras([0.0], 0.0, image_size=image_size)
    lifted = []
    for seed in seeds:
        out = render(build_head(sample_head_params(seed)), cam, ssaa=2)
        lm = find_face(to_uint8(out["rgb"][0, 0])).landmarks[:MESH_POINTS]
        depth = out["depth"][0, 0, 0].numpy()
        cols = np.clip(lm[:, 0].astype(int), 0, image_size - 1)
        rows = np.clip(lm[:, 1].astype(int), 0, image_size - 1)
        d = torch.tensor(_nearest_surface_depth(depth, cols, rows), dtype=torch.float64)
        on_surface = cam[0].unproject(torch.tensor(lm[:, :2], dtype=torch.float64), d).numpy()
        observed = deperspective(lm, image_size, image_size)
        s, R, t = umeyama(observed, on_surface)
        lifted.append(s * observed @ R.T + t)
    template = np.mean(lifted, 0).astype(np.float32)
    if save:
        from gen3dface.core.storage import atomic_path

        with atomic_path(TEMPLATE_PATH) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, template)
        face_template.cache_clear()
    return template


def _nearest_surface_depth(depth: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Depth ``(P,)`` at pixels ``(cols, rows)`` of ``depth (H, W)``, taken from the nearest covered pixel
    where a pixel is background (mediapipe's face contour can sit a pixel or two outside the silhouette)."""
    from scipy.ndimage import distance_transform_edt

    _, (ri, ci) = distance_transform_edt(~np.isfinite(depth), return_indices=True)
    return depth[ri[rows, cols], ci[rows, cols]]


# --------------------------------------------------------------------------------------- geometry tools
def deperspective(landmarks: np.ndarray, height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """mediapipe landmarks ``(L, 3)`` (pixels x, y; relative depth z in pixel scale) to camera-frame 3D ``(L, 3)``.

    mediapipe's z is weak-perspective: depth relative to the face's centre in the same scale as x, y at
    the face. Measured in units of "one pixel at the face's depth", a pinhole of focal ``f`` pixels puts
    the face at depth ``f`` whatever its true distance, so a landmark lies at depth ``Z = f + z`` and at
    ``X = (x - cx) Z / f``, ``Y = (y - cy) Z / f`` (OpenCV camera axes: x right, y down, z forward).
    The only assumption is the field of view (vertical, ``fov_deg``) with the principal point at the
    image centre.
    """
    K = intrinsics_from_fov(fov_deg, height, width).double().numpy()
    f, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    lm = np.asarray(landmarks, dtype=np.float64)
    Z = f + lm[:, 2]
    return np.stack([(lm[:, 0] - cx) * Z / f, (lm[:, 1] - cy) * Z / f, Z], 1)


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama 1991), optionally weighted.

    Args:
        src, dst: ``(P, 3)`` corresponding points; weights: ``(P,)`` non-negative, or ``None``.
    Returns:
        scale ``s``, rotation ``R (3, 3)`` (det +1), translation ``t (3,)``.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0])
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (w @ (a ** 2).sum(1)))
    return s, R, mu_d - s * R @ mu_s


def robust_umeyama(src: np.ndarray, dst: np.ndarray, rounds: int = 3) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`umeyama` re-weighted ``rounds`` times with Cauchy weights on the residuals, so a few bad
    points (occlusion, a wrong contour) do not tilt the fit. Returns ``s, R, t`` and the weights ``(P,)``."""
    w = np.ones(len(src))
    for _ in range(rounds):
        s, R, t = umeyama(src, dst, w)
        r = np.linalg.norm(s * src @ R.T + t - dst, axis=1)
        w = 1.0 / (1.0 + (r / (_ROBUST_C * np.median(r) + 1e-12)) ** 2)
    return s, R, t, w


def _lookat_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world rotation ``(3, 3)`` of the upright orbit camera at azimuth ``yaw``, elevation ``pitch``."""
    eye = orbit_position(torch.tensor(float(yaw), dtype=torch.float64), torch.tensor(float(pitch), dtype=torch.float64), 1.0)
    return look_at(eye.double(), torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))[:3, :3].numpy()


def rotation_from_pose(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation ``(3, 3)``: ``R_lookat(yaw, pitch) @ R_z(roll)`` (degrees; module doc)."""
    r = math.radians(roll)
    Rz = np.array([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]])
    return _lookat_rotation(yaw, pitch) @ Rz


def pose_from_rotation(R: np.ndarray) -> dict[str, float]:
    """Inverse of :func:`rotation_from_pose`: camera-to-world ``R (3, 3)`` to yaw, pitch, roll degrees.

    The camera looks along its third column, so the direction from the head to the camera is ``-R[:, 2]``:
    its azimuth and elevation are yaw and pitch; what is left, ``R_lookat^T R``, turns about the optical
    axis by the roll. Pitch is clamped to ±89.9 degrees (yaw and roll are not separable straight above).
    """
    R = np.asarray(R, np.float64)
    d = -R[:, 2]
    yaw = math.degrees(math.atan2(d[0], d[2]))
    pitch = float(np.clip(math.degrees(math.asin(np.clip(d[1], -1.0, 1.0))), -89.9, 89.9))
    Rz = _lookat_rotation(yaw, pitch).T @ R
    return {"yaw": yaw, "pitch": pitch, "roll": math.degrees(math.atan2(Rz[1, 0], Rz[0, 0]))}


# --------------------------------------------------------------------------------------- backends
def estimate_mesh(image, backend: str = "mediapipe", *, fov_deg: float = DEFAULT_FOV_DEG, head=None,
                  camera: Cameras | None = None, flame_model: str | os.PathLike | None = None,
                  trust_pickle: bool = False, deca_model: str | os.PathLike | None = None,
                  fit_steps: int = 200) -> FaceMesh:
    """Estimate the face mesh of the largest face in ``image``, in the canonical head frame.

    Args:
        image: a path, :class:`gen3dface.core.images.Photo`, PIL image or ``(H, W, 3)`` array; ignored (may be
            ``None``) by ``"ground_truth"``.
        backend: ``"mediapipe"`` (offline default), ``"flame"`` or ``"ground_truth"``.
        fov_deg: assumed vertical field of view of the photo (mediapipe and flame backends).
        head: ``"ground_truth"`` only: the identity, as a seed (int), :class:`gen3dface.synth.heads.HeadParams`
            or a built :class:`gen3dface.synth.heads.HeadMesh`.
        camera: ``"ground_truth"`` only: the input view's camera (one camera), which sets the pose.
        flame_model: ``"flame"`` only: path of FLAME 2020's ``generic_model.pkl`` (default: the
            ``GEN3DFACE_FLAME_MODEL`` environment variable).
        trust_pickle: ``"flame"`` only: must be ``True`` to unpickle the FLAME file (pickles can run code;
            only pass it for a file you downloaded yourself from the FLAME website).
        deca_model: ``"flame"`` only: DECA's ``deca_model.tar``. When given, FLAME's shape, expression,
            jaw and head pose come from DECA's coarse encoder (:mod:`gen3dface.mesh.deca`, as the paper does)
            instead of the fit to the mediapipe mesh; the result's backend is ``"deca"``.
        fit_steps: ``"flame"`` without ``deca_model`` only: optimisation steps of :func:`fit_flame`.
    Returns:
        :class:`FaceMesh`: 468 vertices (mediapipe), 5023 (FLAME, fitted or DECA) or the whole head
        (ground truth).
    Raises:
        :class:`gen3dface.core.errors.NoFaceError` when no face is found (profile beyond ~60 degrees, heavy
        occlusion, too few pixels); :class:`InputError` for bad arguments or a file that is not a FLAME
        model / DECA checkpoint; :class:`BackendUnavailable` when the FLAME or DECA files are missing or
        the FLAME pickle is not trusted. Several faces: the largest, with a
        :class:`gen3dface.faces.detect.MultipleFacesWarning`.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown mesh backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "ground_truth":
        return ground_truth_mesh(head, camera)
    if backend == "flame":
        layer = FlameLayer.from_file(_flame_path(flame_model), trust_pickle=trust_pickle)
        if deca_model is not None:
            from gen3dface.mesh.deca import cached_deca, deca_mesh

            return deca_mesh(image, layer, cached_deca(deca_model), fov_deg)
        return flame_mesh(mediapipe_mesh(image, fov_deg), layer, steps=fit_steps)
    return mediapipe_mesh(image, fov_deg)


def mediapipe_mesh(image, fov_deg: float = DEFAULT_FOV_DEG, face=None) -> FaceMesh:
    """The ``"mediapipe"`` backend (see :func:`estimate_mesh`); ``face``: an already found mediapipe
    :class:`gen3dface.faces.detect.Face` of ``image`` (found here when ``None``)."""
    from gen3dface.faces.detect import find_face

    photo = as_photo(image)
    if face is None:
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # a MultipleFacesWarning must reach the caller every time
            face = find_face(photo)
    elif face.backend != "mediapipe":
        raise InputError(f"mediapipe_mesh needs mediapipe's 478 landmarks, got a {face.backend} face")
    h, w = photo.size
    pts = deperspective(face.landmarks[:MESH_POINTS], h, w, fov_deg)
    template = face_template()
    s, R, t, _ = robust_umeyama(pts, template)
    verts = (s * pts @ R.T + t).astype(np.float32)
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = R, t
    cam = Cameras(intrinsics_from_fov(fov_deg, h, w), torch.tensor(c2w, dtype=torch.float32), h, w)
    return FaceMesh(verts, tesselation_triangles(), pose_from_rotation(R), _confidence(verts, template),
                    "mediapipe", cam)


def _confidence(aligned: np.ndarray, template: np.ndarray) -> float:
    """``exp(-max(0, rel - 0.10) / 0.05)`` of ``rel``, the RMS distance of the aligned points from the
    template relative to the template's RMS radius. Shape differences between people (rel ~ 0.1) cost
    little; points that no rigidly placed face explains (a badly fitted profile, occlusion) cost a lot."""
    rms = np.sqrt(((aligned - template) ** 2).sum(1).mean())
    radius = np.sqrt(((template - template.mean(0)) ** 2).sum(1).mean())
    return float(np.exp(-max(0.0, rms / radius - _CONF_FREE) / _CONF_SCALE))


def ground_truth_mesh(head, camera: Cameras | None = None) -> FaceMesh:
    """The ``"ground_truth"`` backend: the whole procedural head of ``head`` (seed, params or mesh);
    the pose is ``camera``'s (zero when ``None``), confidence 1."""
    from gen3dface.synth.heads import HeadMesh, HeadParams, build_head, sample_head_params

    if isinstance(head, bool) or head is None:
        raise InputError("backend 'ground_truth' needs head= (a seed, HeadParams or HeadMesh of gen3dface.synth.heads)")
    if isinstance(head, (int, np.integer)):
        head = sample_head_params(int(head))
    if isinstance(head, HeadParams):
        head = build_head(head)
    if not isinstance(head, HeadMesh):
        raise InputError(f"backend 'ground_truth': head must be a seed, HeadParams or HeadMesh, got {type(head).__name__}")
    pose = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}
    if camera is not None:
        if camera.c2w.numel() != 16:
            raise InputError(f"backend 'ground_truth': give one camera, got a batch of shape {tuple(camera.shape)}")
        camera = Cameras(camera.K.reshape(3, 3), camera.c2w.reshape(4, 4), camera.height, camera.width)
        pose = pose_from_rotation(camera.c2w[:3, :3].double().numpy())
    return FaceMesh(head.vertices.numpy().astype(np.float32), head.faces.numpy().astype(np.int64), pose, 1.0,
                    "ground_truth", camera)


# --------------------------------------------------------------------------------------- FLAME
class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch`` while unpickling FLAME files (chumpy itself is not needed): keeps
    the pickled state, whose ``"x"`` entry is the array."""

    def __setstate__(self, state):
        self.state = state


#: Globals a FLAME pickle may name: numpy arrays, scipy sparse matrices, chumpy arrays, nothing else.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("scipy.sparse.csc", "csc_matrix"), ("scipy.sparse._csc", "csc_matrix"),
    ("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix"), ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"), ("__builtin__", "set"),
    ("builtins", "set"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store array bytes
}


class _FlameUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("chumpy.ch", "Ch"):
            return _ChumpyArray
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a FLAME model file")
        return super().find_class(module, name)


def _dense(value, key: str) -> np.ndarray:
    if isinstance(value, _ChumpyArray):
        if "x" not in value.state:
            raise InputError(f"FLAME entry {key!r} is a derived chumpy expression; convert the file to numpy first")
        value = value.state["x"]
    if hasattr(value, "toarray"):
        value = value.toarray()
    return np.asarray(value)


def _flame_path(flame_model) -> Path:
    path = flame_model or os.environ.get(FLAME_ENV)
    if not path:
        raise BackendUnavailable(f"the FLAME backend needs FLAME 2020's generic_model.pkl (licence-gated: register at "
                                 f"flame.is.tue.mpg.de); pass flame_model=PATH or set {FLAME_ENV}")
    return Path(path)


def load_flame(path: str | os.PathLike, trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """Read a FLAME model pickle into numpy arrays, checking every shape.

    FLAME ships as a Python-2 pickle (some entries chumpy arrays, ``J_regressor`` a scipy sparse matrix).
    Unpickling can execute code, so it happens only with ``trust_pickle=True``, and even then through an
    unpickler that accepts nothing but numpy, scipy.sparse and chumpy array records.

    Returns:
        ``v_template (N, 3)``, ``shapedirs (N, 3, K)`` (K = 400 in FLAME 2020: 300 shape + 100
        expression), ``posedirs (N, 3, 9 (J - 1))``, ``J_regressor (J, N)``, ``weights (N, J)``,
        ``parents (J,)`` (-1 for the root; from ``kintree_table``), ``f (F, 3)``; N = 5023, J = 5, F = 9976.
    """
    path = Path(path)
    if not path.is_file():
        raise BackendUnavailable(f"FLAME model not found at {path}; download FLAME 2020 (generic_model.pkl) from "
                                 "flame.is.tue.mpg.de after accepting its licence")
    if not trust_pickle:
        raise BackendUnavailable(f"{path.name} is a pickle, and loading a pickle can run arbitrary code; pass "
                                 "trust_pickle=True (CLI: --trust-pickle) only for the file you downloaded from FLAME")
    try:
        raw = _FlameUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as e:
        raise InputError(f"{path} is not a FLAME model file ({e})") from None
    need = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    if not isinstance(raw, dict) or any(k not in raw for k in need):
        have = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise InputError(f"{path} is not a FLAME model file: it needs {', '.join(need)}, has {have}")
    m = {k: _dense(raw[k], k) for k in need}
    parents = m.pop("kintree_table")[0].astype(np.int64)
    parents[0] = -1  # FLAME stores the root's parent as 2**32 - 1
    m["parents"] = parents
    _check_flame_shapes(m, path)
    return m


def _check_flame_shapes(m: dict[str, np.ndarray], path: Path) -> None:
    n, j = len(m["v_template"]), len(m["parents"])
    ok = (m["v_template"].shape == (n, 3) and m["shapedirs"].ndim == 3 and m["shapedirs"].shape[:2] == (n, 3)
          and m["posedirs"].shape == (n, 3, 9 * (j - 1)) and m["J_regressor"].shape == (j, n)
          and m["weights"].shape == (n, j) and m["f"].ndim == 2 and m["f"].shape[1] == 3
          and bool((m["parents"][1:] < np.arange(1, j)).all()))
    if not ok:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in m.items())
        raise InputError(f"{path} has inconsistent FLAME arrays: {shapes}")


def axis_angle_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axis-angle ``(..., 3)`` (radians) to rotation matrices ``(..., 3, 3)``; smooth at 0."""
    angle = torch.sqrt((v * v).sum(-1, keepdim=True) + 1e-16)
    k = v / angle
    zero = torch.zeros_like(k[..., 0])
    K = torch.stack([zero, -k[..., 2], k[..., 1], k[..., 2], zero, -k[..., 0], -k[..., 1], k[..., 0], zero],
                    -1).reshape(*v.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return eye + s * K + (1 - c) * K @ K


class FlameLayer(torch.nn.Module):
    """The FLAME forward pass: linear shape and expression blend shapes, pose correctives, and linear blend
    skinning over FLAME's 5 joints (root, neck, jaw, left eye, right eye).

    Build it with :meth:`from_file` (the user's ``generic_model.pkl``) or from :func:`load_flame`'s dict.
    """

    def __init__(self, model: dict[str, np.ndarray], n_shape: int = 300):
        super().__init__()
        f32 = lambda k: torch.tensor(np.asarray(model[k], dtype=np.float32))  # noqa: E731
        self.register_buffer("v_template", f32("v_template"))
        self.register_buffer("shapedirs", f32("shapedirs"))
        self.register_buffer("posedirs", f32("posedirs"))
        self.register_buffer("J_regressor", f32("J_regressor"))
        self.register_buffer("weights", f32("weights"))
        self.parents = [int(p) for p in model["parents"]]
        self.faces = np.asarray(model["f"], dtype=np.int64)
        self.n_shape = min(n_shape, self.shapedirs.shape[2])
        self.n_expression = self.shapedirs.shape[2] - self.n_shape

    @classmethod
    def from_file(cls, path: str | os.PathLike, trust_pickle: bool = False) -> "FlameLayer":
        return cls(load_flame(path, trust_pickle=trust_pickle))

    @property
    def n_joints(self) -> int:
        return len(self.parents)

    def forward(self, shape: torch.Tensor | None = None, expression: torch.Tensor | None = None,
                pose: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices ``(B, N, 3)`` in FLAME's frame (metres, +Y up, face towards +Z).

        Args:
            shape: ``(B, <= n_shape)`` identity coefficients (missing trailing ones are 0).
            expression: ``(B, <= n_expression)`` expression coefficients.
            pose: ``(B, 3 J)`` axis-angle per joint (root, neck, jaw, eyes); ``None`` = rest pose.
        """
        given = [x for x in (shape, expression, pose) if x is not None]
        B = given[0].shape[0] if given else 1
        coeffs = self.v_template.new_zeros(B, self.shapedirs.shape[2])
        if shape is not None:
            coeffs[:, :shape.shape[1]] = shape
        if expression is not None:
            coeffs[:, self.n_shape:self.n_shape + expression.shape[1]] = expression
        v = self.v_template + torch.einsum("bk,nck->bnc", coeffs, self.shapedirs)
        if pose is None:
            pose = v.new_zeros(B, 3 * self.n_joints)
        return self._skin(v, axis_angle_to_matrix(pose.reshape(B, self.n_joints, 3)))

    def _skin(self, v_shaped: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """Pose correctives + LBS of ``v_shaped (B, N, 3)`` with joint rotations ``R (B, J, 3, 3)``."""
        B, J = R.shape[:2]
        joints = torch.einsum("jn,bnc->bjc", self.J_regressor, v_shaped)
        eye = torch.eye(3, dtype=R.dtype, device=R.device)
        v = v_shaped + torch.einsum("bp,ncp->bnc", (R[:, 1:] - eye).reshape(B, -1), self.posedirs)
        world_R, world_t = [R[:, 0]], [joints[:, 0]]
        for j in range(1, J):  # compose along the kinematic chain (parents come first)
            p = self.parents[j]
            world_R.append(world_R[p] @ R[:, j])
            world_t.append(world_t[p] + (world_R[p] @ (joints[:, j] - joints[:, p])[..., None])[..., 0])
        G_R, G_t = torch.stack(world_R, 1), torch.stack(world_t, 1)
        G_t = G_t - (G_R @ joints[..., None])[..., 0]  # relative to the rest pose
        T_R = torch.einsum("nj,bjxy->bnxy", self.weights, G_R)
        T_t = torch.einsum("nj,bjx->bnx", self.weights, G_t)
        return (T_R @ v[..., None])[..., 0] + T_t


#: Canonical head width (2 x the mean ``skull_width`` of :mod:`gen3dface.synth.heads`): FLAME's rest head is scaled
#: to it by :func:`fit_flame` and by the DECA backend (:mod:`gen3dface.mesh.deca`).
CANONICAL_HEAD_WIDTH = 2 * 0.53


def fit_flame(layer: FlameLayer, target: np.ndarray, steps: int = 200, n_shape: int = 50,
              shape_prior: float = 1e-4, lr: float = 0.01) -> tuple[np.ndarray, dict]:
    """Fit FLAME to a face mesh in the canonical frame: similarity (rotation, scale, translation) and the
    first ``n_shape`` identity coefficients, by Adam on the mean squared distance from each target point to
    its nearest FLAME vertex plus ``shape_prior * |shape|^2``.

    No landmark correspondence is used: the mediapipe-to-FLAME landmark embedding is a separate download,
    so the fit is correspondence-free (nearest vertices, re-found every step). It starts from FLAME's rest
    head scaled to the canonical head width and placed with its nose tip (largest z) on the target's.

    Args:
        target: ``(P, 3)`` points, e.g. the mediapipe backend's 468 vertices.
    Returns:
        vertices ``(N, 3)`` float32 in the canonical frame, and a dict with ``loss (steps,)``, ``scale``,
        ``rotation (3, 3)``, ``translation (3,)``, ``shape (n_shape,)``.
    """
    tgt = torch.tensor(np.asarray(target), dtype=torch.float32)
    rest = layer.v_template
    basis = layer.shapedirs[:, :, :min(n_shape, layer.n_shape)]  # rest pose: no correctives, skinning is identity
    s0 = CANONICAL_HEAD_WIDTH / float(rest[:, 0].max() - rest[:, 0].min())  # canonical / FLAME head width
    t0 = tgt[tgt[:, 2].argmax()] - s0 * rest[rest[:, 2].argmax()]
    rot = torch.zeros(3, requires_grad=True)
    log_s = torch.tensor(math.log(s0), requires_grad=True)
    t = t0.clone().requires_grad_(True)
    beta = torch.zeros(basis.shape[2], requires_grad=True)
    opt = torch.optim.Adam([rot, log_s, t, beta], lr=lr)
    place = lambda: log_s.exp() * (rest + basis @ beta) @ axis_angle_to_matrix(rot).T + t  # noqa: E731
    losses = []
    for _ in range(steps):
        loss = torch.cdist(tgt, place()).min(1).values.pow(2).mean() + shape_prior * beta.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        w = place()
    info = {"loss": np.array(losses), "scale": log_s.exp().item(), "rotation": axis_angle_to_matrix(rot).detach().numpy(),
            "translation": t.detach().numpy(), "shape": beta.detach().numpy()}
    return w.numpy().astype(np.float32), info


def flame_mesh(observed: FaceMesh, layer: FlameLayer, steps: int = 200) -> FaceMesh:
    """The ``"flame"`` backend: FLAME fitted (:func:`fit_flame`) to the mediapipe mesh ``observed``; pose and
    camera are ``observed``'s, confidence is ``observed``'s times the fit's (same rule as the mediapipe one)."""
    verts, info = fit_flame(layer, observed.vertices, steps=steps)
    radius = float(np.sqrt(((observed.vertices - observed.vertices.mean(0)) ** 2).sum(1).mean()))
    conf = observed.confidence * math.exp(-math.sqrt(info["loss"][-1]) / (_CONF_SCALE * radius))
    return FaceMesh(verts, layer.faces, observed.pose, conf, "flame", observed.camera)


# --------------------------------------------------------------------------------------- measurement
#: Azimuth bins (|azimuth| upper edges, degrees) of :func:`evaluate_on_synthetic`'s table.
AZIMUTH_BINS = (20.0, 40.0, 60.0)


class MeshSurface:
    """Closest-point queries on a triangle mesh ``vertices (N, 3)``, ``faces (F, 3)``.

    Candidates are the triangles around each query's ``k`` nearest vertices (exact for the fine, smooth
    meshes used here); the k-d tree and the vertex-to-face table are built once.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, k: int = 8):
        import trimesh
        from scipy.spatial import cKDTree

        self.vertices = np.asarray(vertices, np.float64)
        self.faces = np.asarray(faces, np.int64)
        self.vertex_faces = trimesh.Trimesh(self.vertices, self.faces, process=False).vertex_faces  # -1 padded
        self.tree = cKDTree(self.vertices)
        self.k = k

    def closest(self, points: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Closest surface points ``(P, 3)`` and distances ``(P,)`` of ``points (P, 3)`` (``k`` overrides
        the number of nearest vertices whose triangles are searched)."""
        import trimesh

        points = np.asarray(points, np.float64)
        _, nearest = self.tree.query(points, k or self.k)
        cand = self.vertex_faces[nearest].reshape(len(points), -1)
        valid = cand >= 0
        tris = self.vertices[self.faces[np.where(valid, cand, 0)]]
        rep = np.broadcast_to(points[:, None], cand.shape + (3,))
        cp = trimesh.triangles.closest_point(tris.reshape(-1, 3, 3), rep.reshape(-1, 3)).reshape(rep.shape)
        dist = np.where(valid, np.linalg.norm(cp - points[:, None], axis=-1), np.inf)
        best = dist.argmin(1)
        rows = np.arange(len(points))
        return cp[rows, best], dist[rows, best]

    def align(self, points: np.ndarray, iterations: int = 15, tol: float = 1e-4) -> np.ndarray:
        """Similarity ICP: ``points (P, 3)`` moved by the rotation, uniform scale and translation that best
        fit them onto the surface (closest points re-found each iteration, until no point moves more than
        ``tol``); returns ``(P, 3)``."""
        points = np.asarray(points, np.float64)
        moved = points
        for _ in range(iterations):
            s, R, t = umeyama(points, self.closest(moved, k=3)[0])
            new = s * points @ R.T + t
            done = np.abs(new - moved).max() < tol
            moved = new
            if done:
                break
        return moved


def snap_to_surface(estimate: FaceMesh, surface: "MeshSurface", pose: dict | None = None,
                    camera: Cameras | None = None) -> FaceMesh:
    """A ground-truth face mesh in the estimate's topology, for the paper's estimated-vs-ground-truth ablation.

    ``estimate`` is fitted onto the true head ``surface`` (a :class:`MeshSurface` in the canonical frame; build
    it once per identity) by similarity ICP (:meth:`MeshSurface.align`), then every vertex moves to its closest
    surface point: geometry and placement are the truth's, while the topology (mediapipe's 468 vertices and
    triangles) stays the estimate's, so both arms of the ablation feed the model the same kind of mesh. ``pose`` / ``camera``: the
    true ones when known (default: the estimate's). Confidence 1, backend ``"ground_truth"``.
    """
    snapped = surface.closest(surface.align(estimate.vertices))[0]
    return FaceMesh(snapped.astype(np.float32), estimate.faces, dict(pose or estimate.pose), 1.0, "ground_truth",
                    camera if camera is not None else estimate.camera)


def render_synthetic_view(seed: int, azimuth: float, elevation: float = 0.0, image_size: int = 256):
    """A procedural identity photographed from one orbit camera.

    Returns ``(rgb (S, S, 3) uint8, head mesh, camera)``.
    """
    from gen3dface.synth.heads import build_head, sample_head_params
    from gen3dface.core.images import to_uint8
    from gen3dface.synth.render import render

    head = build_head(sample_head_params(seed))
    cam = orbit_cameras([float(azimuth)], float(elevation), image_size=image_size)
    return to_uint8(render(head, cam, ssaa=2)["rgb"][0, 0]), head, cam[0]


def head_surface(head) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and the faces of a :class:`gen3dface.synth.heads.HeadMesh` without the shirt collar."""
    from gen3dface.synth.heads import CLOTH

    f = head.faces.numpy()
    keep = (head.labels.numpy()[f] != CLOTH).all(1)
    return head.vertices.numpy().astype(np.float64), f[keep]


def _angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def evaluate_on_synthetic(n_identities: int = 20, azimuths=(-60, -45, -30, -15, 0, 15, 30, 45, 60),
                          elevations=(-30, 0, 30), image_size: int = 256, seed: int = 0,
                          backend: str = "mediapipe", **backend_kwargs) -> dict:
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
    from gen3dface.core.errors import NoFaceError
    from gen3dface.synth.heads import build_head, sample_head_params
    from gen3dface.core.images import to_uint8
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
            row.update(found=True, raw_err=float(d_raw.mean() / width), shape_err=float(d_shape.mean() / width),
                       yaw_err=_angle_diff(est.pose["yaw"], a), pitch_err=est.pose["pitch"] - e,
                       roll_err=est.pose["roll"], confidence=est.confidence)
            rows.append(row)
    table = [_summarise([r for r in rows if lo < abs(r["azimuth"]) <= hi or (lo == -1 and abs(r["azimuth"]) <= hi)],
                        f"|az| <= {hi:g}" if lo < 0 else f"{lo:g} < |az| <= {hi:g}")
             for lo, hi in zip((-1.0,) + AZIMUTH_BINS[:-1], AZIMUTH_BINS)]
    settings = {"n_identities": n_identities, "azimuths": list(map(float, azimuths)),
                "elevations": list(map(float, elevations)), "image_size": image_size, "backend": backend}
    return {"rows": rows, "table": table, "overall": _summarise(rows, "all"), "settings": settings}


def _summarise(rows: list[dict], name: str) -> dict:
    found = [r for r in rows if r["found"]]
    mean = lambda k, f=float: float(np.mean([f(r[k]) for r in found])) if found else float("nan")  # noqa: E731
    return {"views": name, "n": len(rows), "missed": len(rows) - len(found), "raw_err": mean("raw_err"),
            "shape_err": mean("shape_err"), "yaw_err": mean("yaw_err", abs), "pitch_err": mean("pitch_err", abs),
            "roll_err": mean("roll_err", abs), "confidence": mean("confidence")}


def format_table(result: dict) -> str:
    """:func:`evaluate_on_synthetic`'s table as aligned text (errors in head widths and degrees)."""
    head = (f"{'views':>16} {'n':>4} {'missed':>6} {'raw err (hw)':>12} {'shape err (hw)':>14} {'|yaw| deg':>9} "
            f"{'|pitch| deg':>11} {'|roll| deg':>10} {'conf':>5}")
    lines = [head, "-" * len(head)]
    for r in result["table"] + [result["overall"]]:
        lines.append(f"{r['views']:>16} {r['n']:>4} {r['missed']:>6} {r['raw_err']:>12.4f} {r['shape_err']:>14.4f} "
                     f"{r['yaw_err']:>9.2f} {r['pitch_err']:>11.2f} {r['roll_err']:>10.2f} {r['confidence']:>5.2f}")
    return "\n".join(lines)
