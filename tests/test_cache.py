import json

import numpy as np
import pytest

from ich_edge.ingest.cache import Cache, CachedSeries
from ich_edge.errors import CacheError
from ich_edge.transforms import PreprocessConfig


def _series(uid="1.2.3", n=4, size=32):
    return CachedSeries(
        series_uid=uid,
        study_uid="9.9",
        images=np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8),
        slice_labels=np.zeros((n, 6), np.int8),
        study_labels=np.zeros(6, np.int8),
        slice_ids=tuple(f"ID_{i:09x}" for i in range(n)),
    )


def test_write_and_read_round_trip(tmp_path):
    cache = Cache.create(tmp_path / "c", PreprocessConfig(input_size_px=32))
    item = _series()
    cache.write(item)
    assert cache.has("1.2.3") and len(cache) == 1
    read = Cache.open(tmp_path / "c").series()[0]
    np.testing.assert_array_equal(read.images, item.images)
    assert read.slice_ids == item.slice_ids and read.study_uid == "9.9" and read.has_slice_labels
    assert not list((tmp_path / "c" / "series").glob("*.tmp"))


def test_other_preprocessing_is_refused(tmp_path):
    Cache.create(tmp_path, PreprocessConfig(input_size_px=32))
    with pytest.raises(CacheError, match="other preprocessing"):
        Cache.create(tmp_path, PreprocessConfig(input_size_px=64))


def test_missing_and_empty_cache_errors(tmp_path):
    with pytest.raises(CacheError, match="ich-edge prepare"):
        Cache.open(tmp_path / "nope")
    with pytest.raises(CacheError, match="no prepared series"):
        Cache.create(tmp_path, PreprocessConfig(input_size_px=32)).series()


def test_wrong_image_shape_is_refused(tmp_path):
    cache = Cache.create(tmp_path, PreprocessConfig(input_size_px=64))
    with pytest.raises(CacheError, match="uint8"):
        cache.write(_series(size=32))


def test_damaged_file_names_the_fix(tmp_path):
    cache = Cache.create(tmp_path, PreprocessConfig(input_size_px=32))
    path = cache.write(_series())
    path.write_bytes(b"garbage")
    with pytest.raises(CacheError, match="delete it and run prepare again"):
        Cache.read(path)


def test_series_are_memory_mapped_read_only_not_loaded(tmp_path):
    cache = Cache.create(tmp_path, PreprocessConfig(input_size_px=32))
    item = _series(n=6)
    cache.write(item)
    (read,) = cache.series()
    images = read.images
    assert isinstance(images, np.memmap) and not images.flags.writeable
    np.testing.assert_array_equal(images, item.images)
    assert read.num_slices == 6 and read.patient_uid == "9.9"  # no patient known: the study stands for it
    # each access maps afresh: a caller that drops the array drops the pages
    assert read.images is not images
    # nothing of the images is held by the series object itself
    assert not any(isinstance(v, np.ndarray) and v.ndim == 4 for v in vars(read).values())


def test_num_slices_does_not_touch_the_images(tmp_path):
    cache = Cache.create(tmp_path, PreprocessConfig(input_size_px=32))
    path = cache.write(_series(n=5))
    path.with_suffix(".npy").unlink()  # metadata alone answers num_slices and the labels
    (read,) = cache.series()
    assert read.num_slices == 5 and read.has_slice_labels
    with pytest.raises(CacheError, match="damaged or missing.*run prepare again"):
        read.images


def test_patient_uid_round_trips(tmp_path):
    cache = Cache.create(tmp_path, PreprocessConfig(input_size_px=32))
    item = _series()
    cache.write(CachedSeries(item.series_uid, item.study_uid, item.images, item.slice_labels, item.study_labels,
                             item.slice_ids, patient_uid="P0123456789abcdef"))
    assert cache.series()[0].patient_uid == "P0123456789abcdef"


def test_old_npz_cache_is_refused_with_the_fix(tmp_path):
    (tmp_path / "series").mkdir()
    (tmp_path / "preprocess.json").write_text(json.dumps(PreprocessConfig(input_size_px=32).to_dict()))
    np.savez(tmp_path / "series" / "0123.npz", images=np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(CacheError, match="old format.*prepare` again"):
        Cache.open(tmp_path)
    with pytest.raises(CacheError, match="old format"):
        Cache.create(tmp_path / "series" / "..", PreprocessConfig(input_size_px=32)).series()


def test_load_all_is_the_old_name_of_series(tmp_path):
    cache = Cache.create(tmp_path, PreprocessConfig(input_size_px=32))
    cache.write(_series())
    assert [s.series_uid for s in cache.load_all()] == [s.series_uid for s in cache.series()]
