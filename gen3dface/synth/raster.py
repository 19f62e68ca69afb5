"""The rasteriser's first stage (like nvdiffrast's ``rasterize``): which triangle each pixel sees, and where.

Every vertex is projected once per view; every front-facing triangle gets the integer box of pixel centres it may
cover. Triangles are grouped by box size (a few pixels for a head at 128 px) and each group enumerates its
(triangle, pixel) candidates with a fixed offset grid, so no work is spent on pixel x triangle pairs that cannot
meet. Inside candidates write a 64-bit key ``(1/z bits << 32) | triangle`` into a z-buffer with
``scatter_reduce(amax)``: the nearest surface wins and its triangle comes with it. :func:`barycentrics` then gives
the perspective-correct weights that :func:`gen3dface.synth.render.render` interpolates with.
"""

from __future__ import annotations

import torch

#: Triangles with a vertex nearer than this (camera z) are dropped (no near-plane clipping).
NEAR = 1e-2
#: Barycentric tolerance of the inside test: shared edges are covered by both triangles, never neither.
_EPS = 1e-5
#: Box sizes (pixels) of the triangle groups; boxes larger than the last are enumerated at their own size.
_BINS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
_SQUARE_BINS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Candidate pairs evaluated at once (bounds memory: about 40 bytes per pair).
_CHUNK = 1 << 22


