"""The package's shape, checked: no import cycles, no private names used across modules, small modules,
scripts that import the installed package. ``docs/architecture.md`` describes the layout these tests keep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gen3dface"
#: a cohesive module may run a little over the ~500-line guideline; nothing may grow past this
MAX_LINES = 560


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(target: str) -> str | None:
    """The package module an import of ``target`` loads (``target`` itself, or its parent for a name)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every gen3dface import in ``path``, at any depth (lazy imports count)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gen3dface"):
            assert node.level == 0, f"{path}: relative import; write 'from gen3dface.… import …'"
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("gen3dface")]
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, names in _imports(path):
            for dep in [_resolve(target)] + [_resolve(f"{target}.{n}") for n in names]:
                if dep and dep != mod and not mod.startswith(dep + ".") and dep != "gen3dface":
                    graph[mod].add(dep)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_cycle_finder_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _private_uses(path: Path, own: str | None) -> list[str]:
    """Private names (``_x``) of other gen3dface modules that ``path`` imports or reaches into."""
    tree = ast.parse(path.read_text(), str(path))
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gen3dface"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in MODULES:
                    aliases[a.asname or a.name] = sub
                elif a.name.startswith("_") and not a.name.startswith("__") and _resolve(node.module) != own:
                    found.append(f"{path.name}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("gen3dface") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and aliases[node.value.id] != own
        ):
            found.append(f"{path.name}: {node.value.id}.{node.attr} ({aliases[node.value.id]})")
    return found


def test_no_private_names_across_modules():
    found = [u for mod, path in MODULES.items() for u in _private_uses(path, mod)]
    found += [u for path in sorted((ROOT / "scripts").glob("*.py")) for u in _private_uses(path, None)]
    assert not found, "private names used outside their module:\n" + "\n".join(found)


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_module_size(mod):
    n = len(MODULES[mod].read_text().splitlines())
    assert n <= MAX_LINES, f"{mod} has {n} lines: split it by subject"


def test_scripts_import_the_installed_package():
    edit = "sys.path." + "insert"  # spelled in two parts so that this file does not match itself
    files = sorted((ROOT / "scripts").glob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    edits = [p.name for p in files if edit in p.read_text()]
    assert not edits, f"these edit sys.path instead of importing the installed package: {edits}"


def test_layers():
    """``core`` builds on nothing else of the package; nothing but ``app`` and ``teaching`` imports them."""
    graph = _graph()
    top = ("gen3dface.app", "gen3dface.teaching")
    wrong = [
        f"{m} -> {d}"
        for m, deps in graph.items()
        for d in deps
        if (m.startswith("gen3dface.core") and not d.startswith("gen3dface.core"))
        or (d.startswith(top) and not m.startswith(top))
    ]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)
