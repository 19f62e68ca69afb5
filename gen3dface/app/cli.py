"""The ``gen3dface`` command line. User errors print one line on stderr and exit with status 2."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from gen3dface import __version__
from gen3dface.app.options import OneLineParser, check_options
from gen3dface.core.errors import Gen3DFaceError
from gen3dface.core.logs import quiet_library_logs, silence_native_stderr
from gen3dface.core.profiles import PROFILES


#: --trust-pickle of the commands that load a model checkpoint
TRUST_CHECKPOINT = "allow a checkpoint whose weights are a pickle (.bin: loading it can run code)"


def _cmd_crop(args) -> int:
    from gen3dface.app.jobs import crop_job

    report = crop_job(args.photo, args.output, size=args.size, backend=args.backend, summary=args.summary)
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"wrote {len(report['files'])} files to {args.output} ({report['n_landmarks']} landmarks, "
        f"{report['seconds']:.2f} s)"
    )
    return 0


def _cmd_mesh(args) -> int:
    import warnings

    from gen3dface.app.jobs import write_mesh_record
    from gen3dface.faces.detect import InputNote
    from gen3dface.mesh.facemesh import check_mesh_path
    from gen3dface.mesh.estimate import estimate_mesh

    out = Path(args.output)
    check_mesh_path(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputNote)
        mesh = estimate_mesh(
            args.photo,
            args.backend,
            fov_deg=args.fov,
            flame_model=args.flame_model,
            trust_pickle=args.trust_pickle,
            deca_model=args.deca_model,
        )
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    pose = write_mesh_record(mesh, out, args.photo)
    print(
        f"wrote {out} ({len(mesh.vertices)} vertices, {args.backend}) and {out.with_suffix('.json').name}: "
        f"pose {pose} deg, confidence {mesh.confidence:.2f}"
    )
    return 0


def _cmd_demo(args) -> int:
    from gen3dface.app.jobs import demo_job
    from gen3dface.core.samples import sample_photo

    photo, out = args.photo or sample_photo("astronaut"), Path(args.output)
    rep = demo_job(
        photo,
        out,
        args.size,
        args.steps,
        not args.quiet,
        args.trust_pickle,
        note=lambda m: print(f"note: {m}", file=sys.stderr),
    )
    if rep["generated"] is None:
        print(f"[demo] done in {rep['seconds']:.1f} s (--steps 0: no generation); open {out / 'summary.png'}")
        return 0
    s = rep["generated"]["seconds"]
    print(f"  views: sampling {s['sampling']:.1f} s; head.glb + turntable.gif: {s['reconstruction']:.1f} s")
    print(
        f"[demo] done in {rep['seconds']:.1f} s; open {out / 'summary.png'}, "
        f"{out / 'contact_sheet.png'} and {out / 'head.glb'}"
    )
    return 0


def _cmd_synth(args) -> int:
    from gen3dface.synth.synthesis import SynthConfig, synthesize

    cfg = SynthConfig(
        views=args.views,
        res=args.res,
        style=args.style,
        defect_rate=args.defects,
        seed=args.seed,
        ssaa=args.ssaa,
    )
    r = synthesize(args.output, args.identities, cfg, shard=args.shard, progress=not args.quiet)
    print(
        f"{args.output}: made {r['made']}, already there {r['skipped']}, dataset now holds {r['total']} identities"
    )
    return 0


def _cmd_prune(args) -> int:
    from gen3dface.synth.pruning import prune

    r = prune(
        args.dataset,
        top_k=args.top_k,
        tau=args.tau,
        embed_backend=args.embed,
        janus_backend=args.janus,
        progress=not args.quiet,
    )
    j, i = r["janus_filter"], r["identity_filter"]
    print(
        f"kept {r['kept']} of {len(r['identities'])} identities, removed {r['views_removed']} Janus views "
        f"-> {args.dataset}/pruning.json"
    )
    print(
        f"Janus filter ({r['janus_backend']}) vs labels: precision {j['precision']:.2f}, recall {j['recall']:.2f}; "
        f"identity filter: precision {i['precision']:.2f}, recall {i['recall']:.2f} "
        f"(chance precision {r['identity_filter_chance_precision']:.2f})"
    )
    return 0


def _cmd_reconstruct(args) -> int:
    from contextlib import ExitStack

    from gen3dface.core.storage import atomic_path, check_distinct_outputs
    from gen3dface.recon.export import VIDEO_FORMATS, check_output_path, save_mesh
    from gen3dface.recon.config import config_for
    from gen3dface.recon.views import load_views
    from gen3dface.recon.fit import reconstruct_views

    out = check_output_path(args.output)
    turntable = check_output_path(args.turntable, VIDEO_FORMATS, "turntable") if args.turntable else None
    summary = check_output_path(args.summary, (".json",), "summary") if args.summary else None
    outputs = [p for p in (out, turntable, summary) if p is not None]
    check_distinct_outputs(outputs, args.views)
    cfg = config_for(args.profile, seed=args.seed, **({"iters": args.iters} if args.iters else {}))
    views = load_views(args.views)
    photo = None if args.no_photo else "auto"
    result = reconstruct_views(views, config=cfg, device=args.device, progress=not args.quiet, photo=photo)
    with ExitStack() as stack:  # every file written aside first, then all renamed: none or all of them
        tmp = {p: stack.enter_context(atomic_path(p)) for p in outputs}
        save_mesh(result.mesh, tmp[out])
        if summary is not None:
            from gen3dface.recon.report import write_report

            write_report(result, tmp[summary])
        if turntable is not None:
            result.save_turntable(tmp[turntable])
    seconds = sum(result.seconds.values())
    psnr = f"; training PSNR {result.history[-1]['psnr']:.1f} dB" if result.history else ""
    n = result.photo.get("vertices_coloured")
    painted = f"; {n} vertices coloured from the input photo" if result.photo["used"] else ""
    print(
        f"wrote {out} ({len(result.mesh.vertices)} vertices, {len(result.mesh.faces)} faces) from "
        f"{len(views)} views in {seconds:.1f} s{psnr}{painted}"
    )
    for p in (summary, turntable):
        if p is not None:
            print(f"wrote {p}")
    return 0


def _cmd_generate(args) -> int:
    from gen3dface.app.jobs import generate_job

    report = generate_job(
        args.photo,
        args.output,
        checkpoint=args.checkpoint,
        views=args.views,
        steps=args.steps,
        guidance=args.guidance,
        sampler=args.sampler,
        seed=args.seed,
        device=args.device,
        mesh=args.mesh,
        recon_profile=args.recon_profile,
        progress=not args.quiet,
        fast=args.fast,
        photo=not args.no_photo,
        keep_photo=args.keep_photo,
        trust_pickle=args.trust_pickle,
    )
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    s = report["seconds"]
    print(
        f"wrote {len(report['files'])} files to {args.output} (crop + mesh {s['crop_and_mesh']:.1f} s, "
        f"sampling {s['sampling']:.1f} s"
        + (f", reconstruction {s['reconstruction']:.1f} s" if args.mesh else "")
        + f"); open {Path(args.output) / 'contact_sheet.png'}"
    )
    return 0


def _cmd_eval(args) -> int:
    from gen3dface.evaluation.protocols import run_eval

    res = run_eval(
        args.protocol,
        args.inputs,
        args.output,
        checkpoint=args.checkpoint,
        views=args.views,
        steps=args.steps,
        guidance=args.guidance,
        sampler=args.sampler,
        seed=args.seed,
        device=args.device,
        limit=args.limit,
        progress=not args.quiet,
        meshes=args.meshes,
        batch=args.batch,
        workers=args.workers,
        keep_photo=args.keep_photo,
        trust_pickle=args.trust_pickle,
    )
    for s in res["skipped"]:
        print(f"note: skipped {s['input']}: {s['reason']}", file=sys.stderr)
    shown = ", ".join(
        f"{k} {v['value']:.3f}" for k, v in res["metrics"].items() if v.get("value") is not None
    )
    print(
        f"{res['protocol']}: {res['n_inputs']} inputs x {res['n_views']} views -> {args.output} "
        f"(+ {Path(args.output).with_suffix('.md').name}): {shown}"
    )
    return 0


def _cmd_fetch_models(args) -> int:
    from gen3dface.faces.arcface import arcface_source, fetch_arcface

    path = fetch_arcface(progress=not args.quiet)
    print(f"ArcFace-class model (npm faceplugin-face-recognition-js 0.0.1, checksum verified): {path}")
    used = arcface_source(fetch=False)
    print(f"identity metrics use: {used.label} ({used.path})")
    return 0


def _cmd_info(args) -> int:
    from gen3dface.app.envinfo import report

    print(report())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="gen3dface", description="Gen3D-Face: one face photo -> 16 consistent views -> a 3D head."
    )
    p.add_argument("--version", action="version", version=f"gen3dface {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    c = sub.add_parser("crop", help="detect the face, fit landmarks, write the aligned input crop")
    c.add_argument("photo", help="a face photo (PNG, JPEG, WebP, BMP, TIFF)")
    c.add_argument("-o", "--output", required=True, help="output folder (created, or replaced whole)")
    c.add_argument("--size", type=int, default=256, help="crop side in pixels (default 256)")
    c.add_argument(
        "--backend",
        default="mediapipe",
        choices=["mediapipe", "dlib", "insightface"],
        help="face backend (default mediapipe: 478 landmarks)",
    )
    c.add_argument("--summary", action="store_true", help="also write summary.png (photo | crop | mask)")
    c.set_defaults(func=_cmd_crop)

    m = sub.add_parser("mesh", help="estimate the face mesh (the geometry prior) in the canonical head frame")
    m.add_argument("photo", help="a face photo (PNG, JPEG, WebP, BMP, TIFF)")
    m.add_argument(
        "-o", "--output", required=True, help="mesh file: .obj, .ply or .glb (pose goes to OUT.json)"
    )
    m.add_argument(
        "--backend",
        default="mediapipe",
        choices=["mediapipe", "flame"],
        help="mediapipe (offline default) or flame (needs --flame-model and --trust-pickle)",
    )
    m.add_argument(
        "--fov", type=float, default=30.0, help="assumed vertical field of view of the photo, degrees"
    )
    m.add_argument("--flame-model", default=None, help="FLAME 2020 generic_model.pkl (backend flame)")
    m.add_argument(
        "--trust-pickle", action="store_true", help="allow unpickling the FLAME file (it is a pickle)"
    )
    m.add_argument(
        "--deca-model",
        default=None,
        help="DECA's deca_model.tar (backend flame): FLAME from DECA's encoder, as the paper, instead of a fit "
        "to the mediapipe mesh",
    )
    m.set_defaults(func=_cmd_mesh)

    d = sub.add_parser("demo", help="the main job on the shipped sample photo (or PHOTO)")
    d.add_argument(
        "photo", nargs="?", default=None, help="a face photo (default: data/samples/astronaut.jpg)"
    )
    d.add_argument("-o", "--output", default="outputs/demo", help="output folder (default outputs/demo)")
    d.add_argument("--size", type=int, default=256, help="crop side in pixels (default 256)")
    d.add_argument(
        "--steps",
        type=int,
        default=None,
        help="DDIM steps for the 16 views (default 50 on a GPU, 20 on a CPU; 0 = crop and mesh only)",
    )
    d.add_argument("--trust-pickle", action="store_true", help=TRUST_CHECKPOINT)
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_demo)

    s = sub.add_parser("synth", help="render procedural identities x views into a dataset folder (resumable)")
    s.add_argument(
        "-o", "--output", required=True, help="dataset folder (created; existing identities are kept)"
    )
    s.add_argument("--identities", type=int, required=True, help="number of identities in the whole dataset")
    s.add_argument("--views", type=int, default=48, help="views per identity (48 = the paper's grid)")
    s.add_argument("--res", type=int, default=128, help="image side in pixels (default 128)")
    s.add_argument("--style", default="photo", help="photo, toon, clay or sketch")
    s.add_argument(
        "--defects", type=float, default=0.0, help="fraction of identities with a Janus or drift defect"
    )
    s.add_argument("--shard", default=None, help="i/n: make only identities with index %% n == i")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--ssaa", type=int, default=2, help="supersampling (1 = off, 2 = anti-aliased)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)

    pr = sub.add_parser("prune", help="Janus filter and identity-consistency top-K over a dataset")
    pr.add_argument("dataset", help="a folder written by `gen3dface synth`")
    pr.add_argument("--top-k", type=int, default=None, help="identities to keep (default: the best 90%%)")
    pr.add_argument(
        "--tau", type=float, default=0.5, help="front-face score above which a back view is removed"
    )
    pr.add_argument(
        "--embed",
        default="auto",
        choices=["auto", "arcface", "dlib"],
        help="identity embedding: the ArcFace-class model (auto: when it loads, else dlib) or dlib",
    )
    pr.add_argument(
        "--janus",
        default="auto",
        choices=["auto", "clip", "face"],
        help="Janus score: CLIP zero-shot (needs open_clip weights), the face detector, or CLIP when present",
    )
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_cmd_prune)

    rc = sub.add_parser(
        "reconstruct", help="fit an SDF to posed views and export a coloured mesh (.glb/.obj/.ply)"
    )
    rc.add_argument(
        "views",
        help="a views folder: view_XX.png + cameras.json (+ mask_XX.png), as written by "
        "`generate`, or one identity folder of `synth`",
    )
    rc.add_argument("-o", "--output", required=True, help="mesh file: .glb, .obj or .ply")
    rc.add_argument(
        "--profile",
        default="small",
        choices=list(PROFILES),
        help="fit size: smoke (a CPU minute), small (default), paper (GPU)",
    )
    rc.add_argument(
        "--iters", default=None, help="Adam steps per grid stage, comma-separated (default: the profile's)"
    )
    rc.add_argument(
        "--turntable", default=None, help="also write a turntable of the fitted head (.gif or .mp4)"
    )
    rc.add_argument(
        "--no-photo",
        action="store_true",
        help="do not colour the mesh from the input photo (input_photo.png + input_camera.json, which "
        "`generate` writes beside the views; used by default when present)",
    )
    rc.add_argument(
        "--summary",
        default=None,
        help="also write the fit's summary (.json): sizes, losses, timings, the photo's vertices",
    )
    rc.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    rc.add_argument("--seed", type=int, default=0)
    rc.add_argument("--quiet", action="store_true", help="no progress bar")
    rc.set_defaults(func=_cmd_reconstruct)

    g = sub.add_parser(
        "generate", help="photo -> 16 views of the head with the multi-view model (+ --mesh: a .glb)"
    )
    g.add_argument("photo", help="a face photo (PNG, JPEG, WebP, BMP, TIFF)")
    g.add_argument("-o", "--output", required=True, help="output folder (created, or replaced whole)")
    g.add_argument(
        "--checkpoint",
        default=None,
        help="a trained model folder (default: $GEN3DFACE_CHECKPOINT or the shipped small model)",
    )
    g.add_argument(
        "--views", type=int, default=None, help="target views around the head (default: the model's, 16)"
    )
    g.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    g.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance weight, 1 = off (default: 1 while the photo's pixels are kept, as with the "
        "shipped model; else 2)",
    )
    g.add_argument(
        "--sampler",
        default="joint",
        choices=["joint", "sequential"],
        help="joint: one model call per step for all views (the paper); sequential: one per view",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--keep-photo",
        type=float,
        default=None,
        help="how firmly the views keep the photo's own pixels where the estimated mesh says the photo sees "
        "them, 0..1 (default: 1 for the shipped model; 0 leaves it to the model alone)",
    )
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    g.add_argument("--trust-pickle", action="store_true", help=TRUST_CHECKPOINT)
    g.add_argument(
        "--fast",
        action="store_true",
        help="GPU: fp16 weights, channels-last and torch.compile (pays off over many photos or large models; "
        "the first photo waits a minute or two for compilation)",
    )
    g.add_argument(
        "--mesh",
        action="store_true",
        help="also reconstruct head.glb + turntable.gif from the views (the front coloured from the photo)",
    )
    g.add_argument(
        "--no-photo",
        action="store_true",
        help="with --mesh: colour head.glb from the generated views only, not from the input photo",
    )
    g.add_argument(
        "--recon-profile",
        default="smoke",
        choices=list(PROFILES),
        help="reconstruction size with --mesh (default smoke: about a CPU minute)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.set_defaults(func=_cmd_generate)

    e = sub.add_parser("eval", help="the paper's evaluation: generate for every input, then every metric")
    e.add_argument(
        "--protocol",
        required=True,
        choices=["ood", "indomain"],
        help="ood: a folder of photos; indomain: a synth dataset of held-out identities",
    )
    e.add_argument("--inputs", required=True, help="the folder of photos or the synth dataset")
    e.add_argument(
        "-o", "--output", required=True, help="results .json (the paper-layout table goes beside as .md)"
    )
    e.add_argument(
        "--checkpoint", default=None, help="a trained model folder (default: the shipped small model)"
    )
    e.add_argument("--views", type=int, default=None, help="target views (default: the model's, 16)")
    e.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    e.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance weight (default as for generate)",
    )
    e.add_argument("--sampler", default="joint", choices=["joint", "sequential"])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument(
        "--keep-photo",
        type=float,
        default=None,
        help="how firmly the views keep the photo's own pixels where the estimated mesh says the photo sees "
        "them, 0..1 (default: 1 for the shipped model; 0 leaves it to the model alone)",
    )
    e.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    e.add_argument("--trust-pickle", action="store_true", help=TRUST_CHECKPOINT)
    e.add_argument("--limit", type=int, default=None, help="evaluate only the first N inputs")
    e.add_argument(
        "--batch", type=int, default=None, help="inputs per sampling run (default 16 on a GPU, 1 on the CPU)"
    )
    e.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for cropping, meshing and face embedding (default: one per 32 items, up to the "
        "cores; $GEN3DFACE_WORKERS)",
    )
    e.add_argument(
        "--meshes",
        default="estimated",
        choices=["estimated", "ground_truth"],
        help="condition on meshes estimated from the inputs (default) or, indomain only, the true geometry "
        "(the paper's ablation)",
    )
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_eval)

    f = sub.add_parser(
        "fetch-models",
        help="download the ArcFace-class identity model into the cache (once) and say where it is",
    )
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=_cmd_fetch_models)

    i = sub.add_parser("info", help="versions, devices and which face backends and extras are available")
    i.set_defaults(func=_cmd_info)
    return p


#: operating-system errors a user fixes on their side, wherever they strike (disk full, over quota, no
#: permission, a read-only file system): one line, not a traceback
USER_FIXABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    quiet_library_logs()
    if argv is None:  # this process is the command line: native log lines off too (see gen3dface.core.logs)
        silence_native_stderr()
    try:
        check_options(args)  # every option and the photo file, before any work
        return args.func(args)
    except Gen3DFaceError as e:
        print(f"gen3dface: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in USER_FIXABLE_ERRNOS:
            raise  # anything else is a bug: keep its traceback
        where = f" {e.filename}" if e.filename else ""
        print(f"gen3dface: error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gen3dface: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