def take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[idx]`` along dim 0 for any index shape (``index_select`` is much faster than advanced indexing)."""
    return x.index_select(0, idx.reshape(-1)).view(*idx.shape, *x.shape[1:])


# --------------------------------------------------------------------------------------- rasterisation
def _triangle_setup(
    screen: torch.Tensor, tris: torch.Tensor, two_sided: torch.Tensor, height: int, width: int
):
    """Per-triangle pixel boxes and edge equations; drops culled, clipped and pixel-less triangles.

    Args:
        screen: ``(P, 3)`` projected vertices (u, v, camera z).
        tris: ``(T, 3)`` indices into ``screen``.
        two_sided: ``(T,)`` bool, keep back-facing triangles too.
    Returns:
        ``keep (T',)`` indices of the surviving triangles, ``box (T', 4)`` int64 [i0, j0, w, h] (first
        pixel column and row, box width and height), and ``coef (T', 3, 3)`` rows (A, B, C) of the
        planes w0, w1, 1/z = A * du + B * dv + C in pixels relative to the centre of pixel (i0, j0).
    """
    p = take(screen, tris)  # (T, 3, 3)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # Outward counter-clockwise faces appear clockwise in the y-down image: front faces have area < 0.
    ok = (z.min(1).values > NEAR) & ((area < -1e-12) | (two_sided & (area > 1e-12)))
    i0 = torch.ceil(x.min(1).values - 0.5).clamp(min=0)
    i1 = torch.floor(x.max(1).values - 0.5).clamp(max=width - 1)
    j0 = torch.ceil(y.min(1).values - 0.5).clamp(min=0)
    j1 = torch.floor(y.max(1).values - 0.5).clamp(max=height - 1)
    ok &= (i1 >= i0) & (j1 >= j0)
    keep = ok.nonzero().squeeze(1)
    x, y, z, area, i0, i1, j0, j1 = (take(a, keep) for a in (x, y, z, area, i0, i1, j0, j1))
    box = torch.stack([i0, j0, i1 - i0 + 1, j1 - j0 + 1], 1).long()
    x = x - (i0 + 0.5)[:, None]  # relative coordinates keep float32 precise
    y = y - (j0 + 0.5)[:, None]
    inv = 1.0 / area
    # w_k (barycentric of vertex k) = (A_k du + B_k dv + C_k), edges opposite to vertex k.
    a0, b0, c0 = (
        (y[:, 1] - y[:, 2]) * inv,
        (x[:, 2] - x[:, 1]) * inv,
        (x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1]) * inv,
    )
    a1, b1, c1 = (
        (y[:, 2] - y[:, 0]) * inv,
        (x[:, 0] - x[:, 2]) * inv,
        (x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2]) * inv,
    )
    q = 1.0 / z
    qa, qb = q[:, 0] - q[:, 2], q[:, 1] - q[:, 2]
    az, bz, cz = a0 * qa + a1 * qb, b0 * qa + b1 * qb, c0 * qa + c1 * qb + q[:, 2]
    coef = torch.stack(
        [torch.stack([a0, b0, c0], 1), torch.stack([a1, b1, c1], 1), torch.stack([az, bz, cz], 1)], 1
    )
    return keep, box, coef


def _scatter_group(
    zbuf: torch.Tensor,
    ids: torch.Tensor,
    pix0: torch.Tensor,
    coef: torch.Tensor,
    box: torch.Tensor,
    bw: int,
    bh: int,
    width: int,
) -> None:
    """Z-test every (triangle, pixel) candidate of one group of triangles with boxes up to ``bw x bh``.

    Args:
        zbuf: ``(S*H*W,)`` int64 keys, updated in place.
        ids: ``(n,)`` triangle ids written into the keys; ``pix0 (n,)`` flat index of each box's first pixel.
        coef: ``(n, 3, 3)`` plane equations (see :func:`_triangle_setup`); ``box (n, 4)`` the boxes.
    """
    dev = coef.device
    oy, ox = torch.meshgrid(torch.arange(bh, device=dev), torch.arange(bw, device=dev), indexing="ij")
    ox, oy = ox.reshape(-1, 1), oy.reshape(-1, 1)  # (k, 1): candidates offset-major, triangles minor
    fx, fy = ox.to(coef.dtype), oy.to(coef.dtype)
    c = coef.permute(1, 2, 0).contiguous()  # (3 planes, 3 coefficients, n)
    w0 = torch.addcmul(c[0, 2], c[0, 0], fx).addcmul_(c[0, 1], fy)
    w1 = torch.addcmul(c[1, 2], c[1, 0], fx).addcmul_(c[1, 1], fy)
    inside = (torch.minimum(w0, w1) >= -_EPS) & ((w0 + w1) <= 1.0 + _EPS)
    if bw > 1 or bh > 1:
        inside &= (ox < box[:, 2]) & (oy < box[:, 3])
    k_idx, t_idx = inside.nonzero(as_tuple=True)
    cz = take(c[2].T, t_idx)  # (m, 3)
    invz = torch.addcmul(
        torch.addcmul(cz[:, 2], cz[:, 0], take(fx[:, 0], k_idx)), cz[:, 1], take(fy[:, 0], k_idx)
    )
    key = (invz.contiguous().view(torch.int32).to(torch.int64) << 32) | take(ids, t_idx)
    pix = take(pix0, t_idx) + take(oy[:, 0] * width + ox[:, 0], k_idx)
    zbuf.scatter_reduce_(0, pix, key, reduce="amax")


def rasterize(
    screen: torch.Tensor,
    tris: torch.Tensor,
    slots: torch.Tensor,
    n_slots: int,
    height: int,
    width: int,
    two_sided: torch.Tensor | None = None,
    square_bins: bool | None = None,
) -> torch.Tensor:
    """Visible triangle per pixel of ``n_slots`` images.

    Args:
        screen: ``(P, 3)`` projected vertices: pixel u, pixel v, camera-frame z.
        tris: ``(T, 3)`` int64 indices into ``screen``, counter-clockwise seen from outside.
        slots: ``(T,)`` int64 image each triangle is drawn into, in ``[0, n_slots)``.
        two_sided: ``(T,)`` bool, triangles also drawn when seen from behind (default: none).
        square_bins: group triangles by the larger side of their box in powers of two (few groups, more
            candidate pixels: best on a GPU, where each group costs kernel launches) instead of by width and
            height separately (fewest candidates: best on a CPU). Default: square on CUDA. Same result.
    Returns:
        ``(n_slots, H, W)`` int64 index into ``tris`` of the nearest triangle covering each pixel
        centre, -1 where none does.
    """
    if square_bins is None:
        square_bins = screen.device.type == "cuda"
    dev = screen.device
    if two_sided is None:
        two_sided = torch.zeros(len(tris), dtype=torch.bool, device=dev)
    if len(tris) >= 2**31:
        raise ValueError("rasterize: at most 2^31 triangles per call; render fewer views at once")
    zbuf = torch.full((n_slots * height * width,), -1, dtype=torch.int64, device=dev)
    keep, box, coef = _triangle_setup(screen, tris, two_sided, height, width)
    pix0 = take(slots, keep) * (height * width) + box[:, 1] * width + box[:, 0]
    sizes = _SQUARE_BINS if square_bins else _BINS
    bins = torch.tensor(sizes, device=dev)
    if square_bins:
        bin_w = bin_h = torch.bucketize(box[:, 2:4].amax(1).contiguous(), bins)
    else:
        bin_w = torch.bucketize(
            box[:, 2].contiguous(), bins
        )  # index of the smallest bin >= size (len if larger)
        bin_h = torch.bucketize(box[:, 3].contiguous(), bins)
    group = bin_w * (len(sizes) + 1) + bin_h
    order = torch.argsort(group)
    group_sorted = group[order]
    uniq, counts = torch.unique_consecutive(group_sorted, return_counts=True)
    start = 0
    for g, n in zip(uniq.tolist(), counts.tolist()):
        sel = order[start : start + n]
        start += n
        gw, gh = divmod(g, len(sizes) + 1)
        bw = sizes[gw] if gw < len(sizes) else int(box[sel, 2].max())
        bh = sizes[gh] if gh < len(sizes) else int(box[sel, 3].max())
        step = max(1, (_CHUNK * 8 if square_bins else _CHUNK) // (bw * bh))  # GPUs take bigger bites
        for s in range(0, n, step):
            part = sel[s : s + step]
            _scatter_group(
                zbuf, take(keep, part), take(pix0, part), take(coef, part), take(box, part), bw, bh, width
            )
    face = torch.where(zbuf >= 0, zbuf & 0xFFFFFFFF, torch.full_like(zbuf, -1))
    return face.view(n_slots, height, width)


def barycentrics(
    screen: torch.Tensor, tris: torch.Tensor, pixels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics and depth at pixel centres.

    Args:
        screen: ``(P, 3)`` projected vertices (u, v, camera z); ``tris (n, 3)`` the triangle of each pixel.
        pixels: ``(n, 2)`` float (u, v) sample positions.
    Returns:
        ``bary (n, 3)`` weights for the triangle's vertices (sum 1) and ``depth (n,)`` camera z.
    """
    p = take(screen, tris)
    d = p[..., :2] - pixels[:, None, :]  # vertices relative to the sample
    x, y, z = d[..., 0], d[..., 1], p[..., 2]
    e = torch.stack(
        [
            x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1],
            x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2],
            x[:, 0] * y[:, 1] - x[:, 1] * y[:, 0],
        ],
        1,
    )
    e = e / e.sum(1, keepdim=True)
    q = e.clamp(min=0) / z
    s = q.sum(1, keepdim=True).clamp(min=1e-12)
    return q / s, 1.0 / s.squeeze(1)
