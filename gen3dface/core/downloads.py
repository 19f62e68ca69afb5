"""Files fetched from the npm registry into gen3dface's cache, each checked against its published SHA-256.

The only downloads the package makes: a registry tarball (``https://registry.npmjs.org/<name>/-/<name>-<v>.tgz``,
a plain gzipped tar, no ``node`` needed) is streamed and only the members asked for are kept; the stream stops
once they are read. :func:`fetch_members` checks each member against its SHA-256 before any is written, then
writes them atomically (:func:`gen3dface.core.storage.atomic_write_bytes`), so a failed or interrupted fetch
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

from gen3dface.core.errors import BackendUnavailable, OutputError
from gen3dface.core.progress import progress_bar
from gen3dface.core.storage import atomic_write_bytes

#: what a download can fail with: offline, refused, cut short, not a tarball
DOWNLOAD_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    OSError,
    tarfile.TarError,
    EOFError,
    zlib.error,
)


def cache_root() -> Path:
    """gen3dface's download cache: ``$GEN3DFACE_CACHE`` or ``~/.cache/gen3dface``."""
    return Path(os.environ.get("GEN3DFACE_CACHE") or Path.home() / ".cache" / "gen3dface")


def npm_tarball_url(package: str, version: str) -> str:
    """The npm registry's tarball of ``package`` at ``version`` (scoped names such as ``@scope/name`` too)."""
    return f"https://registry.npmjs.org/{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Counting(io.RawIOBase):
    """A readable stream that reports each chunk's size to ``update`` (a progress bar's)."""

    def __init__(self, raw, update):
        self.raw, self.update = raw, update

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.raw.read(len(buf))
        buf[: len(data)] = data
        self.update(len(data))
        return len(data)


def download_members(
    url: str, members: Iterable[str], timeout: float, progress: bool = False, desc: str = "downloading"
) -> dict[str, bytes]:
    """The bytes of each of ``members`` (paths inside the tarball, e.g. ``package/model/x.onnx``) of the
    gzipped tarball at ``url``, read as one stream that stops once the last of them is read.

    Raises:
        one of :data:`DOWNLOAD_ERRORS`; :class:`tarfile.TarError` when the tarball lacks a member.
    """
    wanted = set(members)
    got: dict[str, bytes] = {}
    req = urllib.request.Request(url, headers={"User-Agent": "gen3dface"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with progress_bar(total=total, desc=desc, unit="B", unit_scale=True, disable=not progress) as bar:
            stream = io.BufferedReader(_Counting(resp, bar.update), 1 << 16)
            with tarfile.open(fileobj=stream, mode="r|gz") as tar:
                for info in tar:
                    if info.name in wanted and info.isfile():
                        got[info.name] = tar.extractfile(info).read()
                        if len(got) == len(wanted):
                            bar.total = bar.n  # the rest of the tarball is not needed
                            return got
    missing = sorted(wanted - set(got))
    raise tarfile.TarError(f"the tarball holds no {', '.join(missing)}")


def one_line(e: BaseException) -> str:
    """A download error as one short line (a URLError's reason, whitespace folded)."""
    reason = getattr(e, "reason", None) or e
    return " ".join(str(reason).split()) or type(e).__name__


def fetch_members(
    url: str,
    wanted: dict[str, tuple[str, Path]],
    what: str,
    todo: str,
    timeout: float,
    progress: bool = False,
    desc: str = "downloading",
) -> None:
    """Download the members of the tarball at ``url`` that ``wanted`` names (``{member: (its SHA-256,
    where to write it)}``), check every one, then write them.

    Raises:
        :class:`BackendUnavailable` in one line: ``what`` could not be downloaded (offline, refused, not a
        tarball, a member missing), a member's checksum differs (nothing is written), or the cache cannot be
        written; ``todo`` says what the user can do.
    """
    try:
        got = download_members(url, list(wanted), timeout, progress, desc)
    except DOWNLOAD_ERRORS as e:
        raise BackendUnavailable(f"could not download {what} from {url} ({one_line(e)}); {todo}") from None
    for member, (digest, _) in wanted.items():
        actual = hashlib.sha256(got[member]).hexdigest()
        if actual != digest:
            raise BackendUnavailable(
                f"{what} downloaded from {url} has SHA-256 {actual} for {member}, not the published {digest}; "
                f"nothing was saved: {todo}"
            )
    for member, (_, dest) in wanted.items():
        try:
            atomic_write_bytes(dest, got[member])
        except OutputError as e:
            raise BackendUnavailable(f"{e}; set GEN3DFACE_CACHE to a writable folder") from None
