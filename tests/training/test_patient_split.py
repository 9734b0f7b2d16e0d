"""Patient-level split: repeat scans of one patient never straddle train and validation (or test)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training_helpers import make_series, write_cache
from ich_edge.errors import ConfigError
from ich_edge.training import data


def _with_patients(series_list, studies_per_patient):
    """Give study ``k`` the patient ``k // studies_per_patient`` (repeat scans)."""
    def patient(s):
        study = int(s.study_uid.rsplit(".", 1)[1])
        return f"P{study // studies_per_patient:016x}"

    return [dataclasses.replace(s, patient_uid=patient(s)) for s in series_list]


def _series_list(num_studies=24, series_per_study=2, seed=0):
    rng = np.random.default_rng(seed)
    return [make_series(rng, s, k, 5) for s in range(num_studies) for k in range(series_per_study)]


@pytest.mark.parametrize("seed", range(8))
def test_all_studies_of_a_patient_land_on_one_side(seed):
    series = _with_patients(_series_list(), studies_per_patient=3)
    split = data.split_studies(series, val_fraction=0.25, seed=seed)
    side = {uid: "val" for uid in split.val_studies} | {uid: "train" for uid in split.train_studies}
    by_patient = {}
    for s in series:
        by_patient.setdefault(s.patient_uid, set()).add(side[s.study_uid])
    assert all(len(sides) == 1 for sides in by_patient.values())
    assert len(by_patient) == 8 and len(split.val_studies) == 2 * 3  # 25% of 8 patients, 3 studies each
    assert set(split.train_studies) | set(split.val_studies) == {s.study_uid for s in series}


def test_one_study_per_patient_gives_the_study_level_split():
    plain = _series_list()
    named = _with_patients(plain, studies_per_patient=1)
    assert data.split_studies(plain, 0.25, seed=4) == data.split_studies(named, 0.25, seed=4)


def test_patients_linked_through_a_shared_study_stay_together():
    series = _series_list(num_studies=6, series_per_study=2)
    # study 0's two series name different patients (a merge of two records): studies 0, 1, 2 form one group
    patients = {("1.2.3.0", 0): "PA", ("1.2.3.0", 1): "PB", ("1.2.3.1", 0): "PA", ("1.2.3.1", 1): "PA"}
    patients |= {("1.2.3.2", 0): "PB", ("1.2.3.2", 1): "PB"}
    relabelled = []
    for s in series:
        index = int(s.series_uid.rsplit(".", 1)[1])
        relabelled.append(dataclasses.replace(s, patient_uid=patients.get((s.study_uid, index))))
    groups = data.patient_groups(relabelled)
    assert ("1.2.3.0", "1.2.3.1", "1.2.3.2") in groups and len(groups) == 4


def test_a_single_patient_cannot_be_split():
    series = _with_patients(_series_list(num_studies=4), studies_per_patient=4)
    with pytest.raises(ConfigError, match="1 patient.*at least 2 patients"):
        data.split_studies(series, 0.25, seed=0)


def test_overlap_is_found_by_patient_not_only_by_study():
    train = _with_patients(_series_list(num_studies=4), studies_per_patient=2)  # patients 0, 1
    rng = np.random.default_rng(9)
    repeat_scan = dataclasses.replace(make_series(rng, 7, 0, 5), patient_uid=train[0].patient_uid)
    other = dataclasses.replace(make_series(rng, 8, 0, 5), patient_uid="P" + "f" * 16)
    assert data.overlapping_studies([repeat_scan, other], train) == {"1.2.3.7"}
    assert data.overlapping_studies([train[0]], train) == {"1.2.3.0"}


def test_train_refuses_a_test_cache_holding_a_training_patient(tmp_path):
    from ich_edge.training.train import _load_test
    from ich_edge.ingest.cache import Cache

    train_cache = write_cache(tmp_path / "train", num_studies=4)
    train_series = train_cache.series()
    test_cache = Cache.create(tmp_path / "test", train_cache.preprocess)
    item = make_series(np.random.default_rng(5), 50, 0, 4)  # a new study ...
    test_cache.write(dataclasses.replace(item, images=np.asarray(item.images), patient_uid=train_series[0].patient_uid))  # ... of a training patient
    with pytest.raises(ConfigError, match="1 test studies are in the training cache or are scans of a patient"):
        _load_test(tmp_path / "test", train_cache.preprocess, train_series)
    assert len(_load_test(tmp_path / "test", train_cache.preprocess, train_series[1:])) == 1  # without that patient
