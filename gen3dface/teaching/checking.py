"""The one contract of the notebooks' exercise checkers.

A checker ``check_<name>(answer, ...)`` takes the student's answer (a function or a value), tests it against the
package's reference (on random cases where the answer is a function) and

* on success prints one line ``PASS <name>: <detail>`` and returns ``True``;
* on failure raises :class:`ExerciseFailed`, an ``AssertionError`` whose message is one sentence saying what is
  wrong. The student's own exception becomes that sentence too (``not implemented yet``,
  ``raised ValueError: … (line 3)``), and Jupyter shows the single line ``FAIL <name>: <reason>`` in place of a
  traceback.

A checker is written as a body run by :func:`run_check`: the body returns the success detail or raises
:class:`ExerciseFailed` (directly or through :func:`expect_close` / :func:`expect_equal`).

In a student copy (:mod:`gen3dface.teaching.student`) a solution block is one ``# YOUR CODE HERE`` line: a
function's body raises ``NotImplementedError`` (``not implemented yet``) and a value the checker reads is still
the ``None`` it was set to before the block; :func:`require` and :func:`require_function` turn that ``None``
into one sentence naming the variable.
"""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

#: frames from these folders are the package's or a library's, never the student's
_NOT_STUDENT = tuple(
    str(Path(p).resolve()) for p in {Path(__file__).parent.parent, sys.prefix, sys.base_prefix}
)


class ExerciseFailed(AssertionError):
    """A wrong (or unfinished) answer: ``str(error)`` is one sentence saying what is wrong.

    Attributes:
        reason: that sentence.
        exercise: the exercise's name (set by :func:`run_check`).
    """

    def __init__(self, reason: str, exercise: str = ""):
        super().__init__(reason)
        self.reason, self.exercise = reason, exercise

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: the one line Jupyter shows in place of a traceback."""
        return [f"FAIL {self.exercise}: {self.reason}"]


def one_line(text: str) -> str:
    """``text``'s first non-empty line, stripped (an exception message may run over several)."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def student_error(error: BaseException) -> str:
    """One sentence for an exception the student's code raised: ``not implemented yet`` for
    ``NotImplementedError``, else ``raised <Type>: <first line of the message> (line N)`` with N the line of the
    deepest frame in the student's code (none when the exception came from the package or a library)."""
    if isinstance(error, NotImplementedError):
        return "not implemented yet"
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not str(Path(f.filename).resolve()).startswith(_NOT_STUDENT)
    ]
    where = f" (line {frames[-1].lineno})" if frames else ""
    message = one_line(error)
    if not frames and isinstance(error, TypeError) and "'NoneType' object is not callable" in message:
        return "the function you pass is still None: define it above the checker and re-run the cell"
    return f"raised {error.__class__.__name__}" + (f": {message}" if message else "") + where


def run_check(exercise: str, body: Callable[[], str]) -> bool:
    """Run a checker's ``body``: it returns the success detail or raises :class:`ExerciseFailed`.

    Prints ``PASS <exercise>: <detail>`` and returns ``True``; raises :class:`ExerciseFailed` (named after
    ``exercise``) for a wrong answer and for any exception the student's code raised.
    """
    try:
        detail = body()
    except ExerciseFailed as e:
        raise ExerciseFailed(one_line(e.reason), exercise) from None
    except Exception as e:  # noqa: BLE001 - a student's bug is a failed check, not a crash
        raise ExerciseFailed(student_error(e), exercise) from None
    print(f"PASS {exercise}: {detail}")
    return True


#: the reason given for a function that returned ``None``
RETURNED_NONE = "returned None (is a return statement missing?)"


def answered(value: Any, reason: str = RETURNED_NONE) -> Any:
    """``value``, or :class:`ExerciseFailed` (``reason``) when it is ``None`` (no answer given)."""
    if value is None:
        raise ExerciseFailed(reason)
    return value


def require(value: Any, name: str, task: str) -> Any:
    """``value``, or :class:`ExerciseFailed` ``"`name` is still None: <task>"`` when it is ``None`` (a student
    copy's blank answer). ``task`` says what to do, in lower case without a full stop."""
    if value is None:
        raise ExerciseFailed(f"`{name}` is still None: {task}")
    return value


def require_function(fn: Any, name: str, task: str = "write the function above and re-run the cell") -> Any:
    """``fn`` when it is callable; :class:`ExerciseFailed` for ``None`` (see :func:`require`) or a value."""
    require(fn, name, task)
    if not callable(fn):
        raise ExerciseFailed(f"`{name}` must be a function, not a {type(fn).__name__}")
    return fn


def is_one_sentence(text: str) -> bool:
    """Whether ``text`` is one sentence: not blank, one line, no full stop (or ``!``/``?``) followed by more
    text. Every :class:`ExerciseFailed` message is one."""
    text = str(text).strip()
    return bool(text) and "\n" not in text and not re.search(r"[.!?]\s+\S", text)


def as_array(x: Any) -> np.ndarray:
    """A float64 array of ``x`` (a tensor, with or without grad and on any device, a scalar or a sequence)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def mismatch(got: Any, want: Any, atol: float) -> str | None:
    """``None`` when ``got`` has ``want``'s shape and every entry within ``atol`` (NaN matching NaN), else what
    differs (``returned None``, the shapes, or the largest error)."""
    if got is None:
        return RETURNED_NONE
    got, want = as_array(got), as_array(want)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    same = (got == want) | (np.isnan(got) & np.isnan(want))  # NaN where the reference has NaN is right
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf
        err = float(np.where(same, 0.0, np.abs(got - want)).max()) if got.size else 0.0
    if np.isnan(err):
        return "NaN where the reference has a number"
    return None if err <= atol else f"largest error {err:.4g} (allowed {atol:g})"


def expect_close(got: Any, want: Any, atol: float, where: str = "") -> None:
    """Raise :class:`ExerciseFailed` (``"<where>: <mismatch>"``) unless ``got`` matches ``want`` within ``atol``."""
    why = mismatch(got, want, atol)
    if why:
        raise ExerciseFailed(f"{where}: {why}" if where else why)


def expect_equal(got: Any, want: Any, where: str = "") -> None:
    """Raise :class:`ExerciseFailed` (``"<where>: got …, expected …"``) unless ``got == want``."""
    if got != want:
        why = f"got {got!r}, expected {want!r}"
        raise ExerciseFailed(f"{where}: {why}" if where else why)
