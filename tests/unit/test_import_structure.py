"""The import structure of `engine/`: no import cycles, and the one-way rules of
DESIGN.md that a cycle would hide (loading a mapping does no I/O set-up and imports no
connector; the runtime does not import the web app).

The graph is read from the source with `ast`, not by importing: every `import x` and
`from x import y` (y resolved to a submodule when it is one), at module level and inside
functions alike, since an import moved into a function is still a dependency. Imports
under `if TYPE_CHECKING:` never run; they are kept apart, and a cycle through one is
allowed only by the list below, each edge with its reason. A package's `__init__` that
re-exports its own modules is not counted as an edge from those modules (importing
`engine.ops.alerts.rules` runs `engine/ops/alerts/__init__.py` too, but that is the
package gathering its parts, not a dependency); the subprocess tests below see what really loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "engine"

# Type-only edges (under TYPE_CHECKING) that may close a cycle. Operations code watches
# the engine and names its type in annotations; the engine builds it. Nothing runs.
TYPE_ONLY_ALLOWED = {
    ("engine.ops.alerts.runner", "engine.runtime"): "Alerting.for_engine(engine: Engine)",
    ("engine.ops.slo", "engine.runtime"): "ServiceLevels.start(engine: Engine)",
    ("engine.operations", "engine.runtime"): "Operations(engine: Engine)",
}

# Imports that run (at module level or in a function) and still close a cycle: none.
# An entry here needs its reason, as above; prefer cutting the cycle.
RUNTIME_ALLOWED: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in ENGINE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        mods[".".join(parts)] = (path, package)
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, with whether it sits under `if TYPE_CHECKING:`."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def walk(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, typing_only))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    walk(ast.Module(body=[stmt], type_ignores=[]), True)
                for stmt in child.orelse:
                    walk(ast.Module(body=[stmt], type_ignores=[]), typing_only)
            else:
                walk(child, typing_only)

    walk(tree, False)
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(imports that run, imports for type checking only), module -> engine modules."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    runs: dict[str, set[str]] = {m: set() for m in mods}
    typing: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, package) in mods.items():
        here = name if package else name.rpartition(".")[0]
        for node, typing_only in _imports(ast.parse(path.read_text(), str(path))):
            targets: set[str | None] = set()
            if isinstance(node, ast.Import):
                targets = {owner(a.name) for a in node.names}
            else:
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    full = ".".join(base + ([node.module] if node.module else []))
                else:
                    full = node.module or ""
                for alias in node.names:
                    sub = f"{full}.{alias.name}"
                    targets.add(sub if sub in mods else owner(full))
            for target in targets - {None, name}:
                assert target is not None
                (typing if typing_only else runs)[name].add(target)
    return runs, typing


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without(graph: dict[str, set[str]], allowed: dict[tuple[str, str], str]
             ) -> dict[str, set[str]]:
    return {m: {d for d in deps if (m, d) not in allowed} for m, deps in graph.items()}


def test_no_import_cycle_among_engine_modules() -> None:
    runs, typing = import_graph()
    assert cycles(_without(runs, RUNTIME_ALLOWED)) == []
    both = {m: runs[m] | typing[m] for m in runs}
    assert cycles(_without(both, RUNTIME_ALLOWED | TYPE_ONLY_ALLOWED)) == []


def test_the_allowed_edges_still_exist() -> None:
    """An edge that went away leaves the list, so the list only ever shrinks."""
    runs, typing = import_graph()
    assert [e for e in RUNTIME_ALLOWED if e[1] not in runs.get(e[0], ())] == []
    assert [e for e in TYPE_ONLY_ALLOWED if e[1] not in typing.get(e[0], ())] == []


def test_the_graph_sees_the_kinds_of_import() -> None:
    """The reader itself: relative, submodule, in-function and type-only imports."""
    tree = ast.parse(textwrap.dedent("""
        from typing import TYPE_CHECKING
        import engine.errors
        if TYPE_CHECKING:
            from engine.runtime import Engine
        def f():
            from engine import registry
    """))
    kinds = [(type(n).__name__, t) for n, t in _imports(tree)]
    assert kinds == [("ImportFrom", False), ("Import", False), ("ImportFrom", True),
                     ("ImportFrom", False)]
    runs, typing = import_graph()
    assert "engine.runtime" in typing["engine.ops.slo"]
    assert "engine.runtime" not in runs["engine.ops.slo"]
    assert "engine.registry" in runs["engine.config.schema"]  # `from engine import registry`


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code` in the repository."""
    script = textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=120)
    return set(out.stdout.split())


def test_loading_a_yaml_mapping_imports_no_connector_nor_the_alerts_runner_nor_the_writer(
) -> None:
    """A mapping is a pure function: loading one sets up no I/O. The filter rule the
    declarative loader builds on lives in `engine.config.rules`, not in the schema, whose
    source and destination unions import every connector through the registry."""
    loaded = _loaded_after("""
        import engine.mapping
        catalog = engine.mapping.MappingCatalog.discover("mappings")
        mapping = catalog.get("hl7v2-patient-summary@1")
        assert mapping is not None and mapping.file.endswith("v1.yaml"), mapping
    """)
    assert "engine.declarative.loader" in loaded
    assert "engine.ops.alerts.runner" not in loaded
    assert "engine.store.writer" not in loaded
    assert "engine.runtime" not in loaded
    assert sorted(m for m in loaded if m.startswith("engine.connectors.")) == []
    assert "engine.config.schema" not in loaded


def test_the_runtime_does_not_import_the_web_app() -> None:
    loaded = _loaded_after("import engine.runtime")
    assert "engine.runtime" in loaded
    assert sorted(m for m in loaded if m.startswith("engine.web")) == []  # app, api, server
