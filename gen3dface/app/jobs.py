"""End-to-end jobs behind the CLI and ``make demo``: each reads user input, computes everything, then
writes its outputs in one step (a temporary folder moved into place), so a failure leaves nothing behind."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from gen3dface.core.errors import OutputError
from gen3dface.faces.detect import InputNote, crop_face
from gen3dface.core.images import save_png
from gen3dface.core.viz import crop_summary_figure, draw_landmarks


def publish(staging: Path, outdir: Path) -> list[Path]:
    """Move every file of ``staging`` into ``outdir`` (each move atomic), then remove ``staging``."""
    written = []
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for f in sorted(staging.iterdir()):
            target = outdir / f.name
            f.replace(target)
            written.append(target)
    except OSError as e:
        raise OutputError(f"cannot write into {outdir}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def staging_dir(outdir: Path) -> Path:
    """A fresh temporary folder beside ``outdir`` (same file system, so moves are renames)."""
    parent = outdir.resolve().parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{parent} is a file, not a folder")
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"output {outdir} exists and is a file; give a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".part", dir=parent))
    except OSError as e:
        raise OutputError(f"cannot create {outdir}: {e.strerror or e}") from None


def crop_job(photo_path, outdir, size: int = 256, backend: str = "mediapipe", summary: bool = False) -> dict:
    """Photo -> aligned crop, mask, landmarks JSON and overlay in ``outdir``. Returns a report dict.

    Files: ``crop.png`` (S x S RGB), ``mask.png`` (S x S gray), ``landmarks.json``, ``overlay.png`` (the photo
    with landmarks, detector box and crop square) and, with ``summary``, ``summary.png`` (all three side by side).
    """
    outdir = Path(outdir)
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
    stage = staging_dir(outdir)
    try:
        save_png(stage / "crop.png", crop.image)
        save_png(stage / "mask.png", crop.mask)
        save_png(stage / "overlay.png", overlay)
        (stage / "landmarks.json").write_text(json.dumps(record, indent=1))
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
            fig.savefig(stage / "summary.png", dpi=100)
            plt.close(fig)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    files = publish(stage, outdir)
    return {
        "files": [str(f) for f in files],
        "notes": notes,
        "seconds": seconds,
        "n_landmarks": int(len(face.landmarks)),
        "mask_fraction": float(np.mean(crop.mask > 0.5)),
    }


def generate_job(
    photo_path,
    outdir,
    checkpoint=None,
    views: int | None = None,
    steps: int = 50,
    guidance: float = 2.0,
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
) -> dict:
    """Photo -> ``views`` generated views in ``outdir`` (and, with ``mesh``, the reconstructed head).

    Files: ``view_00.png`` .. (``N`` views, view ``N/2`` frontal), ``contact_sheet.png`` (input crop + views),
    ``cameras.json`` (:mod:`gen3dface.core.cameras` format), ``input.png`` (the crop the model saw),
    ``input_mesh.obj`` + ``input_mesh.json`` (the estimated face mesh that conditioned the model, with pose),
    ``input_photo.png`` + ``input_photo_mask.png`` + ``input_camera.json`` (the photo's head crop at
    :data:`gen3dface.recon.photo.PHOTO_SIZE` px, its foreground and its estimated camera in the views' head frame),
    ``generate.json`` (settings and timings) and, with ``mesh``, ``head.glb`` + ``turntable.gif``; unless
    ``photo`` is false, head.glb's vertices that the photo sees are coloured from it
    (:func:`gen3dface.recon.photo.paint_from_photo`).
    ``fast``: on a GPU, fp16 weights and a compiled UNet (:meth:`Gen3DFaceModel.speed_up`). ``keep_photo``: see
    :meth:`Gen3DFacePipeline.generate_views`.
    Everything is written to a staging folder first: a failure leaves no output folder behind.
    """
    import torch

    from gen3dface.core.errors import InputError
    from gen3dface.generation.pipeline import Gen3DFacePipeline, contact_sheet

    if sampler not in ("joint", "sequential"):
        raise InputError(f"unknown sampler {sampler!r}; choose joint or sequential")
    outdir = Path(outdir)
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
        checkpoint, device=dev, dtype=torch.float16 if gpu_fast else torch.float32, compile=gpu_fast
    )
    keep_photo = pipe.keep_photo_for(keep_photo)  # a bad value fails before the photo is read
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
    stage = staging_dir(outdir)
    try:
        for k, v in enumerate(out.views):
            save_png(stage / f"view_{k:02d}.png", v)
        save_png(stage / "input.png", out.input_view)
        save_png(stage / "contact_sheet.png", contact_sheet(out.views, out.input_view, columns=9))
        out.cameras.save(stage / "cameras.json")
        out.mesh.save(stage / "input_mesh.obj")
        (stage / "input_mesh.json").write_text(
            json.dumps({"photo": str(photo_path), **out.mesh.to_dict()}, indent=1)
        )
        if photo_view is not None:
            from gen3dface.recon.photo import save_photo_view

            save_photo_view(photo_view, stage)
        t_mesh, painted = None, None
        if mesh:
            from gen3dface.recon.config import config_for
            from gen3dface.recon.fit import reconstruct_views
            from gen3dface.recon.export import save_mesh

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
            save_mesh(result.mesh, stage / "head.glb")
            result.save_turntable(stage / "turntable.gif")
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
        (stage / "generate.json").write_text(json.dumps(record, indent=1))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    files = publish(stage, outdir)
    return {"files": [str(f) for f in files], "notes": out.notes, "seconds": record["seconds"]}
