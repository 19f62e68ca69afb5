"""scripts/prepare_training.py: a bad setting is told in one line with exit code 2, and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prepare_training.py"


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--decals", "2"], "decal_rate is a rate in [0, 1]"),
        (["--squircle", "9"], "squircle must be between"),
    ],
)
def test_a_bad_head_setting_is_one_line_and_exit_2(tmp_path, flags, says):
    out = tmp_path / "prep.npz"
    cmd = [sys.executable, str(SCRIPT), "-o", str(out), "--identities", "1", *flags]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    err = [
        line for line in run.stderr.strip().splitlines() if "prepare_training" in line or "Traceback" in line
    ]
    assert run.returncode == 2 and len(err) == 1, run.stderr
    assert err[0].startswith("prepare_training: error:") and says in err[0]
    assert "Traceback" not in run.stderr and not out.exists()


def test_the_decal_rate_is_recorded_in_the_source_only_when_set():
    from gen3dface.synth.synthesis import SynthConfig
    from gen3dface.training.data import procedural_source

    assert "decal_rate" not in procedural_source(2)["synth"]
    synth = procedural_source(2, varied_appearance=0.75, decal_rate=0.0)["synth"]
    assert synth["decal_rate"] == 0.0 and SynthConfig(**synth).decal_rate == 0.0
