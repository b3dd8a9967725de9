"""The package's shape: no import cycle, and a plugin module that only wires hooks."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_llmbench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports when it is loaded (not inside functions, not under
    ``if TYPE_CHECKING``)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: top_level_imports(path, known) - {name} for name, path in paths.items()}


def test_no_import_cycle_inside_the_package() -> None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_nothing_imports_the_plugin_and_the_plugin_only_wires_hooks() -> None:
    graph = import_graph()
    assert not [m for m, targets in graph.items() if "pytest_llmbench.plugin" in targets]
    source = (PACKAGE / "plugin.py").read_text()
    assert len(source.splitlines()) < 300
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):  # hooks, and short helpers of the hook wrappers
            length = (node.end_lineno or node.lineno) - node.lineno
            assert node.name.startswith(("pytest_", "_")), node.name
            assert length <= (25 if node.name.startswith("pytest_") else 15), node.name
