"""``sample/`` of the app assets: one synthetic positive study and its golden tensors and outputs.

The study comes from ``ich-edge synth`` (a phantom: no patient data), re-encoded with RLE
lossless at a reduced matrix so that the folder stays small. Then, from the shipped DICOM
files and with the shipped model, exactly as ``ich-edge predict`` does it:

* ``images_uint8.npy``: the preprocessed slices, uint8 ``(N, S, S, 3)``, bottom to top;
* ``encode_input.npy``: the ``encode`` input in the model's integer input dtype, written
  only when it is neither the uint8 images themselves (uint8, scale 1/255, zero point 0) nor
  their float32 ``pixel * float32(1/255)`` (float input: one exact multiplication, so a
  float copy, four times the images' bytes, would add nothing an app can get wrong);
* ``features.npy``: the ``encode`` outputs (dequantized float32 ``(N, F)``);
* ``expected.json``: per-slice and study probabilities from ``TFLiteStudyModel``, with the
  synthetic ground truth and the tolerance the reference client checks.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import RLELossless

from ich_edge.dicom import find_series
from ich_edge.dicom.write import write_dataset_atomic
from ich_edge.errors import ConfigError, GateFailedError, IchEdgeError
from ich_edge.labels import label_columns, read_rsna_csv, read_study_csv
from ich_edge.runtime.interpreter import runtime_name
from ich_edge.runtime.tflite_model import to_input
from ich_edge.sequence import study_probabilities, window_starts
from ich_edge.transforms import Preprocess, PreprocessConfig, pixels_to_unit

#: Max abs difference allowed between a client's probabilities and expected.json (same
#: model file, LiteRT on a desktop CPU; phones may need more, see the README).
PROBABILITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SampleConfig:
    """How the sample study is made.

    Attributes
    ----------
    matrix_px : DICOM matrix of the sample (256 keeps it under ~2.5 MB with RLE).
    min_slices, max_slices : slice count range passed to ``ich-edge synth --slices``.
    max_seed_tries : seeds tried, from the requested one, to find a positive study.
    max_samples : samples tried (each the next positive study) while the measured kernel
        spread puts a study probability of the sample within reach of its threshold: such a
        sample cannot check a port's decisions (:func:`make_sample_within_spread`).
    other_runtimes : also measure the on-device bounds on the runtimes of
        ``.ci/provision-arm.sh`` (emulated aarch64, other LiteRT versions) where provisioned
        (``ich-edge assets`` does; off here so library callers and tests stay quick).
    refuse_decision_flips : refuse a model whose spread could flip a sample decision (off only
        for measurements such as benchmarks/runtime_matrix.py; the bounds then say so).
    """

    matrix_px: int = 256
    min_slices: int = 28
    max_slices: int = 32
    max_seed_tries: int = 16
    max_samples: int = 4
    other_runtimes: bool = False
    refuse_decision_flips: bool = True

    def __post_init__(self) -> None:
        if self.matrix_px < 32:
            raise ConfigError(f"sample matrix_px must be >= 32, got {self.matrix_px}")
        if not 1 <= self.min_slices <= self.max_slices:
            raise ConfigError(f"sample slices must satisfy 1 <= min <= max, got {self.min_slices}-{self.max_slices}")
        if self.max_seed_tries < 1:
            raise ConfigError("max_seed_tries must be >= 1")
        if self.max_samples < 1:
            raise ConfigError("max_samples must be >= 1")


class SampleNearThresholdError(GateFailedError):
    """The kernel spread could flip a decision of this sample (``seed``: the synth seed it came from)."""

    def __init__(self, message: str, seed: int):
        super().__init__(message)
        self.seed = seed


def synth_args(out: Path, seed: int, config: SampleConfig) -> list[str]:
    """The ``ich-edge synth`` arguments that make the sample's one study (for the record)."""
    return [
        "synth", "--out", str(out), "--studies", "1", "--seed", str(seed),
        "--matrix-px", str(config.matrix_px), "--slices", f"{config.min_slices}-{config.max_slices}",
        "--positive-fraction", "1", "--workers", "1",
    ]


