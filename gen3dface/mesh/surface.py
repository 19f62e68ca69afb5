"""Closest points on a triangle mesh and similarity ICP onto it (:class:`MeshSurface`); a ground-truth face
mesh in an estimate's topology (:func:`snap_to_surface`, for the paper's estimated-vs-ground-truth ablation);
the skin surface of a procedural head (:func:`head_surface`)."""

from __future__ import annotations

import numpy as np

from gen3dface.core.cameras import Cameras
from gen3dface.mesh.align import umeyama
from gen3dface.mesh.facemesh import FaceMesh


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
        self.vertex_faces = trimesh.Trimesh(
            self.vertices, self.faces, process=False
        ).vertex_faces  # -1 padded
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


def snap_to_surface(
    estimate: FaceMesh, surface: MeshSurface, pose: dict | None = None, camera: Cameras | None = None
) -> FaceMesh:
    """A ground-truth face mesh in the estimate's topology, for the paper's estimated-vs-ground-truth ablation.

    ``estimate`` is fitted onto the true head ``surface`` (a :class:`MeshSurface` in the canonical frame; build
    it once per identity) by similarity ICP (:meth:`MeshSurface.align`), then every vertex moves to its closest
    surface point: geometry and placement are the truth's, while the topology (mediapipe's 468 vertices and
    triangles) stays the estimate's, so both arms of the ablation feed the model the same kind of mesh.
    ``pose`` / ``camera``: the true ones when known (default: the estimate's). Confidence 1, backend
    ``"ground_truth"``.
    """
    snapped = surface.closest(surface.align(estimate.vertices))[0]
    return FaceMesh(
        snapped.astype(np.float32),
        estimate.faces,
        dict(pose or estimate.pose),
        1.0,
        "ground_truth",
        camera if camera is not None else estimate.camera,
    )


def head_surface(head) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and the faces of a :class:`gen3dface.synth.heads.HeadMesh` without the shirt collar."""
    from gen3dface.synth.head_params import CLOTH

    f = head.faces.numpy()
    keep = (head.labels.numpy()[f] != CLOTH).all(1)
    return head.vertices.numpy().astype(np.float64), f[keep]
