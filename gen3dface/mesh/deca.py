"""DECA's coarse encoder: a photo to FLAME parameters to a FLAME mesh in the canonical head frame.

Gen3D-Face estimates its face geometry prior with DECA (Feng et al. 2021): a ResNet-50 regresses FLAME's
identity, expression and pose codes (plus albedo, an orthographic camera and spherical-harmonic light)
from a 224 x 224 face crop. This module re-implements the inference half of DECA's coarse branch so the
user's own ``deca_model.tar`` (licence-gated, from DECA's authors) loads with strict key matching::

    mesh = estimate_mesh("me.jpg", "flame", flame_model="generic_model.pkl", trust_pickle=True,
                         deca_model="deca_model.tar")            # -> FaceMesh, backend "deca"

Layout (DECA's ``decalib``): ``E_flame`` is ``ResnetEncoder(outsize=236)`` = ``encoder`` (torchvision-style
ResNet-50 without its classifier: ``conv1``, ``bn1``, ``layer1..4`` of bottlenecks with the stride on the
3x3 convolution, global average pooling -> 2048) and ``layers`` (``Linear(2048, 1024)``, ReLU,
``Linear(1024, 236)``), no output activation. The 236 outputs are, in order, shape 100, tex 50, exp 50,
pose 6 (global axis-angle 3, jaw axis-angle 3), cam 3 (orthographic scale, x and y translation), light 27
(9 SH coefficients x RGB). Input: RGB in [0, 1], no mean/std normalisation.

Preprocessing follows DECA's test-time crop (``TestData`` with the FAN 68-point detector): the square of
side ``int(1.25 * 1.1 * (w + h) / 2)`` centred on the 68 landmarks' bounding box (``w``, ``h``), warped
to 224 px bilinearly with black outside the photo. Here the box comes from gen3dface's face finder:
dlib's 68 points as they are, or mediapipe's jaw-line and eyebrow points (:data:`MP_BOX_POINTS`), whose crop
matches the one from dlib's 68 points on the two sample photos to within 4 % in side and 2 % in centre.
Like DECA, the warp does not low-pass a large photo before shrinking it to 224 px.
"""

from __future__ import annotations

import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gen3dface.core.cameras import DEFAULT_FOV_DEG, Cameras, intrinsics_from_fov
from gen3dface.core.errors import BackendUnavailable, InputError
from gen3dface.core.images import as_photo, check_input_file
from gen3dface.mesh.align import axis_angle_to_matrix, pose_from_rotation, rotation_from_pose
from gen3dface.mesh.facemesh import FaceMesh, face_template, mediapipe_mesh
from gen3dface.mesh.flame import CANONICAL_HEAD_WIDTH

#: DECA's code layout (``cfg.model.param_list`` and ``n_*`` of ``decalib/utils/config.py``), in order.
PARAM_SIZES = {"shape": 100, "tex": 50, "exp": 50, "pose": 6, "cam": 3, "light": 27}
N_PARAMS = sum(PARAM_SIZES.values())  # 236
#: DECA's input resolution (``cfg.dataset.image_size``) and crop rule (``TestData``: scale, 68-point margin).
IMAGE_SIZE = 224
CROP_SCALE, KPT68_MARGIN = 1.25, 1.1
#: DECA's deca_model.tar is about 430 MB; a file far larger is not one (and is not read)
MAX_DECA_BYTES = 4 * 2**30
#: mediapipe face-mesh points whose bounding box stands in for the 68-point one: the jaw line from ear to
#: ear (dlib 0..16) and the upper eyebrow edges (dlib 17..26); the rest of the 68 points lie inside.
MP_BOX_POINTS = (
    127,
    234,
    93,
    132,
    58,
    172,
    136,
    150,
    149,
    176,
    148,
    152,
    377,
    400,
    378,
    379,
    365,
    397,
    288,
    361,
    323,
    454,
    356,
    70,
    63,
    105,
    66,
    107,
    336,
    296,
    334,
    293,
    300,
)
#: Confidence (see :func:`deca_mesh`): free pose disagreement with mediapipe and its 1/e scale (degrees);
#: free RMS of the shape + expression codes (FLAME's units: standard deviations) and its 1/e scale.
_POSE_FREE_DEG, _POSE_SCALE_DEG = 10.0, 15.0
_CODE_FREE, _CODE_SCALE = 2.0, 1.0