def _synthesize(out: Path, seed: int, config: SampleConfig) -> None:
    """One positive phantom study in the RSNA layout (what :func:`synth_args` would write)."""
    from ich_edge.synth.config import SynthConfig
    from ich_edge.synth.writer import write_synth_set

    synth = SynthConfig(
        studies=1, seed=seed, matrix_px=config.matrix_px, slices_min=config.min_slices,
        slices_max=config.max_slices, positive_fraction=1.0, workers=1,
    )
    write_synth_set(synth, out)


def _positive_study(work: Path, first_seed: int, config: SampleConfig) -> tuple[Path, int]:
    """Synthesize one study per seed from ``first_seed`` until one is labelled positive.

    Studies are drawn with positive fraction 1, so the first seed normally wins; the loop
    guards against a bleed too small to be labelled on any slice.
    """
    for seed in range(first_seed, first_seed + config.max_seed_tries):
        out = work / f"seed_{seed}"
        _synthesize(out, seed, config)
        studies = read_study_csv(out / "studies.csv")
        if any(labels[-1] for labels in studies.values()):
            return out, seed
        shutil.rmtree(out)
    raise ConfigError(
        f"no positive synthetic study for seeds {first_seed}..{first_seed + config.max_seed_tries - 1}; "
        "pass another --sample-seed"
    )


def _copy_rle(source: Path, target: Path) -> None:
    """Re-encode every slice of ``source`` as RLE Lossless into ``target`` (same file names)."""
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.dcm")):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Invalid value for VR UI")
            ds = pydicom.dcmread(path)
            if ds.file_meta.TransferSyntaxUID != RLELossless:
                ds.compress(RLELossless, generate_instance_uid=False)  # keep ID == file stem
        write_dataset_atomic(ds, target / path.name)


def _bound(spread: float, floor: float = PROBABILITY_TOLERANCE) -> float:
    """Twice the measured spread, rounded up to two significant digits; never below ``floor``."""
    if spread <= 0:
        return floor
    bound = 2.0 * spread
    scale = 10.0 ** (np.floor(np.log10(bound)) - 1)
    return float(max(floor, np.ceil(bound / scale) * scale))


def _other_kernels(model, sample_dir: Path, images: np.ndarray, other_runtimes: bool) -> tuple[dict, list[str]]:
    """``{name: (probabilities, features)}`` of the sample on every other kernel set here, and what was not measured.

    This machine: the builtin reference kernels (what an app gets without XNNPACK, e.g.
    TensorFlowLiteSwift's default) and LiteRT's CompiledModel; with ``other_runtimes``,
    every runtime ``.ci/provision-arm.sh`` installed (emulated aarch64 with the LiteRT
    versions apps ship, x86_64 with another version), each a subprocess.
    """
    from ich_edge.runtime.compiled import CompiledRuntimeStudyModel
    from ich_edge.runtime.emulation import PROVISION_COMMAND, predict_files, provisioned_runtimes
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    outputs = {}
    for name, other in {
        "builtin reference kernels (no XNNPACK)": TFLiteStudyModel(model.path, num_threads=1, use_xnnpack=False),
        "LiteRT CompiledModel (CPU accelerator)": CompiledRuntimeStudyModel(model.path, num_threads=1),
    }.items():
        outputs[name] = (other.predict_series(images), other.encode(images))
    runtimes = provisioned_runtimes() if other_runtimes else []

    def run(runtime):
        probabilities, features, _ = predict_files(runtime, model.path, [sample_dir / "images_uint8.npy"], threads=1,
                                                   features=True)
        return runtime.name, (probabilities[0], features[0])

    with ThreadPoolExecutor(max_workers=max(1, len(runtimes))) as pool:  # subprocesses: run them side by side
        outputs.update(pool.map(run, runtimes))
    missing = [] if any(r.arch == "aarch64" for r in runtimes) else [
        "aarch64 kernels and other ai-edge-litert versions: "
        + ("not asked for" if not other_runtimes else f"not provisioned on this machine (`{PROVISION_COMMAND}`)")]
    return outputs, missing


