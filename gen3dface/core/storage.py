"""Atomic output: a file or folder is either absent or complete, never half written; output folders are built
aside, locked against a second run and swapped in whole (:func:`output_folder`)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from gen3dface.core.errors import InputError, OutputError

#: Mesh file formats read and written (trimesh): binary glTF, Wavefront OBJ, PLY.
MESH_FORMATS = (".glb", ".obj", ".ply")

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    On an exception the temporary file is removed and ``path`` is left as it was. A symbolic link is followed
    (its target is replaced, the link kept); a device or pipe (``-o /dev/null``) is written into, never replaced.
    """
    path = Path(os.path.realpath(path))
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    special = path.exists() and not path.is_file()
    folder = Path(tempfile.gettempdir()) if special else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write to {folder}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        if special:
            with open(tmp, "rb") as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.unlink()
        else:
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


#: Record files by which an existing folder is known to be a gen3dface output (crop: ``landmarks.json``, generate:
#: ``generate.json``; demo writes both): :func:`output_folder` replaces only such folders, or empty ones.
OUTPUT_RECORDS = ("landmarks.json", "generate.json")


@contextmanager
def exclusive_lock(lock_file: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock (``flock`` on ``lock_file``, created and removed here) for the block; a second
    holder is refused at once with :class:`OutputError` naming ``what``. The kernel drops the lock of a killed
    process, so a lock file left by a kill never blocks a later run."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no guard against a concurrent run
        yield
        return
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except OSError as e:
            raise OutputError(f"cannot write to {lock_file.parent}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(
                f"another gen3dface run is writing {what} (it holds {lock_file}); wait for it to end or "
                "write elsewhere"
            ) from None
        try:  # the holder before us may have removed the file on release: lock the file that is there
            if os.stat(lock_file).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        lock_file.unlink(missing_ok=True)
        os.close(fd)


def stale_staging(final: Path) -> list[Path]:
    """Staging folders of :func:`output_folder` for ``final`` (``.NAME.XXXXXXXX.part`` beside it) and its
    ``.NAME.old``: under ``final``'s lock, all are left by runs that died."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}\.part")
    if not final.parent.is_dir():
        return []
    return [p for p in final.parent.iterdir() if pattern.fullmatch(p.name) or p.name == f".{final.name}.old"]


def check_output_folder(final: Path, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse, before any work, an output folder that :func:`output_folder` cannot replace whole: a file, a folder
    under a file, the current folder or one above it, a folder that holds one of ``inputs`` (it would be lost), or
    a non-empty folder gen3dface did not write (none of :data:`OUTPUT_RECORDS` in it)."""
    try:
        where = final.resolve()
        names = sorted(p.name for p in where.iterdir()) if where.is_dir() else []
    except (OSError, RuntimeError) as e:  # unreadable, or a loop of symbolic links
        raise OutputError(
            f"cannot use the output folder {final}: {getattr(e, 'strerror', None) or e}"
        ) from None
    for parent in [where, *where.parents]:
        if parent.exists() and not parent.is_dir():
            what = "output" if parent == where else "its parent"
            raise OutputError(f"cannot write the output folder {final}: {what} {parent} is a file")
    cwd = Path.cwd().resolve()
    if cwd == where or where in cwd.parents:
        raise OutputError(
            f"-o {final} is the current folder or holds it; the output folder is replaced whole: give a new one"
        )
    for f in inputs:
        p = Path(f)
        if any(where in q.parents for q in (p.resolve(), p.absolute().parent.resolve() / p.name)):
            raise InputError(
                f"the input {f} is inside the output folder {final}, which this run replaces whole; "
                "give another -o or move the input out of it"
            )
    if names and not any(n in names for n in OUTPUT_RECORDS):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise OutputError(
            f"{final} holds files gen3dface did not write ({shown}); the output folder is replaced whole: "
            "give a new or empty folder"
        )


@contextmanager
def output_folder(final: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Build an output folder aside and swap it in whole: yields a fresh staging folder beside ``final``; when the
    block ends without error it replaces ``final`` (which then holds exactly what the block wrote), otherwise it
    is removed and ``final`` is left as it was.

    Before the block: :func:`check_output_folder`; ``final``'s lock is taken (:func:`exclusive_lock`, a second
    run into the same folder is refused) and held until the swap, and staging folders of runs that died
    (:func:`stale_staging`) are removed (a ``.NAME.old`` left by a kill between the two renames of a swap is
    put back first when ``final`` is missing)."""
    check_output_folder(Path(final), inputs)
    shown, final = str(final), Path(final).resolve()  # through a symbolic link: the folder it points to
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {final.parent}: {e.strerror or e}") from None
    with exclusive_lock(final.with_name(f".{final.name}.lock"), shown):
        old = final.with_name(f".{final.name}.old")
        if old.is_dir() and not final.exists():
            old.rename(final)
        for stale in stale_staging(final):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
        except OSError as e:
            raise OutputError(f"cannot create {shown}: {e.strerror or e}") from None
        try:
            yield stage
            os.chmod(stage, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders; give the usual permissions
            try:
                swap_in(stage, final)
            except OSError as e:
                if old.is_dir() and not final.exists():
                    old.rename(final)
                raise OutputError(f"cannot replace {shown}: {e.strerror or e}") from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def check_distinct_outputs(outputs: Iterable[str | os.PathLike], input_folder: str | os.PathLike) -> None:
    """Refuse, before any work, output files that are one file twice, or that would replace a file the run reads
    from ``input_folder`` (its images, ``cameras.json``, the input photo's files): writing one would destroy an
    input. New files inside the folder are fine."""
    seen: dict[Path, str] = {}
    folder = Path(input_folder).resolve()
    for f in outputs:
        where = Path(f).resolve()
        if where in seen:
            raise InputError(f"{seen[where]} and {f} are the same file; give each output its own path")
        seen[where] = str(f)
        if where.parent == folder and where.exists() and where.suffix.lower() in (".png", ".json", ".jpg"):
            raise InputError(
                f"{f} is one of the input files in {input_folder}; writing it would destroy it: give another path"
            )
