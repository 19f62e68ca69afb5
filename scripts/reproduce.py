#!/usr/bin/env python
"""Run every notebook with papermill in one profile, write executed copies, HTML pages and a report.

    python scripts/reproduce.py --profile smoke --out outputs      # what `make reproduce` runs
    python scripts/reproduce.py --profile paper --only 05 06        # a GPU run of some notebooks

Resumable: a notebook whose executed copy is newer than its source (same profile) is skipped unless
--force. Executed copies are written to a temporary name and renamed, so a killed run leaves no partial file.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def digest(path: Path, profile: str) -> str:
    return hashlib.sha256(path.read_bytes() + profile.encode()).hexdigest()[:16]


def run(nb: Path, out_dir: Path, profile: str, force: bool) -> dict:
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    executed = out_dir / "notebooks" / nb.name
    page = out_dir / "html" / (nb.stem + ".html")
    stamp = out_dir / "notebooks" / (nb.stem + ".json")
    key = digest(nb, profile)
    if not force and stamp.exists() and executed.exists() and page.exists():
        rec = json.loads(stamp.read_text())
        if rec.get("key") == key and rec.get("status") == "ok":
            rec["skipped"] = True
            return rec
    executed.parent.mkdir(parents=True, exist_ok=True)
    page.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.stem}.part.ipynb")
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile}, kernel_name="python3",
                            cwd=str(nb.parent), progress_bar=sys.stderr.isatty())
    except Exception as e:  # noqa: BLE001 - a failed notebook is reported, the others still run
        status, error = "failed", f"{e.__class__.__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    seconds = time.perf_counter() - start
    if tmp.exists():
        os.replace(tmp, executed)
        body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
        page.write_text(body)
    rec = {"notebook": nb.name, "profile": profile, "status": status, "error": error,
           "seconds": round(seconds, 1), "key": key, "skipped": False}
    stamp.write_text(json.dumps(rec))
    return rec


def write_report(records: list[dict], out_dir: Path, profile: str) -> Path:
    rows = "\n".join(
        f"<tr><td><a href='html/{html.escape(Path(r['notebook']).stem)}.html'>{html.escape(r['notebook'])}</a></td>"
        f"<td class='{r['status']}'>{r['status']}{' (cached)' if r.get('skipped') else ''}</td>"
        f"<td>{r['seconds']:.1f}</td><td>{html.escape(r.get('error', ''))}</td></tr>" for r in records)
    page = f"""<!doctype html><meta charset="utf-8"><title>gen3dface reproduction ({profile})</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 12px}} .ok{{color:green}} .failed{{color:red}}</style>
<h1>gen3dface: notebooks in the <code>{profile}</code> profile</h1>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>error</th></tr>
{rows}</table>"""
    report = out_dir / "report.html"
    report.write_text(page)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke", choices=["smoke", "small", "paper"])
    ap.add_argument("--out", default="outputs", type=Path)
    ap.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 00 03")
    ap.add_argument("--force", action="store_true", help="re-run notebooks whose outputs are up to date")
    args = ap.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.only]
    out_dir = args.out / args.profile
    records = []
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.name} ...", flush=True)
        rec = run(nb, out_dir, args.profile, args.force)
        print(f"    {rec['status']}{' (up to date)' if rec['skipped'] else ''} in {rec['seconds']:.1f} s"
              + (f": {rec['error']}" if rec["error"] else ""), flush=True)
        records.append(rec)
    report = write_report(records, out_dir, args.profile)
    print(f"report: {report}")
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