def kernel_spread(model, sample_dir: Path, images: np.ndarray, expected: np.ndarray, features: np.ndarray,
                  thresholds: dict, labels: list[str], other_runtimes: bool = True, refuse: bool = True) -> dict:
    """How far other kernels move this model's outputs on the sample: the on-device bounds.

    The largest slice probability (and feature) difference against ``expected`` (this
    Python's LiteRT, XNNPACK) over every kernel set of :func:`_other_kernels` (other
    architectures and LiteRT versions where provisioned), doubled and rounded up, is the
    acceptance bound a port on another device should meet, with identical study decisions.

    Raises
    ------
    GateFailedError
        When that spread could flip a golden-sample decision: a study decision differed on
        another kernel set, or a study probability lies within the spread of its threshold.
    """
    from ich_edge.assets.reference_client import FEATURES_ABS

    outputs, missing = _other_kernels(model, sample_dir, images, other_runtimes)
    measured = {name: float(np.abs(p - expected).max()) for name, (p, _) in outputs.items()}
    measured_features = {name: float(np.abs(f - features).max()) for name, (_, f) in outputs.items()}
    study = study_probabilities(expected)
    flips = [f"{label} ({name}: {float(study_probabilities(p)[i]):.6f})" for name, (p, _) in outputs.items()
             for i, label in enumerate(labels)
             if label in thresholds and (study_probabilities(p)[i] >= thresholds[label]) != (study[i] >= thresholds[label])]
    spread = max(measured.values())
    bound = _bound(spread)
    near = [f"{label} {study[i]:.6f} vs threshold {thresholds[label]:.6f}" for i, label in enumerate(labels)
            if label in thresholds and spread > 0 and abs(float(study[i]) - thresholds[label]) <= spread]
    problem = None
    if flips or near:
        worst = max(measured, key=measured.get)
        problem = (
            f"{model.path.name} ({model.precision}) is refused for apps: the kernels apps run move its golden-sample "
            f"probabilities by up to {measured[worst]:.2e} ({worst}; features {max(measured_features.values()):.2e}), "
            "which could flip a study decision: "
            + "; ".join([*(f"flipped {f}" for f in flips), *(f"within the spread: {n}" for n in near)])
            + ". Ship another precision, or another --sample-seed whose study probabilities are not this close to a threshold"
        )
    if problem and refuse:
        raise GateFailedError(problem)
    return {
        "could_flip_a_decision": problem,
        "measured_max_abs_difference": measured,
        "measured_features_max_abs_difference": measured_features,
        "not_measured": missing,
        "probabilities_abs": bound,
        "features_abs": _bound(max(measured_features.values()), FEATURES_ABS),
        "rule": "a port on another device passes when every slice probability is within probabilities_abs and every "
        "encode feature within features_abs of the sample, and every study decision (probability >= threshold) is the "
        "same; no expected study probability lies within the measured spread of its threshold (assets refuses such a file)",
        "study_decisions_that_differed_in_the_measurement": flips,
    }


def _sample_spread(model, sample_dir: Path, outputs: tuple, thresholds: dict, labels: list[str], config: SampleConfig,
                   seed: int) -> dict:
    """:func:`kernel_spread` of the sample made from synth ``seed``; its refusal names that seed."""
    images, probabilities, features = outputs
    try:
        return kernel_spread(model, sample_dir, images, probabilities, features, thresholds, labels,
                             config.other_runtimes, config.refuse_decision_flips)
    except GateFailedError as err:
        raise SampleNearThresholdError(str(err), seed) from err


