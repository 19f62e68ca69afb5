"""Run the notebooks with papermill in one profile: executed copies, HTML pages, and a report with each
notebook's time against the profile's budget (the smoke profile: 180 s per notebook on a 2-core CPU).

Used by ``make reproduce`` (``scripts/reproduce.py``) and ``scripts/bench_notebooks.py``. Timings are reported
here, never asserted by the test suite: a busy machine must not fail the tests. The HTML pages show the
notebooks' interactive 3D figures: nbconvert drops plotly's own output type, so :func:`add_plotly_html` gives
each one an HTML rendering first.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import sys
import time
from pathlib import Path

#: the output type a plotly figure is displayed with in a Jupyter kernel (JupyterLab, VS Code and Colab draw it)
PLOTLY_MIME = "application/vnd.plotly.v1+json"

#: seconds a notebook may take per profile (docs/architecture.md: every notebook runs in <= 3 min on 2 CPU cores in smoke)
BUDGET_S: dict[str, float] = {"smoke": 180.0}


def digest(path: Path, profile: str) -> str:
    """A key for the notebook's source and profile (an executed copy with the same key is up to date)."""
    return hashlib.sha256(path.read_bytes() + profile.encode()).hexdigest()[:16]


def _plotly_js() -> str:
    """plotly.js inline, defining ``window.Plotly`` also where require.js is loaded (nbconvert's templates load
    it, and plotly.js would then register as an anonymous AMD module instead)."""
    from plotly.offline import get_plotlyjs

    return (
        '<script type="text/javascript">(function(define, module, exports) {\n'
        + get_plotlyjs()
        + "\n}).call(window);</script>\n"
    )


def add_plotly_html(nb) -> int:
    """Give every plotly output of the notebook ``nb`` that has no ``text/html`` rendering one (the figure as an
    HTML ``div``; plotly.js inline once, before the first figure, so the page works offline). nbconvert's HTML
    exporter shows ``text/html`` and drops :data:`PLOTLY_MIME`. Returns how many figures were given one."""
    import plotly.io as pio

    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIME not in data or "text/html" in data:
                continue
            fig = pio.to_html(data[PLOTLY_MIME], include_plotlyjs=False, full_html=False, validate=False)
            data["text/html"] = (_plotly_js() if n == 0 else "") + fig
            n += 1
    return n


def notebook_html(executed: Path) -> str:
    """The HTML page of an executed notebook, its plotly figures included (:func:`add_plotly_html`)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    add_plotly_html(nb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def run_notebook(nb: Path, out_dir: Path, profile: str, force: bool = False, html_page: bool = True) -> dict:
    """Execute ``nb`` into ``out_dir/notebooks`` (and ``out_dir/html`` unless ``html_page`` is False).

    Resumable: a notebook whose executed copy has the same source and profile is skipped unless ``force``.
    The executed copy is written under a temporary name and renamed, so a killed run leaves no partial file.
    Returns ``{"notebook", "profile", "status": "ok"|"failed", "error", "seconds", "budget", "key", "skipped"}``.
    """
    import papermill as pm

    executed = out_dir / "notebooks" / nb.name
    page = out_dir / "html" / (nb.stem + ".html")
    stamp = out_dir / "notebooks" / (nb.stem + ".json")
    key = digest(nb, profile)
    if not force and stamp.exists() and executed.exists() and (page.exists() or not html_page):
        rec = json.loads(stamp.read_text())
        if rec.get("key") == key and rec.get("status") == "ok":
            return dict(rec, skipped=True)
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.stem}.part.ipynb")
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        pm.execute_notebook(
            str(nb),
            str(tmp),
            parameters={"profile": profile},
            kernel_name="python3",
            cwd=str(nb.parent),
            progress_bar=sys.stderr.isatty(),
        )
    except Exception as e:  # noqa: BLE001 - a failed notebook is reported, the others still run
        last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        status, error = "failed", f"{e.__class__.__name__}: {last}"
    seconds = time.perf_counter() - start
    if tmp.exists():
        os.replace(tmp, executed)
        if html_page:
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(notebook_html(executed))
    rec = {
        "notebook": nb.name,
        "profile": profile,
        "status": status,
        "error": error,
        "seconds": round(seconds, 1),
        "budget": BUDGET_S.get(profile),
        "key": key,
        "skipped": False,
    }
    stamp.write_text(json.dumps(rec))
    return rec


def within_budget(rec: dict) -> str:
    """``"yes"``, ``"NO"`` or ``"-"`` (no budget for the profile, or a cached record)."""
    if rec.get("budget") is None or rec.get("skipped"):
        return "-"
    return "yes" if rec["seconds"] <= rec["budget"] else "NO"


def timing_table(records: list[dict]) -> str:
    """A markdown table of the runs: notebook, status, seconds, budget, within budget."""
    lines = [
        "| notebook | status | seconds | budget (s) | within budget |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in records:
        budget = "-" if r.get("budget") is None else f"{r['budget']:.0f}"
        status = r["status"] + (" (cached)" if r.get("skipped") else "")
        lines.append(f"| {r['notebook']} | {status} | {r['seconds']:.1f} | {budget} | {within_budget(r)} |")
    return "\n".join(lines)


def write_report(records: list[dict], out_dir: Path, profile: str) -> Path:
    """``out_dir/report.html``: one row per notebook, linked to its HTML page, with its time and budget."""
    rows = "\n".join(
        f"<tr><td><a href='html/{html.escape(Path(r['notebook']).stem)}.html'>{html.escape(r['notebook'])}</a></td>"
        f"<td class='{r['status']}'>{r['status']}{' (cached)' if r.get('skipped') else ''}</td>"
        f"<td>{r['seconds']:.1f}</td><td>{'-' if r.get('budget') is None else int(r['budget'])}</td>"
        f"<td class='{'failed' if within_budget(r) == 'NO' else ''}'>{within_budget(r)}</td>"
        f"<td>{html.escape(r.get('error', ''))}</td></tr>"
        for r in records
    )
    page = f"""<!doctype html><meta charset="utf-8"><title>gen3dface reproduction ({profile})</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 12px}} .ok{{color:green}} .failed{{color:red}}</style>
<h1>gen3dface: notebooks in the <code>{profile}</code> profile</h1>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>budget (s)</th><th>within budget</th><th>error</th></tr>
{rows}</table>"""
    report = out_dir / "report.html"
    report.write_text(page)
    return report


def run_all(
    notebooks: list[Path], out_dir: Path, profile: str, force: bool = False, html_page: bool = True
) -> list[dict]:
    """Run ``notebooks`` in order, printing one line each; returns their records."""
    records = []
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name} ...", flush=True)
        rec = run_notebook(nb, out_dir, profile, force, html_page)
        print(
            f"    {rec['status']}{' (up to date)' if rec['skipped'] else ''} in {rec['seconds']:.1f} s"
            + (f": {rec['error']}" if rec["error"] else ""),
            flush=True,
        )
        records.append(rec)
    return records
