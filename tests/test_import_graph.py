"""The import graph of `api/` has no circles, and the GraphQL layer has no function-local imports.

The graph is built with `ast` from every module-level import of every module under `api/` (imports under
`if TYPE_CHECKING:` included: a circle that only type checkers see is still a circle in the design).
`from api.x import y` is an edge to `api.x.y` when that is a module, else to `api.x`. No test here imports
the code it checks, so the test holds for any state of the tree, including one that would not import.
"""
from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parent.parent / "api"
# Layers whose modules may not import inside functions (the old way to dodge a circle).
NO_LOCAL_IMPORTS = ("api.schema", "api.resolvers")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(API.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(API.rglob("*.py")) if "migrations" not in p.parts}


def _resolve(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(importer: str, node: ast.stmt, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        source = _resolve(importer, node, is_package)
        names = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
    else:
        return []
    found = []
    for name in names:  # the longest known module that the name starts with (api.x.y.Class → api.x.y)
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def _module_level(tree: ast.Module):
    """Statements that run when the module is imported (descending into if/try, not into defs)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []) or [])
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in _module_level(tree):
            edges.update(t for t in _targets(name, node, is_package, known) if t != name)
        graph[name] = edges
    return graph


def every_import() -> dict[str, set[str]]:
    """Like import_graph, with the imports inside functions too (for the layer rules, which a lazy import
    must not get round) and third-party top-level packages under their own names."""
    mods = modules()
    known = set(mods)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in ast.walk(tree):
            edges.update(_targets(name, node, path.name == "__init__.py", known))
            if isinstance(node, ast.Import):
                edges.update(a.name.split(".")[0] for a in node.names if not a.name.startswith("api"))
            elif isinstance(node, ast.ImportFrom) and not node.level and not (node.module or "").startswith("api"):
                edges.add((node.module or "").split(".")[0])
        graph[name] = edges - {name}
    return graph


def function_local_imports(prefixes: tuple[str, ...] = ("api",)) -> list[str]:
    """`module:line` of every import inside a function or class body."""
    found = []
    for name, path in modules().items():
        if not name.startswith(prefixes):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for outer in ast.walk(tree):
            if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for inner in ast.walk(outer):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        found.append(f"{name}:{inner.lineno}")
    return sorted(set(found))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative, so that a deep graph cannot hit the recursion limit
        nonlocal counter
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


# --- the checker checks what it should ---------------------------------------------------------------

def test_the_checker_finds_a_circle_and_resolves_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    known = {"api.schema", "api.schema.base", "api.services", "api.services.mall"}
    tree = ast.parse("from api.services import mall\nfrom api.schema.base import Node\nfrom . import base\n")
    got = [_targets("api.schema.x", node, False, known) for node in tree.body]
    assert got == [["api.services.mall"], ["api.schema.base"], ["api.schema.base"]]


def test_the_graph_sees_real_edges():
    graph = import_graph()
    assert "api.services.errors" in graph["api.schema.errors"]
    assert graph["api.schema.public"], "the public schema imports its resolvers"


# --- the rules -------------------------------------------------------------------------------------

def test_no_import_circles_in_api():
    found = cycles(import_graph())
    assert found == [], "import circles in api/: " + "; ".join(" <-> ".join(c) for c in found)


# Layers (CONVENTIONS.md §1): what a module of the left-hand layer may never import, however lazily.
# The two schemas and the root fields they are assembled from: these import the resolvers.
ASSEMBLY = ("api.schema.public", "api.schema.admin", "api.schema.operators.root",
            "api.schema.merchant_assistant.root", "api.schema.reach.root")
LAYER_RULES = [
    ("api.schema", ("api.resolvers", "api.context", "api.prepared", "api.app")),  # types point down only
    ("api.services", ("api.schema", "api.resolvers", "api.context", "api.prepared", "api.app", "strawberry")),
    ("api.models", ("api.services", "api.schema", "api.resolvers", "api.context", "strawberry")),
]


def test_imports_run_downward():
    broken = []
    for module, targets in sorted(every_import().items()):
        for layer, forbidden in LAYER_RULES:
            if module.startswith(layer) and module not in ASSEMBLY:
                broken += [f"{module} -> {t}" for t in sorted(targets) if t.startswith(forbidden)]
    assert broken == [], "imports against the layers: " + ", ".join(broken)


def test_no_function_local_imports_in_the_graphql_layer():
    found = function_local_imports(NO_LOCAL_IMPORTS)
    assert found == [], "imports inside functions in api/schema or api/resolvers: " + ", ".join(found)
