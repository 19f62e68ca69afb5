"""The small sample photos shipped in ``data/samples`` (public-domain portraits; see its README)."""

from __future__ import annotations

from pathlib import Path

from gen3dface.core.errors import InputError

#: The repository's data directory (the package is installed editable from the repository).
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SAMPLES = {
    "astronaut": "astronaut.jpg",  # Eileen Collins, NASA (public domain), via scikit-image
    "grace_hopper": "grace_hopper.jpg",  # Grace Hopper, US Navy (public domain), via matplotlib
}


def sample_photo(name: str = "astronaut") -> Path:
    """Path of a shipped sample photo."""
    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}")
    path = DATA_DIR / "samples" / SAMPLES[name]
    if not path.is_file():
        raise InputError(
            f"sample photo missing at {path}: gen3dface must be installed from a clone of the "
            "repository (`make install`, or `pip install -e .` in the clone)"
        )
    return path
