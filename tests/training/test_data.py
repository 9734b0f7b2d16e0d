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


def _model_input(batch, training=True):
    """A pipeline batch as the training model sees it after its AugmentLayer."""
    (window, params), labels, weights = batch
    images = data.AugmentLayer()([window, params], training=training)
    return images.numpy(), labels.numpy(), weights.numpy()


def test_train_dataset_shapes_weights_and_padding():
    series = _series_list(num_studies=6, series_per_study=1, num_slices=3)
    dataset, steps = data.train_dataset(series, window_slices=4, batch_size=2, seed=0)
    assert steps == 3  # one window per 3-slice series, 6 series, batches of 2
    (window, params), y, w = next(iter(dataset))
    assert window.shape == (2, 4, 32, 32, 3) and window.dtype.name == "uint8"  # the CPU only slices uint8
    assert params.shape == (2, data.NUM_AUGMENT_PARAMS)
    assert y.shape == (2, 4, 6) and w.shape == (2, 4)
    x, _, w = _model_input(next(iter(dataset)))
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(w[:, 3], 0.0)  # the padded 4th slot of 3-slice series
    assert not x[:, 3].any()  # padding stays blank after augmentation
    assert w.mean() == pytest.approx(1.0)  # rescaled to mean 1 over the batch


def test_windows_are_read_by_index_from_memmaps(tmp_path):
    """Images may be read-only memmaps (the cache is never loaded whole): windows are sliced by index."""
    series = _series_list(num_studies=4, series_per_study=1, num_slices=6)
    mapped = []
    for k, s in enumerate(series):
        path = tmp_path / f"{k}.npy"
        np.save(path, s.images)
        images = np.load(path, mmap_mode="r")
        mapped.append(type(s)(s.series_uid, s.study_uid, images, s.slice_labels, s.study_labels, s.slice_ids))
    config = data.AugmentConfig(False, 0, 0, 0)
    a, _ = data.train_dataset(series, 4, 2, seed=3, augment=config)
    b, _ = data.train_dataset(mapped, 4, 2, seed=3, augment=config)
    for x, y in zip(a.take(4), b.take(4)):
        np.testing.assert_array_equal(x[0][0].numpy(), y[0][0].numpy())
    plan = data.epoch_plan([6] * 4, 4, 4, seed=3, epoch=0, augment=config, size_px=32)
    (window, _), _, _ = next(iter(a))
    first = series[int(plan.series_index[0])].images[plan.start[0] : plan.start[0] + 4]
    np.testing.assert_array_equal(window.numpy()[0], first)  # the plan's first window, in plan order


def test_train_stream_is_a_function_of_seed_and_epoch():
    series = _series_list(num_studies=6, series_per_study=1, num_slices=6)
    first, steps = data.train_dataset(series, window_slices=4, batch_size=2, seed=5)
    batches = [(b[0][0].numpy(), b[0][1].numpy()) for b in first.take(2 * steps)]
    resumed, _ = data.train_dataset(series, window_slices=4, batch_size=2, seed=5, first_epoch=1)
    (window, params), _, _ = next(iter(resumed))
    np.testing.assert_array_equal(window.numpy(), batches[steps][0])
    np.testing.assert_array_equal(params.numpy(), batches[steps][1])  # same augmentation draws too
    other, _ = data.train_dataset(series, window_slices=4, batch_size=2, seed=6)
    assert not np.array_equal(next(iter(other))[0][1].numpy(), batches[0][1])


