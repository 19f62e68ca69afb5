"""Pictures for people: landmark overlays, crop summaries, cameras in plotly 3D."""

from __future__ import annotations

import numpy as np
import torch

from gen3dface.core.cameras import Cameras
from gen3dface.core.images import png_bytes


def draw_landmarks(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    quad: np.ndarray | None = None,
    keypoints: np.ndarray | None = None,
    box: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of ``rgb (H, W, 3)`` with landmarks ``(L, >=2)`` as dots, the crop ``quad (4, 2)`` and the
    detector ``box`` as outlines and the five ``keypoints`` as larger dots."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    r = max(1, round(max(h, w) / 400))
    for x, y in landmarks[:, :2]:
        cv2.circle(out, (int(round(x)), int(round(y))), r, (0, 255, 120), -1, lineType=cv2.LINE_AA)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 200, 0), r, lineType=cv2.LINE_AA)
    if quad is not None:
        cv2.polylines(
            out, [np.round(quad).astype(np.int32)], True, (255, 60, 60), 2 * r, lineType=cv2.LINE_AA
        )
    if keypoints is not None:
        for x, y in keypoints:
            cv2.circle(out, (int(round(x)), int(round(y))), 3 * r, (255, 0, 255), -1, lineType=cv2.LINE_AA)
    return out


def crop_summary_figure(photo_overlay: np.ndarray, crop: np.ndarray, mask: np.ndarray, title: str = ""):
    """Matplotlib figure: the photo with landmarks and crop square | the aligned crop | its mask."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for ax, im, name in zip(
        axes,
        (photo_overlay, crop, mask),
        ("photo: landmarks, detector box, crop square", "aligned input view y", "foreground mask"),
    ):
        ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1 if im.ndim == 2 else None)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def camera_frustum_lines(cameras: Cameras, scale: float = 0.5) -> np.ndarray:
    """Line segments drawing each camera's pyramid, ``(V, 8, 2, 3)`` world points."""
    cams = cameras if len(cameras.shape) else cameras[None]
    K = cams.K
    corners_px = torch.tensor(
        [[0, 0], [cams.width, 0], [cams.width, cams.height], [0, cams.height]], dtype=K.dtype
    ).expand(*cams.shape, 4, 2)
    depth = torch.full(corners_px.shape[:-1], scale, dtype=K.dtype)
    corners = cams.unproject(corners_px, depth)  # (V, 4, 3)
    c = cams.centers[:, None].expand_as(corners)
    segs = [torch.stack([c[:, i], corners[:, i]], 1) for i in range(4)]
    segs += [torch.stack([corners[:, i], corners[:, (i + 1) % 4]], 1) for i in range(4)]
    return torch.stack(segs, 1).numpy()


def cameras_figure(
    cameras: Cameras,
    points: np.ndarray | None = None,
    title: str = "",
    scale: float = 0.5,
    labels: bool = True,
):
    """Interactive plotly 3D figure of camera pyramids around the head cube, with optional ``points (P, 3)``.

    Each pyramid's apex is the camera centre; its base is the image plane at depth ``scale``, top edge
    drawn thicker so "up" in the image is visible.
    """
    import plotly.graph_objects as go

    segs = camera_frustum_lines(cameras, scale)
    xs, ys, zs = [], [], []
    for cam in segs:
        for a, b in cam:
            xs += [a[0], b[0], None]
            ys += [a[1], b[1], None]
            zs += [a[2], b[2], None]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line=dict(color="royalblue", width=3), name="cameras")
    )
    top = segs[:, 4].mean(1)  # midpoint of the edge between the first two image corners: the image top
    fig.add_trace(
        go.Scatter3d(
            x=top[:, 0],
            y=top[:, 1],
            z=top[:, 2],
            mode="markers",
            marker=dict(size=3, color="red"),
            name="image top",
        )
    )
    centers = cameras.centers.reshape(-1, 3).numpy()
    az = cameras.azimuth_deg.reshape(-1).numpy()
    el = cameras.elevation_deg.reshape(-1).numpy()
    fig.add_trace(
        go.Scatter3d(
            x=centers[:, 0],
            y=centers[:, 1],
            z=centers[:, 2],
            mode="markers+text" if labels else "markers",
            text=[f"{i}" for i in range(len(centers))] if labels else None,
            hovertext=[f"view {i}: az {a:.1f}, el {e:.1f}" for i, (a, e) in enumerate(zip(az, el))],
            marker=dict(size=3, color="navy"),
            name="centres",
        )
    )
    cube = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    edges = [(i, j) for i in range(8) for j in range(i + 1, 8) if np.sum(np.abs(cube[i] - cube[j])) == 2]
    cx, cy, cz = [], [], []
    for i, j in edges:
        cx += [cube[i, 0], cube[j, 0], None]
        cy += [cube[i, 1], cube[j, 1], None]
        cz += [cube[i, 2], cube[j, 2], None]
    fig.add_trace(
        go.Scatter3d(x=cx, y=cy, z=cz, mode="lines", line=dict(color="gray", width=1), name="head cube")
    )
    axes = [
        ((0, 0, 0), (1.5, 0, 0), "red", "+X (subject's left)"),
        ((0, 0, 0), (0, 1.5, 0), "green", "+Y (up)"),
        ((0, 0, 0), (0, 0, 1.5), "blue", "+Z (face looks)"),
    ]
    for a, b, col, name in axes:
        fig.add_trace(
            go.Scatter3d(
                x=[a[0], b[0]],
                y=[a[1], b[1]],
                z=[a[2], b[2]],
                mode="lines",
                line=dict(color=col, width=6),
                name=name,
            )
        )
    if points is not None:
        p = np.asarray(points)
        fig.add_trace(
            go.Scatter3d(
                x=p[:, 0],
                y=p[:, 1],
                z=p[:, 2],
                mode="markers",
                marker=dict(size=2, color=p[:, 2], colorscale="Viridis"),
                name="points",
            )
        )
    fig.update_layout(
        title=title,
        scene=dict(aspectmode="data", camera=dict(up=dict(x=0, y=1, z=0), eye=dict(x=1.2, y=0.8, z=1.6))),
        margin=dict(l=0, r=0, t=40, b=0),
        height=520,
    )
    return fig


def figure_to_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def interactive_image(fn, **controls):
    """Sliders (or any ipywidgets value widgets) driving a picture: ``fn(**values)`` returns an
    ``(H, W, 3)`` uint8 array or a matplotlib figure, shown in an ``ipywidgets.Image``.

    Unlike ``ipywidgets.interact`` this needs no Output-widget capture, so it also runs headless under
    papermill / nbclient (which can hang on captured interact output). Returns the ``VBox``.
    """
    import ipywidgets as widgets

    image = widgets.Image(format="png")

    def update(_=None):
        out = fn(**{k: w.value for k, w in controls.items()})
        image.value = png_bytes(out) if isinstance(out, np.ndarray) else figure_to_png(out)

    for w in controls.values():
        w.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox(list(controls.values())), image])
