"""ich_edge.fileio is the one owner of atomic writes: its helpers, and nobody else renames output files."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from ich_edge.fileio import atomic_output, replace_dir

PACKAGE = Path(__file__).resolve().parents[1] / "ich_edge"
#: Modules allowed to rename files into place, with the reason.
ALLOWED = {"fileio.py": "the owner of atomic writes"}


def _renames(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, call)`` of every rename-into-place call: os.replace/os.rename/shutil.move, any
    ``x.rename(...)`` (Path.rename) and ``x.replace(target)`` with one argument (Path.replace;
    str.replace takes two, dataclasses.replace keywords)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, owner = node.func.attr, node.func.value
        module = owner.id if isinstance(owner, ast.Name) else None
        if (module, name) in {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}:
            found.append((node.lineno, f"{module}.{name}"))
        elif module not in ("os", "shutil", "dataclasses") and (
            name == "rename" or (name == "replace" and len(node.args) == 1 and not node.keywords)
        ):
            found.append((node.lineno, f".{name}()"))
    return found


def test_no_module_but_fileio_renames_output_files():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ALLOWED:
            continue
        for line, call in _renames(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"ich_edge/{relative}:{line} {call}")
    assert not offenders, "use ich_edge.fileio (atomic_output, replace_dir): " + "; ".join(offenders)


def test_the_check_finds_each_kind_of_rename():
    source = (
        "import os, shutil\nos.replace(a, b)\nos.rename(a, b)\nshutil.move(a, b)\ntmp.rename(out)\ntmp.replace(out)\n"
        "text.replace('a', 'b')\nreplace(config, epochs=1)\nconfig.replace(epochs=1)\n"
    )
    assert [call for _, call in _renames(ast.parse(source))] == [
        "os.replace", "os.rename", "shutil.move", ".rename()", ".replace()"]


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model.keras"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.name.endswith(".keras") and tmp.parent == tmp_path
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_replace_dir_swaps_a_folder_and_keeps_the_old_one_on_failure(tmp_path, monkeypatch):
    target, staging = tmp_path / "out", tmp_path / ".out.staging"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_dir(staging, target)
    assert [p.name for p in target.iterdir()] == ["new.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    staging.mkdir()
    real = os.replace

    def staging_fails(src, dst):
        if Path(src) == staging:
            raise OSError("no space")
        real(src, dst)

    monkeypatch.setattr(os, "replace", staging_fails)
    with pytest.raises(OSError, match="no space"):
        replace_dir(staging, target)
    monkeypatch.undo()
    assert [p.name for p in target.iterdir()] == ["new.txt"]
