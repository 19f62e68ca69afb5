"""FLAME 2020: reading the user's licence-gated ``generic_model.pkl`` without running its code, the FLAME
forward pass (:class:`FlameLayer`), and the ``"flame"`` backend: FLAME fitted to the mediapipe mesh
(:func:`fit_flame`, :func:`flame_mesh`). DECA's encoder drives the same layer in :mod:`gen3dface.mesh.deca`.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.core.images import read_input_file
from gen3dface.mesh.align import axis_angle_to_matrix
from gen3dface.mesh.facemesh import CONFIDENCE_SCALE, FaceMesh

#: Where the FLAME model is looked for when ``flame_model`` is not given.
FLAME_ENV = "GEN3DFACE_FLAME_MODEL"
#: FLAME 2020's generic_model.pkl is about 55 MB; a file far larger is not one (and is not read whole)
MAX_FLAME_BYTES = 1 * 2**30


# --------------------------------------------------------------------------------------- reading the model file
class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch`` while unpickling FLAME files (chumpy itself is not needed): keeps
    the pickled state, whose ``"x"`` entry is the array."""

    def __setstate__(self, state):
        self.state = state


#: Globals a FLAME pickle may name: numpy arrays, scipy sparse matrices, chumpy arrays, nothing else.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("scipy.sparse.csc", "csc_matrix"),
    ("scipy.sparse._csc", "csc_matrix"),
    ("scipy.sparse.csr", "csr_matrix"),
    ("scipy.sparse._csr", "csr_matrix"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
    ("__builtin__", "set"),
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
            raise InputError(
                f"FLAME entry {key!r} is a derived chumpy expression; convert the file to numpy first"
            )
        value = value.state["x"]
    if hasattr(value, "toarray"):
        value = value.toarray()
    return np.asarray(value)


def flame_path(flame_model: str | os.PathLike | None) -> Path:
    """The FLAME model's path: ``flame_model``, else the ``GEN3DFACE_FLAME_MODEL`` environment variable
    (:class:`BackendUnavailable` when neither is set)."""
    path = flame_model or os.environ.get(FLAME_ENV)
    if not path:
        raise BackendUnavailable(
            f"the FLAME backend needs FLAME 2020's generic_model.pkl (licence-gated: register at "
            f"flame.is.tue.mpg.de); pass flame_model=PATH or set {FLAME_ENV}"
        )
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
        raise BackendUnavailable(
            f"FLAME model not found at {path}; download FLAME 2020 (generic_model.pkl) from "
            "flame.is.tue.mpg.de after accepting its licence"
        )
    if not trust_pickle:
        raise BackendUnavailable(
            f"{path.name} is a pickle, and loading a pickle can run arbitrary code; pass "
            "trust_pickle=True (CLI: --trust-pickle) only for the file you downloaded from FLAME"
        )
    try:
        raw = _FlameUnpickler(
            io.BytesIO(read_input_file(path, MAX_FLAME_BYTES, "FLAME model")), encoding="latin1"
        ).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        RecursionError,
        MemoryError,
    ) as e:
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
    ok = (
        m["v_template"].shape == (n, 3)
        and m["shapedirs"].ndim == 3
        and m["shapedirs"].shape[:2] == (n, 3)
        and m["posedirs"].shape == (n, 3, 9 * (j - 1))
        and m["J_regressor"].shape == (j, n)
        and m["weights"].shape == (n, j)
        and m["f"].ndim == 2
        and m["f"].shape[1] == 3
        and bool((m["parents"][1:] < np.arange(1, j)).all())
    )
    if not ok:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in m.items())
        raise InputError(f"{path} has inconsistent FLAME arrays: {shapes}")
    _check_flame_values(m, path)


def _check_flame_values(m: dict[str, np.ndarray], path: Path) -> None:
    """Refuse numbers no FLAME model has: non-finite entries, a template of no extent, triangles naming
    vertices that do not exist, vertices bound to no joint, joints regressed from nothing."""
    n = len(m["v_template"])
    problem = None
    if not all(np.issubdtype(v.dtype, np.number) for v in m.values()):
        problem = "non-numeric arrays"
    elif not all(np.isfinite(v).all() for v in m.values()):
        problem = "NaN or infinite entries"
    elif n < 4 or float(np.ptp(m["v_template"], axis=0).min()) <= 0:
        problem = "a template mesh of no extent (all its vertices on one plane or point)"
    elif m["f"].size == 0 or int(m["f"].min()) < 0 or int(m["f"].max()) >= n:
        problem = f"triangles whose vertex indices are not in 0..{n - 1}"
    elif float(np.abs(m["weights"].sum(1)).min()) < 1e-6:
        problem = "vertices bound to no joint (skinning weights summing to 0)"
    elif float(np.abs(m["J_regressor"]).sum(1).min()) < 1e-12:
        problem = "joints regressed from no vertex"
    if problem:
        raise InputError(f"{path} is not a usable FLAME model: it has {problem}")


# --------------------------------------------------------------------------------------- the forward pass
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

    def forward(
        self,
        shape: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
    ) -> torch.Tensor:
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
            coeffs[:, : shape.shape[1]] = shape
        if expression is not None:
            coeffs[:, self.n_shape : self.n_shape + expression.shape[1]] = expression
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


# --------------------------------------------------------------------------------------- the fit to a face mesh
#: Canonical head width (2 x the mean ``skull_width`` of :mod:`gen3dface.synth.heads`): FLAME's rest head is scaled
#: to it by :func:`fit_flame` and by the DECA backend (:mod:`gen3dface.mesh.deca`).
CANONICAL_HEAD_WIDTH = 2 * 0.53


def fit_flame(
    layer: FlameLayer,
    target: np.ndarray,
    steps: int = 200,
    n_shape: int = 50,
    shape_prior: float = 1e-4,
    lr: float = 0.01,
) -> tuple[np.ndarray, dict]:
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
    basis = layer.shapedirs[
        :, :, : min(n_shape, layer.n_shape)
    ]  # rest pose: no correctives, skinning is identity
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
    info = {
        "loss": np.array(losses),
        "scale": log_s.exp().item(),
        "rotation": axis_angle_to_matrix(rot).detach().numpy(),
        "translation": t.detach().numpy(),
        "shape": beta.detach().numpy(),
    }
    return w.numpy().astype(np.float32), info


def flame_mesh(observed: FaceMesh, layer: FlameLayer, steps: int = 200) -> FaceMesh:
    """The ``"flame"`` backend: FLAME fitted (:func:`fit_flame`) to the mediapipe mesh ``observed``; pose and
    camera are ``observed``'s, confidence is ``observed``'s times the fit's (same rule as the mediapipe one)."""
    verts, info = fit_flame(layer, observed.vertices, steps=steps)
    radius = float(np.sqrt(((observed.vertices - observed.vertices.mean(0)) ** 2).sum(1).mean()))
    conf = observed.confidence * math.exp(-math.sqrt(info["loss"][-1]) / (CONFIDENCE_SCALE * radius))
    return FaceMesh(verts, layer.faces, observed.pose, conf, "flame", observed.camera)
