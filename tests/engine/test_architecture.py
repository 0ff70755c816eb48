"""The package's import graph (issue 14): no circle, not even through type-only imports; the
call core never imports a feature; document validation gets module schemas from the wiring."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ari_metaflows"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (at run time, in functions or for types)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:
                        edges.add(f"{target}.{alias.name}")
                    elif target in modules:
                        edges.add(target)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
        graph[name] = edges - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_package_has_no_import_circle() -> None:
    graph = _import_graph()
    assert "ari_metaflows.calls.call" in graph  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_call_core_imports_no_feature_and_no_api() -> None:
    graph = _import_graph()
    core = [m for m in graph if m.startswith("ari_metaflows.calls")]
    assert len(core) >= 8
    for module in core:
        outside = {
            t
            for t in graph[module]
            if t.startswith(("ari_metaflows.features", "ari_metaflows.api"))
        }
        assert outside == set(), module


def test_validation_and_features_stay_in_their_layers() -> None:
    graph = _import_graph()
    for module in graph:
        if module.startswith("ari_metaflows.metaflows"):
            assert not {t for t in graph[module] if t.startswith("ari_metaflows.features")}, module
        if module.startswith("ari_metaflows.features."):
            # a feature imports the core and shared parts, never another feature
            own = ".".join(module.split(".")[:3])
            others = {
                t
                for t in graph[module]
                if t.startswith("ari_metaflows.features.") and not t.startswith(own)
            }
            assert others == set(), module
