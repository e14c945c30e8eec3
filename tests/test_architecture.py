"""The package's layers, read from the source: no import cycles, and each layer imports only the ones below it.

``ganleaks`` is layered (docs/ARCHITECTURE.md): the mechanisms (``distances``, ``optimizers``,
``attacks``) know nothing of the settings, the settings nothing of the victims, the victims
nothing of the attack run that drives them, and none of them anything of the reports. An import
that climbs back up a layer, or a cycle, is how a package stops reading top-down.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ganleaks"

#: Lower layers first; a module may import its own layer and the layers before it.
LAYERS = [
    {"ganleaks.io", "ganleaks.errors", "ganleaks.status", "ganleaks.parameters", "ganleaks.config_dir"},
    {"ganleaks.data", "ganleaks.models", "ganleaks.distances", "ganleaks.optimizers"},
    {"ganleaks.attacks"},
    {"ganleaks.settings"},
    {"ganleaks.victims"},
    {
        "ganleaks.evaluation.metrics",
        "ganleaks.evaluation.estimates",
        "ganleaks.evaluation.plots",
        "ganleaks.evaluation.privacy_audit",
        "ganleaks.evaluation.declared_coins",
    },
    {"ganleaks.orchestration"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The ganleaks modules ``path`` imports anywhere in its source (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found |= {name for name in names if name in modules}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer):
            return index
    return None


def _is_package_init_edge(source: str, target: str) -> bool:
    """A package's ``__init__`` re-exporting its own submodules is not a climb or a cycle."""
    return target.startswith(source + ".")


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if _is_package_init_edge(node, target):
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target] if target in path else [node, target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_no_layer_imports_a_layer_above_it():
    climbs = []
    for source, targets in sorted(_graph().items()):
        low = _layer(source)
        for target in sorted(targets):
            high = _layer(target)
            if low is not None and high is not None and high > low and not _is_package_init_edge(source, target):
                climbs.append(f"{source} -> {target}")
    assert not climbs, "imports that climb a layer: " + ", ".join(climbs)
