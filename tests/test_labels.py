import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.errors import LabelsError
from ich_edge.labels import is_rsna_csv, read_rsna_csv, read_study_csv, study_labels, write_rsna_csv


def test_rsna_round_trip_and_duplicates(tmp_path):
    table = {"ID_000000001": np.array([0, 1, 1, 0, 0, 1], np.uint8), "ID_000000002": np.zeros(6, np.uint8)}
    path = tmp_path / "labels.csv"
    write_rsna_csv(path, table)
    with open(path, "a") as handle:  # the real stage_2_train.csv has duplicate rows
        handle.write("ID_000000001_intraventricular,1\n")
    assert is_rsna_csv(path)
    read = read_rsna_csv(path)
    assert set(read) == set(table)
    for key in table:
        np.testing.assert_array_equal(read[key], table[key])


def test_rsna_conflicting_duplicate_is_an_error(tmp_path):
    path = tmp_path / "labels.csv"
    write_rsna_csv(path, {"ID_000000001": np.zeros(6, np.uint8)})
    with open(path, "a") as handle:
        handle.write("ID_000000001_subdural,1\n")
    with pytest.raises(LabelsError, match="conflicting duplicate"):
        read_rsna_csv(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("foo,bar\n", "expected header 'ID,Label'"),
        ("ID,Label\nID_1_notalabel,1\n", "known label"),
        ("ID,Label\nID_1_any,2\n", "0 or 1"),
        ("ID,Label\nID_1_any,1\n", "lack some of the six labels"),
        ("", "empty"),
    ],
)
def test_rsna_bad_files(tmp_path, content, message):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(LabelsError, match=message):
        read_rsna_csv(path)


def test_study_csv(tmp_path):
    path = tmp_path / "studies.csv"
    path.write_text("study_uid," + ",".join(LABELS) + "\n1.2.3,0,0,0,1,0,1\n")
    assert not is_rsna_csv(path)
    np.testing.assert_array_equal(read_study_csv(path)["1.2.3"], [0, 0, 0, 1, 0, 1])
    path.write_text("study_uid,epidural\n1.2.3,0\n")
    with pytest.raises(LabelsError, match="lacks column"):
        read_study_csv(path)


def test_study_labels_are_or_over_slices():
    slices = np.array([[0, 1, 0, 0, 0, 1], [0, 0, 0, 1, 0, 1], [0] * 6])
    np.testing.assert_array_equal(study_labels(slices), [0, 1, 0, 1, 0, 1])


def test_label_columns_select_the_cache_columns_by_name():
    from ich_edge.labels import canonical_order, label_columns

    assert label_columns(("intraparenchymal", "any")).tolist() == [1, 5]
    assert label_columns(("any", "epidural")).tolist() == [5, 0]
    assert label_columns(("any",), ("subdural", "any")).tolist() == [1]
    assert canonical_order(("any", "subdural", "epidural")) == ("epidural", "subdural", "any")
    with pytest.raises(LabelsError, match="unknown label\\(s\\) 'bleed'; the labels are epidural"):
        label_columns(("bleed", "any"))
    with pytest.raises(LabelsError, match="distinct labels"):
        label_columns(("any", "any"))
    with pytest.raises(LabelsError, match="epidural are not among the columns subdural, any"):
        label_columns(("epidural",), ("subdural", "any"))


def test_a_cached_series_with_a_subset_of_labels_keeps_its_images():
    import numpy as np

    from ich_edge.ingest.cache import CachedSeries

    labels = np.arange(12, dtype=np.int8).reshape(2, 6) % 2
    series = CachedSeries("s", "t", np.zeros((2, 4, 4, 3), np.uint8), labels, labels.max(axis=0), ("a", "b"))
    two = series.with_labels(("any", "intraparenchymal"))
    assert two.label_names == ("any", "intraparenchymal")
    assert two.slice_labels.tolist() == labels[:, [5, 1]].tolist() and two.study_labels.tolist() == [1, 1]
    assert two.images is series.images and two.with_labels(("any", "intraparenchymal")) is two
    assert two.with_labels(("intraparenchymal",)).slice_labels.tolist() == labels[:, [1]].tolist()
    with pytest.raises(LabelsError, match="epidural are not among"):
        two.with_labels(("epidural",))
