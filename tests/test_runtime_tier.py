"""The runtime tier loads and runs with TensorFlow blocked (a fresh interpreter per check).

Add a runtime module to RUNTIME_MODULES or a verb to RUNTIME_VERBS with one line. Every
listed module must exist and every verb of ``ich-edge`` must be either a runtime verb
(run here, with TensorFlow blocked) or a training verb: nothing is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic

#: Modules an edge box imports; none may pull in TensorFlow or Keras. Every module of the
#: package outside the training tier is checked too (see :func:`_package_modules`); this
#: list is the floor that must exist, so a module that moves without its entry here fails.
RUNTIME_MODULES = (
    "ich_edge",
    "ich_edge.dicom",
    "ich_edge.dicom.privacy",
    "ich_edge.transforms",
    "ich_edge.sequence",
    "ich_edge.metrics",
    "ich_edge.labels",
    "ich_edge.runtime.interpreter",
    "ich_edge.runtime.predict",
    "ich_edge.runtime.predict_report",
    "ich_edge.runtime.completeness",
    "ich_edge.runtime.model_check",
    "ich_edge.runtime.bench",
    "ich_edge.runtime.bench.runner",
    "ich_edge.runtime.bench.worker",
    "ich_edge.runtime.bench.report",
    "ich_edge.runtime.bench.gpu",
    "ich_edge.runtime.coverage",
    "ich_edge.runtime.flatbuffer",
    "ich_edge.runtime.bench.sysinfo",
    "ich_edge.runtime.description",
    "ich_edge.runtime.tflite_model",
    "ich_edge.runtime.compiled",
    "ich_edge.runtime.litert_compiled",
    "ich_edge.runtime.model_file",
    "ich_edge.fileio",
    "ich_edge.ingest",
    "ich_edge.ingest.cache",
    "ich_edge.ingest.inspect",
    "ich_edge.ingest.prepare",
    "ich_edge.ingest.scan_manifest",
    "ich_edge.ingest.series_filter",
    "ich_edge.synth",
    "ich_edge.baseline",
    "ich_edge.assets",
    "ich_edge.assets.build",
    "ich_edge.assets.manifest",
    "ich_edge.assets.sample",
    "ich_edge.assets.reference_client",
)
#: Package modules of the training tier (they may import TensorFlow): not imported here.
TRAINING_PACKAGES = ("ich_edge.training",)
PACKAGE = Path(__file__).resolve().parents[1] / "ich_edge"


def _package_modules() -> list[str]:
    """Every module of the installed package (from the files), training tier and verbs excluded."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name.startswith(TRAINING_PACKAGES) or name.startswith("ich_edge.cli.") or name == "ich_edge.__main__":
            continue  # verbs are run below; __main__ runs the CLI on import
        names.append(name)
    return names


#: (verb, argv) run through ich_edge.cli.main; "{series}" is a tiny CT series folder,
#: "{model}" a tiny ich-edge model, "{out}" an empty folder for what the verb writes.
RUNTIME_VERBS = (
    ("synth", ["synth", "--out", "{out}/synth", "--studies", "1", "--matrix-px", "64", "--slices", "4-4", "--workers", "1"]),
    ("inspect", ["inspect", "--dicom", "{series}", "--json"]),
    ("prepare", ["prepare", "--dicom", "{series}", "--out", "{out}/cache", "--input-size-px", "16", "--workers", "1"]),
    ("predict", ["predict", "--model", "{model}", "--dicom", "{series}", "--json"]),
    ("bench", ["bench", "--model", "{model}", "--backend", "xnnpack", "--threads", "1", "--runs", "2", "--warmup", "0",
               "--study-slices", "4", "--out", "{out}/bench.json"]),
    ("assets", ["assets", "--model", "{model}", "--out", "{out}/assets", "--sample-seed", "5"]),
)
#: Verbs of the training tier (they may import TensorFlow); not run here.
TRAINING_VERBS = ("train", "qat", "convert", "parity", "import")

#: Imported by nothing in the runtime tier at import time or while running a verb.
BLOCKED_PREFIXES = ("tensorflow", "tf_keras", "keras")
NOT_AT_RUNTIME = ("matplotlib",)

_PRELUDE = textwrap.dedent(
    """
    import importlib, importlib.abc, json, sys

    BLOCKED = tuple(json.loads(sys.argv[1]))

    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.startswith(BLOCKED):
                raise ImportError(f"{name} is blocked: the runtime tier must not import it")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())
    for name in BLOCKED:
        sys.modules[name] = None

    def loaded(prefixes):
        return sorted(n for n, m in sys.modules.items() if m is not None and n.startswith(tuple(prefixes)))
    """
)


