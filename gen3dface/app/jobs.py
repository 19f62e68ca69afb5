"""End-to-end jobs behind the CLI and ``make demo``: each checks and locks its output folder, computes everything
into a staging folder beside it, then swaps that folder in whole (:func:`gen3dface.core.storage.output_folder`):
a failure leaves the output as it was, a rerun leaves no file of an earlier one, and a second run into the same
folder is refused while the first one runs."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from gen3dface.core.images import save_png
from gen3dface.core.storage import output_folder
from gen3dface.core.viz import crop_summary_figure, draw_landmarks
from gen3dface.faces.detect import InputNote, crop_face


def write_crop(
    photo_path, folder: Path, size: int = 256, backend: str = "mediapipe", summary: bool = False
) -> dict:
    """Crop the face of ``photo_path`` and write :func:`crop_job`'s files into ``folder`` (a staging folder).
    Returns the report, ``files`` as names inside ``folder``."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputNote)
        photo, face, crop = crop_face(photo_path, size=size, backend=backend)
    notes = [str(w.message) for w in caught if issubclass(w.category, InputNote)]
    seconds = time.perf_counter() - t0
    overlay = draw_landmarks(photo.rgb, face.landmarks, crop.quad, face.keypoints, face.box)
    record = {
        "photo": str(photo_path),
        "photo_size_hw": list(photo.size),
        "photo_mode": photo.mode,
        "had_alpha": photo.alpha is not None,
        "crop_size": size,
        "notes": notes,
        "face": face.to_dict(),
        "crop": {
            "transform_photo_to_crop": crop.transform.tolist(),
            "quad_in_photo": crop.quad.tolist(),
            "keypoints": crop.keypoints.tolist(),
            "landmarks": crop.landmarks.tolist(),
        },
        "seconds": round(seconds, 3),
    }
    save_png(folder / "crop.png", crop.image)
    save_png(folder / "mask.png", crop.mask)
    save_png(folder / "overlay.png", overlay)
    (folder / "landmarks.json").write_text(json.dumps(record, indent=1))
    names = ["crop.png", "mask.png", "overlay.png", "landmarks.json"]
    if summary:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = crop_summary_figure(
            overlay,
            crop.image,
            crop.mask,
            title=f"{Path(photo_path).name}: {len(face.landmarks)} {face.backend} landmarks",
        )
        fig.savefig(folder / "summary.png", dpi=100)
        plt.close(fig)
        names.append("summary.png")
    return {
        "files": names,
        "notes": notes,
        "seconds": seconds,
        "n_landmarks": int(len(face.landmarks)),
        "mask_fraction": float(np.mean(crop.mask > 0.5)),
    }


def crop_job(photo_path, outdir, size: int = 256, backend: str = "mediapipe", summary: bool = False) -> dict:
    """Photo -> aligned crop, mask, landmarks JSON and overlay in ``outdir`` (replaced whole). Returns a report dict.

    Files: ``crop.png`` (S x S RGB), ``mask.png`` (S x S gray), ``landmarks.json``, ``overlay.png`` (the photo
    with landmarks, detector box and crop square) and, with ``summary``, ``summary.png`` (all three side by side).
    """
    with output_folder(outdir, [photo_path]) as stage:
        report = write_crop(photo_path, stage, size, backend, summary)
    report["files"] = [str(Path(outdir) / n) for n in report["files"]]
    return report


def write_mesh_record(mesh, out: Path, photo) -> str:
    """Write ``mesh`` to ``out`` and its pose/confidence record beside it as ``out.json``; returns the pose as
    text for the console."""
    from gen3dface.core.storage import atomic_write_text

    mesh.save(out)
    record = {"photo": str(photo), "mesh": out.name, **mesh.to_dict()}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=1))
    return ", ".join(f"{k} {v:+.1f}" for k, v in mesh.pose.items())


def generate_job(photo_path, outdir, **settings) -> dict:
    """Photo -> ``views`` generated views in ``outdir`` (replaced whole; and, with ``mesh``, the reconstructed
    head). ``settings``: those of :func:`write_generation`, which lists the files. Returns a report dict."""
    with output_folder(outdir, [photo_path]) as stage:
        report = write_generation(photo_path, stage, **settings)
    report["files"] = [str(Path(outdir) / n) for n in report["files"]]
    return report


