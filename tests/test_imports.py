"""The import structure the layout promises, read from the source (every `import`, also those inside
functions and under `if TYPE_CHECKING:`, where a cycle hides best): no import cycle among the project's
modules, `stream` never imports `training`, and nothing the service imports pulls torch, scipy, tqdm or
`training` in."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crowdstream.cli import TRAIN_EXTRA_MODULES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crowdstream",)
TRAINING = "crowdstream.training"
TRAINING_ONLY = (*TRAIN_EXTRA_MODULES, TRAINING)


def package_of(module: str) -> str:
    """`crowdstream.stream.worker` → `crowdstream.stream`: the layer a module belongs to."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _absolute(name: str, level: int, module: str, path: Path) -> str:
    """The absolute module a (possibly relative) `from` import names."""
    if not level:
        return name
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    parts = package[: len(package) - level + 1]
    return ".".join([*parts, name] if name else parts)


def imported_names(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, runs when the module loads?) for every import statement; `from a import b`
    names `a.b` (which may be a module or a name in `a`). Imports inside functions run later, those
    under `if TYPE_CHECKING:` never: both count for cycles (a type checker follows them, and a loop
    through one is still a loop in the design), neither for what loading a module pulls in."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                visit(child, False)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child.module or "", child.level, module, path)
                found.extend((f"{base}.{alias.name}", top) for alias in child.names)
            visit(child, top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name refers to (`a.b.c` → `a.b.c` if a module, else `a.b`)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {
            resolve(name, modules) for name, top in imported_names(path, module) if top or not top_level_only
        }
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def external_imports(top_level_only: bool = False) -> dict[str, set[str]]:
    """Top-level names of third-party modules each project module imports."""
    modules = project_modules()
    return {
        module: {
            name.split(".")[0]
            for name, top in imported_names(path, module)
            if (top or not top_level_only) and resolve(name, modules) is None
        }
        for module, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def reachable(graph: dict[str, set[str]], roots: list[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def test_the_walker_sees_function_level_imports_and_cycles(tmp_path: Path) -> None:
    """The checks below are only as good as the walker: it must find imports inside functions and
    under TYPE_CHECKING (neither runs at load), and a cycle through one."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import typing\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hidden\n"
        "if typing.TYPE_CHECKING:\n    from .engine import Engine\n"
        "def load():\n    from crowdstream.engines.engine import load_engine\n"
        "class Lazy:\n    def open(self):\n        from . import sibling\n"
    )
    assert imported_names(probe, "crowdstream.stream.probe") == [
        ("typing", True),
        ("typing.TYPE_CHECKING", True),
        ("hidden", False),
        ("crowdstream.stream.engine.Engine", False),
        ("crowdstream.engines.engine.load_engine", False),
        ("crowdstream.stream.sibling", False),
    ]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_even_through_function_level_imports() -> None:
    assert cycles(import_graph()) == []


def test_stream_and_engines_never_import_training() -> None:
    graph = import_graph()
    offenders = {
        module: sorted(t for t in targets if package_of(t) == TRAINING)
        for module, targets in graph.items()
        if package_of(module) in ("crowdstream.stream", "crowdstream.engines")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


@pytest.mark.parametrize(
    "entry",
    ["crowdstream.stream.service", "crowdstream.stream.cli", "crowdstream.stream.web.app", "crowdstream.cli"],
)
def test_the_service_loads_nothing_only_training_needs(entry: str) -> None:
    """Everything the service imports when its modules load (function-level imports are backends or
    commands chosen at run time)."""
    loaded = reachable(import_graph(top_level_only=True), [entry])
    assert not {m for m in loaded if package_of(m) == TRAINING}
    externals = external_imports(top_level_only=True)
    pulled = {name for module in loaded for name in externals[module]}
    assert not pulled & set(TRAINING_ONLY), sorted(pulled & set(TRAINING_ONLY))