def _run(body: str, *args: str) -> dict:
    """Run ``body`` after the TensorFlow blocker in a fresh interpreter; return its JSON line."""
    script = _PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(BLOCKED_PREFIXES), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_listed_module_exists_and_every_verb_is_classified():
    from ich_edge.cli import COMMANDS

    assert [name for name in RUNTIME_MODULES if importlib.util.find_spec(name) is None] == []
    assert set(RUNTIME_MODULES) <= set(_package_modules())
    # the CLI hides a verb whose module is missing: here that is a failure, not a skip
    assert [module for module, _ in COMMANDS.values() if importlib.util.find_spec(module) is None] == []
    runtime = {verb for verb, _ in RUNTIME_VERBS}
    assert sorted(set(COMMANDS) - runtime - set(TRAINING_VERBS)) == []  # a new verb must be listed
    assert runtime <= set(COMMANDS)


def test_blocker_really_blocks():
    result = _run(
        """
        try:
            import tensorflow
            outcome = "imported"
        except ImportError:
            outcome = "blocked"
        print(json.dumps({"outcome": outcome}))
        """
    )
    assert result == {"outcome": "blocked"}


def test_runtime_modules_import_without_tensorflow():
    modules = sorted(set(RUNTIME_MODULES) | set(_package_modules()))
    result = _run(
        """
        for name in json.loads(sys.argv[2]):
            importlib.import_module(name)
        from ich_edge.runtime.interpreter import interpreter_module
        try:
            runtime = interpreter_module().__name__
        except Exception as err:  # no LiteRT installed: fine for this check
            runtime = type(err).__name__
        print(json.dumps({"tf": loaded(BLOCKED), "late": loaded(["matplotlib"]), "runtime": runtime}))
        """,
        json.dumps(modules),
    )
    assert result["tf"] == [] and result["late"] == []
    assert result["runtime"] in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "MissingDependencyError")


def _tiny_series(folder: Path) -> Path:
    folder.mkdir()
    for k in range(4):
        hu = np.full((32, 32), 40.0)
        hu[:4] = -1000.0  # air above the head: HU a head CT can hold (ich_edge.dicom.plausibility)
        ds = build_ct_dataset(
            hu,
            sop_instance_uid=f"ID_00000000{k}",
            series_uid="1.2.826.0.1.3680043.8.498.77",
            study_uid="1.2.826.0.1.3680043.8.498.7",
            geometry=SliceGeometry(position_mm=(0.0, 0.0, 5.0 * k)),
            instance_number=4 - k,
        )
        write_dataset_atomic(ds, folder / f"ID_00000000{k}.dcm")
    return folder


@pytest.mark.parametrize(("verb", "argv"), RUNTIME_VERBS, ids=[verb for verb, _ in RUNTIME_VERBS])
def test_runtime_verb_runs_without_tensorflow(tmp_path, verb, argv):
    series = _tiny_series(tmp_path / "series")
    model = tmp_path / "model.tflite"
    out = tmp_path / "out"
    out.mkdir()
    from tiny_app_model import tiny_model_bytes  # tests/tiny_app_model.py: no TensorFlow needed

    model.write_bytes(tiny_model_bytes())
    args = [arg.format(series=series, model=model, out=out) for arg in argv]
    if verb == "assets":
        args.append("--allow-failed-parity")  # no parity report for a hand-made model: the gate is not tested here
    result = _run(
        """
        import contextlib, io
        from ich_edge.cli import main
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(json.loads(sys.argv[2]))
        print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                          "tf": loaded(BLOCKED), "late": loaded(["matplotlib"])}))
        """,
        json.dumps(args),
    )
    assert result["code"] == 0, result["err"]
    assert result["tf"] == [] and result["late"] == []
    if verb == "predict":
        (report,) = json.loads(result["out"])
        assert report["num_slices"] == 4 and report["slices"][0]["id"] == "ID_000000000"
    if verb == "inspect":
        (report,) = json.loads(result["out"])
        assert report["num_slices"] == 4 and report["slice_ids"][0] == "ID_000000000"
    if verb == "synth":
        assert len(list((out / "synth" / "dicom").iterdir())) == 4
    if verb == "prepare":
        assert any((out / "cache").iterdir())
    if verb == "bench":
        (row,) = json.loads((out / "bench.json").read_text())["rows"]
        assert row["status"] == "ok" and row["tensorflow_imported"] is False  # the worker process too
    if verb == "assets":
        assert (out / "assets" / "model.tflite").read_bytes() == model.read_bytes()

