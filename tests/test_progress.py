"""Progress bars refresh sparsely when their output is a log, not a terminal."""

import io
import sys

from gen3dface.core import progress


def test_a_bar_written_to_a_log_refreshes_sparsely(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not progress.interactive()
    bar = progress.progress_bar(range(500), desc="work", file=log)
    for i in bar:
        bar.set_postfix(step=i, refresh=False)
    refreshes = log.getvalue().count("\r")
    assert 1 <= refreshes <= 3, f"{refreshes} refreshes for 500 quick steps"
    assert "500/500" in log.getvalue()


def test_a_terminal_keeps_the_normal_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress.interactive()
    bar = progress.progress_bar(range(3), file=io.StringIO())
    assert bar.mininterval < progress.LOG_INTERVAL_S
