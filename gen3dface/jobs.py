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

from .errors import OutputError
from .faces import MultipleFacesWarning, prepare_input
from .images import save_png
from .viz import crop_summary_figure, draw_landmarks


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
        warnings.simplefilter("always", MultipleFacesWarning)
        photo, face, crop = prepare_input(photo_path, size=size, backend=backend)
    notes = [str(w.message) for w in caught if issubclass(w.category, MultipleFacesWarning)]
    seconds = time.perf_counter() - t0
    overlay = draw_landmarks(photo.rgb, face.landmarks, crop.quad, face.keypoints, face.box)
    record = {
        "photo": str(photo_path), "photo_size_hw": list(photo.size), "photo_mode": photo.mode,
        "had_alpha": photo.alpha is not None, "crop_size": size, "notes": notes,
        "face": face.to_dict(),
        "crop": {"transform_photo_to_crop": crop.transform.tolist(), "quad_in_photo": crop.quad.tolist(),
                 "keypoints": crop.keypoints.tolist(), "landmarks": crop.landmarks.tolist()},
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
            fig = crop_summary_figure(overlay, crop.image, crop.mask, title=f"{Path(photo_path).name}: "
                                      f"{len(face.landmarks)} {face.backend} landmarks")
            fig.savefig(stage / "summary.png", dpi=100)
            plt.close(fig)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    files = publish(stage, outdir)
    return {"files": [str(f) for f in files], "notes": notes, "seconds": seconds,
            "n_landmarks": int(len(face.landmarks)), "mask_fraction": float(np.mean(crop.mask > 0.5))}
