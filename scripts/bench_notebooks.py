#!/usr/bin/env python
"""Time every notebook in the smoke profile (papermill, no HTML) and print a table against the 180 s budget.

    python scripts/bench_notebooks.py                  # all notebooks, fresh runs
    python scripts/bench_notebooks.py --only 05 08     # some of them

The test suite runs the same notebooks but only fails on errors or a hang; this is where their speed is checked.
Exit status 1 if a notebook failed; over-budget notebooks are flagged in the table, not failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from gen3dface.app.reproduce import run_all, timing_table

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="notebook number prefixes, e.g. 00 03")
    args = ap.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.name[:2] in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        records = run_all(notebooks, Path(tmp), "smoke", force=True, html_page=False)
    print(timing_table(records))
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
