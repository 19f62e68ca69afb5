"""Pictures and records of a reconstruction: an interactive 3D view of the mesh, inputs over re-renders,
the run's summary as JSON."""

from __future__ import annotations

import json

import numpy as np

from gen3dface.recon.fit import ReconResult
from gen3dface.recon.quality import as_trimesh


def mesh_figure(mesh, title: str = "", max_faces: int = 60000):
    """Interactive plotly 3D view of a vertex-coloured trimesh (+Y up, looking at the face)."""
    import plotly.graph_objects as go

    m = as_trimesh(mesh)
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    if len(f) > max_faces:
        f = f[np.random.default_rng(0).choice(len(f), max_faces, replace=False)]
    colors = None
    vc = getattr(m.visual, "vertex_colors", None)
    if vc is not None and len(vc) == len(v):
        colors = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in np.asarray(vc)[:, :3].astype(int)]
    fig = go.Figure(
        go.Mesh3d(
            x=v[:, 0],
            y=v[:, 1],
            z=v[:, 2],
            i=f[:, 0],
            j=f[:, 1],
            k=f[:, 2],
            vertexcolor=colors,
            color=None if colors else "lightgray",
            flatshading=False,
            lighting={"ambient": 0.55, "diffuse": 0.6, "specular": 0.1, "roughness": 0.8},
            lightposition={"x": 100, "y": 200, "z": 300},
        )
    )
    fig.update_layout(
        title=title,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        height=520,
        scene={
            "aspectmode": "data",
            "camera": {"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 0.4, "y": 0.2, "z": 1.8}},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "zaxis": {"visible": False},
        },
    )
    return fig


def comparison_strip(inputs: np.ndarray, renders: np.ndarray) -> np.ndarray:
    """Inputs over re-renders: ``(2H, V*W, 3)`` float in [0, 1] from two ``(V, H, W, 3)`` stacks."""
    return np.concatenate([np.concatenate(list(inputs), 1), np.concatenate(list(renders), 1)], 0)


def write_report(result: ReconResult, path) -> None:
    """``result.summary()`` as JSON, atomically."""
    from gen3dface.core.storage import atomic_write_text

    atomic_write_text(path, json.dumps(result.summary(), indent=1, default=float))
