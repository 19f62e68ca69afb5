"""The install story stays consistent: pyproject <-> environment.yml, Makefile, CI, README."""

import re
import tomllib
from pathlib import Path

import pytest

from gen3dface.core.errors import InputError
from gen3dface.core.profiles import PROFILES, get_profile

ROOT = Path(__file__).resolve().parent.parent


def norm(req: str) -> str:
    req = req.split(";")[0].strip().lower().replace("_", "-")
    return re.sub(r"\s+", "", req)


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = {
        norm(r)
        for r in pyproject["dependencies"]
        + pyproject["optional-dependencies"]["cpu"]
        + pyproject["optional-dependencies"]["dev"]
        if not r.startswith("torch")
    }
    env = (ROOT / "environment.yml").read_text()
    pip_lines = [m.group(1).strip().strip('"').strip("'") for m in re.finditer(r"^\s{6}-\s+(.+)$", env, re.M)]
    got = {norm(p) for p in pip_lines if not p.startswith(("-", "torch", "."))}
    assert got == want, f"only in environment.yml: {got - want}; only in pyproject: {want - got}"
    assert any(line.startswith("torch==2.13.0") for line in pip_lines)
    assert re.search(r"python=3\.11", env)


def test_make_targets_and_ci():
    mk = (ROOT / "Makefile").read_text()
    for target in ("install:", "demo:", "test:", "reproduce:"):
        assert re.search(rf"^{target}", mk, re.M), target
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "HF_HUB_OFFLINE=1" in ci
    readme = (ROOT / "README.md").read_text()
    for cmd in ("make demo", "make test", "make reproduce", "conda env create -f environment.yml", "colab"):
        assert cmd in readme.lower() or cmd in readme, cmd


def test_profiles():
    assert set(PROFILES) == {"smoke", "small", "paper"}
    paper = get_profile("paper")
    assert (
        paper.image_size,
        paper.n_views,
        paper.n_synth_views,
        paper.ddim_steps,
        paper.batch_size,
        paper.train_steps,
        paper.volume_size,
        paper.frustum_depth,
    ) == (256, 16, 48, 50, 8, 48000, 32, 48)
    assert get_profile("smoke").image_size <= 64
    with pytest.raises(InputError):
        get_profile("huge")
