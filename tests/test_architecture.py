"""The layout of lib/ is the architecture: layers, no import cycles, modules of a readable size.

docs/architecture.md draws the same picture. Every import counts, including the ones inside
functions (they are cycles all the same, only deferred).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"

# Bottom to top: a package may import only from the packages before it (and from itself).
LAYERS = ("core", "data", "model", "serving", "monitoring", "run", "loop")
MAX_LINES = 500

# The notebooks call into their own stage's package (and core, for params and plots).
NOTEBOOK_PACKAGES = {
    "01_ingest.ipynb": {"core", "data"},
    "02_train.ipynb": {"core", "model"},
    "03_evaluate.ipynb": {"core", "model"},
    "04_monitor.ipynb": {"core", "monitoring"},
    "dashboard.ipynb": {"core", "monitoring"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in LIB.rglob("*.py")}
# The public entry points, lib/__init__.py and every module of the quire command (lib/cli/):
# they may import any layer.
TOP_LEVEL = {"lib"} | {m for m in MODULES if m == "lib.cli" or m.startswith("lib.cli.")}


def _resolve(name: str) -> str | None:
    """Return the module of ``lib`` that an imported name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if node.module == "lib" or node.module.startswith("lib."):
                    yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "lib")


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {_resolve(imported) for imported in _imports(tree)}
        graph[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")}
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if module in TOP_LEVEL or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    stray = [m for m in MODULES if m not in TOP_LEVEL and _layer(m) is None]
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"


def test_layers_import_only_downwards():
    wrong = []
    for module, targets in _graph().items():
        own = _layer(module)
        if own is None:
            continue
        for target in targets:
            theirs = _layer(target)
            if theirs is None or theirs > own:
                wrong.append(f"{module} -> {target}")
    assert not wrong, (
        "imports against the layering (" + " < ".join(LAYERS) + "):\n" + "\n".join(sorted(wrong))
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_even_inside_functions():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_readable(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines (limit {MAX_LINES}); split it"


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_PACKAGES))
def test_each_notebook_calls_into_its_own_package(notebook):
    cells = json.loads((ROOT / "notebooks" / notebook).read_text(encoding="utf-8"))["cells"]
    source = "\n".join(
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and "%" not in "".join(c["source"])[:1]
    )
    packages = {
        m.split(".")[1] for m in map(_resolve, _imports(ast.parse(source))) if m and "." in m
    }
    assert packages, f"{notebook} imports nothing from lib"
    assert packages <= NOTEBOOK_PACKAGES[notebook], (
        f"{notebook} imports from {sorted(packages - NOTEBOOK_PACKAGES[notebook])}"
    )
