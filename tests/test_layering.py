"""The package layout has one direction: ``converters`` builds on ``ich_edge.training``, never back.

An AST walk of every import statement (module level and inside functions, plus
``importlib.import_module("...")`` calls with a literal name), so a lazy import inside a
function cannot hide a cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module name ``path`` imports anywhere (absolute; relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def _importers(folder: str, prefix: str) -> dict[str, list[str]]:
    found = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        hits = sorted(n for n in imported_modules(path) if n == prefix or n.startswith(prefix + "."))
        if hits:
            found[str(path.relative_to(REPO))] = hits
    return found


def test_training_never_imports_converters():
    assert _importers("ich_edge/training", "converters") == {}


def test_runtime_tier_never_imports_converters_or_training_at_all():
    """Not even lazily: the runtime tier must work where neither is installed."""
    runtime = [p for p in ("ich_edge/runtime", "ich_edge/dicom", "ich_edge/assets") if (REPO / p).is_dir()]
    for folder in runtime:
        assert _importers(folder, "converters") == {}
        assert _importers(folder, "ich_edge.training") == {}


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
