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