def demo_job(
    photo,
    outdir,
    size: int = 256,
    steps: int | None = None,
    progress: bool = True,
    trust_pickle: bool = False,
    log=print,
    note=print,
) -> dict:
    """The demo into ``outdir`` (replaced whole): :func:`crop_job`'s files with ``summary.png``, the face mesh
    (``mesh.obj`` + ``mesh.json``) and, unless ``steps`` is 0, :func:`generate_job`'s files with ``head.glb``
    (``steps`` DDIM steps; default 50 on a GPU, 20 on a CPU). ``log`` gets the progress lines, ``note`` the notes
    on the photo. Returns ``{"seconds", "generated"}`` (generation's report, or ``None``)."""
    import torch

    from gen3dface.generation.pipeline import checkpoint_folder
    from gen3dface.mesh.estimate import estimate_mesh

    out = Path(outdir)
    start = time.perf_counter()
    if steps != 0:
        checkpoint_folder(trust_pickle=trust_pickle)  # a checkpoint it would refuse: before any work
    with output_folder(out, [photo]) as stage:
        log(f"[demo] step 1/4: face detection, landmarks and aligned crop of {photo}")
        report = write_crop(photo, stage, size, summary=True)
        for n in report["notes"]:
            note(n)
        for f in report["files"]:
            log(f"  {out / f}")
        log("[demo] step 2/4: face mesh estimated from the photo, in the canonical head frame")
        mesh = estimate_mesh(photo)
        pose = write_mesh_record(mesh, stage / "mesh.obj", photo)
        log(f"  {out / 'mesh.obj'} ({len(mesh.vertices)} vertices; pose {pose} deg)")
        generated = None
        if steps != 0:
            steps = steps or (50 if torch.cuda.is_available() else 20)
            log(f"[demo] step 3/4: 16 views with the model ({steps} DDIM steps), then step 4/4: head.glb")
            generated = write_generation(
                photo,
                stage,
                steps=steps,
                mesh=True,
                progress=progress,
                trust_pickle=trust_pickle,
                log=lambda m: log("  " + m),
            )
    return {"seconds": time.perf_counter() - start, "generated": generated}


