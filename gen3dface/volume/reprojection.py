"""Mesh-guided reprojection of the input view into the target views (an appearance condition beside Sec. 3.2).

The paper's model copies the photo's appearance into new views with a pretrained Stable Diffusion UNet and
25k photoreal PanoHead identities; the offline models here have neither. What they do have is the paper's own
face geometry prior: the face mesh estimated from the photo, in the canonical head frame, together with the
camera that sees it (:class:`gen3dface.mesh.facemesh.FaceMesh` ``.camera``). Close its eye and mouth holes
(:func:`close_holes`) and put behind it a fixed head proxy (the front of an ellipsoid for the forehead and the hair
above it, with a hole where the face is, :func:`head_proxy`), and every pixel of a target view that shows a part
of the head the photo also shows can be traced back to the photo's pixel:

1. rasterise the proxy (face mesh + skull) in the input camera: the depth the photo sees at every pixel;
2. rasterise it in each target camera: the 3D point ``X`` each target pixel shows;
3. project ``X`` into the input camera; it is *visible* when it is in the crop, not hidden behind a nearer
   part of the proxy there (depth test), not seen at a grazing angle and not on the input's (white) background;
   its colour is the input's at that pixel.

The result is the warped input ``(B, N, 3, S, S)`` and its visibility ``(B, N, 1, S, S)``; a model configured
with ``reprojection=True`` (:class:`gen3dface.generation.model.Gen3DFaceModel`) reads both beside the
zero123-style input frame, so near-frontal views can keep the photo's pixels and the model only has to make
what the photo does not show. The paper-faithful model (``reprojection=False``) does not use it.

A face is nearly mirror-symmetric, so the half a turned photo does not show can be guessed from the half it
does: ``reproject(mirror=True)`` (models with ``reprojection_mirror``) fills the target pixels the photo does not
see from the photo's mirror image, which is the photo flipped left to right seen by the mirrored camera
(:func:`mirrored_input`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras
from gen3dface.synth.raster import barycentrics, rasterize, take
from gen3dface.synth.render import vertex_normals

#: The skull ellipsoid of the head proxy in the canonical head frame: centre and radii (the procedural heads
#: span x +-0.58, y -0.97..0.84 with the neck, z +-0.8; the face template's front is at z ~ 0.56..0.77).
PROXY_CENTRE = (0.0, 0.04, -0.06)
PROXY_RADII = (0.6, 0.84, 0.74)
#: Depth tolerance of the visibility test, in canonical head units (the head is ~1.6 wide).
DEPTH_TOLERANCE = 0.04
#: Surfaces seen from the input camera at an angle whose cosine is below this are not copied (stretched).
MIN_COSINE = 0.15
#: Input pixels whose every channel is above this (in [-1, 1]) are background: the input views' backgrounds are
#: made white (photos by their foreground mask, training renders on white), and the head proxy, wider than some
#: heads, must not paint that white onto the head.
BACKGROUND_LEVEL = 0.94
#: The photo is carried into the views from a crop this many times the views' size (photos: the same framing
#: cropped again, :func:`gen3dface.generation.inputs.photo_condition`; training: the input render cropped
#: again). Turned surfaces are magnified in the views they face, so a view-sized source blurs them. Measured on 9
#: real photos, the photo's pixels alone carried into 16 views at 128 px (mirror fill, no model): input-to-output
#: ArcFace cosine 0.427 from a 128 px crop, 0.463 / 0.455 / 0.448 from 256 / 384 / 512 px; views 55-80 deg round
#: from the photo's viewpoint 0.22 -> 0.26-0.30.
SOURCE_SCALE = 2


#: The skull ellipsoid carries the photo only within this azimuth of the front (about its centre, the vertical
#: axis): the forehead, the hair above it and the chin beside the face mesh. Further round, an ellipsoid is a poor
#: stand-in for a head (no ears, not the hair's silhouette): the photo's ears and side hair stretched over it came
#: out in the side and back views as "faces" the detector finds (0.97 per head at |azimuth| >= 90 deg, agreeing
#: with the rest at about 0.1), so the model now draws the sides itself. Measured on 9 real photos, stage 9's
#: weights (trained with the whole ellipsoid), GPU seeds 0-7: output-to-output ID 0.468 over 7.08 faces with the
#: whole ellipsoid, 0.541 over 6.82 with 45 deg (0.540 / 6.70 with 60, seeds 0-3; 0.534 / 6.61 with 75 and 0.458 /
#: 7.22 with 90, seeds 0-1); in the pairs of views at -67.5 / 67.5 deg and the front ones 0.20-0.37 -> 0.30-0.55.
PROXY_FRONT_DEG = 45.0


@lru_cache(maxsize=1)
def _skull() -> tuple[np.ndarray, np.ndarray]:
    """The front of the skull ellipsoid (:data:`PROXY_FRONT_DEG`) with the face region cut out: ``(E, 3)``
    vertices, ``(F, 3)`` outward triangles."""
    import trimesh
    from matplotlib.path import Path as Polygon
    from scipy.spatial import ConvexHull

    from gen3dface.mesh.facemesh import face_template

    sphere = trimesh.creation.icosphere(subdivisions=4)
    v = np.asarray(sphere.vertices) * np.asarray(PROXY_RADII) + np.asarray(PROXY_CENTRE)
    f = np.asarray(sphere.faces)
    tmpl = face_template()[:, :2].astype(np.float64)
    hull = tmpl[ConvexHull(tmpl).vertices]
    centre = hull.mean(0)
    hull = centre + (hull - centre) * 0.92  # the hole sits just inside the face's outline: no gap
    in_face = Polygon(hull).contains_points(v[:, :2]) & (v[:, 2] > 0)
    towards = v[f].mean(1) - np.asarray(PROXY_CENTRE)  # each triangle's direction from the centre
    front = np.degrees(np.abs(np.arctan2(towards[:, 0], towards[:, 2]))) <= PROXY_FRONT_DEG
    keep = ~in_face[f].any(1) & front
    f = f[keep]
    used = np.unique(f)
    remap = np.full(len(v), -1)
    remap[used] = np.arange(len(used))
    return v[used].astype(np.float32), remap[f].astype(np.int64)


#: Close the face mesh's inner holes (the eyes and the mouth of mediapipe's tesselation) in the head proxy, so the
#: photo's eyes and mouth are carried into the views instead of being left for the model to draw.
CLOSE_HOLES = True


@lru_cache(maxsize=8)
def _boundary_loops(triangles: bytes) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The boundary loops of a triangle mesh ``(T, 3)`` (int64 bytes): per loop its directed edges ``(L, 2)``
    (``a -> b`` as the triangle beside it runs) and its vertices ``(L,)``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.frombuffer(triangles, dtype=np.int64).reshape(-1, 3)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    _, inverse, counts = np.unique(np.sort(directed, 1), axis=0, return_inverse=True, return_counts=True)
    edges = directed[counts[inverse.reshape(-1)] == 1]
    if not len(edges):
        return ()
    n = int(f.max()) + 1
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    loops = []
    for c in np.unique(label[edges[:, 0]]):
        e = edges[label[edges[:, 0]] == c]
        loops.append((e, np.unique(e)))
    return tuple(loops)


def close_holes(face_vertices: torch.Tensor, face_triangles: torch.Tensor):
    """The face meshes with their inner holes filled: a vertex at each hole's centre and a fan of triangles to
    it, wound like their neighbours. The outline is the loop that encloses the largest area seen from the front
    (+Z); a closed mouth's loop is a slit of almost none.

    Args:
        face_vertices: ``(B, P, 3)``; face_triangles: ``(T, 3)``.
    Returns:
        ``vertices (B, P + K, 3)`` and ``triangles (T + L, 3)`` for ``K`` holes of ``L`` edges in all.
    """
    ft = torch.as_tensor(face_triangles, dtype=torch.long)
    loops = _boundary_loops(ft.cpu().numpy().astype(np.int64).tobytes())
    xy = face_vertices.detach().mean(0)[:, :2].cpu().double().numpy()
    area = [abs((xy[e[:, 0], 0] * xy[e[:, 1], 1] - xy[e[:, 1], 0] * xy[e[:, 0], 1]).sum()) for e, _ in loops]
    P = face_vertices.shape[1]
    centres, fans = [], []
    for k, (e, ring) in enumerate(loops):
        if k == int(np.argmax(area)):  # the outline, round all the others
            continue
        centres.append(face_vertices[:, torch.as_tensor(ring)].mean(1))
        fan = np.stack([e[:, 1], e[:, 0], np.full(len(e), P + len(fans))], 1)  # each edge reversed
        fans.append(torch.as_tensor(fan))
    if not fans:
        return face_vertices, ft
    verts = torch.cat([face_vertices, torch.stack(centres, 1)], 1)
    return verts, torch.cat([ft, torch.cat(fans).to(ft.device)])


def head_proxy(face_vertices: torch.Tensor, face_triangles: torch.Tensor):
    """The head proxy of estimated face meshes: the face mesh (its eye and mouth holes closed, :data:`CLOSE_HOLES`)
    in front of the skull ellipsoid.

    Args:
        face_vertices: ``(B, P, 3)`` face meshes in the canonical head frame; face_triangles: ``(T, 3)``.
    Returns:
        ``vertices (B, P + K + E, 3)`` (``K`` hole centres), ``triangles (T + L + F, 3)`` (every triangle
        counter-clockwise seen from outside: mediapipe's tesselation faces +Z in the canonical frame) and
        ``two_sided (T + L + F,)``, all false: seen from behind, a surface hides nothing (the back of the skull
        can never be taken for a visible surface).
    """
    if CLOSE_HOLES:
        face_vertices, face_triangles = close_holes(face_vertices, face_triangles)
    sv, sf = _skull()
    dev, dtype = face_vertices.device, face_vertices.dtype
    B, P = face_vertices.shape[:2]
    skull = torch.as_tensor(sv, device=dev, dtype=dtype)[None].expand(B, -1, -1)
    verts = torch.cat([face_vertices, skull], 1)
    ft = torch.as_tensor(face_triangles, device=dev, dtype=torch.long)
    tris = torch.cat([ft, torch.as_tensor(sf, device=dev) + P], 0)
    two_sided = torch.zeros(len(tris), dtype=torch.bool, device=dev)
    return verts, tris, two_sided


def _surface(
    verts: torch.Tensor, tris: torch.Tensor, two_sided: torch.Tensor, cams: Cameras, smooth: bool = False
):
    """Rasterise ``verts (B, Q, 3)`` in cameras ``(B, K)``: the world point ``(B, K, H, W, 3)`` and camera depth
    ``(B, K, H, W)`` each pixel sees (depth ``inf`` and point 0 where nothing is), its triangle's unit normal
    ``(B, K, H, W, 3)`` and, with ``smooth``, the smooth normal there ``(B, K, H, W, 3)`` (the vertex normals
    interpolated; else None)."""
    B, K = cams.shape
    H, W = cams.height, cams.width
    Q, T = verts.shape[1], len(tris)
    uv, z = cams.project(verts[:, None].expand(B, K, Q, 3))  # (B, K, Q, 2), (B, K, Q)
    screen = torch.cat([uv, z[..., None]], -1).reshape(B * K * Q, 3).float()
    offs = (torch.arange(B * K, device=verts.device) * Q)[:, None, None]
    all_tris = (tris[None] + offs).reshape(-1, 3)
    slots = torch.arange(B * K, device=verts.device).repeat_interleave(T)
    face = rasterize(screen, all_tris, slots, B * K, H, W, two_sided.repeat(B * K))  # (BK, H, W)
    hit = face.reshape(-1) >= 0
    idx = face.reshape(-1)[hit]
    pix = torch.stack(
        torch.meshgrid(
            torch.arange(H, device=verts.device), torch.arange(W, device=verts.device), indexing="ij"
        )[::-1],
        -1,
    ).float()
    pix = (pix + 0.5).reshape(1, H * W, 2).expand(B * K, -1, -1).reshape(-1, 2)[hit]
    tri = take(all_tris, idx)
    bary, depth = barycentrics(screen, tri, pix)
    world = verts[:, None].expand(B, K, Q, 3).reshape(-1, 3).float()
    corners = take(world, tri)  # (n, 3, 3)
    point = (bary[..., None] * corners).sum(1)
    normal = F.normalize(
        torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1), dim=-1
    )
    n_pix = B * K * H * W
    shape = (B, K, H, W, 3)
    out_p = torch.zeros(n_pix, 3, device=verts.device)
    out_n = torch.zeros(n_pix, 3, device=verts.device)
    out_d = torch.full((n_pix,), float("inf"), device=verts.device)
    out_p[hit], out_n[hit], out_d[hit] = point, normal, depth
    out_s = None
    if smooth:
        offsets = (torch.arange(B, device=verts.device) * Q)[:, None, None]
        vn = vertex_normals(verts.reshape(-1, 3).float(), (tris[None] + offsets).reshape(-1, 3))
        vn = vn.view(B, 1, Q, 3).expand(B, K, Q, 3).reshape(-1, 3)
        out_s = torch.zeros(n_pix, 3, device=verts.device)
        out_s[hit] = F.normalize((bary[..., None] * take(vn, tri)).sum(1), dim=-1)
        out_s = out_s.view(shape)
    return out_p.view(shape), out_d.view(B, K, H, W), out_n.view(shape), out_s


def reproject(
    images: torch.Tensor,
    input_cameras: Cameras,
    face_vertices: torch.Tensor,
    face_triangles: torch.Tensor,
    cameras: Cameras,
    mirror: bool | str = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry the input views' pixels to the target views through the head proxy.

    Args:
        images: input views ``(B, 3, S, S)`` in [-1, 1].
        input_cameras: their cameras ``(B,)`` in the views' pixels (:func:`crop_cameras` of the estimated
            camera of each :class:`gen3dface.mesh.facemesh.FaceMesh`).
        face_vertices: the estimated face meshes ``(B, P, 3)`` in the canonical head frame, sharing
            ``face_triangles (T, 3)``.
        cameras: target cameras ``(B, N)`` at any resolution ``H x W``.
        mirror: also use the photo's mirror image (:func:`mirrored_input`; a face is nearly symmetric, so the
            half turned away from the camera can be filled with the half it shows), one of :data:`MIRROR_MODES`:
            ``True`` or ``"fill"``: where the photo does not see a target pixel; ``"squarest"``: also where the
            mirror image sees the surface clearly more squarely than the photo (its cosine between the smooth
            surface normal, :data:`SQUAREST_SMOOTH`, and the direction to the camera larger by
            :data:`SQUAREST_MARGIN`, blended in over
            :data:`SQUAREST_RAMP`), so a surface the photo sees at a slant is taken from the mirror image where
            that sees it face on, and a near-frontal photo, which sees both halves about as squarely as its
            mirror image does, keeps its own pixels.
    Returns:
        ``warped (B, N, 3, H, W)`` in [-1, 1] (0 where not visible) and ``visible (B, N, 1, H, W)`` in {0, 1}.
    """
    if mirror not in MIRROR_MODES:
        raise ValueError(f"mirror must be one of {list(MIRROR_MODES)}, got {mirror!r}")
    warped, visible, cos = _carry(images, input_cameras, face_vertices, face_triangles, cameras)
    if not mirror:
        return warped, visible
    m_warped, m_visible, m_cos = _carry(
        *mirrored_input(images, input_cameras, face_vertices, face_triangles), cameras
    )
    take = m_visible * (1 - visible)
    if mirror == "squarest":
        lead = (m_cos - cos - SQUAREST_MARGIN) / SQUAREST_RAMP
        take = take + m_visible * visible * lead.clamp(0, 1)
    return warped * (1 - take) + m_warped * take, torch.maximum(visible, take)


#: ``reproject(mirror="squarest")`` takes a pixel the photo sees from the mirror image only where the mirror
#: image's cosine leads by more than the margin, fully once it leads by margin + ramp. Without a margin a
#: near-frontal photo's choice flips from triangle to triangle (the face mesh's flat normals differ by a few
#: hundredths), leaving jagged seams and specks across the cheeks. The photo's pixels alone carried into 16 views
#: of 9 real photos (no model): out-to-out ArcFace cosine 0.560 with the fill, 0.641 with no margin (seams), 0.599 /
#: 0.611 / 0.599 with margins 0.10 / 0.15 / 0.20 (ramp 0.1); specks on the astronaut's cheeks up to a margin of
#: 0.10, none from 0.15.
SQUAREST_MARGIN = 0.15
SQUAREST_RAMP = 0.1
#: The squarest rule compares cosines of the **smooth** surface (the face mesh's vertex normals interpolated),
#: not of its flat triangles. An estimated face mesh is bumpy: neighbouring triangles' flat normals differ by more
#: than the margin, so on a real photo the choice flipped from triangle to triangle and left specks of the other
#: cheek's colour along the mesh's edges (dark dots on a lit cheek), which the views kept. The photo's pixels alone
#: carried into 16 views (no model), flat -> smooth: the benchmark's 9 photos, input-to-output ArcFace cosine
#: 0.598 -> 0.632, output-to-output 0.581 -> 0.616; the 22 group-photo faces 0.558 -> 0.570 and 0.543 -> 0.551.
#: Visibility (:data:`MIN_COSINE`) still reads the flat normals, as every model here was trained.
SQUAREST_SMOOTH = True
#: ``reproject``'s ``mirror`` values: off, fill where the photo does not see (``True`` = ``"fill"``), or also take
#: the mirror image where it sees the surface clearly more squarely (``"squarest"``, by :data:`SQUAREST_MARGIN`).
MIRROR_MODES = (False, True, "fill", "squarest")


def _carry(
    images: torch.Tensor,
    input_cameras: Cameras,
    face_vertices: torch.Tensor,
    face_triangles: torch.Tensor,
    cameras: Cameras,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`reproject` from the photo alone: ``warped (B, N, 3, H, W)``, ``visible (B, N, 1, H, W)`` and the
    cosine ``(B, N, 1, H, W)`` at which the input camera sees each visible target pixel's surface (0 elsewhere;
    the smooth surface's, :data:`SQUAREST_SMOOTH`)."""
    B = images.shape[0]
    dev = images.device
    fv = torch.as_tensor(face_vertices, dtype=torch.float32).to(dev)
    verts, tris, two = head_proxy(fv, torch.as_tensor(face_triangles).to(dev))
    cin = input_cameras.to(dev)
    cin = Cameras(cin.K.reshape(B, 1, 3, 3), cin.c2w.reshape(B, 1, 4, 4), cin.height, cin.width)
    depth_in = _surface(verts, tris, two, cin)[1]  # (B, 1, S, S)
    cams = cameras.to(dev)
    N, H, W = cams.shape[1], cams.height, cams.width
    point, depth, normal, smooth = _surface(verts, tris, two, cams, SQUAREST_SMOOTH)  # (B, N, H, W, 3)
    pts = point.reshape(B, 1, N * H * W, 3)
    uv, z = cin.project(pts)  # (B, 1, NHW, 2), (B, 1, NHW)
    grid = (uv / torch.tensor([cin.width, cin.height], device=dev) * 2 - 1).reshape(B, N * H, W, 2)
    seen = F.grid_sample(
        torch.nan_to_num(depth_in, posinf=1e4),
        grid,
        mode="nearest",
        padding_mode="border",
        align_corners=False,
    ).reshape(B, N, H, W)
    colour = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    colour = colour.reshape(B, 3, N, H, W).permute(0, 2, 1, 3, 4)
    eye = cin.centers.reshape(B, 1, 1, 1, 3)
    to_eye = F.normalize(eye - point, dim=-1)
    cos = (normal * to_eye).sum(-1)  # outward normals: negative = facing away
    inside = (grid.abs() <= 1).all(-1).reshape(B, N, H, W)
    zz = z.reshape(B, N, H, W)
    foreground = (colour <= BACKGROUND_LEVEL).any(2)
    vis = torch.isfinite(depth) & inside & (zz > 0) & (zz <= seen + DEPTH_TOLERANCE) & (cos >= MIN_COSINE)
    vis &= foreground
    vis = vis[:, :, None].to(images.dtype)
    square = cos if smooth is None else (smooth * to_eye).sum(-1)
    return colour.to(images.dtype) * vis, vis, square[:, :, None].to(images.dtype) * vis


def mirrored_input(
    images: torch.Tensor, input_cameras: Cameras, face_vertices: torch.Tensor, face_triangles: torch.Tensor
) -> tuple[torch.Tensor, Cameras, torch.Tensor, torch.Tensor]:
    """The input views as the mirror image of the head (``x -> -x`` in the canonical head frame, the face's
    plane of symmetry) would show them: the images flipped left to right ``(B, 3, S, S)``, their cameras mirrored
    (pose reflected, camera x axis turned back so it stays a rotation, principal point ``cx -> W - cx``), the
    face meshes mirrored ``(B, P, 3)`` with their triangles' winding reversed ``(T, 3)`` so they still face out.
    A mirrored world point projects in the mirrored camera exactly where the point projects in the original,
    flipped: ``u' = W - u``."""
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], device=input_cameras.c2w.device))
    c2w = flip @ input_cameras.c2w.float() @ flip
    K = input_cameras.K.float().clone()
    K[..., 0, 2] = input_cameras.width - K[..., 0, 2]
    cams = Cameras(K, c2w, input_cameras.height, input_cameras.width)
    fv = torch.as_tensor(face_vertices, dtype=torch.float32)
    fv = fv * torch.tensor([-1.0, 1.0, 1.0], device=fv.device)
    ft = torch.as_tensor(face_triangles)[:, [0, 2, 1]]
    return torch.flip(images, [-1]), cams, fv, ft


