"""Reading a ``gen3dface synth`` dataset, validated: its ``manifest.json`` (which identity folders it holds) and
each identity's ``meta.json`` (views, azimuths, defect labels).

Every problem is one :class:`InputError` naming the file and what is wrong with it: a missing or malformed file, a
missing key, a value of the wrong type. Identity folders must lie inside the dataset root: a manifest entry that
leaves it (``..``, an absolute path, a symbolic link pointing outside) is refused, and so is a view file that does.
:func:`cache_name` names per-identity cache files by the identity's path inside the root, so two identities whose
folders share a name (``id_000000`` and ``sub/id_000000``) never share an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gen3dface.core.errors import InputError

MANIFEST = "manifest.json"
META = "meta.json"
#: the meta.json keys every synth identity has, and the type each must be
META_KEYS = {
    "index": int,
    "seed": int,
    "style": str,
    "res": int,
    "views": int,
    "defect": (str, type(None)),
    "defect_views": list,
    "azimuth_deg": list,
    "elevation_deg": list,
}
DEFECTS = ("janus", "drift")


@dataclass(frozen=True)
class Identity:
    """One identity of a dataset: ``folder`` its path inside the root as the manifest names it (normalised,
    ``/``-separated), ``path`` the folder on disk (resolved, inside the root)."""

    folder: str
    path: Path


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path``; :class:`InputError` when it is missing, unreadable, not JSON or not an object."""
    if not path.is_file():
        raise InputError(f"{path} is missing: {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path} is not readable JSON ({str(e).splitlines()[0]}): {what}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} holds a JSON {type(data).__name__}, not an object: {what}")
    return data


def inside(root: Path, relative: str | os.PathLike, what: str) -> Path:
    """``root / relative`` resolved (symbolic links followed); :class:`InputError` when it leaves ``root``."""
    base = root.resolve()
    try:
        path = (base / relative).resolve()
    except (OSError, RuntimeError) as e:  # a loop of symbolic links
        raise InputError(f"{what}: cannot resolve {relative!r} ({e})") from None
    if path != base and base not in path.parents:
        raise InputError(f"{what}: {str(relative)!r} leads outside the dataset {root}; refusing to read it")
    return path


def dataset_identities(root: str | os.PathLike) -> list[Identity]:
    """The identities ``root/manifest.json`` lists, validated: each entry an object with a ``"folder"`` string
    naming a folder inside ``root`` that exists, no folder twice. Raises :class:`InputError` otherwise or when the
    manifest lists none."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give a dataset written by `gen3dface synth`")
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise InputError(
            f"{root} is not a gen3dface dataset (no {MANIFEST}); make one with `gen3dface synth`"
        )
    data = read_json(manifest, "rebuild it with `gen3dface synth` on the same folder")
    items = data.get("identities")
    if not isinstance(items, list):
        raise InputError(f'{manifest} has no list of "identities"; rebuild it with `gen3dface synth`')
    if not items:
        raise InputError(f"{root} holds no identities ({manifest} lists none)")
    base, out, seen = root.resolve(), [], {}
    for k, item in enumerate(items):
        folder = item.get("folder") if isinstance(item, dict) else None
        if not isinstance(folder, str) or not folder.strip():
            raise InputError(f'{manifest}: identities[{k}] is not an object with a "folder" name')
        path = inside(root, folder, f"{manifest}: identities[{k}]")
        if not path.is_dir():
            raise InputError(f"{manifest}: identities[{k}] names {folder!r}, which is not a folder in {root}")
        rel = path.relative_to(base).as_posix()
        if rel in seen or rel == ".":
            raise InputError(
                f"{manifest}: identities[{k}] names {folder!r}, "
                + (f"already listed as identities[{seen[rel]}]" if rel in seen else "the dataset root itself")
            )
        seen[rel] = k
        out.append(Identity(rel, path))
    return out


def read_meta(identity: Path) -> dict:
    """``identity/meta.json``, validated (:data:`META_KEYS` with their types; ``views`` >= 1, one azimuth and
    elevation per view, numbers; ``defect`` one of :data:`DEFECTS` or null; ``defect_views`` view indices)."""
    path = identity / META
    meta = read_json(path, "the identity folder is incomplete; make it again with `gen3dface synth`")
    for key, kind in META_KEYS.items():
        value = meta.get(key)
        if key not in meta or not isinstance(value, kind) or isinstance(value, bool):
            raise InputError(
                f'{path}: "{key}" is missing or not a {getattr(kind, "__name__", "string or null")}'
            )
    n = meta["views"]
    if n < 1:
        raise InputError(f'{path}: "views" must be at least 1, got {n}')
    for key in ("azimuth_deg", "elevation_deg"):
        v = meta[key]
        if len(v) != n or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in v):
            raise InputError(f'{path}: "{key}" must be {n} numbers, one per view')
    if meta["defect"] is not None and meta["defect"] not in DEFECTS:
        raise InputError(
            f'{path}: "defect" must be one of {", ".join(DEFECTS)} or null, got {meta["defect"]!r}'
        )
    if not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < n for k in meta["defect_views"]):
        raise InputError(f'{path}: "defect_views" must be view indices 0..{n - 1}')
    return meta


def view_file(root: Path, identity: Path, k: int) -> Path:
    """``identity/view_KK.png``, refused (:class:`InputError`) when a symbolic link takes it outside ``root``."""
    return inside(root, identity / f"view_{k:02d}.png", f"{identity / META}")


def cache_name(folder: str) -> str:
    """A file name for per-identity cache entries, one per path inside the dataset: ``folder`` with ``%`` and
    ``/`` escaped (``id_000000`` stays itself), or a digest when that would be too long for a file name."""
    name = quote(folder, safe="")
    if len(name) > 120:
        name = f"{quote(Path(folder).name, safe='')[:60]}-{hashlib.sha256(folder.encode()).hexdigest()[:32]}"
    return name
