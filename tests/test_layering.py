"""The import contract of the package: which stage may import which, and no import cycles.

:data:`STAGES` names every stage of ``ich_edge`` and ``converters``; :data:`MAY_IMPORT` says,
for each, the stages below it that it may use. The walk reads every import statement
(module level and inside functions, plus ``importlib.import_module("...")`` calls with a
literal name), so a lazy import inside a function cannot cross the contract. The two tiers
of the package follow from the table: the runtime tier (:data:`RUNTIME_TIER`, what an edge
box installs) never reaches ``ich_edge.training`` or ``converters``, and
``ich_edge.training`` never reaches ``converters``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _nodes(tree: ast.AST, module_level_only: bool):
    """Every node of ``tree``; with ``module_level_only``, none inside a function body or lambda
    (those run when called, not on import) nor under ``if TYPE_CHECKING:`` (never run)."""
    for child in ast.iter_child_nodes(tree):
        if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield child
        type_checking = isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        if module_level_only and type_checking:
            for node in child.orelse:
                yield node
                yield from _nodes(node, module_level_only)
            continue
        yield from _nodes(child, module_level_only)


def _imports(path: Path, module_level_only: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` per import in ``path``: ``from m import a, b`` gives ``(m, (a, b))``,
    ``import m`` and ``import_module("m")`` give ``(m, ())``; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = []
    for node in _nodes(tree, module_level_only):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, tuple(alias.name for alias in node.names)))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, ()))
    return found


def imported_modules(path: Path) -> set[str]:
    """Every module name ``path`` imports anywhere (absolute; relative imports resolved).

    ``from m import a`` counts as ``m`` and ``m.a`` (``a`` may be a submodule)."""
    names: set[str] = set()
    for module, members in _imports(path):
        names.add(module)
        names.update(f"{module}.{member}" for member in members)
    return names


def _importers(folder: str, prefix: str) -> dict[str, list[str]]:
    found = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        hits = sorted(n for n in imported_modules(path) if n == prefix or n.startswith(prefix + "."))
        if hits:
            found[str(path.relative_to(REPO))] = hits
    return found


#: Module prefix -> stage; the longest prefix wins. Every subpackage of ich_edge is named here
#: (a test checks), so a new one gets a place in the contract before it gets importers.
STAGES = {
    "ich_edge": "core",  # the top-level modules: errors, fileio, labels, transforms, sequence, ...
    "ich_edge.dicom": "dicom",
    "ich_edge.ingest": "ingest",
    "ich_edge.runtime": "runtime",
    "ich_edge.synth": "synth",
    "ich_edge.assets": "assets",
    "ich_edge.training": "training",
    "converters": "converters",
    "ich_edge.cli": "cli",
    "ich_edge.__main__": "cli",
}
#: Stage -> the other stages it may import (all imports count, lazy ones too).
MAY_IMPORT = {
    "core": set(),
    "dicom": {"core"},
    "ingest": {"core", "dicom"},
    "runtime": {"core", "dicom", "ingest"},  # bench reads prepared caches; predict judges series as prepare does
    "synth": {"core", "dicom", "ingest"},
    "assets": {"core", "dicom", "ingest", "runtime", "synth"},  # the sample study is synthesised
    "training": {"core", "dicom", "ingest", "runtime"},  # parity runs files through the runtime
    "converters": {"core", "dicom", "ingest", "runtime", "training"},
    "cli": {"core", "dicom", "ingest", "runtime", "synth", "assets", "training", "converters"},
}
#: What an edge box installs: numpy, pydicom, click, ai-edge-litert; no TensorFlow.
RUNTIME_TIER = {"core", "dicom", "ingest", "runtime", "synth", "assets"}
#: May import TensorFlow.
TRAINING_TIER = {"training", "converters"}


def stage_of(module: str) -> str | None:
    """The stage of a module name (by its longest prefix in :data:`STAGES`); None outside the package."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        stage = STAGES.get(".".join(parts[:end]))
        if stage is not None:
            return stage
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def contract_breaches(folders=("ich_edge", "converters")) -> list[str]:
    """One line per import that crosses :data:`MAY_IMPORT`, with the way out."""
    breaches = []
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            own = stage_of(_module_name(path))
            for module, members in _imports(path):
                # ``from ich_edge import training`` names its stage in the member, not the module
                names = [module] if _crosses(own, module) else [f"{module}.{m}" for m in members]
                for name in names:
                    if _crosses(own, name):
                        breaches.append(
                            f"{path.relative_to(REPO).as_posix()} ({own}) imports {name} ({stage_of(name)}); {own} "
                            f"may import only {sorted(MAY_IMPORT[own])}: move what both need down into one of "
                            "those, or the caller up"
                        )
    return breaches