# --------------------------------------------------------------------------------------- the network
class _Bottleneck(nn.Module):
    """ResNet bottleneck ``1x1 -> 3x3 (stride) -> 1x1 (x4)`` with a projection shortcut when the shape changes.

    ``(B, cin, H, W) -> (B, 4 width, H / stride, W / stride)``.
    """

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = 4 * width
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50Trunk(nn.Module):
    """ResNet-50 up to global average pooling: ``(B, 3, 224, 224) -> (B, 2048)``.

    Parameter names follow torchvision's (``conv1``, ``bn1``, ``layer{1..4}.{i}.conv{1,2,3}``,
    ``.bn{1,2,3}``, ``.downsample.{0,1}``), which is what DECA's checkpoint stores. DECA pools with
    ``AvgPool2d(7)``; at its 224 px input the last feature map is 7 x 7, so that is the global mean used here.
    """

    def __init__(self, blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(n):
                stage.append(_Bottleneck(cin, width, stride if b == 0 else 1))
                cin = 4 * width
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.out_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


class DecaEncoder(nn.Module):
    """DECA's ``E_flame``: ResNet-50 features ``(B, 2048)`` -> MLP -> codes ``(B, 236)``.

    Input ``(B, 3, 224, 224)`` RGB in [0, 1] (:func:`preprocess`); output split by :func:`decode_params`.
    """

    def __init__(self, n_params: int = N_PARAMS):
        super().__init__()
        self.encoder = ResNet50Trunk()
        self.layers = nn.Sequential(
            nn.Linear(self.encoder.out_features, 1024), nn.ReLU(), nn.Linear(1024, n_params)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.encoder(images))


def decode_params(vec: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
    """Split DECA codes ``(B, 236)`` (or ``(236,)``, treated as ``B = 1``) into a dict of tensors:
    ``shape (B, 100)``, ``tex (B, 50)``, ``exp (B, 50)``, ``pose (B, 6)`` (global axis-angle, jaw
    axis-angle; radians), ``cam (B, 3)`` (scale, tx, ty), ``light (B, 9, 3)``."""
    v = torch.as_tensor(vec, dtype=torch.float32)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] != N_PARAMS:
        raise InputError(f"DECA codes must have shape (B, {N_PARAMS}), got {tuple(v.shape)}")
    out, start = {}, 0
    for name, n in PARAM_SIZES.items():
        out[name] = v[:, start : start + n]
        start += n
    out["light"] = out["light"].reshape(-1, 9, 3)
    return out


# --------------------------------------------------------------------------------------- loading
def load_deca(path: str | os.PathLike) -> DecaEncoder:
    """Read ``E_flame`` from DECA's ``deca_model.tar`` into a :class:`DecaEncoder` (eval mode, float32, CPU).

    The file is opened with ``torch.load(weights_only=True)`` (tensors and plain containers only, no code).
    Every parameter and buffer must be present with DECA's shape; only BatchNorm's ``num_batches_tracked``
    counters (unused at inference) may be absent.

    Raises:
        :class:`BackendUnavailable` when the file does not exist; :class:`InputError` when it is not a
        DECA checkpoint (unreadable, no ``E_flame``, wrong or missing keys, wrong shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise BackendUnavailable(
            f"DECA checkpoint not found at {path}; download deca_model.tar from DECA's authors "
            "(github.com/YadiraF/DECA, after accepting the FLAME licence) and pass its path"
        )
    check_input_file(path, MAX_DECA_BYTES, "DECA checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds on foreign bytes; all mean the same
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"{path} is not a DECA checkpoint (torch.load refused it: {reason})") from None
    if not isinstance(ckpt, dict) or "E_flame" not in ckpt:
        have = ", ".join(map(str, list(ckpt)[:6])) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(
            f"{path} is not a DECA checkpoint: it has no 'E_flame' entry (found: {have or 'nothing'})"
        )
    state = ckpt["E_flame"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: 'E_flame' is not a state dict of tensors")
    with torch.device("meta"):
        model = DecaEncoder()
    expected = model.state_dict()
    state = dict(state)
    for k in expected:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (DECA: {tuple(expected[k].shape)})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or extra or wrong:
        parts = [
            f"{len(missing)} missing (e.g. {', '.join(missing[:3])})" if missing else "",
            f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})" if extra else "",
            f"{len(wrong)} of the wrong shape (e.g. {', '.join(wrong[:2])})" if wrong else "",
        ]
        raise InputError(
            f"{path}: 'E_flame' does not match DECA's ResNet-50 encoder: {'; '.join(p for p in parts if p)}"
        )
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


@lru_cache(maxsize=1)
def _cached(path: str, mtime_ns: int, size: int) -> DecaEncoder:
    return load_deca(path)


def cached_deca(path: str | os.PathLike) -> DecaEncoder:
    """:func:`load_deca`, remembering the last file (re-read when its size or modification time changes)."""
    p = Path(path)
    if not p.is_file():
        return load_deca(p)  # raises the missing-file error
    st = p.stat()
    return _cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


# --------------------------------------------------------------------------------------- preprocessing
def crop_square(face) -> tuple[np.ndarray, int]:
    """DECA's crop square for a :class:`gen3dface.faces.detect.Face`: centre ``(2,)`` (photo pixels, continuous
    coordinates) and integer side, from the 68-point box (dlib's points, or mediapipe's
    :data:`MP_BOX_POINTS`) as ``int(1.25 * 1.1 * (w + h) / 2)``. Other backends (5 key points only) use the
    detector box with DECA's rule for boxes: side ``1.25 (w + h) / 2``, centre moved down by 0.12 of it."""
    lm = np.asarray(face.landmarks, np.float64)
    if face.backend == "mediapipe" and len(lm) > max(MP_BOX_POINTS):
        pts = lm[list(MP_BOX_POINTS), :2]
    elif len(lm) == 68:
        pts = lm[:, :2]
    else:
        x0, y0, x1, y1 = np.asarray(face.box, np.float64)
        old = (x1 - x0 + y1 - y0) / 2
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2 + 0.12 * old]), int(old * CROP_SCALE)
    lo, hi = pts.min(0), pts.max(0)
    old = (hi - lo).sum() / 2 * KPT68_MARGIN
    return (lo + hi) / 2, int(old * CROP_SCALE)


