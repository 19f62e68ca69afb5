"""Shared fixtures: the shipped sample photos and harder inputs built from them at run time."""

from __future__ import annotations

import io
import pickle
import struct
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from PIL import Image

from gen3dface.core.samples import sample_photo

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return sample_photo("astronaut")


@pytest.fixture(scope="session")
def hopper_path() -> Path:
    return sample_photo("grace_hopper")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(sample_photo("astronaut")).convert("RGB"))


@pytest.fixture(scope="session")
def hopper() -> np.ndarray:
    return np.asarray(Image.open(sample_photo("grace_hopper")).convert("RGB"))


def two_faces(big: np.ndarray, small: np.ndarray, scale: float = 0.75) -> np.ndarray:
    """``big`` on the left and ``small`` at ``scale`` on the right of one white canvas."""
    size = (int(small.shape[1] * scale), int(small.shape[0] * scale))
    s = np.asarray(Image.fromarray(small).resize(size, Image.BILINEAR))
    h = max(big.shape[0], s.shape[0])
    canvas = np.full((h, big.shape[1] + s.shape[1] + 20, 3), 255, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big
    canvas[: s.shape[0], big.shape[1] + 20 :] = s
    return canvas


def png_header_claiming(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose header claims ``width x height`` but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def npm_tarball(path: Path, members: dict[str, bytes]) -> str:
    """A gzipped tarball holding ``members`` (name -> bytes, in order) written at ``path``, as a file:// URL: a
    stand-in for an npm registry tarball that the download code streams like the real one."""
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.resolve().as_uri()


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def bad_inputs(tmp_path, astronaut) -> dict[str, Path]:
    """Every kind of unusable input the CLI must refuse with one line and status 2."""
    files = {}
    files["missing"] = tmp_path / "nope.jpg"
    (tmp_path / "adir").mkdir()
    files["directory"] = tmp_path / "adir"
    files["empty"] = tmp_path / "empty.png"
    files["empty"].write_bytes(b"")
    files["text_as_jpg"] = tmp_path / "notes.jpg"
    files["text_as_jpg"].write_text("this is not a picture\n" * 20)
    full = encode(Image.fromarray(astronaut))
    files["truncated_png"] = tmp_path / "truncated.png"
    files["truncated_png"].write_bytes(full[: len(full) * 6 // 10])
    files["one_pixel"] = tmp_path / "one.png"
    files["one_pixel"].write_bytes(encode(Image.new("RGB", (1, 1), (128, 90, 80))))
    files["huge_header"] = tmp_path / "huge.png"
    files["huge_header"].write_bytes(png_header_claiming(60000, 60000))
    files["no_face"] = tmp_path / "coffee.png"
    from skimage import data

    files["no_face"].write_bytes(encode(Image.fromarray(data.coffee())))
    return files


@pytest.fixture
def odd_inputs(tmp_path, astronaut) -> dict[str, Path]:
    """Unusual but valid photos: each must work."""
    img = Image.fromarray(astronaut)
    files = {}
    files["grayscale"] = tmp_path / "gray.png"
    files["grayscale"].write_bytes(encode(img.convert("L")))
    rgba = img.convert("RGBA")
    a = np.full(astronaut.shape[:2], 255, np.uint8)
    a[:, :40] = 0  # a transparent strip, as a background-removed portrait has
    rgba.putalpha(Image.fromarray(a))
    files["rgba"] = tmp_path / "rgba.png"
    files["rgba"].write_bytes(encode(rgba))
    g16 = np.asarray(img.convert("L")).astype(np.uint16) * 257
    files["16bit"] = tmp_path / "gray16.png"
    Image.fromarray(g16).save(files["16bit"])
    files["palette"] = tmp_path / "palette.png"
    files["palette"].write_bytes(encode(img.convert("P", palette=Image.ADAPTIVE)))
    files["cmyk_jpeg"] = tmp_path / "cmyk.jpg"
    files["cmyk_jpeg"].write_bytes(encode(img.convert("CMYK"), "JPEG"))
    files["several_faces"] = tmp_path / "two.png"
    from matplotlib import cbook

    hop = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    files["several_faces"].write_bytes(encode(Image.fromarray(two_faces(hop, astronaut))))
    return files


#: FLAME 2020's vertex, joint and triangle counts (what the ``flame_file`` fixture imitates).
FLAME_N, FLAME_J, FLAME_F = 5023, 5, 9976


@pytest.fixture(scope="session")
def flame_file(tmp_path_factory) -> Path:
    """A FLAME-2020-format pickle with random bases, written like the real one: protocol 2, shapedirs as a
    chumpy array (a stand-in class registered as chumpy.ch.Ch while pickling), a sparse J_regressor."""
    N, J, F = FLAME_N, FLAME_J, FLAME_F
    rng = np.random.default_rng(0)
    d = rng.normal(size=(N, 3))
    v = 0.08 * d / np.linalg.norm(d, axis=1, keepdims=True) * [1.0, 1.2, 1.0]
    J_reg = np.zeros((J, N))
    J_reg[np.arange(J), rng.choice(N, J, replace=False)] = 1.0
    w = rng.uniform(size=(N, J))
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    Ch = type("Ch", (), {"__module__": "chumpy.ch"})
    ch.Ch, chumpy.ch = Ch, ch
    shapedirs = Ch()
    shapedirs.__dict__.update(x=(1e-3 * rng.normal(size=(N, 3, 400))).astype(np.float32), _dirty_vars=set())
    model = {
        "v_template": v,
        "shapedirs": shapedirs,
        "posedirs": 1e-3 * rng.normal(size=(N, 3, 36)),
        "J_regressor": scipy.sparse.csc_matrix(J_reg),
        "weights": w / w.sum(1, keepdims=True),
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "f": rng.integers(0, N, (F, 3)).astype(np.uint32),
        "bs_style": "lbs",
    }
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": ch})
    try:
        path.write_bytes(pickle.dumps(model, protocol=2))
    finally:
        for k, m in saved.items():
            sys.modules.pop(k) if m is None else sys.modules.__setitem__(k, m)
    return path


def pytest_terminal_summary(terminalreporter):
    """Print the seconds each test recorded with ``record_property("seconds", s)`` (the notebook runs): timings
    are reported, never asserted."""
    rows = [
        (r.nodeid.split("::")[-1], dict(r.user_properties)["seconds"])
        for r in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
        if r.when == "call" and "seconds" in dict(r.user_properties)
    ]
    if rows:
        terminalreporter.section("recorded timings (seconds)")
        for name, seconds in sorted(rows):
            terminalreporter.write_line(f"{seconds:8.1f}  {name}")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A random-init tiny model (``test_model.TINY``) saved as a checkpoint folder."""
    import torch
    from test_model import TINY

    from gen3dface.generation.model import Gen3DFaceModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    Gen3DFaceModel(**TINY).save_pretrained(path, safe_serialization=True)
    return path
