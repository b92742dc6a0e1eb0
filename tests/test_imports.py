"""The import graph of the three packages, read from the source (every import statement,
function-level ones included): no cycles, and no library module imports the CLI.

A cycle hidden by an import inside a function still couples two modules both ways; this
test finds it because it reads the AST, not ``sys.modules``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data_prep", "learngene", "attpc_classify")
#: modules that parse argv and print: the application's front end
CLI = ("attpc_classify.cli", "attpc_classify.commands")


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imported_names(name: str, path: Path, is_package: bool, modules) -> set[str]:
    """Every module of ours that ``name``'s source imports, anywhere in the file."""
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # an object inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported_names(name, *where, modules) for name, where in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_cycle_finder_sees_a_function_level_cycle() -> None:
    # a -> b at top level, b -> a inside a function: one cycle; c only imports
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "learngene.io" in graph and "attpc_classify.transfer.stages" in graph
    found = cycles(graph)
    described = [
        " <-> ".join(c)
        + ": "
        + ", ".join(f"{a}->{b}" for a in c for b in sorted(graph[a]) if b in c)
        for c in found
    ]
    assert not found, "import cycles:\n" + "\n".join(described)


@pytest.mark.parametrize("package", PACKAGES)
def test_library_never_imports_the_cli(package: str) -> None:
    graph = import_graph()
    bad = [
        f"{importer} -> {imported}"
        for importer, imports in graph.items()
        if importer.startswith(package) and not importer.startswith(CLI)
        for imported in imports
        if imported.startswith(CLI)
    ]
    assert not bad, "library modules import the command line: " + ", ".join(bad)


def test_importing_learngene_leaves_timm_alone() -> None:
    # learngene.compat declares torchvision's op schemas only when timm is first needed
    import subprocess

    code = "import sys, learngene; print('timm' in sys.modules, 'torchvision' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["False", "False"]