def preprocess(image, face=None) -> tuple[torch.Tensor, np.ndarray]:
    """DECA's input for the largest face of ``image`` (path, Photo, PIL image or array).

    Returns:
        ``images (1, 3, 224, 224)`` float32 RGB in [0, 1], and ``transform (2, 3)``: the affine map from
        photo pixel indices to crop pixel indices (DECA maps the crop square's corners to 0 and 223).
    Raises:
        :class:`gen3dface.core.errors.NoFaceError` when no face is found (``face`` not given).
    """
    import cv2

    from gen3dface.faces.detect import find_face

    photo = as_photo(image)
    face = find_face(photo) if face is None else face
    centre, side = crop_square(face)
    side = max(side, 1)
    s = (IMAGE_SIZE - 1) / side
    corner = centre - 0.5 - side / 2  # continuous coordinates -> pixel indices
    M = np.array([[s, 0.0, -s * corner[0]], [0.0, s, -s * corner[1]]])
    rgb = photo.rgb.astype(np.float32) / 255.0
    crop = cv2.warpAffine(
        rgb,
        M,
        (IMAGE_SIZE, IMAGE_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0, 0.0, 0.0),
    )
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None], M


# --------------------------------------------------------------------------------------- FLAME and the camera
def check_layer(layer) -> None:
    """:class:`InputError` unless ``layer`` (a :class:`gen3dface.mesh.flame.FlameLayer`) has the 100 shape and
    50 expression components and the 5 joints DECA's codes drive."""
    if layer.n_shape < PARAM_SIZES["shape"] or layer.n_expression < PARAM_SIZES["exp"] or layer.n_joints != 5:
        raise InputError(
            f"DECA needs FLAME 2020 (>= 100 shape and >= 50 expression components, 5 joints); the "
            f"FLAME file has {layer.n_shape}, {layer.n_expression} and {layer.n_joints}"
        )


