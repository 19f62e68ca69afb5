"""Reading photos safely, writing PNGs atomically, and the [-1, 1] tensor convention of the models."""

from __future__ import annotations

import functools
import io
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from gen3dface.core.errors import InputError
from gen3dface.core.storage import atomic_write_bytes

#: Photos larger than this are refused before decoding (a PNG header can claim any size).
MAX_PIXELS = 80_000_000
#: A face needs some pixels; anything smaller on its short side is refused.
MIN_SIDE = 32
#: ... and a side longer than this is refused too: OpenCV's warps and mediapipe's detectors take no side of
#: 32767 px or more (mediapipe aborts the whole process), and a 200 x 40000 strip is under the pixel limit.
MAX_SIDE = 32000
#: Photo files larger than this are refused before a byte is read (a 24 MP 8-bit TIFF fits; /dev/zero and a
#: 20 GB sparse file do not).
MAX_PHOTO_BYTES = 100 * 2**20
_FILE_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
_PIL_LIMIT_LOCK = threading.Lock()


@dataclass
class Photo:
    """A decoded photo.

    Attributes:
        rgb: ``(H, W, 3)`` uint8, RGB. Transparent pixels are composited onto white.
        alpha: ``(H, W)`` float32 in [0, 1] when the file had a non-trivial alpha channel (e.g. a
            background-removed portrait), else ``None``; used as the foreground mask.
        path: where it came from (``None`` for in-memory images).
        mode: the PIL mode of the file (``"RGB"``, ``"I;16"``, ...).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    path: Path | None = None
    mode: str = "RGB"

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth or float channel to uint8."""
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.floating):
        top = 1.0 if np.nanmax(a, initial=0.0) <= 1.0 else 255.0
    else:
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
    return np.clip(np.nan_to_num(a) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def photo_from_pil(img: Image.Image, path: Path | None = None) -> Photo:
    """Normalise any PIL image (grayscale, palette, 16-bit, RGBA, CMYK, EXIF-rotated) to a :class:`Photo`."""
    mode = img.mode
    img = ImageOps.exif_transpose(img) or img
    alpha = None
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = _to_uint8(np.asarray(img))
        rgb = np.repeat(gray[..., None], 3, axis=2)
    else:
        has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
        rgba = np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
        rgb = rgba[..., :3]
        if has_alpha:
            a = rgba[..., 3].astype(np.float32) / 255.0
            if a.min() < 1.0:
                alpha = a
                if float(a.max()) == 0.0:
                    raise InputError(f"{path or 'image'} is fully transparent: nothing to see")
                rgb = (rgb.astype(np.float32) * a[..., None] + 255.0 * (1 - a[..., None]) + 0.5).astype(
                    np.uint8
                )
    return Photo(np.ascontiguousarray(rgb), alpha, path, mode)


def check_size(h: int, w: int, name: str) -> None:
    if h * w > MAX_PIXELS:
        raise InputError(
            f"{name} claims {w}x{h} pixels ({h * w / 1e6:.0f} MP), over the {MAX_PIXELS / 1e6:.0f} MP "
            "limit; downscale it first"
        )
    if max(h, w) > MAX_SIDE:
        raise InputError(
            f"{name} is {w}x{h} pixels, over the {MAX_SIDE} px limit on a side; downscale it first"
        )
    if min(h, w) < MIN_SIDE:
        raise InputError(
            f"{name} is only {w}x{h} pixels; a face photo needs at least {MIN_SIDE} px on each side"
        )


@functools.cache
def _register_heif() -> None:
    """HEIC / HEIF photos (a phone camera's default) through pillow-heif's Pillow plugin, once."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # pragma: no cover - a dependency; without it such a photo is "not an image"
        return
    register_heif_opener()


def _open_header(data: bytes) -> Image.Image:
    """Parse only the header; our own size limit (:func:`check_size`) replaces Pillow's bomb check,
    so an absurd size is reported with its dimensions."""
    _register_heif()
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _size_text(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def check_input_file(path: str | os.PathLike, max_bytes: int, what: str = "photo") -> os.stat_result:
    """Refuse, with a one-line :class:`InputError`, anything at ``path`` but a regular file of at most
    ``max_bytes`` bytes: missing paths, folders, named pipes, devices, sockets, files too large. Reads nothing
    (a named pipe would block a reader, a device or a sparse file would fill the memory)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{what} not found: {p}") from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {p}: {getattr(e, 'strerror', None) or e}") from None
    _check_stat(st, p, max_bytes, what)
    return st