@pytest.mark.parametrize("num_workers,global_batch", [(2, 4), (3, 6), (4, 8)])
def test_worker_shares_are_disjoint_and_cover_the_plan(num_workers, global_batch):
    count = 5 * global_batch
    shares = [data.worker_share(count, global_batch, w, num_workers) for w in range(num_workers)]
    assert sorted(np.concatenate(shares).tolist()) == list(range(count))
    for share in shares:
        assert len(share) == count // num_workers
    # each global batch is split evenly: every worker has global_batch / num_workers windows of it
    for share in shares:
        np.testing.assert_array_equal(np.bincount(share // global_batch), [global_batch // num_workers] * 5)
    with pytest.raises(ConfigError, match="divisible"):
        data.worker_share(count, 5, 0, 2)


def test_sharded_datasets_together_are_the_global_stream():
    series = _series_list(num_studies=8, series_per_study=1, num_slices=6)
    whole, steps = data.train_dataset(series, 4, 4, seed=2)
    global_batches = [b[0][1].numpy() for b in whole.take(steps)]
    parts = [data.train_dataset(series, 4, 4, seed=2, share=data.Share(w, 2, 2))[0] for w in range(2)]
    for k, (a, b) in enumerate(zip(parts[0].take(steps), parts[1].take(steps))):
        np.testing.assert_array_equal(np.concatenate([a[0][1].numpy(), b[0][1].numpy()]), global_batches[k])


def test_batched_augmentation_matches_per_window_transform():
    rng = np.random.default_rng(4)
    windows = rng.random((3, 2, 32, 32, 3)).astype(np.float32)
    config = data.AugmentConfig(rotation_deg=10, shift_fraction=0.1, intensity_jitter=0.1)
    params = data.augment_param_table(rng, config, 32, 3)
    params[0, 0], params[1, 0] = 1.0, 0.0  # one flipped window, one not
    batched = data.augment_batch(windows, params).numpy()
    for k in range(3):
        np.testing.assert_allclose(batched[k], data.apply_augment(windows[k], params[k]).numpy(), atol=1e-6)
    assert not np.allclose(batched[0], batched[1])


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


def test_augment_layer_is_active_only_in_training():
    series = _series_list(num_studies=4, series_per_study=1, num_slices=4)
    dataset, _ = data.train_dataset(series, 4, 2, seed=0, augment=data.AugmentConfig(rotation_deg=10, shift_fraction=0.1))
    batch = next(iter(dataset))
    plain = batch[0][0].numpy().astype(np.float32) / 255.0
    np.testing.assert_allclose(_model_input(batch, training=False)[0], plain)
    assert not np.allclose(_model_input(batch, training=True)[0], plain)


def test_study_labels_give_whole_series_windows_with_padding_marked():
    series = _series_list(num_studies=6, series_per_study=1, num_slices=5)
    hidden = [type(s)(s.series_uid, s.study_uid, s.images, np.full_like(s.slice_labels, -1), s.slice_labels.max(axis=0), s.slice_ids)
              for s in series]
    assert data.label_source(hidden) == "study" and data.label_source(series) == "slice"
    assert data.trainable(hidden) == []
    dataset, steps = data.train_dataset(hidden, 4, 2, seed=0, labels="study")
    (window, _), y, w = next(iter(dataset))
    assert window.shape == (2, 5, 32, 32, 3) and w.shape == (2,)  # the whole 5-slice series, one weight each
    assert steps == 3 and (y.numpy() >= 0).all()  # no padding in 5-slice windows of 5-slice series


def test_augment_config_validates():
    with pytest.raises(ConfigError, match="rotation_deg"):
        data.AugmentConfig(rotation_deg=90)
    assert not data.AugmentConfig(False, 0, 0, 0).enabled


def test_eval_dataset_fills_last_batch_with_zero_weight_windows():
    series = _series_list(num_studies=3, series_per_study=1, num_slices=6)
    dataset, steps = data.eval_dataset(series, SequenceConfig(4, 2), batch_size=4)
    # 6 slices, windows of 4, stride 2 -> starts 0, 2: two windows per series, 6 in all
    assert steps == 2
    batches = list(dataset.take(4))
    assert batches[1][2].numpy()[2:].sum() == 0
    # repeated pass after pass: Keras reads `steps` batches per epoch
    np.testing.assert_array_equal(batches[2][0][0].numpy(), batches[0][0][0].numpy())
    np.testing.assert_array_equal(batches[3][2].numpy(), batches[1][2].numpy())
