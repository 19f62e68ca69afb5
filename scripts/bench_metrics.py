"""Seconds per metric of gen3dface.evaluation for B inputs x V generated views (default 64 x 16 at 256 px).

The views are real faces (so face detection and embedding cost what they cost on model outputs): aligned
head crops of the two shipped sample photos, each view a random similarity warp + brightness change of
its input's crop, the "ground truth" another one. Components that are not on disk (LPIPS, CLIP, ArcFace)
are listed as unavailable with the reason, not timed.

    python scripts/bench_metrics.py                       # CPU, 64 x 16 x 256 px
    python scripts/bench_metrics.py --device cuda         # Inception / LPIPS / CLIP on the GPU
    python scripts/bench_metrics.py --inputs 4 --views 8 --size 128
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random similarity warp (rotation +-12 deg, scale 0.9-1.1, shift +-6 %) and brightness change."""
    import cv2

    s = img.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), rng.uniform(-12, 12), rng.uniform(0.9, 1.1))
    m[:, 2] += rng.uniform(-0.06, 0.06, 2) * s
    out = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    return np.clip(out.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)


def make_data(n_inputs: int, n_views: int, size: int, seed: int = 0):
    from PIL import Image

    from gen3dface.faces.detect import align_crop, find_face
    from gen3dface.core.samples import SAMPLES, sample_photo

    rng = np.random.default_rng(seed)
    crops = [
        align_crop(im, find_face(im), size=size, mask=False).image
        for im in (np.asarray(Image.open(sample_photo(k)).convert("RGB")) for k in SAMPLES)
    ]
    inputs = np.stack([crops[i % len(crops)] for i in range(n_inputs)])
    outputs = np.stack([[jitter(x, rng) for _ in range(n_views)] for x in inputs])
    gt = np.stack([[jitter(x, rng) for _ in range(n_views)] for x in inputs])
    return inputs, outputs, gt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (Inception, LPIPS, CLIP)")
    ap.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "arcface", "dlib"],
        help="face embedding for ID consistency",
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for face detection + embedding (default: one per 32 images, up to the cores)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from gen3dface.core.parallel import worker_count
    from gen3dface.evaluation.clip import clip_similarity, clip_weights
    from gen3dface.evaluation.fid import InceptionFeatures, fid_from_features
    from gen3dface.evaluation.identity import (
        embed_faces,
        id_consistency_input,
        id_consistency_output,
        reid,
        reid_embeddings,
        resolve_backend,
    )
    from gen3dface.evaluation.image_metrics import lpips_distance, lpips_status, psnr, ssim

    if args.threads:
        torch.set_num_threads(args.threads)
    b, v = args.inputs, args.views
    t0 = time.perf_counter()
    inputs, outputs, gt = make_data(b, v, args.size)
    print(
        f"data: {b} inputs x {v} views at {args.size} px, built in {time.perf_counter() - t0:.1f} s; "
        f"device {args.device}, torch threads {torch.get_num_threads()}, face workers "
        f"{worker_count(args.workers, b * v)}"
    )

    rows: list[tuple[str, str, float | None, int, str]] = []

    def timed(name: str, unit: str, count: int, fn, note: str = ""):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        rows.append((name, unit, time.perf_counter() - t, count, note))
        return out

    ext = timed(
        "Inception load (+SHA-1 check)",
        "-",
        1,
        lambda: InceptionFeatures(device=args.device, batch_size=args.batch_size),
    )
    f_in = timed("Inception features: inputs", "images", b, lambda: ext(inputs))
    f_out = timed("Inception features: outputs", "images", b * v, lambda: ext(outputs))
    f_gt = timed("Inception features: ground truth", "images", b * v, lambda: ext(gt))
    timed("FID (Frechet) outputs vs inputs", "sets", 1, lambda: fid_from_features(f_in, f_out))
    timed("FID (Frechet) outputs vs ground truth", "sets", 1, lambda: fid_from_features(f_gt, f_out))
    timed("SSIM (scikit-image)", "pairs", b * v, lambda: ssim(outputs, gt))
    timed("PSNR (scikit-image)", "pairs", b * v, lambda: psnr(outputs, gt))

    reason = lpips_status("vgg")
    if reason is None:
        timed("LPIPS (vgg)", "pairs", b * v, lambda: lpips_distance(outputs, gt, device=args.device))
    else:
        rows.append(("LPIPS (vgg)", "pairs", None, b * v, reason))
    weights, reason = clip_weights()
    if weights is not None:
        timed(
            "CLIP similarity",
            "images",
            b * (v + 1),
            lambda: clip_similarity(inputs, outputs, device=args.device),
        )
    else:
        rows.append(("CLIP similarity", "images", None, b * (v + 1), reason))

    backend = resolve_backend(args.backend)
    timed(f"face models load ({backend}, mediapipe)", "-", 1, lambda: embed_faces(inputs[:1], backend))
    ex, _ = timed(
        f"embed faces: inputs ({backend})",
        "images",
        b,
        lambda: embed_faces(inputs, backend, workers=args.workers),
    )
    ey, fy = timed(
        f"embed faces: outputs ({backend})",
        "images",
        b * v,
        lambda: embed_faces(outputs, backend, workers=args.workers),
    )
    ey = ey.reshape(b, v, -1)
    timed(
        "ID consistency output-output",
        "inputs",
        b,
        lambda: [id_consistency_output(ey[i]) for i in range(b)],
        note=f"faces missing {int((~fy).sum())}/{b * v}",
    )
    timed(
        "ID consistency input-output",
        "inputs",
        b,
        lambda: [id_consistency_input(ex[i], ey[i]) for i in range(b)],
    )
    eg, ep, found = timed(
        "Re-ID embeddings (dlib HOG box on GT)",
        "pairs",
        b * v,
        lambda: reid_embeddings(gt, outputs, "dlib", workers=args.workers),
    )
    timed(
        "Re-ID match / dist",
        "pairs",
        b * v,
        lambda: reid(eg, ep),
        note=f"GT views without a face {int((~found).sum())}/{b * v}",
    )

    print("\n| metric | items | seconds | ms / item | note |\n| --- | --- | --- | --- | --- |")
    total = 0.0
    for name, unit, sec, count, note in rows:
        if sec is None:
            print(f"| {name} | {count} {unit} | unavailable | | {note} |")
            continue
        total += sec
        per = f"{1000 * sec / count:.1f}" if unit != "-" else ""
        print(
            f"| {name} | {count if unit != '-' else ''} {unit if unit != '-' else ''} | {sec:.2f} | {per} | {note} |"
        )
    print(f"| total | | {total:.2f} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