def make_sample(model, sample_dir: Path, seed: int, config: SampleConfig) -> dict:
    """Write ``sample_dir`` for ``model`` (a TFLiteStudyModel); return the manifest's ``sample``."""
    labels = list(model.labels)
    columns = label_columns(labels)  # the six-column truth's columns of the model's labels
    preprocess = Preprocess(PreprocessConfig.from_dict(model.description["preprocessing"]))
    sample_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=sample_dir.parent, prefix=".synth.") as work:
        synth_dir, used_seed = _positive_study(Path(work), seed, config)
        _copy_rle(synth_dir / "dicom", sample_dir / "dicom")
        slice_truth = read_rsna_csv(synth_dir / "labels.csv")
        study_truth = next(iter(read_study_csv(synth_dir / "studies.csv").values()))

    scan = find_series(sample_dir / "dicom")
    if len(scan.series) != 1:
        raise IchEdgeError(f"the sample should hold one series, found {len(scan.series)}")
    series = scan.series[0]
    loaded = series.load()
    images = preprocess.volume(loaded.images)
    np.save(sample_dir / "images_uint8.npy", images)
    encode_detail = model.interpreter.get_signature_runner("encode").get_input_details()
    encode_input = to_input(pixels_to_unit(images), next(iter(encode_detail.values())))
    encode_file = None
    is_float = encode_input.dtype.kind == "f"
    if not is_float and not (encode_input.dtype == np.uint8 and np.array_equal(encode_input, images)):
        encode_file = "sample/encode_input.npy"
        np.save(sample_dir / "encode_input.npy", encode_input)
    features = model.encode(images)
    np.save(sample_dir / "features.npy", features.astype(np.float32))
    probabilities = model.predict_series(images)
    study = study_probabilities(probabilities)

    thresholds = (model.description.get("thresholds") or {}).get("study") or {}
    on_device = _sample_spread(model, sample_dir, (images, probabilities, features), thresholds, labels, config, used_seed)
    expected = {
        "model_sha256": model.sha256,
        "precision": model.precision,
        "series_uid": series.series_uid,
        "study_uid": series.study_uid,
        "num_slices": len(loaded.slice_ids),
        "labels": labels,
        "window_starts": window_starts(len(loaded.slice_ids), model.sequence),
        "slices": [
            {
                "id": slice_id,
                "position": k + 1,
                "probabilities": {label: float(probabilities[k, i]) for i, label in enumerate(labels)},
                "ground_truth": {label: int(slice_truth[slice_id][columns[i]]) for i, label in enumerate(labels)}
                if slice_id in slice_truth else None,
            }
            for k, slice_id in enumerate(loaded.slice_ids)
        ],
        "study": {label: float(study[i]) for i, label in enumerate(labels)},
        "positive": {label: bool(study[i] >= thresholds[label]) for i, label in enumerate(labels) if label in thresholds},
        "ground_truth_study": {label: int(study_truth[columns[i]]) for i, label in enumerate(labels)},
        "tolerance": {"probabilities_abs": PROBABILITY_TOLERANCE, "images_uint8": "exact", "encode_input": "exact",
                      "on_device": on_device},
        "computed_with": f"ich_edge TFLiteStudyModel.predict_series, {runtime_name()}, XNNPACK",
    }
    (sample_dir / "expected.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    return {
        "dicom_dir": "sample/dicom",
        "num_slices": len(loaded.slice_ids),
        "matrix_px": int(series.rows),
        "transfer_syntax": "RLE Lossless (1.2.840.10008.1.2.5)",
        "synthetic": True,
        "synth_command": "ich-edge " + " ".join(synth_args(Path("DIR"), used_seed, config)),
        "series_uid": series.series_uid,
        "images_uint8": "sample/images_uint8.npy",
        "encode_input": encode_file,
        "features": "sample/features.npy",
        "expected": "sample/expected.json",
        "expected_study": expected["study"],
        "ground_truth_study": expected["ground_truth_study"],
        "tolerance": expected["tolerance"],
        "bytes": sum(p.stat().st_size for p in sample_dir.rglob("*") if p.is_file()),
        "dicom_bytes": sum(p.stat().st_size for p in (sample_dir / "dicom").glob("*.dcm")),
        "problems": list(loaded.problems),
    }


def make_sample_within_spread(model, sample_dir: Path, seed: int, config: SampleConfig) -> dict:
    """:func:`make_sample`, trying up to ``config.max_samples`` studies (the next positive seed each time)
    while the kernel spread could flip a decision of the sample; the manifest's ``samples_refused``
    lists each refused seed and why.

    The spread is a property of the file; whether it can flip a decision depends on how close
    the sample's study probabilities lie to the thresholds. A golden sample exists to check a
    port's decisions, which needs probabilities clear of the spread.

    Raises
    ------
    GateFailedError
        When every sample tried lies within the spread (their seeds, and the first one's numbers).
    """
    refused = []
    for _ in range(config.max_samples):
        try:
            made = make_sample(model, sample_dir, seed, config)
        except SampleNearThresholdError as err:
            shutil.rmtree(sample_dir, ignore_errors=True)
            refused.append({"seed": err.seed, "why": str(err)})
            seed = err.seed + 1
            continue
        return {**made, "samples_refused": refused}
    raise GateFailedError(
        f"{model.path.name} ({model.precision}) is refused for apps: on each of {len(refused)} sample studies (synth "
        f"seeds {', '.join(str(r['seed']) for r in refused)}) the kernels apps run could flip a study decision; the "
        f"first: {refused[0]['why']}")
