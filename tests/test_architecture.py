"""The shape of the package, read from its source: no import cycles, mode knowledge in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import spec3c

PACKAGE = Path(spec3c.__file__).parent

#: EXP_TYPE names (every JWST spectroscopic prefix), which only the mode registry and the simulators may spell
EXP_TYPE_NAME = re.compile(r"\b(NRS|MIR|NIS|NRC)_[A-Z0-9]+(-[A-Z0-9]+)?\b")
MODE_FOLDERS = ("modes", "simulate")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _compiled() -> set[str]:
    return {_module_name(p) for p in PACKAGE.rglob("*.pyx")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(sub) for sub in ast.walk(node))
    return inside


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """spec3c modules one import statement names (``from . import x`` -> the submodule x)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    return subs if len(subs) == len(node.names) else [*subs, base]


def import_graph() -> dict[str, set[str]]:
    """Module -> the spec3c modules it imports anywhere in its source (function bodies included,
    ``TYPE_CHECKING`` blocks excluded); compiled kernels are leaves."""
    modules, compiled = _modules(), _compiled()
    known = set(modules) | compiled
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(module, path, node, known):
                while target and target not in modules and target not in compiled:
                    target = target.rpartition(".")[0]  # a name imported from a module
                if target in modules and target != module and target.startswith("spec3c"):
                    graph[module].add(target)
    return graph


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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50  # the whole package was read
    assert cycles(graph) == []


def test_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", ["spec3c.steps.resample_spec", "spec3c.products.writers", "spec3c.process"])
def test_graph_sees_real_imports(module):
    graph = import_graph()
    assert "spec3c.modes.registry" in graph["spec3c.process"]
    assert graph[module], f"{module} imports nothing from spec3c?"


def test_no_exp_type_names_outside_the_modes():
    """Only ``spec3c/modes`` (the registry) and ``spec3c/simulate`` (making data) name EXP_TYPEs."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*")):
        if not path.is_file() or path.suffix not in (".py", ".pyx", ".pxd", ".json", ".toml"):
            continue
        if path.relative_to(PACKAGE).parts[0] in MODE_FOLDERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if EXP_TYPE_NAME.search(line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_name_pattern_matches_every_served_exp_type():
    from spec3c.modes.registry import supported_exp_types

    assert all(EXP_TYPE_NAME.fullmatch(t) for t in supported_exp_types())
