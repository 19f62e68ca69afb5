"""The paper's evaluation protocols (Sec. 4 "Metrics") on top of :mod:`gen3dface.metrics`.

* ``ood`` (out-of-domain): a folder of photos without ground-truth views. Every photo goes through the
  pipeline; FID against the inputs, ID consistency (output-output, input-output) and CLIP (when weights exist).
* ``indomain``: a ``gen3dface synth`` dataset of held-out identities. The input is each identity's frontal
  view (azimuth 0, elevation 0) cropped like a photo; the ground truth is its ring of views at the generated
  cameras. SSIM, PSNR, LPIPS (with weights), FID against the ground truth, Re-ID. ``meshes="ground_truth"``
  conditions on the identity's true geometry instead of the mesh estimated from the input (the paper's
  estimated-vs-ground-truth ablation; :func:`gen3dface.geometry.snap_to_surface`).

Inputs where no face is found are skipped and counted (``skipped``), never silently dropped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError, NoFaceError
from .storage import atomic_write_text

PROTOCOLS = ("ood", "indomain")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _photos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"--inputs {folder} is not a folder")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not photos:
        raise InputError(f"--inputs {folder} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
    return photos


def _identities(folder: Path) -> list[Path]:
    if not (folder / "manifest.json").exists():
        raise InputError(f"--inputs {folder} is not a gen3dface synth dataset (no manifest.json); the indomain "
                         "protocol needs held-out identities with ground-truth views")
    ids = sorted(p for p in folder.glob("id_[0-9]*") if p.is_dir())
    if not ids:
        raise InputError(f"--inputs {folder} holds no identities")
    return ids


def _ground_truth(identity: Path, n_views: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The identity's frontal grid view (the input) and its ``n_views`` ring views at ``size`` px."""
    import cv2

    from .images import load_image
    from .trainset import target_views

    meta = json.loads((identity / "meta.json").read_text())
    try:
        ring = target_views(meta["views"], n_views)
    except InputError as e:
        raise InputError(f"{identity}: {e}") from None
    views = [load_image(identity / f"view_{v:02d}.png").rgb for v in ring]
    gt = np.stack([v if v.shape[0] == size else cv2.resize(v, (size, size), interpolation=cv2.INTER_AREA)
                   for v in views])
    return views[len(ring) // 2], gt


def run_eval(protocol: str, inputs: str | Path, out_json: str | Path, checkpoint=None, views: int | None = None,
             steps: int = 50, guidance: float = 2.0, sampler: str = "joint", seed: int = 0, device: str | None = None,
             limit: int | None = None, progress: bool = True, meshes: str = "estimated") -> dict:
    """Run one protocol and write ``out_json`` and the paper-layout table beside it (``.md``). Returns the results.

    ``meshes``: ``"estimated"`` (from each input, the paper's method) or ``"ground_truth"`` (indomain only: the
    estimate snapped onto the identity's true surface, ``mesh.ply`` in its folder)."""
    import torch

    from .metrics import evaluate_outputs, results_markdown
    from .pipeline import Gen3DFacePipeline

    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose ood or indomain")
    if meshes not in ("estimated", "ground_truth"):
        raise InputError(f"--meshes must be estimated or ground_truth, got {meshes!r}")
    if meshes == "ground_truth" and protocol == "ood":
        raise InputError("--meshes ground_truth needs the indomain protocol: photos have no ground-truth geometry")
    out_json = Path(out_json)
    if out_json.suffix.lower() != ".json":
        raise InputError(f"-o {out_json}: give a .json file (the table goes beside it as .md)")
    folder = Path(inputs)
    items = _photos(folder) if protocol == "ood" else _identities(folder)
    if limit is not None:
        if limit < 1:
            raise InputError(f"--limit must be at least 1, got {limit}")
        items = items[:limit]
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = Gen3DFacePipeline.from_checkpoint(checkpoint, device=dev)
    S = pipe.model.image_size
    n_views = views or pipe.model.config.n_views
    crops, outs, gts, skipped, names = [], [], [], [], []
    t0 = time.perf_counter()
    for item in tqdm(items, desc=f"{protocol}: generating", disable=not progress):
        try:
            if protocol == "ood":
                photo, gt = item, None
            else:
                photo, gt = _ground_truth(item, n_views, S)
            prep = pipe.prepare(photo)
            if meshes == "ground_truth":
                from .geometry import snap_to_surface
                from .trainset import identity_surface

                prep["mesh"] = snap_to_surface(prep["mesh"], identity_surface(item))
        except NoFaceError as e:
            skipped.append({"input": item.name, "reason": str(e)})
            continue
        r = pipe(None, num_views=n_views, steps=steps, guidance=guidance, sampler=sampler, seed=seed,
                 prepared=prep, progress=False)
        crops.append(r.input_view)
        outs.append(r.views)
        names.append(item.name)
        if gt is not None:
            gts.append(gt)
    t_gen = time.perf_counter() - t0
    if not outs:
        raise NoFaceError(f"no face was found in any of the {len(items)} inputs in {folder}")
    t1 = time.perf_counter()
    res = evaluate_outputs(np.stack(crops), np.stack(outs), np.stack(gts) if gts else None, device=dev,
                           progress=progress)
    res.update(inputs=str(folder), evaluated=names, skipped=skipped,
               settings={"checkpoint": str(checkpoint or "shipped small model"), "views": n_views, "steps": steps,
                         "guidance": guidance, "sampler": sampler, "seed": seed, "device": dev, "meshes": meshes},
               seconds={"generation": round(t_gen, 2), "metrics": round(time.perf_counter() - t1, 2)})
    atomic_write_text(out_json, json.dumps(res, indent=1, allow_nan=False))
    atomic_write_text(out_json.with_suffix(".md"), results_markdown(res))
    return res
