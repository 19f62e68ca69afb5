"""The real-photo benchmark: does each generated head carry the identity of the person in the photo?

The photos are faces from photos that installed packages ship (insightface's data/images, its group photo cut
into one photo per face; scikit-image's astronaut; matplotlib's Grace Hopper; the repository's samples), so
anyone can rebuild the same set offline (`gen3dface.evaluation.real_photos.real_photo_set`); never train on
them. Every photo goes through the out-of-domain protocol (`gen3dface.evaluation.protocols.run_eval`: crop,
estimated mesh, 16 views on the target ring), then the table: input-to-output ID (mean cosine of the input's
face embedding with each generated view that shows a face), the near-frontal match rate (views within 45 deg of
the input's estimated yaw whose cosine with the input is >= 0.30), output-to-output ID, the views (of 16) in
which a face is found; beside them the impostor baseline (the mean cosine between different photos' inputs:
two different real people) and the paper's values; then FID against the inputs, and the seconds.

    python scripts/bench_real_photos.py --make-photos outputs/real             # the photo set (CPU, seconds)
    python scripts/bench_real_photos.py --photos outputs/real -o outputs/real.json            # 50 DDIM steps
    python scripts/bench_real_photos.py --photos outputs/real -o r.json --checkpoint my_model --batch 16
    python scripts/bench_real_photos.py --photos outputs/real -o r.json --keep-photo 0 --guidance 2   # model alone
    python scripts/bench_real_photos.py --photos outputs/real -o r.json --seed 1     # other start noise
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def make_photos(folder: Path) -> None:
    from gen3dface.evaluation.real_photos import real_photo_set

    manifest = real_photo_set(folder, progress=True)
    print(f"wrote {len(manifest['photos'])} photos (one face each) and manifest.json to {folder}")
    for s in manifest["skipped"]:
        print(f"  left out {s['source']}: {s['reason']}")
    print(f"  {manifest['n_too_small']} faces too small (head crop under {manifest['min_head_px']} px)")


def run(args: argparse.Namespace) -> None:
    import torch

    from gen3dface.evaluation.protocols import run_eval
    from gen3dface.evaluation.tables import real_photo_markdown

    t0 = time.perf_counter()
    res = run_eval(
        "ood",
        args.photos,
        args.output,
        checkpoint=args.checkpoint,
        steps=args.steps,
        guidance=args.guidance,
        device=args.device,
        batch=args.batch,
        workers=args.workers,
        limit=args.limit,
        progress=not args.quiet,
        keep_photo=args.keep_photo,
        seed=args.seed,
    )
    wall = time.perf_counter() - t0
    st, s, m = res["settings"], res["seconds"], res["metrics"]
    dev = st["device"]
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU, {os.cpu_count()} cores"
    print(
        f"\nreal-photo benchmark: {res['n_inputs']} photos x {res['n_views']} views "
        f"({len(res['skipped'])} skipped), {st['checkpoint']}, {st['steps']} DDIM steps, guidance "
        f"{st['guidance']}, keep_photo {st['keep_photo']}, seed {st['seed']}, {dev} ({name})\n"
    )
    for sk in res["skipped"]:
        print(f"skipped {sk['input']}: {sk['reason']}")
    print(real_photo_markdown(res))
    fid = m.get("fid", {})
    fid_text = "n/a" if fid.get("value") is None else f"{fid['value']:.2f}"
    print(f"\nFID (generated views vs the input crops): {fid_text}; {fid.get('note', '')}")
    print(
        f"seconds: whole run {wall:.1f} (generation {s['generation']:.1f}, metrics {s['metrics']:.1f}); "
        f"results in {args.output} and {Path(args.output).with_suffix('.md')}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--make-photos", type=Path, help="write the benchmark's photo set here and stop")
    ap.add_argument("--photos", type=Path, help="the photo set (from --make-photos) to run the benchmark on")
    ap.add_argument("-o", "--output", type=Path, default=Path("outputs/real_photos.json"))
    ap.add_argument("--checkpoint", default=None, help="a trained model folder (default: the shipped model)")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    ap.add_argument(
        "--guidance", type=float, default=None, help="guidance weight (default: the pipeline's, guidance_for)"
    )
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--seed", type=int, default=0, help="the start noise's seed (default 0)")
    ap.add_argument("--batch", type=int, default=None, help="inputs per sampling run")
    ap.add_argument("--workers", type=int, default=None, help="processes for cropping and face embedding")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument(
        "--keep-photo",
        type=float,
        default=None,
        help="reprojection models: how firmly views keep the photo's pixels, 0..1 (default: the model's)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (args.make_photos or args.photos):
        ap.error("give --make-photos DIR (write the photo set) or --photos DIR (run the benchmark)")
    from gen3dface.core.errors import Gen3DFaceError

    try:
        if args.make_photos:
            make_photos(args.make_photos)
        if args.photos:
            run(args)
    except Gen3DFaceError as e:
        print(f"bench_real_photos: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
