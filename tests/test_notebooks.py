"""The notebook harness: every notebook is well-formed, committed clean, and runs in the smoke profile.

Timings are recorded, never asserted (a busy machine must not fail the suite): each run's seconds are printed in
the summary at the end of the session, and the smoke budget (<= 3 min per notebook on 2 cores, docs/architecture.md) is
checked by ``make reproduce``'s report and ``scripts/bench_notebooks.py``. A hard per-cell timeout far above the
budget still fails a notebook that hangs.
"""

import json
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
#: a cell that runs longer than this has hung (the whole smoke notebook is meant to take <= 180 s)
HANG_TIMEOUT_S = 1800


def load(nb: Path) -> dict:
    return json.loads(nb.read_text())


def test_notebooks_exist_and_are_numbered():
    assert NOTEBOOKS, "no notebooks found"
    numbers = [int(nb.name[:2]) for nb in NOTEBOOKS]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_well_formed(nb):
    d = load(nb)
    assert d["metadata"]["kernelspec"]["name"] == "python3"
    cells = d["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "commit notebooks clean"
    )
    first_code = code[0]
    assert "parameters" in first_code["metadata"].get("tags", []), (
        "first code cell must be tagged `parameters`"
    )
    assert 'profile = "smoke"' in "".join(first_code["source"])
    assert cells[0]["cell_type"] == "markdown" and "colab.research.google.com" in "".join(
        cells[0]["source"]
    ), "title cell needs an Open in Colab badge"
    assert any("google.colab" in "".join(c["source"]) for c in code), "needs a Colab install cell"
    assert any("checks.check_" in "".join(c["source"]) for c in code), "needs exercises with a checker"


@pytest.mark.notebook
@pytest.mark.xdist_group("notebooks")  # one at a time: each kernel uses every core
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(nb, tmp_path, record_property):
    import papermill as pm

    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(nb),
            str(tmp_path / nb.name),
            parameters={"profile": "smoke"},
            kernel_name="python3",
            cwd=str(NOTEBOOK_DIR),
            progress_bar=False,
            execution_timeout=HANG_TIMEOUT_S,
        )
    finally:
        record_property("seconds", round(time.perf_counter() - start, 1))
    out = json.loads((tmp_path / nb.name).read_text())
    errors = [o for c in out["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
