"""No import cycles among the installed modules (st_runtime/ and exporters/ as st_runtime.export), lazy imports
inside functions included: a cycle hidden in a function body is still two modules that cannot be understood alone."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"st_runtime": ROOT / "st_runtime", "st_runtime.export": ROOT / "exporters"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "st_runtime" and name.startswith("st_runtime.export"):
                continue
            found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of ours that ``name`` imports (anywhere in the file). Package __init__ files are not counted as
    targets of ``from pkg import submodule``: the submodule is the target."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                child = f"{module}.{alias.name}"
                targets.add(child if child in modules else module)
    return {t for t in targets if t in modules and t != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # A package's __init__ re-exporting its own submodules is not a cycle of jobs: drop edges from a submodule
    # back to the __init__ of a package that contains it.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not (name.startswith(t + ".") and (modules[t].name == "__init__.py"))}
    return graph


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycles_named_in_issue_19_are_gone():
    graph = _graph()
    assert "st_runtime.sentence_transformer" not in graph["st_runtime.multiprocess"]
    assert "st_runtime.export.export" not in graph["st_runtime.export.cross_encoder"]
    assert "st_runtime.export.export" not in graph["st_runtime.export.variants"]
