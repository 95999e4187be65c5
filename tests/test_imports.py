"""The package's import graph, read from the source (issue 17: no circles, nothing runs back up).

Every `import` and `from ... import` counts, at the top of a module or inside a function (a
lazy import still ties the two modules together), each resolved to the module of this package
it names. The graph must hold no cycle, between modules or between stage packages, and the
lower layers must not import a stage: a stage builds on them, never the other way round.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sentiment"

# The pipeline's stages, each a package, and the command line above them.
STAGES = (
    "sentiment.prepare",
    "sentiment.train",
    "sentiment.evaluate",
    "sentiment.serve",
    "sentiment.api",
    # SageMaker's side of the train and serve stages (training jobs, endpoints).
    "sentiment.aws.sagemaker",
)
COMMAND_LINE = ("sentiment.commands", "sentiment.cli", "sentiment.__main__")
# What the stages build on. Every other module must be listed here or in a stage, so that a new
# module is placed on purpose (see test_every_module_has_a_layer).
LOWER = (
    "sentiment",
    "sentiment._sentences",
    "sentiment._text",
    "sentiment.answers",
    "sentiment.aws",
    "sentiment.aws.s3",
    "sentiment.calibration",
    "sentiment.config",
    "sentiment.datasets",
    "sentiment.engine",
    "sentiment.errors",
    "sentiment.files",
    "sentiment.http_common",
    "sentiment.http_protocol",
    "sentiment.labels",
    "sentiment.layout",
    "sentiment.metrics",
    "sentiment.model",
    "sentiment.records",
    "sentiment.remote",
    "sentiment.reviews",
    "sentiment.storage",
    "sentiment.text",
    "sentiment.text_kernel",
)


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (compiled extensions by their C source)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")) + sorted(PACKAGE.rglob("*.c")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, modules: Mapping[str, Path]) -> Iterator[str]:
    """The package's modules that `module` imports, wherever the import statement stands."""
    if path.suffix == ".c":
        return
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from sentiment.engine import fit` imports the module fit (its package is imported
            # first, as for any module: not an edge of its own), `... import Trainer` the package.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("sentiment"):
                yield name


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set(_imported(name, path, modules)) for name, path in modules.items()}


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one node (Tarjan), each given as
    one of its cycles, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_one_cycle(graph, c) for c in components)


def _one_cycle(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """A cycle through the component's first node (by name), as the path a -> b -> ... -> a."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle in {component}")  # pragma: no cover


def _owner(module: str, entries: tuple[str, ...]) -> str | None:
    """The entry of `entries` that `module` is, or the innermost package of them it is in (the
    package itself, `sentiment`, holds only what is named `sentiment`)."""
    inside = [
        e for e in entries if module == e or (e != "sentiment" and module.startswith(e + "."))
    ]
    return max(inside, key=len, default=None)


def _layer(module: str) -> tuple[str, ...] | None:
    owner = _owner(module, STAGES + COMMAND_LINE + LOWER)
    return next((layer for layer in (STAGES, COMMAND_LINE, LOWER) if owner in layer), None)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in _modules() if _layer(m) is None)
    assert unplaced == [], "place these modules in LOWER or STAGES"
    assert sorted(set(LOWER) - set(_modules())) == [], "LOWER names modules that do not exist"


def test_no_two_modules_import_each_other_even_through_others() -> None:
    cycles = [" -> ".join(c) for c in _cycles(_graph())]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_stages_form_a_pipeline() -> None:
    """Between stages, imports run one way (evaluate reads what train wrote, train never needs
    evaluate): the stage packages, each taken as one node, form no cycle."""
    units = STAGES + COMMAND_LINE

    def unit(module: str) -> str:
        return _owner(module, units) or module

    graph: dict[str, set[str]] = {}
    for module, edges in _graph().items():
        graph.setdefault(unit(module), set()).update(
            unit(e) for e in edges if unit(e) != unit(module)
        )
    for node in {n for edges in graph.values() for n in edges}:
        graph.setdefault(node, set())
    cycles = [" -> ".join(c) for c in _cycles(graph)]
    assert cycles == [], "cycles between stages:\n" + "\n".join(cycles)


@pytest.mark.parametrize("upper", [STAGES, COMMAND_LINE], ids=["stages", "command line"])
def test_nothing_runs_back_up(upper: tuple[str, ...]) -> None:
    """The lower layers import no stage; nothing imports the command line."""
    back = sorted(
        f"{module} -> {target}"
        for module, edges in _graph().items()
        if _layer(module) is LOWER or (upper is COMMAND_LINE and _layer(module) is STAGES)
        for target in edges
        if _layer(target) is upper
    )
    assert back == [], "imports that run back up:\n" + "\n".join(back)


def test_the_graph_is_read_from_every_kind_of_import(tmp_path: Path) -> None:
    """The reader itself: a lazy import inside a function, a relative import and an imported
    module (not a name) are all edges; a cycle is found and named."""
    package = tmp_path / "sentiment"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from sentiment.sub import b\n")
    (package / "sub" / "b.py").write_text("from . import c\n")
    (package / "sub" / "c.py").write_text("import sentiment.a\n")
    modules = {
        "sentiment": package / "__init__.py",
        "sentiment.a": package / "a.py",
        "sentiment.sub": package / "sub" / "__init__.py",
        "sentiment.sub.b": package / "sub" / "b.py",
        "sentiment.sub.c": package / "sub" / "c.py",
    }
    graph = {name: set(_imported(name, path, modules)) for name, path in modules.items()}
    assert graph["sentiment.a"] == {"sentiment.sub.b"}
    assert graph["sentiment.sub.b"] == {"sentiment.sub.c"}
    assert graph["sentiment.sub.c"] == {"sentiment.a"}
    assert _cycles(graph) == [["sentiment.a", "sentiment.sub.b", "sentiment.sub.c", "sentiment.a"]]