def write_generation(
    photo_path,
    folder: Path,
    checkpoint=None,
    views: int | None = None,
    steps: int = 50,
    guidance: float | None = None,
    sampler: str = "joint",
    seed: int = 0,
    device: str | None = None,
    mesh: bool = False,
    recon_profile: str = "smoke",
    progress: bool = True,
    log=print,
    fast: bool = False,
    keep_photo: float | None = None,
    photo: bool = True,
    trust_pickle: bool = False,
) -> dict:
    """Photo -> ``views`` generated views written into ``folder`` (a staging folder; and, with ``mesh``, the
    reconstructed head). Returns a report, ``files`` as names inside ``folder``.

    Files: ``view_00.png`` .. (``N`` views, view ``N/2`` frontal), ``contact_sheet.png`` (input crop + views),
    ``cameras.json`` (:mod:`gen3dface.core.cameras` format), ``input.png`` (the crop the model saw),
    ``input_mesh.obj`` + ``input_mesh.json`` (the estimated face mesh that conditioned the model, with pose),
    ``input_photo.png`` + ``input_photo_mask.png`` + ``input_camera.json`` (the photo's head crop at
    :data:`gen3dface.recon.photo.PHOTO_SIZE` px, its foreground and its estimated camera in the views' head frame),
    ``generate.json`` (settings and timings) and, with ``mesh``, ``head.glb`` + ``turntable.gif``; unless
    ``photo`` is false, head.glb's vertices that the photo sees are coloured from it
    (:func:`gen3dface.recon.photo.paint_from_photo`).
    ``fast``: on a GPU, fp16 weights and a compiled UNet (:meth:`Gen3DFaceModel.speed_up`). ``keep_photo``: see
    :meth:`Gen3DFacePipeline.generate_views`. ``trust_pickle``: allow a checkpoint whose weights are a pickle
    (:func:`gen3dface.generation.pipeline.load_model`).
    """
    import torch

    from gen3dface.core.errors import InputError
    from gen3dface.generation.pipeline import Gen3DFacePipeline, contact_sheet

    if sampler not in ("joint", "sequential"):
        raise InputError(f"unknown sampler {sampler!r}; choose joint or sequential")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev not in ("cpu", "cuda") and not str(dev).startswith("cuda:"):
        raise InputError(f"unknown device {dev!r}; choose cpu or cuda")
    if str(dev).startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible to torch")
    t0 = time.perf_counter()
    gpu_fast = fast and str(dev).startswith(
        "cuda"
    )  # fp16 + torch.compile: GPU only (on a CPU both are slower)
    pipe = Gen3DFacePipeline.from_checkpoint(
        checkpoint,
        device=dev,
        dtype=torch.float16 if gpu_fast else torch.float32,
        compile=gpu_fast,
        trust_pickle=trust_pickle,
    )
    keep_photo = pipe.keep_photo_for(keep_photo)  # a bad value fails before the photo is read
    guidance = pipe.guidance_for(guidance, keep_photo)
    prep = pipe.prepare(photo_path)  # bad photo / no face: raises before anything is written
    t_prep = time.perf_counter() - t0
    log(
        f"[generate] face found and meshed ({len(prep['mesh'].vertices)} vertices) in {t_prep:.1f} s; "
        f"sampling {views or pipe.model.config.n_views} views, {steps} steps, {sampler}, on {dev}"
    )
    t1 = time.perf_counter()
    out = pipe(
        None,
        num_views=views,
        steps=steps,
        guidance=guidance,
        sampler=sampler,
        seed=seed,
        prepared=prep,
        progress=progress,
        keep_photo=keep_photo,
    )
    t_sample = time.perf_counter() - t1
    photo_view = None
    if prep["mesh"].camera is not None:
        from gen3dface.recon.photo import input_photo_view

        photo_view = input_photo_view(photo_path, prep["crop"], prep["mesh"].camera)
    before = set(p.name for p in folder.iterdir())
    for k, v in enumerate(out.views):
        save_png(folder / f"view_{k:02d}.png", v)
    save_png(folder / "input.png", out.input_view)
    save_png(folder / "contact_sheet.png", contact_sheet(out.views, out.input_view, columns=9))
    out.cameras.save(folder / "cameras.json")
    out.mesh.save(folder / "input_mesh.obj")
    (folder / "input_mesh.json").write_text(
        json.dumps({"photo": str(photo_path), **out.mesh.to_dict()}, indent=1)
    )
    if photo_view is not None:
        from gen3dface.recon.photo import save_photo_view

        save_photo_view(photo_view, folder)
    t_mesh, painted = None, None
    if mesh:
        from gen3dface.recon.config import config_for
        from gen3dface.recon.export import save_mesh
        from gen3dface.recon.fit import reconstruct_views

        log(f"[generate] reconstructing the head from the {len(out.views)} views ({recon_profile} fit)")
        t2 = time.perf_counter()
        result = reconstruct_views(
            out.views,
            out.cameras,
            config=config_for(recon_profile),
            device=dev,
            progress=progress,
            photo=photo_view if photo else None,
        )
        painted = result.photo
        if painted["used"]:
            log(f"[generate] {painted['vertices_coloured']} vertices of head.glb coloured from the photo")
        save_mesh(result.mesh, folder / "head.glb")
        result.save_turntable(folder / "turntable.gif")
        t_mesh = time.perf_counter() - t2
    record = {
        "photo": str(photo_path),
        "checkpoint": str(checkpoint or "shipped small model"),
        "views": len(out.views),
        "steps": steps,
        "guidance": guidance,
        "sampler": sampler,
        "seed": seed,
        "keep_photo": keep_photo,
        "device": dev,
        "fast": gpu_fast,
        "notes": out.notes,
        "input_photo": {
            "written": photo_view is not None,
            "size": None if photo_view is None else photo_view.camera.height,
            "on_mesh": painted,
        },
        "seconds": {
            "crop_and_mesh": round(t_prep, 2),
            "sampling": round(t_sample, 2),
            "reconstruction": t_mesh and round(t_mesh, 2),
        },
    }
    (folder / "generate.json").write_text(json.dumps(record, indent=1))
    files = sorted(p.name for p in folder.iterdir() if p.name not in before)
    return {"files": files, "notes": out.notes, "seconds": record["seconds"]}
