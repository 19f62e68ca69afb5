"""Figures and small measurements for notebooks 04-07: the model's architecture drawn from the model object,
volume slices, captioned image panels (for sliders), named tensor shapes, how well neighbouring generated views
agree through a known surface, and the ablation results as points on honest axes.

Every figure function returns a matplotlib ``Figure`` with a title and labelled axes; the notebooks show it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gen3dface.core.cameras import Cameras

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gen3dface.generation.model import Gen3DFaceModel


# --------------------------------------------------------------------------------------- notebook 05
def depth_attention_resolutions(model: "Gen3DFaceModel") -> list[int]:
    """The latent sides (pixels) at which ``model`` injects depth-wise attention: the frustum levels
    (``frustum_size``, halved twice) that are also resolutions of its UNet's blocks."""
    levels = {model.frustum_size // 2**i for i in range(3)}
    blocks = {model.latent_size // 2**i for i in range(len(model.unet.down_blocks))}
    return sorted(levels & blocks)


def architecture_figure(model: "Gen3DFaceModel") -> "Figure":
    """The Gen3D-Face model as boxes and arrows, drawn from ``model``: its UNet's block widths and the latent
    resolutions where depth-wise attention sits (:func:`depth_attention_resolutions`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.6))
    ax.axis("off")
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 4.6)

    def box(x, y, w, h, text, color):
        ax.add_patch(plt.Rectangle((x, y), w, h, fc=color, ec="k", lw=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1))

    box(0.1, 3.2, 1.7, 0.8, "input view y\n(crop of the photo)", "#fde2c8")
    box(0.1, 1.8, 1.7, 0.8, "N noisy views $x_t^{(1:N)}$\n+ cameras", "#d9e8fb")
    box(0.1, 0.3, 1.7, 0.8, "estimated mesh M\n(from y)", "#e2f0d9")
    box(2.3, 0.9, 1.8, 1.0, "hybrid volume $F_H$\n($F_A$ + sparse 3D\nConvNet on M)", "#e2f0d9")
    box(4.6, 0.9, 1.6, 1.0, "frustum volumes\n(D samples / ray)", "#e2f0d9")
    chans = list(model.unet.config.block_out_channels)
    box(2.3, 2.4, 6.2, 1.7, "", "#f4f4f4")
    ax.text(5.4, 3.95, "UNet on 1 + N frames (one call for all views)", ha="center", fontsize=10)
    for i, c in enumerate(chans + chans[::-1]):
        box(2.5 + i * 6.0 / (2 * len(chans)), 2.6, 0.6, 1.1, f"{c}", "#ffffff")
    sites = depth_attention_resolutions(model)
    ax.text(
        5.4,
        2.45,
        f"attn1 = 3D self-attention over all frames' tokens;  depth-wise attention at {sites} px latents",
        ha="center",
        fontsize=8,
    )
    box(9.0, 2.6, 1.8, 1.1, "ε for all N views\n(Eq. 4 loss)", "#fbe0e0")
    for a in ((1.8, 3.6, 2.3, 3.3), (1.8, 2.2, 2.3, 2.9), (1.8, 0.7, 2.3, 1.2), (1.8, 2.1, 2.6, 1.9)):
        arrow(*a)
    for a in ((4.1, 1.4, 4.6, 1.4), (5.4, 1.9, 5.4, 2.6), (8.5, 3.2, 9.0, 3.2)):
        arrow(*a)
    ax.set_title(
        f"Gen3D-Face drawn from the model object (Sec. 3.2, Fig. 2): UNet block widths {chans}, "
        f"latent {tuple(model.view_shape)} per view",
        fontsize=11,
    )
    return fig


def neighbour_warp_error(
    views: np.ndarray, depth: torch.Tensor, cameras: Cameras, tolerance: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """How well each view agrees with its neighbour on the ring, through a known surface.

    For every pixel of view ``k + 1`` that shows the surface, its 3D point is projected into view ``k``; where
    view ``k`` sees that same point (depth test within ``tolerance`` head units) its colour there is compared
    with view ``k + 1``'s. Views that are one 3D head agree up to shading; views drawn each on its own do not.

    Args:
        views: ``(N, S, S, 3)`` uint8 views on a ring (view ``k + 1`` next to view ``k``; the last next to the first).
        depth: ``(N, S, S)`` camera-frame depth of the true surface in each view, ``inf`` where empty.
        cameras: ``(N,)`` the views' cameras at ``S`` px.
    Returns:
        ``errors (N,)``: per pair ``(k, k + 1)`` the mean absolute colour difference in [0, 1] over the pixels both
        see (NaN where none); ``warped (N, S, S, 3)`` float in [0, 1]: view ``k`` carried into view ``k + 1``'s
        camera, NaN where view ``k`` does not see the point.
    """
    N, S = views.shape[:2]
    img = torch.as_tensor(views).permute(0, 3, 1, 2).float() / 255  # (N, 3, S, S)
    depth = torch.as_tensor(depth, dtype=torch.float32).reshape(N, S, S)
    cams = cameras.resized(S, S)
    uv = cams.pixel_centers().reshape(-1, 2)  # (S*S, 2)
    errors, warped = np.full(N, np.nan), np.full((N, S, S, 3), np.nan, np.float32)
    for k in range(N):
        j = (k + 1) % N
        d = depth[j].reshape(-1)
        hit = torch.isfinite(d)
        X = cams[j].unproject(uv[hit], d[hit])  # (P, 3) world points view j shows
        uv_k, z_k = cams[k].project(X)
        grid = torch.stack([uv_k[:, 0] / S * 2 - 1, uv_k[:, 1] / S * 2 - 1], -1)[
            None, :, None
        ]  # (1, P, 1, 2)
        seen_z = F.grid_sample(
            torch.nan_to_num(depth[k], posinf=1e6)[None, None], grid, mode="nearest", align_corners=False
        )
        colour = F.grid_sample(img[k : k + 1], grid, mode="bilinear", align_corners=False)[0, :, :, 0].T
        seen = (grid.abs() <= 1).all(-1).reshape(-1) & ((seen_z.reshape(-1) - z_k).abs() < tolerance)
        if seen.any():
            here = img[j].reshape(3, -1).T[hit][seen]
            errors[k] = float((colour[seen] - here).abs().mean())
        out = torch.full((S * S, 3), float("nan"))
        idx = torch.nonzero(hit).flatten()[seen]
        out[idx] = colour[seen]
        warped[k] = out.reshape(S, S, 3).numpy()
    return errors, warped


# --------------------------------------------------------------------------------------- notebook 04
def volume_slices_figure(
    rows: Sequence[tuple[str, torch.Tensor, str | None]], zs: Sequence[int], title: str, extent: float = 1.0
) -> "Figure":
    """Slices of volumes at depths ``zs`` (index along the volume's z axis), one row per volume.

    Args:
        rows: ``(label, volume, cmap)``: ``volume (C, V, V, V)`` indexed ``(z, y, x)``; ``C = 3`` shown as RGB in
            [0, 1] (``cmap`` None), ``C = 1`` with ``cmap`` and a colour bar.
        zs: slice indices; title: the figure's title.
    """
    import matplotlib.pyplot as plt

    V = rows[0][1].shape[-1]
    fig, axes = plt.subplots(
        len(rows),
        len(zs),
        figsize=(3.0 * len(zs) + 0.8, 3.1 * len(rows)),
        squeeze=False,
        layout="constrained",
    )
    for r, (label, vol, cmap) in enumerate(rows):
        vol = vol.detach().float().cpu()
        lo, hi = (0.0, 1.0) if cmap is None else (float(vol.min()), float(vol.max()))
        for c, z in enumerate(zs):
            ax = axes[r, c]
            world_z = ((z + 0.5) / V * 2 - 1) * extent
            sl = vol[:, z].permute(1, 2, 0).clamp(0, 1) if cmap is None else vol[0, z]
            im = ax.imshow(sl.numpy(), origin="lower", interpolation="nearest", cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(f"{label}\nslice z = {z} (world z = {world_z:+.2f})", fontsize=9)
            ax.set_xticks(range(0, V, max(1, V // 4)))
            ax.set_yticks(range(0, V, max(1, V // 4)))
            ax.set_xlabel("x voxel")
            ax.set_ylabel("y voxel (up)")
        if cmap is not None:
            fig.colorbar(im, ax=axes[r].tolist(), fraction=0.02, label=label)
    fig.suptitle(title, fontsize=11)
    return fig


def named_shapes_markdown(rows: Sequence[tuple[str, str, torch.Tensor, str]]) -> str:
    """A Markdown table naming every axis of each tensor: ``rows`` of ``(what, symbol, tensor, axes)`` with
    ``axes`` the space-separated axis names (``"B N C h w"``), as many as the tensor has dimensions."""
    out = ["| stage | paper | shape, axis by axis |", "| --- | --- | --- |"]
    for what, symbol, t, axes in rows:
        names = axes.split()
        if len(names) != t.dim():
            raise ValueError(f"{what}: {len(names)} axis names for a {t.dim()}-D tensor")
        shape = ", ".join(f"{n} = {s}" for n, s in zip(names, t.shape))
        out.append(f"| {what} | {symbol} | ({shape}) |")
    return "\n".join(out)


def image_panels(
    images: Sequence[np.ndarray], titles: Sequence[str], title: str, panel_inches: float = 3.0
) -> "Figure":
    """Images ``(H, W, 3)`` (uint8, or float in [0, 1]) side by side, each with its title, under ``title``;
    ``panel_inches`` wide each (at the default 100 dpi, 3 panels of 3 inches make a 900-px-wide picture)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(panel_inches * len(images), panel_inches + 0.6))
    for ax, im, t in zip(np.atleast_1d(axes), images, titles):
        ax.imshow(np.clip(im, 0, 1) if np.asarray(im).dtype.kind == "f" else im, interpolation="nearest")
        ax.set_title(t, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------- notebook 06
#: the metrics the ablation figure shows: (evaluation set, metric key, axis label, better)
ABLATION_PANELS = (
    ("ood", "fid", "FID (unseen styles)", "lower is better"),
    ("ood", "id_consistency_output", "output-to-output ID (unseen styles)", "higher is better"),
    ("ood", "id_consistency_input", "input-to-output ID (unseen styles)", "higher is better"),
    ("indomain", "psnr", "PSNR, dB (held-out heads)", "higher is better"),
)


def earlier_run_fids(note: str) -> dict[str, float]:
    """The out-of-domain FIDs of an earlier run of the fine-tuned protocol, as its run note states them
    (``... gave out-of-domain FIDs joint 205.3, sequential 205.2, ...``): ``{arm: FID}``, empty when absent."""
    m = re.search(r"out-of-domain FIDs (.*?)\.(\s|$)", note)
    if not m:
        return {}
    return {a: float(v) for a, v in re.findall(r"(\w+) ([\d.]+)", m.group(1))}


def ablation_points_figure(results: dict) -> "Figure":
    """The ablation arms as points on axes that start at 0: each panel one metric, each arm one column, the
    fine-tuned protocol's run (filled), the earlier run of that protocol where its FID is known (open), and the
    from-scratch protocol (triangles). ``results``: :func:`gen3dface.evaluation.ablation.shipped_results`."""
    import matplotlib.pyplot as plt

    from gen3dface.evaluation.ablation import metric_value

    arms = list(results["finetune"])
    earlier = earlier_run_fids(results.get("runs", {}).get("finetune", {}).get("note", ""))
    fig, axes = plt.subplots(1, len(ABLATION_PANELS), figsize=(4.0 * len(ABLATION_PANELS), 4.2))
    for ax, (split, key, label, better) in zip(axes, ABLATION_PANELS):
        for protocol, marker, color, name in (
            ("finetune", "o", "C0", "fine-tuned"),
            ("scratch", "^", "C3", "from scratch"),
        ):
            vals = [metric_value(results[protocol][a][split], key) for a in arms]
            xs = [i for i, v in enumerate(vals) if v is not None]
            ax.plot(xs, [vals[i] for i in xs], marker, ms=8, color=color, label=name)
        if key == "fid" and earlier:
            xs = [i for i, a in enumerate(arms) if a in earlier]
            ax.plot(
                xs,
                [earlier[arms[i]] for i in xs],
                "o",
                ms=13,
                mfc="none",
                color="C1",
                label="fine-tuned, earlier run",
            )
        ax.set_ylim(0, 1.05 if key.startswith("id_") else 1.1 * ax.get_ylim()[1])
        ax.set_xticks(range(len(arms)), arms, rotation=25, fontsize=9)
        ax.set_xlim(-0.5, len(arms) - 0.5)
        ax.set_xlabel("arm")
        ax.set_ylabel(label)
        ax.set_title(f"{label}\n({better})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Small-scale ablations (Sec. 4.2): every arm's value on axes that start at 0", fontsize=11)
    fig.tight_layout()
    return fig


def round_markdown_numbers(markdown: str) -> str:
    """``markdown`` with its long decimals shortened for reading: numbers of 100 and more to one decimal, from
    10 to 100 to two; smaller numbers (similarities, SSIM) are left as they are."""

    def short(m: re.Match) -> str:
        v = float(m.group(0))
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 10 else m.group(0)

    return re.sub(r"(?<![\w.])\d+\.\d{3,}(?![\w.])", short, markdown)
