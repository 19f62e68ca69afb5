"""Photo -> the model's input: the aligned head crop as a tensor and the face mesh estimated from the photo.

Kept apart from :mod:`gen3dface.generation.pipeline` (which imports diffusers and the model) so that worker processes
preparing many photos (:func:`gen3dface.evaluation.protocols.run_eval`) import only what preparing needs.
"""

from __future__ import annotations

import numpy as np
import torch


def input_tensor(crop, mask: bool = True) -> torch.Tensor:
    """An :class:`gen3dface.faces.detect.AlignedCrop` as the model's input view ``(1, 3, S, S)`` in [-1, 1], the
    background made white (training crops of synthetic renders have white backgrounds)."""
    rgb = crop.image.astype(np.float32) / 255.0
    if mask:
        fg = crop.mask[..., None].astype(np.float32)
        rgb = rgb * fg + (1.0 - fg)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] * 2 - 1


def photo_condition(
    photo, size: int, mesh_backend: str = "mediapipe", mask: bool = True, source: bool = True
) -> dict:
    """The model's condition of a photo (path, array, PIL image): its head crop and face mesh, for a model of
    ``size`` px views: ``{"input": (1, 3, S, S) in [-1, 1], "crop": AlignedCrop, "mesh": FaceMesh, "camera": the
    input view's estimated camera in crop pixels (``()``-shaped Cameras, None when the mesh backend has none),
    "source": the same crop at ``SOURCE_SCALE`` times the size ``(1, 3, kS, kS)``, "source_camera": its camera,
    "notes": [str]}``. A reprojection model carries the photo into its views from ``"source"``
    (:data:`gen3dface.volume.reprojection.SOURCE_SCALE`); with ``source=False`` (a model that does not reproject)
    the larger crop is not made and both ``"source"`` keys are left out.
    Needs no model, so it can run in worker processes. Raises the package's errors for unreadable photos or no
    face."""
    import warnings

    from gen3dface.faces.detect import InputNote, align_crop, as_photo, find_face
    from gen3dface.mesh.estimate import estimate_mesh
    from gen3dface.volume.reprojection import SOURCE_SCALE, crop_cameras

    img = as_photo(photo)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputNote)
        face = find_face(img)
        crop = align_crop(img, face, size=size, mask=mask)
        big = align_crop(img, face, size=size * SOURCE_SCALE, mask=mask) if source else None
        mesh = estimate_mesh(img, mesh_backend)
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, InputNote)})
    out = {"input": input_tensor(crop, mask), "crop": crop, "mesh": mesh}
    crops = [("camera", crop)]
    if big is not None:
        out["source"] = input_tensor(big, mask)
        crops.append(("source_camera", big))
    for key, c in crops:
        out[key] = (
            None if mesh.camera is None else crop_cameras(mesh.camera, c.transform[None], c.image.shape[0])[0]
        )
    return {**out, "notes": notes}