def _full_pose(pose6: torch.Tensor, with_global: bool) -> torch.Tensor:
    """DECA's ``(B, 6)`` pose to FLAME's ``(B, 15)``: root (or zero), neck 0, jaw, eyes 0."""
    full = pose6.new_zeros(pose6.shape[0], 15)
    if with_global:
        full[:, :3] = pose6[:, :3]
    full[:, 6:9] = pose6[:, 3:6]
    return full


def flame_from_codes(codes: dict[str, torch.Tensor], layer) -> dict:
    """FLAME from DECA codes (batch of one), placed in the canonical head frame.

    The head is built with DECA's shape, expression and jaw pose but without the global rotation, scaled by
    ``CANONICAL_HEAD_WIDTH / width of FLAME's rest head`` (:func:`gen3dface.mesh.flame.fit_flame`'s rule) and moved so
    FLAME's nose tip (the rest head's most forward vertex) sits on the face template's (mediapipe point 1).
    The global rotation becomes the pose of the camera: DECA's camera looks along FLAME's -Z with image
    x = +X and y = -Y (``R_0`` = :func:`gen3dface.mesh.align.rotation_from_pose` ``(0, 0, 0)``), so in the
    head's own frame the camera-to-world rotation is ``R_g^T R_0``.

    Returns:
        ``vertices (N, 3)`` float32 canonical, ``posed (N, 3)`` FLAME frame with the global rotation (what
        DECA's camera projects), ``scale`` (canonical units per metre), ``rotation (3, 3)`` camera-to-head,
        ``pose`` {yaw, pitch, roll} degrees.
    """
    check_layer(layer)
    shape, exp, pose6 = codes["shape"][:1], codes["exp"][:1], codes["pose"][:1]
    with torch.no_grad():
        own = layer(shape=shape, expression=exp, pose=_full_pose(pose6, False))[0].double().numpy()
        posed = layer(shape=shape, expression=exp, pose=_full_pose(pose6, True))[0].double().numpy()
    rest = layer.v_template.double().numpy()
    scale = CANONICAL_HEAD_WIDTH / float(np.ptp(rest[:, 0]))
    nose = int(rest[:, 2].argmax())
    verts = scale * own + (face_template()[1].astype(np.float64) - scale * own[nose])
    R_g = axis_angle_to_matrix(pose6[0, :3].double()).numpy()
    R = R_g.T @ rotation_from_pose(0.0, 0.0, 0.0)
    return {
        "vertices": verts.astype(np.float32),
        "posed": posed,
        "scale": scale,
        "rotation": R,
        "pose": pose_from_rotation(R),
    }


