"""Study-level split, windows, padding, sample weights and augmentation of the training input."""

from __future__ import annotations

import numpy as np
import pytest

from training_helpers import make_series
from ich_edge.errors import ConfigError
from ich_edge.sequence import SequenceConfig, gather_windows
from ich_edge.training import data


def _series_list(num_studies=20, series_per_study=2, num_slices=5, seed=0):
    rng = np.random.default_rng(seed)
    return [make_series(rng, s, k, num_slices) for s in range(num_studies) for k in range(series_per_study)]


def test_split_is_by_study_and_never_leaks():
    series = _series_list(num_studies=20, series_per_study=3)
    split = data.split_studies(series, val_fraction=0.25, seed=3)
    assert set(split.train_studies).isdisjoint(split.val_studies)
    assert set(split.train_studies) | set(split.val_studies) == {s.study_uid for s in series}
    train_slices = {i for s in data.select_studies(series, split.train_studies) for i in s.slice_ids}
    val_slices = {i for s in data.select_studies(series, split.val_studies) for i in s.slice_ids}
    assert train_slices.isdisjoint(val_slices)
    assert len(data.select_studies(series, split.val_studies)) == 3 * len(split.val_studies)
    assert len(split.val_studies) == 5
    # stratified on "any": both classes on the validation side
    table = data.study_label_table(series)
    assert {int(table[u][5]) for u in split.val_studies} == {0, 1}


def test_split_is_seeded():
    series = _series_list()
    assert data.split_studies(series, 0.2, seed=1) == data.split_studies(series, 0.2, seed=1)
    assert data.split_studies(series, 0.2, seed=1).val_studies != data.split_studies(series, 0.2, seed=2).val_studies


def test_split_rejects_single_study_and_bad_fraction():
    series = _series_list(num_studies=1)
    with pytest.raises(ConfigError, match="at least 2"):
        data.split_studies(series, 0.2, seed=0)
    with pytest.raises(ConfigError, match="val_fraction"):
        data.split_studies(_series_list(), 1.0, seed=0)


def test_cut_window_pads_like_gather_windows_and_zero_weights():
    series = make_series(np.random.default_rng(0), study=1, series=0, num_slices=3)
    config = SequenceConfig(window_slices=5, stride_slices=2)
    indices = np.array([0, 1, 2, -1, -1])
    images, labels, weights = data.cut_window(series, indices)
    np.testing.assert_array_equal(images, gather_windows(series.images, config)[0])
    np.testing.assert_array_equal(weights, [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(labels[:3], series.slice_labels.astype(np.float32))
    assert not labels[3:].any()


def test_unknown_slice_labels_get_zero_weight():
    series = make_series(np.random.default_rng(0), study=1, series=0, num_slices=4)
    labels = series.slice_labels.copy()
    labels[2] = -1
    series = type(series)(series.series_uid, series.study_uid, series.images, labels, series.study_labels, series.slice_ids)
    _, y, w = data.cut_window(series, np.arange(4))
    np.testing.assert_array_equal(w, [1, 1, 0, 1])
    assert y.min() == 0.0


@pytest.mark.parametrize("num_slices", [3, 24, 25, 47, 60])
def test_epoch_window_starts_cover_every_slice(num_slices):
    rng = np.random.default_rng(0)
    for _ in range(20):
        starts = data.epoch_window_starts(num_slices, 24, rng)
        covered = np.zeros(num_slices, bool)
        for start in starts:
            assert 0 <= start and (start + 24 <= num_slices or start == 0)
            covered[start : start + 24] = True
        assert covered.all()
        assert len(starts) >= -(-num_slices // 24)


def test_train_dataset_shapes_weights_and_padding():
    series = _series_list(num_studies=6, series_per_study=1, num_slices=3)
    dataset, steps = data.train_dataset(series, window_slices=4, batch_size=2, seed=0)
    assert steps == 3  # one window per 3-slice series, 6 series, batches of 2
    x, y, w = next(iter(dataset))
    assert x.shape == (2, 4, 32, 32, 3) and x.dtype.name == "float32"
    assert y.shape == (2, 4, 6) and w.shape == (2, 4)
    x, w = x.numpy(), w.numpy()
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(w[:, 3], 0.0)  # the padded 4th slot of 3-slice series
    assert not x[:, 3].any()  # padding stays blank after augmentation
    assert w.mean() == pytest.approx(1.0)  # rescaled to mean 1 over the batch


def test_train_stream_is_a_function_of_seed_and_epoch():
    series = _series_list(num_studies=6, series_per_study=1, num_slices=6)
    first, steps = data.train_dataset(series, window_slices=4, batch_size=2, seed=5)
    batches = [b[0].numpy() for b in first.take(2 * steps)]
    resumed, _ = data.train_dataset(series, window_slices=4, batch_size=2, seed=5, first_epoch=1)
    np.testing.assert_array_equal(next(iter(resumed))[0].numpy(), batches[steps])
    other, _ = data.train_dataset(series, window_slices=4, batch_size=2, seed=6)
    assert not np.array_equal(next(iter(other))[0].numpy(), batches[0])


def test_augmentation_same_transform_for_all_slices_and_flip():
    window = np.zeros((3, 32, 32, 3), np.float32)
    window[:, 10:14, 2:6, :] = 0.5  # same patch on every slice, on the left
    params = np.array([1, 0, 0, 0, 1, 1, 1, 0, 0, 0], np.float32)  # flip only
    out = data.apply_augment(window, params).numpy()
    np.testing.assert_allclose(out[:, 10:14, 26:30, :], 0.5, atol=1e-6)
    assert not out[:, :, :16].any()
    params = data.augment_params(np.random.default_rng(1), data.AugmentConfig(rotation_deg=5, shift_fraction=0.1), 32)
    out = data.apply_augment(window, params).numpy()
    np.testing.assert_allclose(out[1], out[0])
    np.testing.assert_allclose(out[2], out[0])
    assert out.max() <= 1.0 and out.min() >= 0.0


def test_augment_config_validates():
    with pytest.raises(ConfigError, match="rotation_deg"):
        data.AugmentConfig(rotation_deg=90)
    assert not data.AugmentConfig(False, 0, 0, 0).enabled


def test_eval_dataset_fills_last_batch_with_zero_weight_windows():
    series = _series_list(num_studies=3, series_per_study=1, num_slices=6)
    dataset, steps = data.eval_dataset(series, SequenceConfig(4, 2), batch_size=4)
    # 6 slices, windows of 4, stride 2 -> starts 0, 2: two windows per series, 6 in all
    assert steps == 2
    batches = list(dataset)
    assert len(batches) == 2 and batches[1][2].numpy()[2:].sum() == 0
    assert len(list(dataset)) == 2  # iterable again (Keras re-iterates it every epoch)
