"""Write a synthetic set in the RSNA 2019 layout, studies in parallel.

``OUT/dicom/ID_<9 hex>.dcm`` (one file per slice, all series mixed, files written in random
order), ``OUT/labels.csv`` (RSNA ``ID,Label``, six rows per slice), ``OUT/studies.csv``
(``study_uid`` plus the six labels) and ``OUT/synth_config.json`` (the options used, the
label rule, and a per-study summary). Every file is written atomically.

Each study gets a made-up (0010,0020) Patient ID, ``SYNTH-<seed>-<patient number>`` (sets of
other seeds hold other patients, so a test set never shares a patient with a training set): one
patient per study unless ``studies_per_patient`` groups consecutive studies into repeat scans of one
patient (to exercise the patient-level split).
"""

from __future__ import annotations

import csv
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ich_edge import LABELS
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic
from ich_edge.errors import ConfigError, OutputExistsError
from ich_edge.fileio import atomic_output, write_json_atomic
from ich_edge.labels import STUDY_HEADER, write_rsna_csv
from ich_edge.synth.config import SynthConfig
from ich_edge.synth.study import MIN_LESION_AREA_MM2, SLICE_THICKNESS_MM, StudyPlan, plan_study, render_slice

DICOM_DIR = "dicom"
LABELS_CSV = "labels.csv"
STUDIES_CSV = "studies.csv"
CONFIG_JSON = "synth_config.json"


def recorded_options(out: str | Path) -> dict:
    """The options recorded in ``OUT/synth_config.json`` of an existing set (the ``config`` object)."""
    path = Path(out) / CONFIG_JSON
    try:
        return json.loads(path.read_text())["config"]
    except FileNotFoundError as err:
        raise ConfigError(f"{path} not found: {out} is not a set written by `ich-edge synth --out {out} --studies N`") from err
    except (json.JSONDecodeError, KeyError) as err:
        raise ConfigError(f"{path} is not a synth_config.json written by ich-edge synth") from err


@dataclass(frozen=True)
class StudyRecord:
    """What the main process needs from one written study (slices in position order)."""

    index: int
    study_uid: str
    series_uid: str
    scenario: str
    slice_ids: tuple[str, ...]
    labels: np.ndarray  # uint8 (num_slices, 6)
    patient_id: str = ""

    @property
    def study_labels(self) -> np.ndarray:
        return self.labels.max(axis=0)


def slice_geometry(plan: StudyPlan, position: int) -> SliceGeometry:
    x0, y0 = plan.origin_xy_mm
    return SliceGeometry(
        position_mm=(x0, y0, plan.z_positions_mm[position]),
        pixel_spacing_mm=(plan.pixel_mm, plan.pixel_mm),
        slice_thickness_mm=SLICE_THICKNESS_MM,
    )


def synthetic_patient_id(seed: int, index: int, studies_per_patient: int = 1) -> str:
    """The made-up Patient ID of study ``index`` of a set: ``SYNTH-<seed>-<index // studies_per_patient>``."""
    if isinstance(studies_per_patient, bool) or not isinstance(studies_per_patient, int) or studies_per_patient < 1:
        raise ConfigError(f"studies_per_patient must be an integer >= 1, got {studies_per_patient!r}")
    return f"SYNTH-{seed}-{index // studies_per_patient:06d}"


def write_study(config: SynthConfig, index: int, dicom_dir: str | Path, patient_id: str | None = None) -> StudyRecord:
    """Render study ``index`` and write its slices (in the plan's random order) to ``dicom_dir``.

    ``patient_id`` (made up; default :func:`synthetic_patient_id`) goes into every slice.
    """
    patient_id = synthetic_patient_id(config.seed, index) if patient_id is None else patient_id
    plan = plan_study(config, index)
    labels = np.zeros((plan.num_slices, len(LABELS)), np.uint8)
    for position in plan.write_order:
        rendered = render_slice(plan, position)
        labels[position] = rendered.labels
        ds = build_ct_dataset(
            rendered.hu,
            sop_instance_uid=plan.slice_ids[position],
            series_uid=plan.series_uid,
            study_uid=plan.study_uid,
            geometry=slice_geometry(plan, position),
            instance_number=plan.instance_numbers[position],
            patient_id=patient_id,
        )
        write_dataset_atomic(ds, Path(dicom_dir) / f"{plan.slice_ids[position]}.dcm")
    return StudyRecord(index, plan.study_uid, plan.series_uid, plan.scenario, plan.slice_ids, labels, patient_id)


