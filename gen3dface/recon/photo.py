"""The input photo on the reconstructed head: colour the mesh's vertices from the photo at its estimated camera.

The generated views are small and soft, so a head fitted to them alone does not look like the person from the
front. The photo itself, warped to a larger head crop (:func:`input_photo_view`) and seen through the camera the
face mesh estimate gives it (:class:`gen3dface.mesh.facemesh.FaceMesh` ``.camera``, in the same head frame as
the generated views' cameras), shows exactly the part of the head that matters most. :func:`paint_from_photo`:

1. splits the triangles the photo sees into smaller ones until their edges span at most ``max_edge_px`` photo
   pixels (red-green refinement: the mesh stays watertight), so vertex colours can hold the photo's detail;
2. rasterises the mesh in the photo camera (:func:`gen3dface.synth.raster.rasterize`): a vertex is *seen* when
   it lies in the picture, in front of the camera, no farther than the nearest surface at its pixel (depth
   test) and with its normal facing the camera;
3. blends the photo's colour over the fitted colour with a weight that rises smoothly with the cosine between
   the normal and the direction to the camera and with the distance (in the photo) from the edge of its
   foreground mask and from the mesh's occluding contours, so there is no seam.

Vertices the photo does not see keep their fitted colours. Beside the generated views on disk the photo lives in
``input_photo.png`` + ``input_photo_mask.png`` + ``input_camera.json`` (:func:`save_photo_view`,
:func:`load_photo_view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras
from gen3dface.core.errors import InputError

#: File names of the input photo beside a views folder.
PHOTO_FILE, PHOTO_MASK_FILE, PHOTO_CAMERA_FILE = (
    "input_photo.png",
    "input_photo_mask.png",
    "input_camera.json",
)
#: Side (pixels) of the input photo's head crop written beside the generated views.
PHOTO_SIZE = 512


@dataclass
class PhotoView:
    """The input photo as a posed view.

    Attributes:
        image: ``(H, W, 3)`` uint8 head crop of the photo.
        mask: ``(H, W)`` float32 foreground in [0, 1] (0 outside the photo).
        camera: ``()``-shaped :class:`Cameras` of size ``H x W`` in the canonical head frame.
    """

    image: np.ndarray
    mask: np.ndarray
    camera: Cameras

    def __post_init__(self):
        H, W = self.image.shape[:2]
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.mask.shape != (H, W):
            raise InputError(
                f"input photo must be (H, W, 3) with an (H, W) mask, got {self.image.shape}, {self.mask.shape}"
            )
        cam = self.camera
        if cam.K.numel() != 9:
            raise InputError(f"the input photo needs one camera, got a batch of shape {tuple(cam.shape)}")
        cam = Cameras(cam.K.reshape(3, 3).float(), cam.c2w.reshape(4, 4).float(), cam.height, cam.width)
        if (cam.height, cam.width) != (H, W):
            if abs(H / W - cam.height / cam.width) > 1e-3:
                raise InputError(f"input photo is {W}x{H} pixels but its camera is {cam.width}x{cam.height}")
            cam = cam.resized(H, W)
        self.camera = cam


def input_photo_view(photo, crop, camera: Cameras, size: int = PHOTO_SIZE) -> PhotoView:
    """The photo's head crop at ``size`` px and its camera.

    Args:
        photo: the photo (path, array, :class:`gen3dface.core.images.Photo`).
        crop: its :class:`gen3dface.faces.detect.AlignedCrop` (the model's input view, any size): the same
            square of the photo is warped again at ``size`` px; the foreground is the photo's alpha when it has
            one, else ``crop.mask`` upsampled.
        camera: the photo's estimated camera (``FaceMesh.camera``, photo pixels).
    """
    import cv2

    from gen3dface.faces.detect import warp_quad
    from gen3dface.volume.reprojection import crop_cameras

    rgb, transform, inside, alpha = warp_quad(photo, crop.quad, size)
    if alpha is None:
        up = cv2.resize(crop.mask.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        alpha = up * inside
    cam = crop_cameras(camera, transform[None], size)[0]
    return PhotoView(rgb, np.clip(alpha, 0, 1).astype(np.float32), cam)


def save_photo_view(view: PhotoView, folder) -> list[Path]:
    """Write ``input_photo.png``, ``input_photo_mask.png`` and ``input_camera.json`` into ``folder`` (atomically)."""
    from gen3dface.core.images import save_png

    p = Path(folder)
    save_png(p / PHOTO_FILE, view.image)
    save_png(p / PHOTO_MASK_FILE, (view.mask * 255 + 0.5).astype(np.uint8))
    view.camera[None].save(p / PHOTO_CAMERA_FILE)
    return [p / PHOTO_FILE, p / PHOTO_MASK_FILE, p / PHOTO_CAMERA_FILE]


def load_photo_view(folder) -> PhotoView | None:
    """The input photo beside a views folder, or ``None`` when ``input_camera.json`` is not there.

    The mask is ``input_photo_mask.png``, else the photo's alpha, else the whole picture.
    """
    from gen3dface.core.images import load_image

    p = Path(folder)
    if not (p / PHOTO_CAMERA_FILE).is_file():
        return None
    if not (p / PHOTO_FILE).is_file():
        raise InputError(
            f"{p} has {PHOTO_CAMERA_FILE} but no {PHOTO_FILE}; add the photo or remove the camera file"
        )
    cam = Cameras.load(p / PHOTO_CAMERA_FILE)
    img = load_image(p / PHOTO_FILE)
    mask = img.alpha if img.alpha is not None else np.ones(img.rgb.shape[:2], np.float32)
    if (p / PHOTO_MASK_FILE).is_file():
        m = load_image(p / PHOTO_MASK_FILE)
        mask = m.rgb.astype(np.float32).mean(-1) / 255.0
        if mask.shape != img.rgb.shape[:2]:
            raise InputError(f"{p / PHOTO_MASK_FILE} is not the size of {p / PHOTO_FILE}")
    return PhotoView(img.rgb, mask.astype(np.float32), cam)


# --------------------------------------------------------------------------------------- geometry helpers
def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _project(view: PhotoView, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(N, 2)`` and camera depths ``(N,)`` of ``vertices (N, 3)`` in the photo."""
    uv, z = view.camera.project(torch.as_tensor(vertices, dtype=torch.float32))
    return uv.numpy().astype(np.float64), z.numpy().astype(np.float64)


def _sample(maps: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(N, C)`` of ``maps (H, W, C)`` at pixels ``uv (N, 2)`` (border values outside)."""
    H, W = maps.shape[:2]
    t = torch.as_tensor(maps, dtype=torch.float32).permute(2, 0, 1)[None]
    g = torch.as_tensor(uv, dtype=torch.float32) / torch.tensor([W, H]) * 2 - 1
    out = F.grid_sample(t, g[None, None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T.numpy().astype(np.float64)


def _depth_map(view: PhotoView, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Camera depth ``(H, W)`` of the nearest front-facing surface at each pixel centre (``inf`` where none)."""
    from gen3dface.synth.raster import barycentrics, rasterize, take

    H, W = view.camera.height, view.camera.width
    uv, z = view.camera.project(torch.as_tensor(vertices, dtype=torch.float32))
    screen = torch.cat([uv, z[:, None]], 1)
    tris = torch.as_tensor(faces, dtype=torch.long)
    face = rasterize(screen, tris, torch.zeros(len(tris), dtype=torch.long), 1, H, W)[0].reshape(-1)
    hit = (face >= 0).nonzero().squeeze(1)
    pix = torch.stack([hit % W, hit // W], 1).float() + 0.5
    _, depth = barycentrics(screen, take(tris, face[hit]), pix)
    out = torch.full((H * W,), float("inf"))
    out[hit] = depth
    return out.view(H, W).numpy()


def _edge_distance(mask: np.ndarray, depth: np.ndarray, jump: float) -> np.ndarray:
    """Distance ``(H, W)`` in pixels from each pixel to the nearest edge: background of ``mask``, the picture's
    border, or a jump of more than ``jump`` in ``depth`` between neighbouring pixels (an occluding contour)."""
    import cv2

    keep = mask > 0.5
    d = np.where(np.isfinite(depth), depth, 1e6)
    for axis in (0, 1):
        step = np.abs(np.diff(d, axis=axis)) > jump
        lo, hi = [slice(None)] * 2, [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        keep[tuple(lo)] &= ~step
        keep[tuple(hi)] &= ~step
    fg = np.pad(keep.astype(np.uint8), 1)
    return cv2.distanceTransform(fg, cv2.DIST_L2, 5)[1:-1, 1:-1].astype(np.float32)


def _refine(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, chosen: np.ndarray):
    """Split ``chosen (F,)`` triangles into four (red-green refinement: neighbours that share one split edge are
    halved, those that share two are split too), so no vertex sits on another triangle's edge. New vertices are
    edge midpoints with mean colours; the old vertices keep their indices. Returns ``vertices, faces, colors``."""
    n = len(vertices)
    edges = np.sort(np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 1), -1)  # (F, 3, 2)
    keys, inv = np.unique(edges[..., 0].astype(np.int64) * n + edges[..., 1], return_inverse=True)
    inv = inv.reshape(-1, 3)  # edge k of a face joins its corners k and k + 1
    split = np.zeros(len(keys), bool)
    split[inv[chosen].ravel()] = True
    while True:
        count = split[inv].sum(1)
        two = count == 2
        if not two.any():
            break
        split[inv[two].ravel()] = True
    sel = np.nonzero(split)[0]
    mid = np.full(len(keys), -1, np.int64)
    mid[sel] = n + np.arange(len(sel))
    a, b = keys[sel] // n, keys[sel] % n
    vertices = np.concatenate([vertices, (vertices[a] + vertices[b]) / 2])
    colors = np.concatenate([colors, (colors[a] + colors[b]) / 2])
    m = mid[inv]  # (F, 3) midpoint of each edge, -1 where not split
    f0, f1, f2 = faces.T
    full = count == 3
    quad = [np.stack(t, 1)[full] for t in ((f0, m[:, 0], m[:, 2]), (m[:, 0], f1, m[:, 1]))]
    quad += [np.stack(t, 1)[full] for t in ((m[:, 2], m[:, 1], f2), (m[:, 0], m[:, 1], m[:, 2]))]
    one = np.nonzero(count == 1)[0]
    k = split[inv[one]].argmax(1)  # which edge: rotate the face so it is the edge from corner 0 to 1
    g = np.stack([faces[one, k], faces[one, (k + 1) % 3], faces[one, (k + 2) % 3]], 1)
    mk = m[one, k]
    halves = [np.stack([g[:, 0], mk, g[:, 2]], 1), np.stack([mk, g[:, 1], g[:, 2]], 1)]
    faces = np.concatenate([faces[count == 0], *quad, *halves])
    return vertices, faces, colors


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    c = vertices[faces]
    n = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def refine_seen(
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray,
    view: PhotoView,
    max_edge_px: float = 2.0,
    rounds: int = 2,
    max_vertices: int = 600_000,
):
    """Split the triangles that face the photo camera, lie in its foreground and span more than ``max_edge_px``
    photo pixels, ``rounds`` times at most (each halves their edges) and while the mesh stays under
    ``max_vertices``. ``vertices (N, 3)``, ``faces (F, 3)``, ``colors (N, C)`` float -> the same, refined."""
    eye = view.camera.centers.numpy().astype(np.float64)
    for _ in range(rounds):
        uv, z = _project(view, vertices)
        H, W = view.mask.shape
        in_pic = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & (z > 0)
        fg = np.zeros(len(vertices), bool)
        ij = np.clip(uv[in_pic].astype(np.int64), 0, [W - 1, H - 1])
        fg[in_pic] = view.mask[ij[:, 1], ij[:, 0]] > 0.05
        centre = vertices[faces].mean(1)
        facing = (_face_normals(vertices, faces) * (eye - centre)).sum(1) > 0
        p = uv[faces]  # (F, 3, 2)
        longest = np.linalg.norm(p - np.roll(p, 1, axis=1), axis=-1).max(1)
        chosen = facing & fg[faces].any(1) & in_pic[faces].all(1) & (longest > max_edge_px)
        if not chosen.any() or len(vertices) + 3 * int(chosen.sum()) > max_vertices:
            break
        vertices, faces, colors = _refine(vertices, faces, colors, chosen)
    return vertices, faces, colors


# --------------------------------------------------------------------------------------- painting
def photo_weights(
    vertices: np.ndarray,
    faces: np.ndarray,
    view: PhotoView,
    min_cos: float = 0.25,
    full_cos: float = 0.65,
    feather: float = 0.04,
    depth_tolerance: float = 0.02,
    depth_jump: float = 0.06,
) -> tuple[np.ndarray, np.ndarray]:
    """How much of the photo each vertex takes: ``weights (N,)`` in [0, 1] and ``uv (N, 2)``, its photo pixel.

    A vertex is seen when it projects into the picture in front of the camera, lies no more than
    ``depth_tolerance`` (head units) behind the nearest surface at its pixel, and faces the camera. Its weight
    is ``smoothstep(min_cos, full_cos, cos)`` of the angle between its normal and the direction to the camera,
    times ``smoothstep`` of its pixel's distance to the nearest edge (0 on it, 1 at ``feather`` x the picture's
    side): the edge of the photo's foreground, or an occluding contour of the mesh (a depth jump of more than
    ``depth_jump`` between neighbouring pixels), so the photo fades out before whatever it does not show.
    Vertices (and faces) are ``(N, 3)`` / ``(F, 3)`` in the head frame, faces counter-clockwise seen from outside.
    """
    import trimesh

    H, W = view.mask.shape
    uv, z = _project(view, vertices)
    depth = _depth_map(view, vertices, faces)
    in_pic = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & (z > 0)
    ij = np.clip(np.floor(uv).astype(np.int64), 0, [W - 1, H - 1])
    nearest = depth[ij[:, 1], ij[:, 0]]
    normals = np.asarray(trimesh.Trimesh(vertices, faces, process=False).vertex_normals, np.float64)
    to_eye = view.camera.centers.numpy().astype(np.float64) - vertices
    cos = (normals * to_eye).sum(1) / np.maximum(np.linalg.norm(to_eye, axis=1), 1e-12)
    seen = in_pic & (z <= nearest + depth_tolerance) & (cos > 0)
    dist = _sample(_edge_distance(view.mask, depth, depth_jump)[..., None], uv)[:, 0]
    w = _smoothstep(cos, min_cos, full_cos) * _smoothstep(dist, 0.0, feather * max(H, W))
    return np.where(seen, w, 0.0), uv


def paint_from_photo(
    mesh, view: PhotoView, strength: float = 1.0, max_edge_px: float | None = 2.0, **weights
):
    """Colour a reconstructed mesh from the input photo.

    Args:
        mesh: a vertex-coloured ``trimesh.Trimesh`` in the head frame (:func:`gen3dface.recon.export.extract_mesh`).
        view: the :class:`PhotoView` (photo crop, foreground, camera).
        strength: the largest weight of the photo's colour (1 = the photo replaces the fitted colour where it
            sees the surface head-on).
        max_edge_px: first refine the triangles the photo sees until their edges span at most this many photo
            pixels (:func:`refine_seen`; ``None`` = keep the mesh as it is).
        weights: options of :func:`photo_weights`.
    Returns:
        ``(mesh, record)``: a new ``trimesh.Trimesh`` (the old vertices first, then any added ones, uint8 RGBA
        vertex colours) and ``{"used": True, "vertices_coloured", "vertices_photo_only", "vertices_added",
        "size": [H, W]}`` (coloured: weight > 1 %; photo only: weight > 99 %).
    """
    import trimesh

    verts = np.asarray(mesh.vertices, np.float64)
    faces = np.asarray(mesh.faces, np.int64)
    vc = getattr(mesh.visual, "vertex_colors", None)
    rgba = (
        np.asarray(vc, np.float64)
        if vc is not None and len(vc) == len(verts)
        else np.full((len(verts), 4), 255.0)
    )
    n0 = len(verts)
    if max_edge_px:
        verts, faces, rgba = refine_seen(verts, faces, rgba, view, max_edge_px)
    w, uv = photo_weights(verts, faces, view, **weights)
    w = np.clip(w * strength, 0, 1)
    photo = _sample(view.image.astype(np.float32), uv)
    rgba[:, :3] = rgba[:, :3] * (1 - w[:, None]) + photo * w[:, None]
    out = trimesh.Trimesh(
        verts, faces, vertex_colors=np.clip(rgba + 0.5, 0, 255).astype(np.uint8), process=False
    )
    record = {
        "used": True,
        "vertices_coloured": int((w > 0.01).sum()),
        "vertices_photo_only": int((w > 0.99).sum()),
        "vertices_added": len(verts) - n0,
        "size": [view.camera.height, view.camera.width],
    }
    return out, record