def deca_projection(posed: np.ndarray, cam: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """DECA's orthographic projection of FLAME-frame points ``(P, 3)`` with ``cam = (s, tx, ty)``, taken back
    from the 224 px crop to the photo: pixels ``(P, 2)`` in continuous coordinates (pixel centres at .5)."""
    s, tx, ty = (float(c) for c in cam)
    half = IMAGE_SIZE / 2
    crop = np.stack([(s * (posed[:, 0] + tx) + 1) * half, (1 - s * (posed[:, 1] + ty)) * half], 1)
    A, b = transform[:, :2], transform[:, 2]
    return (crop - b) @ np.linalg.inv(A).T + 0.5


def deca_camera(
    placed: dict,
    cam: np.ndarray,
    transform: np.ndarray,
    height: int,
    width: int,
    fov_deg: float = DEFAULT_FOV_DEG,
) -> Cameras | None:
    """A pinhole :class:`Cameras` (one camera, assumed field of view) that sees the canonical mesh as DECA's
    orthographic camera sees the posed head: rotation ``placed["rotation"]``, distance chosen so the
    magnification at the mesh's centroid equals DECA's, centroid projected where DECA puts it. ``None``
    when DECA's scale is not positive (no meaningful camera)."""
    if not float(cam[0]) > 0:
        return None
    K = intrinsics_from_fov(fov_deg, height, width).double().numpy()
    f, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    photo_per_crop = 1.0 / float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    magnification = float(cam[0]) * IMAGE_SIZE / 2 * photo_per_crop / placed["scale"]  # px per canonical unit
    depth = f / magnification
    centroid = placed["vertices"].astype(np.float64).mean(0)
    u, v = deca_projection(placed["posed"].mean(0, keepdims=True), cam, transform)[0]
    in_camera = depth * np.array([(u - cx) / f, (v - cy) / f, 1.0])
    c2w = np.eye(4)
    c2w[:3, :3] = placed["rotation"]
    c2w[:3, 3] = centroid - placed["rotation"] @ in_camera
    return Cameras(
        torch.tensor(K, dtype=torch.float32), torch.tensor(c2w, dtype=torch.float32), height, width
    )


def _rotation_angle_deg(A: np.ndarray, B: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip((np.trace(A.T @ B) - 1) / 2, -1.0, 1.0))))


def deca_mesh(image, layer, encoder: DecaEncoder, fov_deg: float = DEFAULT_FOV_DEG):
    """The DECA backend: photo -> crop -> :class:`DecaEncoder` -> FLAME (:func:`flame_from_codes`) -> FaceMesh.

    Args:
        image: path, Photo, PIL image or ``(H, W, 3)`` array; the largest face is used.
        layer: :class:`gen3dface.mesh.flame.FlameLayer` of FLAME 2020.
        encoder: :func:`load_deca`'s encoder.
        fov_deg: assumed vertical field of view for the returned camera.
    Returns:
        :class:`gen3dface.mesh.facemesh.FaceMesh` with FLAME's ``N`` vertices (5023) and faces, backend
        ``"deca"``, pose from DECA's global rotation, camera from :func:`deca_camera`, and confidence

        ``c_mp * exp(-max(0, d - 10) / 15) * exp(-max(0, r - 2) / 1)``

        where ``c_mp`` is the mediapipe backend's confidence on the same face (does a rigidly placed face
        explain the landmarks), ``d`` the angle in degrees between DECA's and mediapipe's head rotations
        (two independent estimates that should agree) and ``r`` the RMS of DECA's shape and expression
        codes (FLAME's units are standard deviations, so codes far beyond 2 are implausible). 0 when DECA's
        camera scale is not positive.
    """
    from gen3dface.faces.detect import find_face

    check_layer(layer)
    photo = as_photo(image)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # a MultipleFacesWarning must reach the caller every time
        face = find_face(photo)
    images, transform = preprocess(photo, face)
    with torch.inference_mode():
        codes = decode_params(encoder(images))
    placed = flame_from_codes(codes, layer)
    h, w = photo.size
    cam = codes["cam"][0].double().numpy()
    camera = deca_camera(placed, cam, transform, h, w, fov_deg)
    observed = mediapipe_mesh(photo, fov_deg, face=face)
    disagreement = _rotation_angle_deg(placed["rotation"], observed.camera.c2w[:3, :3].double().numpy())
    rms = float(torch.cat([codes["shape"][0], codes["exp"][0]]).pow(2).mean().sqrt())
    conf = (
        (
            observed.confidence
            * math.exp(-max(0.0, disagreement - _POSE_FREE_DEG) / _POSE_SCALE_DEG)
            * math.exp(-max(0.0, rms - _CODE_FREE) / _CODE_SCALE)
        )
        if camera is not None
        else 0.0
    )
    if not np.isfinite(conf):
        conf = 0.0
    return FaceMesh(placed["vertices"], layer.faces, placed["pose"], float(conf), "deca", camera)
