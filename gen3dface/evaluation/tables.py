"""The paper's tables (Tables 1-4, its own numbers) and this package's results laid out like them:
``results.md`` and ``results.json`` of :func:`gen3dface.evaluation.outputs.evaluate_outputs`; out-of-domain
results add a separate "identity on real photos" block (:func:`real_photo_markdown`), the paper's columns
unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gen3dface.core.errors import InputError
from gen3dface.core.storage import atomic_write_text
from gen3dface.evaluation.outputs import OUT_OF_DOMAIN, REAL_PHOTO

#: The paper's own numbers (Tables 1-4), for reference rows in the results table.
PAPER_TABLES: dict[str, dict] = {
    "table1": {
        "title": "Table 1: out-of-domain (1,024 FFHQ inputs)",
        "metrics": OUT_OF_DOMAIN,
        "rows": {
            "Zero-1-to-3": (78.8543, 0.4483, 0.5597, 0.1300),
            "SyncDreamer": (68.0294, 0.4420, 0.5883, 0.1572),
            "EG3D": (66.1578, 0.4623, 0.5142, 0.1531),
            "PanoHead": (58.1578, 0.4821, 0.5644, 0.1611),
            "Morphable Diffusion": (89.7443, 0.5171, 0.5359, 0.1146),
            "Gen3D-Face (paper)": (55.4901, 0.4536, 0.6765, 0.1716),
        },
    },
    "table2": {
        "title": "Table 2: in-domain (FaceScape, 36 test identities)",
        "metrics": ("ssim", "lpips", "fid", "reid_match", "reid_dist"),
        "rows": {
            "pixelNeRF": (0.7898, 0.2200, 92.61, 0.9746, 0.3912),
            "Zero-1-to-3": (0.5656, 0.4248, 10.97, 0.9677, 0.4193),
            "SSD-NeRF": (0.7225, 0.2225, 34.88, 0.9874, 0.3855),
            "SyncDreamer": (0.7732, 0.1854, 6.05, 0.9960, 0.3391),
            "PanoHead": (0.7871, 0.1914, 7.10, 0.9915, 0.3412),
            "Morphable Diffusion": (0.8064, 0.1653, 6.73, 0.9986, 0.3372),
            "Gen3D-Face (paper)": (0.7995, 0.1701, 6.1231, 0.9981, 0.3375),
        },
    },
    "table3": {
        "title": "Table 3: training data ablation (out-of-domain)",
        "metrics": OUT_OF_DOMAIN,
        "rows": {
            "Real data only": (71.2882, 0.4317, 0.5910, 0.1428),
            "Synthetic data only": (105.5801, 0.5355, 0.5149, 0.1011),
            "w/o Data Pruning": (57.3138, 0.4451, 0.6624, 0.1659),
            "w/ Data Pruning": (55.4901, 0.4536, 0.6765, 0.1716),
        },
    },
    "table4": {
        "title": "Table 4: multi-view joint generation (out-of-domain)",
        "metrics": OUT_OF_DOMAIN,
        "rows": {"No": (58.4648, 0.4441, 0.6181, 0.1571), "Yes": (55.4901, 0.4536, 0.6765, 0.1716)},
    },
}
METRIC_LABELS = {
    "fid": "FID↓",
    "id_consistency_output": "Output-to-Output ID Consistency↑",
    "clip": "CLIP↑",
    "id_consistency_input": "Input-to-Output ID Consistency↑",
    "ssim": "SSIM↑",
    "psnr": "PSNR↑",
    "lpips": "LPIPS↓",
    "reid_match": "Re-ID(match)↑",
    "reid_dist": "Re-ID(dist)↓",
    "near_frontal_match": "Near-frontal match rate↑",
    "faces_found": "Views with a face↑",
    "id_impostor": "Impostor baseline (ID between different inputs)",
}


def _fmt(value: float | None, metric: str, paper: bool = False) -> str:
    """FID / PSNR with 2 decimals (the paper's own FIDs keep the decimals it prints), others with 4."""
    if value is None:
        return "n/a"
    if metric in ("fid", "psnr"):
        if paper:
            text = f"{value:.4f}".rstrip("0")
            return text + "0" * max(0, 2 - len(text.split(".")[1]))
        return f"{value:.2f}"
    return f"{value:.4f}"


def results_markdown(
    results: dict, paper: str | bool | None = None, name: str = "gen3dface (this run)"
) -> str:
    """A markdown table in the paper's layout: this run's row, then the paper's rows for reference.

    Args:
        results: :func:`gen3dface.evaluation.outputs.evaluate_outputs`' dict.
        paper: ``None`` picks the protocol's table (Table 1 out-of-domain, Table 2 in-domain); ``"table1"``
            ... ``"table4"`` picks one; ``False`` leaves the paper's rows out.
        name: the label of this run's row.
    """
    if paper is None:
        paper = "table2" if results.get("protocol") == "in_domain" else "table1"
    if paper and paper not in PAPER_TABLES:
        raise InputError(f"unknown paper table {paper!r}; choose one of {', '.join(PAPER_TABLES)}")
    got = results.get("metrics", {})
    cols = list(PAPER_TABLES[paper]["metrics"]) if paper else []
    cols += [m for m in got if m not in cols and m not in REAL_PHOTO]
    lines = [
        f"| Method | {' | '.join(METRIC_LABELS.get(c, c) for c in cols)} |",
        "|" + " --- |" * (len(cols) + 1),
    ]
    lines.append(
        f"| {name} | " + " | ".join(_fmt(got[c]["value"], c) if c in got else "—" for c in cols) + " |"
    )
    if paper:
        tab = PAPER_TABLES[paper]
        for method, vals in tab["rows"].items():
            row = dict(zip(tab["metrics"], vals))
            lines.append(
                f"| {method} | "
                + " | ".join(_fmt(row[c], c, paper=True) if c in row else "—" for c in cols)
                + " |"
            )
    lines.append("")
    lines.append(
        f"Protocol: {results.get('protocol', '?')}, {results.get('n_inputs', '?')} inputs x "
        f"{results.get('n_views', '?')} views at {'x'.join(map(str, results.get('image_size', [])))} px"
        + (f"; paper rows from {PAPER_TABLES[paper]['title']}" if paper else "")
        + "."
    )
    lines.append("")
    block = real_photo_markdown(results)
    if block:
        lines += [block, ""]
    for m, e in got.items():
        detail = "unavailable" if not e["available"] else f"n = {e['n']}"
        if e.get("n_faces_missing"):
            detail += f", faces missing: {e['n_faces_missing']}"
        for k in ("n_ref", "n_pairs"):
            if k in e:
                detail += f", {k} = {e[k]}"
        lines.append(f"- {METRIC_LABELS.get(m, m)}: {detail}" + (f" ({e['note']})" if e.get("note") else ""))
    return "\n".join(lines) + "\n"


def _cell(entry: dict | None, fmt: str) -> str:
    if entry is None:
        return "—"
    return "n/a" if entry.get("value") is None else format(entry["value"], fmt)


def real_photo_markdown(results: dict) -> str:
    """The "identity on real photos" block of out-of-domain results: a table of measure | this run |
    impostor baseline | the paper (its ArcFace, Table 1), and what the numbers rest on; ``""`` when
    ``results`` hold none of :data:`gen3dface.evaluation.outputs.REAL_PHOTO`.

    Args:
        results: :func:`gen3dface.evaluation.outputs.evaluate_outputs`' dict.
    """
    got = results.get("metrics", {})
    if not any(m in got for m in REAL_PHOTO):
        return ""
    paper = dict(zip(PAPER_TABLES["table1"]["metrics"], PAPER_TABLES["table1"]["rows"]["Gen3D-Face (paper)"]))
    near, found = got.get("near_frontal_match"), got.get("faces_found")
    within = near.get("within_deg", 45.0) if near else 45.0
    threshold = near.get("threshold", 0.30) if near else 0.30
    views = found.get("of_views", results.get("n_views", "?")) if found else results.get("n_views", "?")
    rate = "—" if near is None else "n/a" if near["value"] is None else f"{100 * near['value']:.0f} %"
    if near is not None and near["value"] is not None:
        rate += f" ({near['n_matched']} of {near['n']})"
    rows = [
        (
            "input-to-output ID, mean cosine over generated views with a face",
            _cell(got.get("id_consistency_input"), ".4f"),
            _cell(got.get("id_impostor"), ".4f"),
            f"{paper['id_consistency_input']:.4f}",
        ),
        (
            f"near-frontal views (within {within:g}° of the input's pose) matching the input at cosine "
            f"≥ {threshold:.2f}",
            rate,
            "—",
            "—",
        ),
        (
            "output-to-output ID",
            _cell(got.get("id_consistency_output"), ".4f"),
            "—",
            f"{paper['id_consistency_output']:.4f}",
        ),
        (f"views in which a face is found, of {views}", _cell(found, ".1f"), "—", "—"),
    ]
    lines = [
        "### Identity on real photos",
        "",
        "| measure | this run | impostor baseline (two different real people) | paper (its ArcFace) |",
        "| --- | --- | --- | --- |",
        *(f"| {' | '.join(r)} |" for r in rows),
        "",
    ]
    backend = results.get("id_backend", "?")
    notes = [f"Face embedder: {backend}."]
    if backend == "dlib":
        notes.append(
            "dlib's cosines are about 0.9 for any two faces: these numbers cannot tell people apart; with an "
            "ArcFace-class embedder they can."
        )
    if near is not None and near.get("yaw_source"):
        notes.append(f"Input pose: {near['yaw_source']}.")
    imp = got.get("id_impostor")
    if imp is not None and imp.get("value") is not None:
        pairs = f"{imp['n_pairs']} pair" + "s" * (imp["n_pairs"] != 1)
        notes.append(
            f"Impostor baseline: the mean cosine over {pairs} of different inputs, what input-to-output ID is "
            "by chance."
        )
    notes.append(
        "The paper's values are its own ArcFace on 1,024 FFHQ inputs (Table 1): another embedder and set."
    )
    lines.append(" ".join(notes))
    return "\n".join(lines)


def write_results(
    results: dict, out_dir: str | os.PathLike, paper: str | bool | None = None
) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out_dir`` atomically; returns both paths."""
    out = Path(out_dir)
    js, md = out / "results.json", out / "results.md"
    atomic_write_text(js, json.dumps(results, indent=1, allow_nan=False))
    atomic_write_text(md, results_markdown(results, paper))
    return js, md
