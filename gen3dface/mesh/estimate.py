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
    ``"mediapipe"``: mediapipe's landmarks lifted to 3D and aligned to the canonical face template
    (:func:`gen3dface.mesh.facemesh.mediapipe_mesh`); 468 vertices, mediapipe's tesselation.
    ``"flame"``: the FLAME 2020 model (the user's licence-gated ``generic_model.pkl``), fitted to the
    mediapipe mesh (rigid + scale + the first shape coefficients; :mod:`gen3dface.mesh.flame`), or, with
    ``deca_model=`` (DECA's ``deca_model.tar``), driven by DECA's coarse encoder as in the paper
    (:mod:`gen3dface.mesh.deca`; the result's backend is ``"deca"``).
    ``"ground_truth"``: the known mesh of a procedural head (:mod:`gen3dface.synth.heads`), for the paper's
    mesh-prior ablation (:func:`gen3dface.mesh.facemesh.ground_truth_mesh`).

Every backend returns a :class:`gen3dface.mesh.facemesh.FaceMesh` in the canonical head frame of
:mod:`gen3dface.core.cameras`, with the pose convention of :mod:`gen3dface.mesh.align`.
"""

from __future__ import annotations

import os

from gen3dface.core.cameras import DEFAULT_FOV_DEG, Cameras, check_fov
from gen3dface.core.errors import InputError
from gen3dface.mesh.deca import cached_deca, deca_mesh
from gen3dface.mesh.facemesh import FaceMesh, ground_truth_mesh, mediapipe_mesh
from gen3dface.mesh.flame import FlameLayer, flame_mesh, flame_path

BACKENDS = ("mediapipe", "flame", "ground_truth")


def estimate_mesh(
    image,
    backend: str = "mediapipe",
    *,
    fov_deg: float = DEFAULT_FOV_DEG,
    head=None,
    camera: Cameras | None = None,
    flame_model: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    deca_model: str | os.PathLike | None = None,
    fit_steps: int = 200,
) -> FaceMesh:
    """Estimate the face mesh of the largest face in ``image``, in the canonical head frame.

    Args:
        image: a path, :class:`gen3dface.core.images.Photo`, PIL image or ``(H, W, 3)`` array; ignored (may be
            ``None``) by ``"ground_truth"``.
        backend: ``"mediapipe"`` (offline default), ``"flame"`` or ``"ground_truth"``.
        fov_deg: assumed vertical field of view of the photo (mediapipe and flame backends).
        head: ``"ground_truth"`` only: the identity, as a seed (int), :class:`gen3dface.synth.head_params.HeadParams`
            or a built :class:`gen3dface.synth.heads.HeadMesh`.
        camera: ``"ground_truth"`` only: the input view's camera (one camera), which sets the pose.
        flame_model: ``"flame"`` only: path of FLAME 2020's ``generic_model.pkl`` (default: the
            ``GEN3DFACE_FLAME_MODEL`` environment variable).
        trust_pickle: ``"flame"`` only: must be ``True`` to unpickle the FLAME file (pickles can run code;
            only pass it for a file you downloaded yourself from the FLAME website).
        deca_model: ``"flame"`` only: DECA's ``deca_model.tar``. When given, FLAME's shape, expression,
            jaw and head pose come from DECA's coarse encoder (:mod:`gen3dface.mesh.deca`, as the paper does)
            instead of the fit to the mediapipe mesh; the result's backend is ``"deca"``.
        fit_steps: ``"flame"`` without ``deca_model`` only: optimisation steps of
            :func:`gen3dface.mesh.flame.fit_flame`.
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
    fov_deg = check_fov(fov_deg)  # before any file is read or face searched for
    if backend == "flame":
        layer = FlameLayer.from_file(flame_path(flame_model), trust_pickle=trust_pickle)
        if deca_model is not None:
            return deca_mesh(image, layer, cached_deca(deca_model), fov_deg)
        return flame_mesh(mediapipe_mesh(image, fov_deg), layer, steps=fit_steps)
    return mediapipe_mesh(image, fov_deg)
