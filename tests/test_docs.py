"""Every reference in the docs points at something that exists: dotted names (``gen3dface.mesh.estimate.estimate_mesh``)
import, file paths (``scripts/bench_eval.py``) are in the repository. README, docs/, model cards, the samples'
README and the notebooks' text are read."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "data").glob("*/*.md")),
    *sorted((ROOT / "data" / "checkpoints").glob("*/*.md")),
]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DOTTED = re.compile(r"\bgen3dface(?:\.[A-Za-z_]\w*)+")
PATHS = re.compile(r"(?<![\w./-])((?:gen3dface|scripts|tests|notebooks|docs|data)/[\w./-]*\w)")


def _texts() -> list[tuple[str, str]]:
    out = [(p.relative_to(ROOT).as_posix(), p.read_text()) for p in DOCS]
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        out += [(f"{nb.name} cell {i}", "".join(c["source"])) for i, c in enumerate(cells)]
    return out


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a module of the package or an attribute reachable from one."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        for attr in parts[n:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_resolver_sees_a_missing_name():
    assert resolves("gen3dface.core.cameras.Cameras") and not resolves("gen3dface.core.cameras.NoSuchThing")
    assert not resolves("gen3dface.no_such_module")


@pytest.mark.parametrize(
    "where,text", _texts(), ids=lambda v: v if isinstance(v, str) and len(v) < 60 else ""
)
def test_references_exist(where, text):
    missing = sorted({d.rstrip(".") for d in DOTTED.findall(text) if not resolves(d.rstrip("."))})
    missing += sorted(
        {
            p
            for p in PATHS.findall(text)
            if not any((ROOT / p).exists() for p in (p, p.rstrip("."))) and "*" not in p and "NN" not in p
        }
    )
    assert not missing, f"{where} names what does not exist: {missing}"
