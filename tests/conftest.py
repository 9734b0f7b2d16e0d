"""Suite-wide hooks: the closing list of app tests that could not run (see tests/apps/app_tools.py),
and the training-tier rule for a runtime-only install.

A runtime-only install (``pip install -e .[dev]``, no ``train`` extra) has no TensorFlow,
tf_keras or TFMOT. There, a test that needs them is *skipped* with the install command
instead of failing: a test module whose import stops on an ``ImportError`` of one of
:data:`TRAINING_DEPENDENCIES` (one skip for the module), and a test that stops on one in a
fixture or in its body (raised as is, or as the ``MissingDependencyError`` it causes). Any
other failure stays a failure. Under ``CI=true`` nothing is skipped: CI installs the
training tier, so a missing package there is a broken install and its tests fail as they
always did.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# The checkout's scripts (scripts/demo.py, scripts/summary.py) are not in the installed
# package; their tests import them by name from here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

TESTS = Path(__file__).resolve().parent
#: The packages of the ``train`` extra that a runtime-only install lacks (import names).
TRAINING_DEPENDENCIES = ("tensorflow", "tf_keras", "tensorflow_model_optimization")
TRAINING_INSTALL = "pip install -e '.[train,dev]'"


def missing_training_dependencies() -> list[str]:
    """The :data:`TRAINING_DEPENDENCIES` that cannot be imported here (found without importing them)."""
    return [name for name in TRAINING_DEPENDENCIES if importlib.util.find_spec(name) is None]


#: Decided once per session; empty where the training tier is installed.
MISSING = missing_training_dependencies()
#: Skips apply only outside CI (CI provisions the training tier: a missing package fails there).
SKIP_TRAINING = bool(MISSING) and os.environ.get("CI", "").lower() != "true"


def training_skip_reason() -> str:
    """The one-line reason a training-tier test is skipped."""
    return f"training tier not installed ({', '.join(MISSING)} missing); install it with: {TRAINING_INSTALL}"


def missing_training_import(error: BaseException | None) -> str | None:
    """The training dependency whose ``ImportError`` caused ``error`` (its chain walked), else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ImportError) and (error.name or "").split(".")[0] in TRAINING_DEPENDENCIES:
            return error.name
        error = error.__cause__ or error.__context__
    return None


class RuntimeOnlyModule(pytest.Module):
    """A test module that is skipped, not an error, when its import needs the missing training tier."""

    def collect(self):
        try:
            return super().collect()
        except Exception as err:  # CollectError from an ImportError, or the MissingDependencyError it caused
            name = missing_training_import(err)
            if name is None:
                raise
            pytest.skip(f"{self.path.name} needs {name}: {training_skip_reason()}")


def pytest_collection_modifyitems(config, items):
    """A test marked ``training`` (it reaches TensorFlow through the CLI, which answers with an
    exit code instead of an ImportError) is skipped where the training tier is missing."""
    if not SKIP_TRAINING:
        return
    skip = pytest.mark.skip(reason=training_skip_reason())
    for item in items:
        if item.get_closest_marker("training") is not None:
            item.add_marker(skip)


def pytest_pycollect_makemodule(module_path, parent):
    if SKIP_TRAINING:
        return RuntimeOnlyModule.from_parent(parent, path=module_path)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if SKIP_TRAINING and report.failed and call.excinfo is not None:
        name = missing_training_import(call.excinfo.value)
        if name is not None:
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: needs {name}: {training_skip_reason()}")


def pytest_terminal_summary(terminalreporter):
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "app test not run" in reason:
            terminalreporter.write_line(f"{report.nodeid}: {reason.removeprefix('Skipped: ')}")
