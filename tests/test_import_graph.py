"""No import cycles inside ``posedistill``: every ``import posedistill.*`` (at module level or inside a function) is
parsed with ``ast`` and the resulting module graph must be acyclic, so each layer only imports downward.

An import inside ``if TYPE_CHECKING:`` never runs and is left out; ``from pkg import name`` counts as an import of
``pkg.name`` when that is a module, else of ``pkg``. The parent packages an import runs implicitly are not edges:
every package ``__init__`` imports its own submodules, which would make each of them a trivial cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parents[1] / "posedistill"


def _module_names() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (``pkg/__init__.py`` -> ``pkg``)."""
    out: dict[str, Path] = {}
    for path in PKG_DIR.rglob("*.py"):
        parts = list(path.relative_to(PKG_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: module level and nested in functions, minus ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """Absolute name of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def module_imports(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package modules that module ``name`` (parsed as ``tree``) imports when it runs."""
    found: set[str] = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = _resolve(node, name, is_package)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    names = set(modules)
    return {
        name: module_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), name,
                             path.name == "__init__.py", names)
        for name, path in modules.items()
    }  # fmt: skip


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # recursion depth is bounded by the package's module count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        # a shortest path back to the component's first module shows one concrete cycle to break
        members, start = set(comp), comp[0]
        prev: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in prev:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while path[-1] != start or len(path) == 1:
            path.append(prev[path[-1]])
        cycles.append(path[::-1])
    return cycles


def test_graph_sees_module_and_function_level_imports():
    mods = {"p", "p.a", "p.b", "p.c", "p.d", "p.e"}
    src = """
from typing import TYPE_CHECKING
import p.a
from . import b
if TYPE_CHECKING:
    import p.e  # never runs
def f():
    from p.c import something  # function level: runs on the first call
    import numpy
class K:
    def g(self):
        from .d import x
"""
    assert module_imports(ast.parse(src), "p.mod", False, mods) == {"p.a", "p.b", "p.c", "p.d"}
    # on the real package: the builder imports the model families it dispatches to
    graph = import_graph()
    assert {"posedistill.models.base_models", "posedistill.models.dkd"} <= graph["posedistill.models.builder"]


def test_find_cycles_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in posedistill:\n" + "\n".join(" -> ".join(c) for c in cycles)
