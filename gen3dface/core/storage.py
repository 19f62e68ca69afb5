"""Atomic output: a file or folder is either absent or complete, never half written."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gen3dface.core.errors import OutputError

#: Mesh file formats read and written (trimesh): binary glTF, Wavefront OBJ, PLY.
MESH_FORMATS = (".glb", ".obj", ".ply")

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write to {path.parent}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def swap_in(stage: Path, final: Path) -> None:
    """Replace folder ``final`` by the complete folder ``stage``, with renames only. ``final`` is first moved
    aside to ``.NAME.old`` (removed at the end), so a kill between the two renames leaves a complete copy to
    recover (:func:`gen3dface.training.loop.train` does)."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    stage.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def atomic_dir(final: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write a folder through ``write(staging_folder)`` (``.NAME.part`` beside ``final``) and swap it into place;
    if ``write`` fails, the staging folder is removed and ``final`` is left as it was."""
    final = Path(final)
    stage = final.with_name(f".{final.name}.part")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        write(stage)
        swap_in(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return final
