"""The table of precisions: ``ich-edge convert`` reads it, adding a precision adds a row."""

from __future__ import annotations

import difflib

from converters import dynamic, fp16, fp32, int8, int8_mixed, qat_int8
from converters.recipe import Recipe
from ich_edge.errors import ConfigError

RECIPES: dict[str, Recipe] = {r.name: r for r in (fp32.RECIPE, fp16.RECIPE, dynamic.RECIPE, int8.RECIPE, int8_mixed.RECIPE, qat_int8.RECIPE)}
ALL = "all"


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; :class:`ConfigError` with a did-you-mean otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, [*RECIPES, ALL], n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown precision {name!r}{hint} (choose from {', '.join([*RECIPES, ALL])})") from None


def select_recipes(names, have_float_run: bool, have_qat_run: bool) -> list[Recipe]:
    """Expand ``names`` (``all`` = every recipe the given model folders allow) to recipes.

    Raises :class:`ConfigError` when a named precision needs a kind of model folder that was
    not given (qat-int8 needs a QAT_DIR; the others a float RUN_DIR).
    """
    chosen: list[Recipe] = []
    for name in names:
        if name == ALL:
            recipes = [r for r in RECIPES.values() if (have_qat_run if r.needs_qat else have_float_run)]
        else:
            recipe = get_recipe(name)
            if recipe.needs_qat and not have_qat_run:
                raise ConfigError(
                    f"precision {name} converts a QAT_DIR (written by `ich-edge qat`), but no --model is one; "
                    "run `ich-edge qat --model RUN_DIR --data CACHE --out QAT_DIR` and pass --model QAT_DIR"
                )
            if not recipe.needs_qat and not have_float_run:
                raise ConfigError(
                    f"precision {name} converts a float RUN_DIR (written by `ich-edge train`), but --model is a QAT_DIR; "
                    "use --precision qat-int8 for it, or pass the float RUN_DIR as another --model"
                )
            recipes = [recipe]
        chosen.extend(r for r in recipes if r not in chosen)
    return chosen
