"""Verify before writing: the windows import and convert check on, and errors that name where copies disagree."""

from __future__ import annotations

import numpy as np
import pytest

from import_helpers import SIZE_PX, WINDOW, paper_like
from ich_edge.errors import ModelError
from ich_edge.training.importer.verify import CASES, first_disagreement, verification_windows
from ich_edge.transforms import ModelInput, PreprocessConfig


def test_verification_windows_hold_padding_air_and_the_input_extremes():
    windows, names = verification_windows(16, 6)
    assert windows.shape == (len(CASES), 6, 16, 16, 3) and names == list(CASES)
    by = dict(zip(names, windows))
    slice_max = lambda w: w.reshape(len(w), -1).max(axis=1)  # noqa: E731
    assert (slice_max(by["padded at the end"])[3:] == 0).all() and (slice_max(by["padded at the end"])[:3] > 0).all()
    assert (slice_max(by["padded at the start"])[:3] == 0).all()
    assert (slice_max(by["one slice padded"])[1:] == 0).all()
    assert (by["all air (all zero)"] == 0).all() and (by["all one (input maximum)"] == 1).all()
    assert slice_max(by["phantom between blank slices"])[0] == 0 == slice_max(by["phantom between blank slices"])[-1]


def test_first_disagreement_names_the_first_layer_past_the_tolerance():
    a = np.zeros((2, 3))
    assert first_disagreement([("x", a, a), ("y", a, a + 1e-3), ("z", a, a + 1)]).startswith("y (max |diff| 1.0e-03")
    assert first_disagreement([("x", a, a + 1e-7)]) == "the output only (every intermediate agrees)"


def test_a_split_that_differs_is_an_error_naming_the_encoder_and_nothing_else(tmp_path):
    """A wrong input adapter (the one part of the split that is not the user's layers) is named."""
    from ich_edge.training.importer.split import split_user_model

    model = paper_like(channels=1)
    model_input = ModelInput("symmetric", ("brain",))
    preprocess = PreprocessConfig(input_size_px=SIZE_PX)
    split = split_user_model(model, model_input, preprocess, WINDOW)
    assert split.check_max_abs_diff <= 1e-5 and len(split.verification) == len(CASES)
    from ich_edge.training.importer import split as split_module

    original = split_module._adapter

    def off_by_a_bit(x, mi, pp):  # the adapter maps [0, 1] to [-1, 1.02]: the extremes differ
        y = original(x, mi, pp)
        layer = y._keras_history.layer
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * 1.01, bias])
        return y

    split_module._adapter = off_by_a_bit
    try:
        with pytest.raises(ModelError, match=r"differ from yours by .* first disagreement: the slice encoder"):
            split_user_model(paper_like(channels=1), model_input, preprocess, WINDOW)
    finally:
        split_module._adapter = original
