"""RunDir: one read of a run folder, its kind, typed sections and clear errors (no TensorFlow needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ich_edge.errors import ModelError
from ich_edge.sequence import SequenceConfig
from ich_edge.training.run_dir import FLOAT, IMPORTED, QAT, RunDir
from ich_edge.transforms import PreprocessConfig


def _write(folder, config, **files):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    for name, data in files.items():
        (folder / f"{name}.json").write_text(json.dumps(data))
    return folder


SECTIONS = {"sequence": SequenceConfig(4, 2).to_dict(), "preprocess": PreprocessConfig(input_size_px=32).to_dict()}


@pytest.mark.parametrize("config, kind", [({}, FLOAT), ({"quantized": True}, QAT), ({"import": {"path": "m.h5"}}, IMPORTED),
                                          ({"quantized": True, "import": {"path": "m.h5"}}, QAT)])
def test_the_kind_follows_config_json(tmp_path, config, kind):
    run_dir = RunDir.open(_write(tmp_path / "run", {**SECTIONS, **config}))
    assert run_dir.kind == kind and run_dir.quantized == (kind == QAT)


def test_open_reads_the_files_once_and_types_the_sections(tmp_path):
    split = {"seed": 0, "val_fraction": 0.5, "train_studies": ["a"], "val_studies": ["b"]}
    thresholds = {"specificity": 0.9, "slice": {"any": 0.5}, "study": {"any": 0.5}}
    folder = _write(tmp_path / "run", {**SECTIONS, "labels": ["any"]}, split=split, thresholds=thresholds)
    run_dir = RunDir.open(folder)
    for name in ("config", "split", "thresholds"):
        (folder / f"{name}.json").unlink()  # nothing is read again
    assert run_dir.sequence_config == SequenceConfig(4, 2)
    assert run_dir.preprocess_config == PreprocessConfig(input_size_px=32)
    assert run_dir.labels == ("any",) and run_dir.split_data == split and run_dir.thresholds == thresholds
    assert RunDir.of(run_dir) is run_dir


def test_optional_files_are_none_when_absent(tmp_path):
    run_dir = RunDir.open(_write(tmp_path / "run", SECTIONS))
    assert run_dir.split_data is None and run_dir.thresholds is None and run_dir.report is None


def test_errors_say_what_is_wrong_and_how_to_fix_it(tmp_path):
    with pytest.raises(ModelError, match="is not a run folder; pass the --out of `ich-edge train`"):
        RunDir.open(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="config.json is missing: not a run folder"):
        RunDir.open(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="is not valid JSON .*; train again into a new --out"):
        RunDir.open(tmp_path)
    qat_dir = RunDir.open(_write(tmp_path / "qat", {"quantized": True}))
    with pytest.raises(ModelError, match="lacks the 'sequence' section; run `ich-edge qat` again"):
        qat_dir.sequence_config


def test_opening_a_run_folder_does_not_import_tensorflow(tmp_path):
    folder = _write(tmp_path / "run", SECTIONS)
    code = ("import sys; from ich_edge.training.run_dir import RunDir; r = RunDir.open(sys.argv[1]); "
            "r.sequence_config, r.preprocess_config, r.kind; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')], 'TensorFlow imported'")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True)
