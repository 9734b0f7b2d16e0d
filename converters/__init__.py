"""Precision recipes for ``ich-edge convert``: one small module per TFLite precision.

Each module defines ``RECIPE`` (:class:`converters.recipe.Recipe`); :mod:`converters.registry`
lists them in one table. Importing this package does not import TensorFlow: recipes import
it when they configure a converter.
"""

from converters.recipe import IO_TYPES, ConvertOptions, Recipe
from converters.registry import ALL, RECIPES, get_recipe, select_recipes

__all__ = ["ALL", "IO_TYPES", "RECIPES", "ConvertOptions", "Recipe", "get_recipe", "select_recipes"]