def crop_cameras(cameras: Cameras, transforms, size: int) -> Cameras:
    """Cameras of photos ``(B,)`` (``FaceMesh.camera``: square pixels, no skew) as cameras of their ``size`` px
    crops. ``transforms (B, 2, 3)`` map photo pixels to crop pixels (``AlignedCrop.transform``): a similarity
    ``x' = s R x + t``. Applied after ``K`` it is ``K' Rz`` with ``K'`` the photo's intrinsics scaled by ``s``
    and re-centred at ``s R c + t``, and ``Rz`` a roll of the camera about its optical axis; the roll goes into
    the camera's pose, so the crop camera is an ordinary pinhole (``unproject`` and ``rays`` hold) that projects
    every world point exactly where the crop shows it."""
    M = torch.as_tensor(np.asarray(transforms), dtype=torch.float64).reshape(-1, 2, 3)
    K = cameras.K.reshape(-1, 3, 3).double().cpu()
    c2w = cameras.c2w.reshape(-1, 4, 4).double().cpu()
    U, sv, Vh = torch.linalg.svd(M[:, :, :2])
    R2 = U @ Vh  # the rotation nearest the linear part (exact for a similarity)
    s = sv.mean(-1)
    Rz = torch.zeros(len(M), 3, 3, dtype=torch.float64)
    Rz[:, :2, :2], Rz[:, 2, 2] = R2, 1
    Kc = torch.zeros_like(Rz)
    Kc[:, 0, 0], Kc[:, 1, 1], Kc[:, 2, 2] = s * K[:, 0, 0], s * K[:, 1, 1], 1
    Kc[:, :2, 2] = s[:, None] * (R2 @ K[:, :2, 2:3])[..., 0] + M[:, :, 2]
    new = c2w.clone()
    new[:, :3, :3] = c2w[:, :3, :3] @ Rz.transpose(1, 2)  # w2c' = Rz w2c
    dev = cameras.K.device
    return Cameras(Kc.float().to(dev), new.float().to(dev), size, size)
