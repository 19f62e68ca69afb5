"""The notebooks as course material (docs/teaching.md): every notebook opens with a "Before you start" cell, says
nothing about how the project was built, has papermill-readable parameters, titles on its figures and
well-formed solution blocks; the student copies hold no solution code and their checkers fail in one polite
sentence; ``make reproduce``'s HTML shows the plotly 3D figures."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import logging
import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest

from gen3dface.teaching import student
from gen3dface.teaching.checking import ExerciseFailed, is_one_sentence

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = student.notebooks(NOTEBOOK_DIR)
CHECKERS = [importlib.import_module(f"gen3dface.teaching.exercises.nb{nb.name[:2]}") for nb in NOTEBOOKS]
#: words about how the project was built, which no notebook text may use (case-insensitive regular expressions)
BUILD_WORDS = [
    r"\blent\b",
    r"\bsessions?\b",
    r"\bpull requests?\b",
    r"\bPR ?#?\d",
    r"\bissue ?#\d",
    r"\bissues? show\b",
    r"\bhelpers?\b",
    r"\bprevious model\b",
    r"\bearlier model\b",
    r"\bmodel of the time\b",
    r"\bgit show\b",
    r"\bthe lead\b",
]
FIGURE = re.compile(r"plt\.(subplots|figure|imshow)\(|go\.Figure\(|cameras_figure\(")
TITLE = re.compile(r"set_title\(|\btitle\(|suptitle\(|title=")
PLOT = re.compile(r"\.(plot|scatter|hist|bar|barh|semilogy|loglog|errorbar)\(")
LABEL = re.compile(r"xlabel|ylabel|axis\(\"off\"\)|set_xticks\(\[\]\)|set_axis_off")
CHECK_CALL = re.compile(r"checks\.check_\w+\((.*)\)")


def load(nb: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the committed notebooks carry no cell ids
        return nbformat.read(nb, as_version=4)


def code_cells(nb) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def by_stem(p: Path) -> str:
    return p.stem


# ------------------------------------------------------------------------------------- the notebook lint
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=by_stem)
def test_before_you_start_cell(nb):
    cell = load(nb).cells[1]
    assert cell.cell_type == "markdown" and cell.source.startswith("## Before you start"), (
        "the second cell must be the markdown cell '## Before you start'"
    )
    lines = cell.source.splitlines()
    for key in ("- **Prerequisites:**", "- **You will learn:**", "- **Time:**"):
        found = [line for line in lines if line.startswith(key)]
        assert len(found) == 1 and len(found[0]) > len(key) + 10, f"needs one filled-in line '{key} ...'"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=by_stem)
def test_no_words_about_how_the_project_was_built(nb):
    found = [
        f"cell {i}: {m.group(0)!r}"
        for i, c in enumerate(load(nb).cells)
        for word in BUILD_WORDS
        for m in re.finditer(word, c.source, re.IGNORECASE)
    ]
    assert not found, f"{nb.name} speaks of how the project was built: {found}"


def test_build_words_are_seen():
    text = "trained on the lent H100 in session 4 (see the pull request); most of the time it works"
    hits = [w for w in BUILD_WORDS if re.search(w, text, re.IGNORECASE)]
    assert len(hits) == 3


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=by_stem)
def test_papermill_parses_the_parameters(nb):
    import papermill

    logger = logging.getLogger("papermill.translators")
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat: the committed notebooks carry no cell ids
            params = papermill.inspect_notebook(str(nb))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    warned = [r.getMessage() for r in handler.records]
    assert not warned, f"papermill cannot read every parameter line: {warned}"
    assert "profile" in params


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=by_stem)
def test_figures_have_titles_and_labels(nb):
    cells = code_cells(load(nb))
    untitled = [i for i, s in cells if FIGURE.search(s) and not TITLE.search(s)]
    unlabelled = [i for i, s in cells if PLOT.search(s) and not LABEL.search(s)]
    assert not untitled, f"{nb.name}: figure cells without a title: {untitled}"
    assert not unlabelled, f"{nb.name}: plots without axis labels (or axes switched off): {unlabelled}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=by_stem)
def test_solution_blocks_and_exercise_statements(nb):
    book = load(nb)
    for i, source in code_cells(book):
        blocks = student.solution_blocks(source)  # raises for an unbalanced marker
        assert source.count("BEGIN SOLUTION") == len(blocks), f"cell {i}: a marker not on a line of its own"
        calls = CHECK_CALL.findall(source)
        if not calls:
            continue
        before = book.cells[i - 1]
        assert before.cell_type == "markdown" and "Exercise" in before.source, (
            f"cell {i}: an exercise needs its statement in the markdown cell just before it"
        )
        lines = source.split("\n")
        for begin, end in blocks:
            if lines[begin] != lines[begin].lstrip():
                continue  # inside a function: the student copy raises NotImplementedError there
            block = ast.parse("\n".join(lines[begin + 1 : end]))
            assigned = {
                t.id
                for n in ast.walk(block)
                if isinstance(n, ast.Assign)
                for t in n.targets
                if isinstance(t, ast.Name)
            }
            read = {a.id for c in calls for a in ast.walk(ast.parse(f"f({c})")) if isinstance(a, ast.Name)}
            for name in sorted(assigned & read):
                assert re.search(rf"^{name} = None\b", "\n".join(lines[:begin]), re.M), (
                    f"cell {i}: set `{name} = None` before {student.BEGIN}, so the student copy still runs"
                )


# ------------------------------------------------------------------------------------- student copies
def test_strip_solutions_keeps_every_cell_runnable():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\ncheck(f)"
    assert student.strip_solutions(src) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\ncheck(f)"
    )
    top = "answer = None\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\ncheck(answer)"
    assert student.strip_solutions(top) == "answer = None\n# YOUR CODE HERE\ncheck(answer)"
    loop = "for k in range(3):\n    ### BEGIN SOLUTION\n    total += k\n    ### END SOLUTION\n"
    assert student.strip_solutions(loop) == "for k in range(3):\n    # YOUR CODE HERE\n    pass\n"
    assert student.solution_lines(top) == {"answer = 42"}
    for broken in (
        "### BEGIN SOLUTION\nx = 1",
        "x = 1\n### END SOLUTION",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION",
    ):
        with pytest.raises(ValueError):
            student.solution_blocks(broken)


def test_assert_no_solution_code_sees_a_leak():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("answer = None\n### BEGIN SOLUTION\nanswer = 6 * 7\n### END SOLUTION")
    ]
    with pytest.raises(AssertionError, match="marker"):
        student.assert_no_solution_code(nb)
    leaky = student.student_copy(nb)
    leaky.cells[0].source += "\nanswer = 6 * 7"
    with pytest.raises(AssertionError, match="reference lines"):
        student.assert_no_solution_code(leaky, nb)
    student.assert_no_solution_code(student.student_copy(nb), nb)


def test_make_student_writes_solution_free_copies(tmp_path):
    written = student.make_student(tmp_path)
    assert [p.name for p in written] == [nb.name for nb in NOTEBOOKS]
    for path, original in zip(written, NOTEBOOKS):
        copy, orig = load(path), load(original)
        student.assert_no_solution_code(copy, orig)
        assert all(not c.get("outputs") for c in copy.cells if c.cell_type == "code")
        n_checks = sum(s.count("checks.check_") for _, s in code_cells(orig))
        assert sum(s.count("checks.check_") for _, s in code_cells(copy)) == n_checks > 0
        for i, source in code_cells(copy):
            python = "\n".join(
                line for line in source.split("\n") if not line.lstrip().startswith(("%", "!"))
            )
            compile(python, f"{path.name} cell {i}", "exec")  # every cell of the copy still parses
    assert json.loads(written[0].read_text())["metadata"]["gen3dface"] == {"copy": "student"}


def _checkers():
    for mod in CHECKERS:
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("check_") and fn.__module__ == mod.__name__:
                yield pytest.param(fn, id=f"{mod.__name__.rsplit('.', 1)[-1]}.{name}")


def _blank_call(check, answer):
    """``check`` called with ``answer`` and placeholder values for its other required parameters."""
    params = list(inspect.signature(check).parameters.values())
    args = [answer]
    for p in params[1:]:
        if p.default is not inspect.Parameter.empty:
            break
        ann = str(p.annotation)
        args.append(4 if ann == "int" else 1.0 if ann == "float" else [])
    return check(*args)


def _unfinished(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("check", list(_checkers()))
def test_every_checker_fails_a_blank_answer_in_one_sentence(check):
    answers = [None]
    first = next(iter(inspect.signature(check).parameters.values()))
    if "Callable" in str(first.annotation):
        answers.append(_unfinished)  # a student copy's function body
    for answer in answers:
        with pytest.raises(ExerciseFailed) as info:
            _blank_call(check, answer)
        reason = str(info.value)
        assert is_one_sentence(reason), reason
        assert not reason.startswith("raised"), f"a blank answer crashed the checker: {reason}"


def test_change_and_see_checkers_pass_and_fail(capsys):
    from gen3dface.teaching.exercises import nb00, nb01, nb02, nb03, nb08

    head = np.random.default_rng(0).normal(size=(400, 3)) * [0.75, 0.9, 0.85]
    fovs = [
        f for f in range(10, 120, 2) if nb00.FILL_RANGE[0] <= nb00.head_fill(f, head) <= nb00.FILL_RANGE[1]
    ]
    assert fovs and nb00.check_fov_fill(fovs[0], head)
    with pytest.raises(ExerciseFailed, match="widen"):
        nb00.check_fov_fill(20.0, head)
    assert nb01.check_snr_one(354)
    with pytest.raises(ExerciseFailed, match="later"):
        nb01.check_snr_one(100)
    normal, janus = [0.0, 0.0, 0.3, 0.1], [0.0, 0.8, 0.9]
    assert nb02.check_janus_threshold(0.5, normal, janus)
    with pytest.raises(ExerciseFailed, match="keep trying"):
        nb02.check_janus_threshold(0.95, normal, janus)
    assert nb02.check_janus_threshold(0.5, normal, [])  # no Janus view: nothing to catch
    assert nb03.check_outlier_fit(35)
    for n in (5, 120):
        with pytest.raises(ExerciseFailed):
            nb03.check_outlier_fit(n)
    recs = nb08.EXAMPLE_RECORDS
    assert nb08.check_oracle_fraction(0.7, recs)
    with pytest.raises(ExerciseFailed, match="drifting"):
        nb08.check_oracle_fraction(0.85, recs)
    assert capsys.readouterr().out.count("PASS ") == 6


def _message_literals(tree: ast.AST) -> list[str]:
    """The text of every message given to ``ExerciseFailed`` / ``answered`` / ``require`` in ``tree``, with each
    formatted value written as ``X``."""

    def text(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
        return None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            which = {"ExerciseFailed": 0, "answered": 1, "require": 2, "require_function": 2}.get(
                node.func.id
            )
            if which is not None and len(node.args) > which and text(node.args[which]) is not None:
                found.append(text(node.args[which]))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.isupper() for t in node.targets
        ):
            if text(node.value) is not None and " " in text(node.value):
                found.append(text(node.value))
    return found


@pytest.mark.parametrize("mod", CHECKERS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_checker_message_is_one_sentence(mod):
    messages = _message_literals(ast.parse(Path(mod.__file__).read_text()))
    long = [m for m in messages if not is_one_sentence(m.replace("X", "1"))]
    assert not long, f"{mod.__name__}: messages of more than one sentence: {long}"


@pytest.mark.notebook
@pytest.mark.xdist_group("notebooks")  # one at a time: each kernel uses every core
def test_student_copy_stops_at_a_polite_checker(tmp_path):
    """The student copy of notebook 00 runs up to its first exercise, whose checker fails in one sentence."""
    import papermill as pm

    path = student.make_student(tmp_path, [NOTEBOOK_DIR / "00_setup_and_conventions.ipynb"])[0]
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(
            str(path),
            str(tmp_path / "executed.ipynb"),
            parameters={"profile": "smoke"},
            kernel_name="python3",
            cwd=str(NOTEBOOK_DIR),
            progress_bar=False,
            execution_timeout=1800,
        )
    err = info.value
    assert err.ename == "ExerciseFailed", f"the copy stopped on {err.ename}: {err.evalue}"
    assert is_one_sentence(err.evalue) and "checks.check_" in err.source
    assert any(line.startswith("FAIL ") for line in err.traceback), err.traceback


# ------------------------------------------------------------------------------------- make reproduce's HTML
def test_reproduce_html_shows_plotly_figures():
    import plotly.graph_objects as go
    from nbconvert import HTMLExporter

    from gen3dface.app.reproduce import PLOTLY_MIME, add_plotly_html

    nb = nbformat.v4.new_notebook()
    for title in ("first 3D figure", "second 3D figure"):
        fig = go.Figure(go.Scatter3d(x=[0, 1], y=[0, 1], z=[0, 1])).update_layout(title=title)
        cell = nbformat.v4.new_code_cell("fig.show()")
        data = {PLOTLY_MIME: json.loads(fig.to_json()), "text/plain": ["Figure"]}
        cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        nb.cells.append(cell)
    assert "first 3D figure" not in HTMLExporter().from_notebook_node(nb)[0]  # what nbconvert alone does
    assert add_plotly_html(nb) == 2 and add_plotly_html(nb) == 0
    page = HTMLExporter().from_notebook_node(nb)[0]
    assert "first 3D figure" in page and "second 3D figure" in page
    assert page.count("Plotly.newPlot") == 2
    assert page.count("}).call(window);") == 1  # plotly.js inline, once