def _check_stat(st: os.stat_result, p: Path, max_bytes: int, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p} is a directory; give the path of a {what} file")
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise InputError(f"{p} is {kind}, not a file; give the path of a {what} file")
    if st.st_size > max_bytes:
        raise InputError(
            f"{p} is {_size_text(st.st_size)}, over the {_size_text(max_bytes)} limit for a {what}; "
            "give a smaller file"
        )


def read_input_file(path: str | os.PathLike, max_bytes: int = MAX_PHOTO_BYTES, what: str = "photo") -> bytes:
    """The bytes of the user's file at ``path``, read only when it is a regular file of at most ``max_bytes``
    (:func:`check_input_file`); every problem is a one-line :class:`InputError`. The file is opened without
    blocking and checked again once open, so a path swapped for a pipe or grown meanwhile is refused too."""
    p = Path(path)
    check_input_file(p, max_bytes, what)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        _check_stat(os.fstat(fd), p, max_bytes, what)
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise InputError(f"{p} grew past the {_size_text(max_bytes)} limit for a {what} while being read")
    return data


def load_image(path: str | os.PathLike) -> Photo:
    """Read and validate a photo. Every problem raises :class:`InputError` with a one-line reason.

    Accepts anything Pillow reads (PNG, JPEG, WebP, BMP, TIFF, GIF's first frame, HEIC through pillow-heif);
    refuses missing files, directories, pipes and devices, files over :data:`MAX_PHOTO_BYTES`, empty and
    non-image files, truncated data, headers claiming absurd sizes, and images too small to hold a face.
    """
    p = Path(path)
    data = read_input_file(p, MAX_PHOTO_BYTES, "photo")
    if not data:
        raise InputError(f"{p} is empty (0 bytes)")
    try:
        img = _open_header(data)
        check_size(img.height, img.width, str(p))
        img.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{p} is not an image Pillow can read (PNG, JPEG, WebP, BMP, TIFF, HEIC)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InputError(f"{p} is truncated or corrupt ({e})") from None
    except MemoryError:
        raise InputError(f"{p}: not enough memory to decode it; give a smaller photo") from None
    return photo_from_pil(img, p)


def as_photo(image) -> Photo:
    """Accept a :class:`Photo`, a path, a PIL image or an ``(H, W, 3|4)`` / ``(H, W)`` array."""
    if isinstance(image, Photo):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        check_size(image.height, image.width, "image")
        return photo_from_pil(image)
    arr = np.asarray(image)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        check_size(arr.shape[0], arr.shape[1], "image")
        arr = _to_uint8(arr)
        return photo_from_pil(Image.fromarray(arr))
    raise InputError(f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 (or float in [0, 1]) array."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an image array (see :func:`png_bytes`) as PNG, atomically."""
    atomic_write_bytes(path, png_bytes(image))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(..., H, W, C)`` to float ``(..., C, H, W)`` in [-1, 1] (the models' convention)."""
    t = torch.from_numpy(np.array(images, dtype=np.float32)) / 127.5 - 1.0
    return t.movedim(-1, -3)


def to_uint8_tensor(images: torch.Tensor) -> torch.Tensor:
    """Float ``(...)`` in [-1, 1] to a uint8 tensor of the same shape, on the same device (rounded to nearest)."""
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float ``(..., C, H, W)`` in [-1, 1] to uint8 ``(..., H, W, C)`` (:func:`to_uint8_tensor`, channels last)."""
    return to_uint8_tensor(images).movedim(-3, -1).cpu().numpy()
