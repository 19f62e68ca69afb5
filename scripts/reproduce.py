#!/usr/bin/env python
"""Run every notebook with papermill in one profile, write executed copies, HTML pages and a report.

    python scripts/reproduce.py --profile smoke --out outputs      # what `make reproduce` runs
    python scripts/reproduce.py --profile paper --only 05 06        # a GPU run of some notebooks

Resumable: a notebook whose executed copy is newer than its source (same profile) is skipped unless
--force. The report (``OUT/PROFILE/report.html``, and a table printed here) gives each notebook's seconds
against the profile's budget (smoke: 180 s per notebook on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gen3dface.app.reproduce import run_all, timing_table, write_report
from gen3dface.core.profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke", choices=list(PROFILES))
    ap.add_argument("--out", default="outputs", type=Path)
    ap.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 00 03")
    ap.add_argument("--force", action="store_true", help="re-run notebooks whose outputs are up to date")
    args = ap.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.only]
    out_dir = args.out / args.profile
    records = run_all(notebooks, out_dir, args.profile, args.force)
    report = write_report(records, out_dir, args.profile)
    print(timing_table(records))
    print(f"report: {report}")
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
