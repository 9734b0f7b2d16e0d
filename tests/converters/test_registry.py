"""The precision table: names, did-you-mean, selection by model folder, options (no TensorFlow)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from converters import ALL, RECIPES, ConvertOptions, get_recipe, select_recipes
from ich_edge.errors import ConfigError
from ich_edge.training.parity.gates import CONVERSION_GATES


def test_table_lists_the_six_precisions_in_order():
    assert list(RECIPES) == ["fp32", "fp16", "dynamic", "int8", "int8-mixed", "qat-int8"]
    for name, recipe in RECIPES.items():
        assert recipe.name == name
        assert recipe.file_name == f"cnn_lstm_{name}.tflite"
        assert recipe.parity, f"{name} has no parity gates"
        assert "float" in recipe.io_types
    assert RECIPES["fp32"].parity == {"max_abs_diff": 1e-4}
    assert {name: r.parity for name, r in RECIPES.items()} == CONVERSION_GATES  # one row per precision, no more
    assert [r.name for r in RECIPES.values() if r.needs_calibration] == ["int8", "int8-mixed", "qat-int8"]
    assert [r.name for r in RECIPES.values() if r.needs_qat] == ["qat-int8"]


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("int9", "int8"), ("qat_int8", "qat-int8"), ("fp61", "fp16"), ("dynamc", "dynamic"), ("al", "all")]
)
def test_unknown_precision_gets_a_did_you_mean(typo, suggestion):
    with pytest.raises(ConfigError, match=rf"unknown precision '{typo}'; did you mean '{suggestion}'\?"):
        get_recipe(typo)


def test_unknown_precision_without_a_close_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown precision 'tensorrt' \(choose from fp32, fp16, dynamic, int8, int8-mixed, qat-int8, all\)"):
        get_recipe("tensorrt")


def test_all_expands_to_what_the_folders_allow():
    assert [r.name for r in select_recipes([ALL], True, False)] == ["fp32", "fp16", "dynamic", "int8", "int8-mixed"]
    assert [r.name for r in select_recipes([ALL], False, True)] == ["qat-int8"]
    assert [r.name for r in select_recipes([ALL], True, True)] == list(RECIPES)
    assert [r.name for r in select_recipes(["int8", "fp32", "int8"], True, False)] == ["int8", "fp32"]


def test_precisions_need_the_right_kind_of_model_folder():
    with pytest.raises(ConfigError, match=r"qat-int8 converts a QAT_DIR.*ich-edge qat --model RUN_DIR"):
        select_recipes(["qat-int8"], True, False)
    with pytest.raises(ConfigError, match=r"int8 converts a float RUN_DIR.*use --precision qat-int8"):
        select_recipes(["int8"], False, True)


def test_options_a_recipe_cannot_honour_are_refused():
    with pytest.raises(ConfigError, match=r"fp16 has float weights and activations, so it has no int8 I/O"):
        get_recipe("fp16").check_options(ConvertOptions(io="int8"))
    with pytest.raises(ConfigError, match="int8 needs calibration data: pass --data CACHE"):
        get_recipe("int8").check_options(ConvertOptions(io="int8"))
    with pytest.raises(ConfigError, match=r"io must be one of \('float', 'int8'\)"):
        ConvertOptions(io="uint16")
    get_recipe("int8").check_options(ConvertOptions(io="int8", representative_dataset=lambda: iter(())))


def test_the_table_imports_without_tensorflow():
    script = (
        "import sys\n"
        "for name in ('tensorflow', 'tf_keras', 'keras'): sys.modules[name] = None\n"
        "import converters, ich_edge.cli.convert\n"
        "print(sorted(converters.RECIPES))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "qat-int8" in done.stdout


def test_the_precision_table_and_the_recipes_agree():
    """ich_edge.precisions (TensorFlow-free, read by demo, bench, assets) lists exactly the recipes, with their facts."""
    from converters.registry import RECIPES
    from ich_edge.precisions import SHIP_ORDER, TABLE

    assert [p.name for p in TABLE] == list(RECIPES)
    for row in TABLE:
        recipe = RECIPES[row.name]
        assert (row.needs_qat, row.needs_calibration, row.file_name) == (recipe.needs_qat, recipe.needs_calibration, recipe.file_name)
    assert set(SHIP_ORDER) <= set(RECIPES) and "dynamic" not in SHIP_ORDER
    assert SHIP_ORDER[:3] == ("qat-int8", "int8-mixed", "int8")  # integer first, the mixed file before plain PTQ
