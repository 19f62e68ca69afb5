"""The face mesh every backend returns (:class:`FaceMesh`), mediapipe's face-mesh topology and the canonical
face template, and the two backends that need no model file: ``"mediapipe"`` and ``"ground_truth"``.

``"mediapipe"`` (:func:`mediapipe_mesh`): mediapipe's 478 landmarks (pixels x, y and relative depth z in the
same pixel scale) are lifted to 3D under a pinhole camera of assumed field of view (:func:`deperspective`) and
put into the canonical head frame of :mod:`gen3dface.core.cameras` by the similarity transform (Umeyama,
robustly reweighted; :mod:`gen3dface.mesh.align`) that best maps them onto :func:`face_template`. The
triangles are mediapipe's face-mesh tesselation (:func:`tesselation_triangles`). The 10 iris points (indices
468..477, from ``refine_landmarks``) are not part of the tesselation and sit on the eyeball, not the skin:
they are dropped from the mesh and from the alignment, so every backend's face mesh has 468 vertices.

``"ground_truth"`` (:func:`ground_truth_mesh`): the known mesh of a procedural head
(:mod:`gen3dface.synth.heads`), for the paper's mesh-prior ablation.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from gen3dface.core.cameras import DEFAULT_FOV_DEG, Cameras, intrinsics_from_fov, orbit_cameras
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.core.images import as_photo, to_uint8
from gen3dface.core.storage import MESH_FORMATS, atomic_path
from gen3dface.mesh.align import pose_from_rotation, robust_umeyama, umeyama

#: mediapipe landmarks covered by the tesselation; 468..477 are the iris points (dropped, see module doc).
MESH_POINTS = 468
#: The shipped canonical template (:func:`face_template`).
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "assets" / "face_template.npy"
#: Identities the shipped template averages (disjoint from the evaluation's seeds 0..999).
TEMPLATE_SEEDS = tuple(range(10_000, 10_008))
#: Confidence: RMS alignment residuals up to CONFIDENCE_FREE of the template's radius (differences between
#: people) cost nothing; beyond, confidence falls by 1/e per CONFIDENCE_SCALE.
CONFIDENCE_FREE, CONFIDENCE_SCALE = 0.10, 0.05


# --------------------------------------------------------------------------------------- the result
@dataclass
class FaceMesh:
    """An estimated face (or head) mesh in the canonical head frame.

    Attributes:
        vertices: ``(N, 3)`` float32, canonical head frame (+Y up, face looks +Z, +X subject's left).
        faces: ``(F, 3)`` int64, counter-clockwise seen from outside.
        pose: ``{"yaw", "pitch", "roll"}`` degrees of the input camera (convention: :mod:`gen3dface.mesh.align`).
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
        return {
            "backend": self.backend,
            "pose_deg": {k: round(float(v), 3) for k, v in self.pose.items()},
            "confidence": round(float(self.confidence), 4),
            "n_vertices": int(len(self.vertices)),
            "n_faces": int(len(self.faces)),
            "frame": "gen3dface canonical head frame: +Y up, face looks +Z, +X subject's left",
            "camera": self.camera[None].to_dict() if self.camera is not None else None,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``.obj``, ``.ply`` or ``.glb`` (by extension) atomically; returns the path."""
        path = Path(path)
        ext = check_mesh_path(path)
        with atomic_path(path) as tmp:
            self.to_trimesh().export(tmp, file_type=ext[1:])
        return path


def check_mesh_path(path: str | os.PathLike) -> str:
    """The lower-case extension of a mesh output path; :class:`InputError` when it is not a mesh format."""
    ext = Path(path).suffix.lower()
    if ext not in MESH_FORMATS:
        raise InputError(
            f"cannot write a mesh to {Path(path).name!r}: use one of the extensions {', '.join(MESH_FORMATS)}"
        )
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
    cliques = sorted(
        {tuple(sorted((a, b, c))) for a, b in FACEMESH_TESSELATION for c in neighbours[a] & neighbours[b]}
    )
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
        raise BackendUnavailable(
            f"face template missing at {TEMPLATE_PATH}; reinstall gen3dface or run "
            "gen3dface.mesh.facemesh.build_template(save=True)"
        )
    return np.load(TEMPLATE_PATH).astype(np.float32)


def build_template(seeds=TEMPLATE_SEEDS, image_size: int = 512, save: bool = False) -> np.ndarray:
    """Make the template ``(468, 3)``: frontal renders of procedural heads, mediapipe landmarks lifted
    onto the rendered depth, averaged over ``seeds``. ``save=True`` writes it to :data:`TEMPLATE_PATH`."""
    from gen3dface.faces.detect import find_face
    from gen3dface.synth.heads import build_head
    from gen3dface.synth.head_params import sample_head_params
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


# --------------------------------------------------------------------------------------- lifting landmarks to 3D
def deperspective(
    landmarks: np.ndarray, height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG
) -> np.ndarray:
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


# --------------------------------------------------------------------------------------- backends
def mediapipe_mesh(image, fov_deg: float = DEFAULT_FOV_DEG, face=None) -> FaceMesh:
    """The ``"mediapipe"`` backend (see :func:`gen3dface.mesh.estimate.estimate_mesh`); ``face``: an already
    found mediapipe :class:`gen3dface.faces.detect.Face` of ``image`` (found here when ``None``)."""
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
    return FaceMesh(
        verts, tesselation_triangles(), pose_from_rotation(R), _confidence(verts, template), "mediapipe", cam
    )


def _confidence(aligned: np.ndarray, template: np.ndarray) -> float:
    """``exp(-max(0, rel - 0.10) / 0.05)`` of ``rel``, the RMS distance of the aligned points from the
    template relative to the template's RMS radius. Shape differences between people (rel ~ 0.1) cost
    little; points that no rigidly placed face explains (a badly fitted profile, occlusion) cost a lot."""
    rms = np.sqrt(((aligned - template) ** 2).sum(1).mean())
    radius = np.sqrt(((template - template.mean(0)) ** 2).sum(1).mean())
    return float(np.exp(-max(0.0, rms / radius - CONFIDENCE_FREE) / CONFIDENCE_SCALE))


def ground_truth_mesh(head, camera: Cameras | None = None) -> FaceMesh:
    """The ``"ground_truth"`` backend: the whole procedural head of ``head`` (seed, params or mesh);
    the pose is ``camera``'s (zero when ``None``), confidence 1."""
    from gen3dface.synth.heads import HeadMesh, build_head
    from gen3dface.synth.head_params import HeadParams, sample_head_params

    if isinstance(head, bool) or head is None:
        raise InputError(
            "backend 'ground_truth' needs head= (a seed, HeadParams or HeadMesh of gen3dface.synth.heads)"
        )
    if isinstance(head, (int, np.integer)):
        head = sample_head_params(int(head))
    if isinstance(head, HeadParams):
        head = build_head(head)
    if not isinstance(head, HeadMesh):
        raise InputError(
            f"backend 'ground_truth': head must be a seed, HeadParams or HeadMesh, got {type(head).__name__}"
        )
    pose = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}
    if camera is not None:
        if camera.c2w.numel() != 16:
            raise InputError(
                f"backend 'ground_truth': give one camera, got a batch of shape {tuple(camera.shape)}"
            )
        camera = Cameras(camera.K.reshape(3, 3), camera.c2w.reshape(4, 4), camera.height, camera.width)
        pose = pose_from_rotation(camera.c2w[:3, :3].double().numpy())
    return FaceMesh(
        head.vertices.numpy().astype(np.float32),
        head.faces.numpy().astype(np.int64),
        pose,
        1.0,
        "ground_truth",
        camera,
    )
