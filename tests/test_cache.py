import numpy as np
import pytest

from ich_edge.cache import Cache, CachedSeries
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