def _write_study_job(args: tuple[SynthConfig, int, str, str]) -> StudyRecord:
    return write_study(*args)


def _check_output(out_dir: Path, force: bool) -> None:
    dicom_dir = out_dir / DICOM_DIR
    existing = [out_dir / name for name in (LABELS_CSV, STUDIES_CSV, CONFIG_JSON) if (out_dir / name).exists()]
    if dicom_dir.is_dir() and any(dicom_dir.iterdir()):
        existing.append(dicom_dir)
    if existing and not force:
        raise OutputExistsError(
            f"{out_dir} already holds a data set ({existing[0].name}); pass --force to replace it "
            "or choose another --out"
        )
    if force and dicom_dir.is_dir():
        for old in dicom_dir.glob("ID_*.dcm"):
            old.unlink()


def write_synth_set(
    config: SynthConfig,
    out_dir: str | Path,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    studies_per_patient: int = 1,
) -> list[StudyRecord]:
    """Generate ``config.studies`` studies into ``out_dir`` (RSNA layout, see module docstring).

    Studies are rendered by ``config.workers`` processes; the output does not depend on it.
    ``progress(done, total)`` is called after each study. Raises :class:`OutputExistsError`
    when ``out_dir`` already holds a data set and ``force`` is false. ``studies_per_patient``
    consecutive studies share one made-up Patient ID (repeat scans of one patient).
    """
    synthetic_patient_id(config.seed, 0, studies_per_patient)  # a bad studies_per_patient fails before writing
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_output(out_dir, force)
    dicom_dir = out_dir / DICOM_DIR
    dicom_dir.mkdir(exist_ok=True)
    jobs = [(config, index, str(dicom_dir), synthetic_patient_id(config.seed, index, studies_per_patient)) for index in range(config.studies)]
    records: list[StudyRecord] = []
    if config.workers == 1:
        for job in jobs:
            records.append(_write_study_job(job))
            if progress:
                progress(len(records), len(jobs))
    else:
        context = multiprocessing.get_context("spawn")  # safe even if the caller holds threads
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=context) as pool:
            for record in pool.map(_write_study_job, jobs, chunksize=1):
                records.append(record)
                if progress:
                    progress(len(records), len(jobs))
    _write_tables(config, out_dir, records)
    return records


def _write_tables(config: SynthConfig, out_dir: Path, records: list[StudyRecord]) -> None:
    slice_labels = {sid: rec.labels[k] for rec in records for k, sid in enumerate(rec.slice_ids)}
    with atomic_output(out_dir / LABELS_CSV) as tmp:
        write_rsna_csv(tmp, slice_labels)
    with atomic_output(out_dir / STUDIES_CSV) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(STUDY_HEADER)
        for rec in records:
            writer.writerow([rec.study_uid, *(int(v) for v in rec.study_labels)])
    summary = {
        "config": config.to_dict(),
        "layout": {"dicom": f"{DICOM_DIR}/ID_<9 hex>.dcm", "labels": LABELS_CSV, "studies": STUDIES_CSV},
        "label_rule": (
            f"a slice is positive for a subtype when that subtype's blood covers >= {MIN_LESION_AREA_MM2} mm^2 "
            "of the slice's central plane; any = OR of the subtypes; study label = OR over its slices"
        ),
        "studies": [
            {
                "index": rec.index,
                "study_uid": rec.study_uid,
                "scenario": rec.scenario,
                "patient_id": rec.patient_id,
                "num_slices": len(rec.slice_ids),
                "labels": dict(zip(LABELS, (int(v) for v in rec.study_labels))),
            }
            for rec in records
        ],
    }
    write_json_atomic(out_dir / CONFIG_JSON, summary)