def _crosses(own: str, name: str) -> bool:
    used = stage_of(name)
    return used is not None and used != own and used not in MAY_IMPORT[own]


def _reachable(stage: str) -> set[str]:
    seen, todo = set(), [stage]
    while todo:
        for below in MAY_IMPORT[todo.pop()] - seen:
            seen.add(below)
            todo.append(below)
    return seen


def test_each_stage_imports_only_what_the_contract_allows():
    breaches = contract_breaches()
    assert not breaches, "\n".join(breaches)


def test_the_contract_keeps_the_tiers_apart():
    """The runtime tier reaches no training-tier stage, not even through a stage it may use
    (it must work where TensorFlow is not installed); training never reaches converters."""
    for stage in RUNTIME_TIER:
        assert not _reachable(stage) & TRAINING_TIER, f"{stage} would reach {sorted(_reachable(stage) & TRAINING_TIER)}"
    assert "converters" not in _reachable("training")
    assert set(MAY_IMPORT) == set(STAGES.values())
    for stage, allowed in MAY_IMPORT.items():
        assert stage not in _reachable(stage), f"the table itself has a cycle through {stage}"
        assert allowed <= set(MAY_IMPORT), f"{stage} names an unknown stage"


def test_every_subpackage_has_a_stage():
    """A new subpackage of ich_edge must be placed in STAGES (else it would pass as core)."""
    unplaced = sorted(
        path.parent.relative_to(REPO).as_posix()
        for path in (REPO / "ich_edge").glob("*/__init__.py")
        if _module_name(path) not in STAGES
    )
    assert not unplaced, f"add {unplaced} to STAGES in {Path(__file__).name}, with the stages it may import"


