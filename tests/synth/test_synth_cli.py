"""``ich-edge synth`` from the command line: exit codes, errors, preview."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ich_edge.cli import main
from ich_edge.labels import read_rsna_csv

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
FAST = ["--matrix-px", "32", "--slices", "4-6", "--workers", "1"]


def test_writes_a_set(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--studies", "2", "--seed", "7", *FAST]) == 0
    assert "wrote 2 studies" in capsys.readouterr().out
    labels = read_rsna_csv(out / "labels.csv")
    assert len(labels) == len(list((out / "dicom").glob("ID_*.dcm")))
    config = json.loads((out / "synth_config.json").read_text())["config"]
    assert config["seed"] == 7 and config["slices_min"] == 4 and config["slices_max"] == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--studies", "0"], "studies must be an integer >= 1"),
        (["--studies", "2", "--slices", "9-3"], "MIN <= MAX"),
        (["--studies", "2", "--slices", "x"], "MIN-MAX"),
        (["--studies", "2", "--matrix-px", "8"], "matrix_px"),
        ([], "--studies N is required"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code = main(["synth", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x" / "labels.csv").exists()


def test_nothing_to_do_is_an_error(capsys):
    assert main(["synth"]) == 2
    assert "nothing to do" in capsys.readouterr().err


def test_existing_output_needs_force(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--studies", "1", *FAST]) == 0
    assert main(["synth", "--out", str(out), "--studies", "1", *FAST]) == 3  # OutputExistsError: could not run
    assert "--force" in capsys.readouterr().err
    assert main(["synth", "--out", str(out), "--studies", "1", "--force", *FAST]) == 0


def test_preview_png_on_the_fly_and_of_an_existing_set(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--preview draws with matplotlib (the train extra installs it)")
    png = tmp_path / "look" / "preview.png"
    assert main(["synth", "--preview", str(png), "--matrix-px", "32", "--slices", "4-6"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    out_line = capsys.readouterr().out
    assert "(negative)" in out_line and "(epidural)" in out_line
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--studies", "1", "--seed", "2", *FAST]) == 0
    png2 = tmp_path / "set_preview.png"
    assert main(["synth", "--out", str(out), "--preview", str(png2)]) == 0
    assert png2.exists()
    assert main(["synth", "--preview", str(tmp_path / "bad.jpg"), "--matrix-px", "32"]) == 2


def test_runtime_tier_imports_without_tensorflow_or_matplotlib():
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "tf_keras", "keras", "matplotlib"):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        import ich_edge.synth, ich_edge.synth.writer, ich_edge.baseline, ich_edge.cli.synth
        from ich_edge.synth import SynthConfig, plan_study, render_slice
        render_slice(plan_study(SynthConfig(studies=1, matrix_px=32, workers=1), 0), 0)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
