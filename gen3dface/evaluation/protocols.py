"""The paper's evaluation protocols (Sec. 4 "Metrics"): photos or held-out identities -> generated views -> every
metric (:func:`gen3dface.evaluation.outputs.evaluate_outputs`).

* ``ood`` (out-of-domain): a folder of photos without ground-truth views. Every photo goes through the
  pipeline; FID against the inputs, ID consistency (output-output, input-output) and CLIP (when weights exist),
  and identity on real photos (:data:`gen3dface.evaluation.outputs.REAL_PHOTO`: the near-frontal views, those
  within 45 degrees of the yaw of each photo's estimated face mesh, that match it; the views with a face; the
  impostor baseline).
* ``indomain``: a ``gen3dface synth`` dataset of held-out identities. The input is each identity's frontal
  view (azimuth 0, elevation 0) cropped like a photo; the ground truth is its ring of views at the generated
  cameras. SSIM, PSNR, LPIPS (with weights), FID against the ground truth, Re-ID. ``meshes="ground_truth"``
  conditions on the identity's true geometry instead of the mesh estimated from the input (the paper's
  estimated-vs-ground-truth ablation; :func:`gen3dface.mesh.surface.snap_to_surface`).

Inputs where no face is found are skipped and counted (``skipped``), never silently dropped; so are, for ``ood``,
photos that cannot be read (a truncated or corrupt file, an image too small or too large): one bad file in a
folder of photos does not end the run.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gen3dface.core.progress import progress_bar

from gen3dface.core.errors import InputError, NoFaceError, OutputError
from gen3dface.core.storage import atomic_write_bytes, atomic_write_text

PROTOCOLS = ("ood", "indomain")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif")


@dataclass(frozen=True)
class EvalItem:
    """One input of a protocol: ``name`` (the photo's file name, or the identity's folder inside the dataset),
    ``path`` (the photo or identity folder), ``root`` (the dataset; ``None`` for photos), ``meta`` (the identity's
    validated meta.json)."""

    name: str
    path: Path
    root: Path | None = None
    meta: dict | None = None


def photo_items(folder: Path) -> list[EvalItem]:
    """The photos of ``folder`` (sorted by name) as protocol items; refuses a folder without photos."""
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of photos")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not photos:
        raise InputError(f"{folder} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
    return [EvalItem(p.name, p) for p in photos]


def _identities(folder: Path) -> list[EvalItem]:
    """The identities of a synth dataset, its manifest and every meta.json checked before any work
    (:mod:`gen3dface.synth.dataset`)."""
    from gen3dface.synth.dataset import MANIFEST, dataset_identities, read_meta

    if folder.is_dir() and not (folder / MANIFEST).exists():
        raise InputError(
            f"--inputs {folder} is not a gen3dface synth dataset (no {MANIFEST}); the indomain "
            "protocol needs held-out identities with ground-truth views"
        )
    return [EvalItem(i.folder, i.path, folder, read_meta(i.path)) for i in dataset_identities(folder)]


def _ground_truth(item: EvalItem, n_views: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The identity's frontal grid view (the input) and its ``n_views`` ring views at ``size`` px."""
    import cv2

    from gen3dface.core.images import load_image
    from gen3dface.synth.dataset import view_file
    from gen3dface.training.data import target_views

    try:
        ring = target_views(item.meta["views"], n_views)
    except InputError as e:
        raise InputError(f"{item.path}: {e}") from None
    views = [load_image(view_file(item.root, item.path, v)).rgb for v in ring]
    gt = np.stack(
        [
            v if v.shape[0] == size else cv2.resize(v, (size, size), interpolation=cv2.INTER_AREA)
            for v in views
        ]
    )
    return views[len(ring) // 2], gt


def prepare_items(
    items: list[EvalItem], protocol: str, n_views: int, size: int, meshes: str, source: bool = True
) -> list[dict]:
    """Crop and mesh each input (and load its ground truth, in-domain); runs in worker processes too.
    Returns per item ``{"name", "prep", "gt"}`` or ``{"name", "skipped": reason}`` when no face is found (or, for
    ``ood``, when the photo cannot be read: :class:`InputError`; in-domain a damaged dataset still raises)."""
    from gen3dface.generation.inputs import photo_condition

    out = []
    for item in items:
        try:
            if protocol == "ood":
                photo, gt = item.path, None
            else:
                photo, gt = _ground_truth(item, n_views, size)
            prep = photo_condition(photo, size, source=source)
            if meshes == "ground_truth":
                from gen3dface.mesh.surface import snap_to_surface
                from gen3dface.training.data import identity_surface

                prep["mesh"] = snap_to_surface(prep["mesh"], identity_surface(item.path))
        except NoFaceError as e:
            out.append({"name": item.name, "skipped": str(e)})
            continue
        except InputError as e:
            if protocol != "ood":
                raise
            out.append({"name": item.name, "skipped": str(e)})
            continue
        out.append({"name": item.name, "prep": prep, "gt": gt})
    return out


def _warm_worker() -> None:
    """A worker's start: import what its tasks use (photo preparation, face embedding; not diffusers) and load
    the offline face models, so that the first task does not wait for them."""
    from gen3dface.evaluation import identity  # noqa: F401
    from gen3dface.faces.backends import warm_face_models
    from gen3dface.generation import inputs  # noqa: F401

    warm_face_models()


class ViewCache:
    """Generated views per input in ``.NAME.views/`` beside the results, so a killed run resumes where it
    stopped; valid only for the same settings (``settings.json``) and removed once the results are written.
    An entry is used only when it holds exactly the arrays a run with these settings makes (``shapes``: the input
    view's ``(S, S, 3)`` and the views' ``(N, S, S, 3)``, uint8); any other is generated again. Entries are named
    by :func:`gen3dface.synth.dataset.cache_name` of the input's name."""

    def __init__(self, out_json: Path, settings: dict, shapes: dict[str, tuple[int, ...]]):
        import shutil

        self.dir = out_json.with_name(f".{out_json.stem}.views")
        self.shapes = shapes
        key = json.dumps(settings, sort_keys=True)
        stamp = self.dir / "settings.json"
        if self.dir.exists() and not self.dir.is_dir() or self.dir.is_symlink():
            self.dir.unlink()
        elif self.dir.exists() and (not stamp.is_file() or stamp.read_text() != key):
            shutil.rmtree(self.dir)
        if not self.dir.exists():
            try:
                self.dir.mkdir(parents=True)
            except OSError as e:
                raise OutputError(f"cannot write beside {out_json}: {e.strerror or e}") from None
            atomic_write_text(stamp, key)

    def _path(self, name: str) -> Path:
        from gen3dface.synth.dataset import cache_name

        return self.dir / f"{cache_name(name)}.npz"

    def get(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(self._path(name)) as z:
                if set(z.files) != set(self.shapes):
                    return None
                got = {k: z[k] for k in self.shapes}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # missing, or not an npz (cut short by a kill)
        if any(a.dtype != np.uint8 or a.shape != self.shapes[k] for k, a in got.items()):
            return None  # from an older run or another model: generated again
        return got["input_view"], got["views"]

    def put(self, name: str, input_view: np.ndarray, views: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.savez(buf, input_view=input_view, views=views)
        atomic_write_bytes(self._path(name), buf.getvalue())

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def run_eval(
    protocol: str,
    inputs: str | Path,
    out_json: str | Path,
    checkpoint=None,
    views: int | None = None,
    steps: int = 50,
    guidance: float | None = None,
    sampler: str = "joint",
    seed: int = 0,
    device: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    meshes: str = "estimated",
    batch: int | None = None,
    workers: int | None = None,
    keep_photo: float | None = None,
    trust_pickle: bool = False,
) -> dict:
    """Run one protocol and write ``out_json`` and the paper-layout table beside it (``.md``). Returns the results.

    How (times in ``results["seconds"]``): a pool of ``workers`` processes (:func:`gen3dface.core.parallel.worker_count`)
    starts while the model loads; it crops and meshes the inputs; every ``batch`` inputs that are ready are
    generated in one sampling run (:meth:`Gen3DFacePipeline.generate_batch`; default 16 on a GPU, where the model
    runs in fp16, 1 on the CPU) while the pool embeds the faces of the batch before; then FID on the model's device
    and the rest of the metrics (:func:`gen3dface.evaluation.outputs.evaluate_outputs`). Generated views are kept in
    ``.NAME.views/`` beside ``out_json`` until the results are written, so a killed run resumes without
    generating again.

    ``meshes``: ``"estimated"`` (from each input, the paper's method) or ``"ground_truth"`` (indomain only: the
    estimate snapped onto the identity's true surface, ``mesh.ply`` in its folder). ``keep_photo``: see
    :meth:`Gen3DFacePipeline.generate_views` (``None``: the model's default). ``trust_pickle``: allow a checkpoint
    whose weights are a pickle (:func:`gen3dface.generation.pipeline.load_model`)."""
    import torch

    from gen3dface.core.parallel import WorkerPool, worker_count
    from gen3dface.evaluation.identity import resolve_backend, submit_face_embeddings
    from gen3dface.evaluation.outputs import evaluate_outputs
    from gen3dface.evaluation.tables import results_markdown
    from gen3dface.generation.pipeline import Gen3DFacePipeline

    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose ood or indomain")
    if meshes not in ("estimated", "ground_truth"):
        raise InputError(f"--meshes must be estimated or ground_truth, got {meshes!r}")
    if meshes == "ground_truth" and protocol == "ood":
        raise InputError(
            "--meshes ground_truth needs the indomain protocol: photos have no ground-truth geometry"
        )
    if batch is not None and batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    out_json = Path(out_json)
    if out_json.suffix.lower() != ".json":
        raise InputError(f"-o {out_json}: give a .json file (the table goes beside it as .md)")
    folder = Path(inputs)
    items = photo_items(folder) if protocol == "ood" else _identities(folder)
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be at least 1, got {limit}")
        items = items[:limit]
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = torch.device(dev).type == "cuda"
    dtype = torch.float16 if on_gpu else torch.float32
    batch = batch or (16 if on_gpu else 1)
    id_backend = resolve_backend("auto")
    t_start = time.perf_counter()
    # the workers start (importing what their tasks use, loading the face models) while the model loads
    pool = WorkerPool(worker_count(workers, len(items) * 17), warm_up=_warm_worker)
    cache = None
    try:
        pipe = Gen3DFacePipeline.from_checkpoint(
            checkpoint, device=dev, dtype=dtype, trust_pickle=trust_pickle
        )
        S = pipe.model.image_size
        n_views = views or pipe.model.config.n_views
        pipe.check_settings(n_views, steps, guidance, "input")
        keep_photo = pipe.keep_photo_for(keep_photo)
        guidance = pipe.guidance_for(guidance, keep_photo)
        settings = {
            "checkpoint": str(checkpoint or "shipped small model"),
            "views": n_views,
            "steps": steps,
            "guidance": guidance,
            "sampler": sampler,
            "seed": seed,
            "device": dev,
            "dtype": str(dtype)[6:],
            "meshes": meshes,
            "keep_photo": keep_photo,
        }
        cache = ViewCache(
            out_json,
            {**settings, "inputs": str(folder.resolve()), "protocol": protocol},
            {"input_view": (S, S, 3), "views": (n_views, S, S, 3)},
        )
        seconds = {"load_model": round(time.perf_counter() - t_start, 2)}
        from functools import partial

        # crop + mesh in the workers; each batch is generated as soon as its inputs are ready, and the faces of
        # its views are embedded in the workers while the next batch generates
        prep_jobs = pool.submit_chunks(
            partial(
                prepare_items,
                protocol=protocol,
                n_views=n_views,
                size=S,
                meshes=meshes,
                source=pipe.needs_source,
            ),
            items,
            chunk=2,
        )
        skipped, ready, input_jobs, view_jobs = [], [], [], []
        generated, resumed = {}, 0
        t_gen = 0.0
        pending: list[dict] = []

        def flush() -> None:
            nonlocal t_gen, resumed
            if not pending:
                return
            seconds.setdefault("first_batch_ready", round(time.perf_counter() - t_start, 2))
            for r in pending:
                generated[r["name"]] = cache.get(r["name"])
            todo = [r for r in pending if generated[r["name"]] is None]
            resumed += len(pending) - len(todo)
            if todo:
                t = time.perf_counter()
                outs = pipe.generate_batch(
                    [r["prep"] for r in todo],
                    num_views=n_views,
                    steps=steps,
                    guidance=guidance,
                    sampler=sampler,
                    seed=seed,
                    keep_photo=keep_photo,
                )
                if on_gpu:
                    torch.cuda.synchronize()
                t_gen += time.perf_counter() - t
                for r, o in zip(todo, outs):
                    cache.put(r["name"], o.input_view, o.views)
                    generated[r["name"]] = (o.input_view, o.views)
            for r in pending:
                crop, out_views = generated[r["name"]]
                input_jobs.extend(submit_face_embeddings(pool, [crop], id_backend))
                view_jobs.extend(submit_face_embeddings(pool, list(out_views), id_backend))
            bar.update(len(pending))
            pending.clear()

        with progress_bar(
            total=len(items), desc=f"{protocol}: crop, mesh, generate", disable=not progress, unit="input"
        ) as bar:
            for job in prep_jobs:
                for r in job.result():
                    if "skipped" in r:
                        skipped.append({"input": r["name"], "reason": r["skipped"]})
                        bar.update(1)
                        continue
                    ready.append(r)
                    pending.append(r)
                    if len(pending) == batch:
                        flush()
            flush()
        seconds["crop_mesh_generate"] = round(time.perf_counter() - t_start - seconds["load_model"], 2)
        seconds["generation"] = round(t_gen, 2)
        if not ready:
            first = skipped[0]  # every input was skipped: an empty folder is refused before any work
            raise NoFaceError(
                f"no face was found in any of the {len(items)} inputs in {folder} "
                f"({first['input']}: {first['reason']})"
            )

        t0 = time.perf_counter()
        names = [r["name"] for r in ready]
        crops = np.stack([generated[n][0] for n in names])
        outs = np.stack([generated[n][1] for n in names])
        gts = np.stack([r["gt"] for r in ready]) if protocol == "indomain" else None
        res = evaluate_outputs(
            crops,
            outs,
            gts,
            device=dev,
            progress=progress,
            pool=pool,
            face_embeddings=(id_backend, input_jobs + view_jobs),  # inputs first, then views
            input_yaw=[r["prep"]["mesh"].pose["yaw"] for r in ready],
            yaw_source="the yaw of each input's estimated face mesh ("
            + ready[0]["prep"]["mesh"].backend
            + ")",
        )
    except BaseException:
        if cache is not None and not any(cache.dir.glob("*.npz")):
            cache.remove()  # nothing generated yet: leave nothing behind (kept views are what a rerun resumes)
        raise
    finally:
        pool.close()
    seconds.update({f"metrics_{k}": v for k, v in res.pop("seconds").items()})
    seconds["metrics"] = round(time.perf_counter() - t0, 2)
    seconds["total"] = round(time.perf_counter() - t_start, 2)
    res.update(
        inputs=str(folder),
        evaluated=names,
        skipped=skipped,
        settings=settings,
        seconds=seconds,
        resumed=resumed,
    )
    atomic_write_text(out_json, json.dumps(res, indent=1, allow_nan=False))
    atomic_write_text(out_json.with_suffix(".md"), results_markdown(res))
    cache.remove()
    return res