def test_the_contract_check_can_fail(tmp_path, monkeypatch):
    """The check fails on a runtime module that imports the training tier inside a function."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    module = tmp_path / "ich_edge" / "runtime" / "sneaky.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ich_edge.dicom import read_hu\n"
        "def f():\n    from ich_edge.training.model import build\n"
        "def g():\n    from ich_edge import errors, training\n"
    )
    assert contract_breaches(("ich_edge",)) == [
        "ich_edge/runtime/sneaky.py (runtime) imports ich_edge.training.model (training); runtime may import only "
        "['core', 'dicom', 'ingest']: move what both need down into one of those, or the caller up",
        "ich_edge/runtime/sneaky.py (runtime) imports ich_edge.training (training); runtime may import only "
        "['core', 'dicom', 'ingest']: move what both need down into one of those, or the caller up",
    ]


def import_graph(module_level_only: bool, folders=("ich_edge", "converters")) -> dict[str, set[str]]:
    """Module -> the package modules it imports. ``from m import a`` points at ``m.a`` when that is
    a module, else at ``m``; a package's ``__init__`` run on the way to a submodule is not an edge."""
    paths = {_module_name(p): p for folder in folders for p in sorted((REPO / folder).rglob("*.py"))}

    def known(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in paths.items():
        targets = set()
        for imported, members in _imports(path, module_level_only):
            for member in members or (None,):
                target = f"{imported}.{member}" if member and f"{imported}.{member}" in paths else known(imported)
                if target is not None and target != module:
                    targets.add(target)
        graph[module] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_no_import_cycles_at_module_level():
    """Modules that import each other on import load half-initialised, depending on who comes first."""
    cycles = import_cycles(import_graph(module_level_only=True))
    assert not cycles, f"import cycles (move what both need into a module both import): {cycles}"


def test_no_import_cycles_through_lazy_imports_either():
    """Lazy imports defer TensorFlow; they are not a way around a cycle (the importer's package and
    its split module were one, until the options moved to ``importer/config.py``)."""
    cycles = import_cycles(import_graph(module_level_only=False))
    assert not cycles, (
        f"import cycles through function-level imports (move what both need into a leaf module): {cycles}"
    )


def test_the_cycle_check_can_fail(tmp_path, monkeypatch):
    """A synthetic package: a module-level cycle is found, a lazy one only when lazy imports count."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    package = tmp_path / "ich_edge"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from ich_edge.sub.a import A\n")
    (package / "sub" / "a.py").write_text("from ich_edge.sub import b\nA = 1\n")
    (package / "sub" / "b.py").write_text("from .a import A\n")
    (package / "lazy.py").write_text("def f():\n    import ich_edge.late\n")
    (package / "late.py").write_text("import ich_edge.lazy\n")
    assert import_cycles(import_graph(True, ("ich_edge",))) == [["ich_edge.sub.a", "ich_edge.sub.b"]]
    assert import_cycles(import_graph(False, ("ich_edge",))) == [["ich_edge.late", "ich_edge.lazy"],
                                                                 ["ich_edge.sub.a", "ich_edge.sub.b"]]


def test_the_walk_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The check can fail: a lazy import inside a function is found."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    module = tmp_path / "pkg" / "sub" / "mod.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "def f():\n    from converters.calibration import x\n"
        "def g():\n    import importlib\n    importlib.import_module('converters.registry')\n"
        "from ..other import y\n"
    )
    names = imported_modules(module)
    assert {"converters.calibration", "converters.registry", "pkg.other"} <= names
    assert _importers("pkg", "converters") == {"pkg/sub/mod.py": ["converters.calibration", "converters.calibration.x",
                                                                   "converters.registry"]}


@pytest.mark.parametrize("folder", ["ich_edge", "converters"])
def test_every_file_parses(folder):
    for path in (REPO / folder).rglob("*.py"):
        imported_modules(path)


def test_benchmarks_and_scripts_use_public_names_only():
    """benchmarks/ and scripts/ build on the package's public API, not its private helpers."""
    private = {}
    for folder in ("benchmarks", "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("ich_edge", "converters")):
                    names = [a.name for a in node.names if a.name.startswith("_")]
                    if names:
                        private.setdefault(str(path.relative_to(REPO)), []).extend(f"{node.module}.{n}" for n in names)
    assert private == {}


def _imports_module(path: str, module: str) -> list[str]:
    return sorted(n for n in imported_modules(REPO / path) if n == module or n.startswith(module + "."))


def test_the_model_gate_never_imports_the_description_module():
    """One direction: description (op summary) builds on model_check, which reads the embedded
    description through flatbuffer; an import back would be the old circle."""
    assert _imports_module("ich_edge/runtime/model_check.py", "ich_edge.runtime.description") == []
    assert _imports_module("ich_edge/runtime/flatbuffer.py", "ich_edge.runtime") == []


def test_the_shared_compiled_model_sits_below_predict_and_bench():
    """bench's GPU backends and predict's compiled runtime share ich_edge.runtime.litert_compiled,
    which imports neither of them; bench/gpu.py does not reach up into runtime/compiled.py."""
    assert _imports_module("ich_edge/runtime/bench/gpu.py", "ich_edge.runtime.compiled") == []
    for above in ("ich_edge.runtime.compiled", "ich_edge.runtime.bench", "ich_edge.runtime.predict"):
        assert _imports_module("ich_edge/runtime/litert_compiled.py", above) == []
