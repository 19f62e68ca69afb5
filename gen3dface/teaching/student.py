"""Student copies of the notebooks: every exercise's reference answer taken out, the checkers kept.

The notebooks mark each reference answer nbgrader-style, on lines of their own::

    answer = None                    # the names a checker reads are set before the block
    ### BEGIN SOLUTION
    answer = ...
    ### END SOLUTION
    checks.check_answer(answer)

:func:`student_copy` replaces every block (markers included) by one ``# YOUR CODE HERE`` line at the block's
indentation. Inside a function that line is followed by ``raise NotImplementedError()`` (so the function
still parses and its checker says ``not implemented yet``); inside another indented block by ``pass``. Outputs
and execution counts are cleared. ``make student`` (``python -m gen3dface.teaching.student``) writes the copy
of every notebook to ``outputs/student/``; :func:`assert_no_solution_code` proves a copy holds no answer.
"""

from __future__ import annotations

import argparse
import copy
import re
import warnings
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
PLACEHOLDER = "# YOUR CODE HERE"
#: the repository's notebooks folder (a student copy is made of each ``NN_name.ipynb`` there)
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent.parent / "notebooks"
_DEF = re.compile(r"\s*(async\s+)?def\s")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _opener(lines: list[str], indent: str) -> str:
    """The nearest line above the end of ``lines`` indented less than ``indent`` (the block's opener)."""
    for line in reversed(lines):
        if line.strip() and not line.lstrip().startswith("#") and len(_indent(line)) < len(indent):
            return line
    return ""


def solution_blocks(source: str) -> list[tuple[int, int]]:
    """``(begin, end)`` line indices of every solution block of a cell's ``source`` (the marker lines).

    Raises ``ValueError`` for a ``### BEGIN SOLUTION`` without its ``### END SOLUTION``, an end without a
    beginning, or a block opened inside another."""
    blocks, start = [], None
    for i, line in enumerate(source.split("\n")):
        mark = line.strip()
        if mark == BEGIN:
            if start is not None:
                raise ValueError(f"line {i + 1}: {BEGIN} inside the block opened on line {start + 1}")
            start = i
        elif mark == END:
            if start is None:
                raise ValueError(f"line {i + 1}: {END} without a {BEGIN} above it")
            blocks.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"line {start + 1}: {BEGIN} without an {END}")
    return blocks


def strip_solutions(source: str) -> str:
    """``source`` with every solution block replaced by ``# YOUR CODE HERE`` (and ``raise
    NotImplementedError()`` inside a function, ``pass`` inside another block), so the cell still runs."""
    lines = source.split("\n")
    out: list[str] = []
    pos = 0
    for begin, end in solution_blocks(source):
        out += lines[pos:begin]
        indent = _indent(lines[begin])
        out.append(indent + PLACEHOLDER)
        if indent:
            out.append(
                indent + ("raise NotImplementedError()" if _DEF.match(_opener(out, indent)) else "pass")
            )
        pos = end + 1
    return "\n".join(out + lines[pos:])


def solution_lines(source: str) -> set[str]:
    """The stripped code lines inside ``source``'s solution blocks (blank lines and comments left out)."""
    lines = source.split("\n")
    found = set()
    for begin, end in solution_blocks(source):
        for line in lines[begin + 1 : end]:
            code = line.strip()
            if code and not code.startswith("#"):
                found.add(code)
    return found


def student_copy(nb):
    """A student copy of the notebook ``nb`` (an ``nbformat`` node; ``nb`` itself is left as it is): solution
    blocks stripped (:func:`strip_solutions`), outputs and execution counts cleared, every other cell (the
    statements and the checker calls) kept."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    out.metadata["gen3dface"] = {"copy": "student"}
    return out


def assert_no_solution_code(student, original=None) -> None:
    """Raise ``AssertionError`` when the ``student`` copy still holds a solution marker or, given the
    ``original`` notebook, any line of a reference answer in the cell that held it."""
    problems = []
    for i, cell in enumerate(student.cells):
        if cell.cell_type == "code" and (BEGIN in cell.source or END in cell.source):
            problems.append(f"cell {i} keeps a solution marker")
    if original is not None:
        for i, (s, o) in enumerate(zip(student.cells, original.cells)):
            if o.cell_type != "code":
                continue
            kept = solution_lines(o.source) & {line.strip() for line in s.source.split("\n")}
            if kept:
                problems.append(f"cell {i} keeps reference lines {sorted(kept)}")
    if problems:
        raise AssertionError("not a student copy: " + "; ".join(problems))


def notebooks(folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) of ``folder``, in order."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def make_student(out_dir: str | Path = "outputs/student", sources: list[Path] | None = None) -> list[Path]:
    """Write the student copy of each notebook in ``sources`` (default: every notebook) into ``out_dir``,
    after checking it holds no solution code; returns the paths written."""
    import nbformat

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources if sources is not None else notebooks():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the committed notebooks carry no cell ids
            nb = nbformat.read(src, as_version=4)
        copy_ = student_copy(nb)
        assert_no_solution_code(copy_, nb)
        path = out / Path(src).name
        path.write_text(nbformat.writes(copy_) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m gen3dface.teaching.student [--out DIR]``: the student copies of every notebook."""
    parser = argparse.ArgumentParser(description="Write solution-free copies of the notebooks.")
    parser.add_argument("--out", default="outputs/student", help="folder for the copies (outputs/student)")
    args = parser.parse_args(argv)
    for path in make_student(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
