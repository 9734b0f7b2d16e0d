"""Everything a phone app needs to run an ich-edge model (``ich-edge assets``).

The folder written (``android_demo_assets/`` in the repository)::

    model.tflite      the model (the precision recommended for phones: qat-int8), shipped only
                      with a passing ``ich-edge parity`` report for this exact file (sha256),
                      unless --allow-failed-parity (then manifest.json and README.md say so)
    labels.txt        the six labels in output order
    manifest.json     model, signatures, preprocessing, sequence rule, thresholds, runtime
    README.md         how an app uses these files, step by step
    sample/           one synthetic positive study: DICOM (RLE lossless), the preprocessed
                      tensors exactly as the app feeds them, and expected.json (golden outputs)
    snippets/         Kotlin (Android) and Swift (iOS) code with the manifest's constants

The manifest is complete enough to reimplement the preprocessing from it alone;
``ich_edge/assets/reference_client.py`` does exactly that with numpy, pydicom and ai-edge-litert
and checks the tensors and outputs against ``sample/``.

Runtime tier: numpy, pydicom and ai-edge-litert only (no TensorFlow).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ich_edge import LABELS, __version__
from ich_edge.assets.manifest import build_manifest, snippet_values
from ich_edge.assets.sample import SampleConfig, make_sample_within_spread
from ich_edge.errors import ConfigError, GateFailedError, InsufficientEvidenceError
from ich_edge.evidence import below_defaults, default_minimums
from ich_edge.fileio import folder_names, read_json, refuse_existing, replace_dir, sha256_of
from ich_edge.precisions import BY_NAME, RECOMMENDED as RECOMMENDED_PRECISION

MAX_MODEL_BYTES = 5 * 1024 * 1024
#: Budget of the sample study's DICOM files (the tensors next to them come on top).
MAX_SAMPLE_BYTES = 4 * 1024 * 1024
#: Names the command writes; --force replaces a folder holding nothing else.
ASSET_NAMES = ("model.tflite", "labels.txt", "manifest.json", "README.md", "sample", "snippets")
#: snippet file -> (template, float literal suffix)
SNIPPETS = {"IchEdgeModel.kt": ("IchEdgeModel.kt.in", "f"), "IchEdgeModel.swift": ("IchEdgeModel.swift.in", "")}


@dataclass(frozen=True)
class AssetsConfig:
    """Options of ``ich-edge assets``.

    Attributes
    ----------
    model_path : the ``.tflite`` to ship (written by ``ich-edge convert``).
    out_dir : the assets folder to write.
    sample_seed : first synth seed tried for the sample; the first positive study whose decisions the
        kernels apps run cannot flip wins (up to ``sample.max_samples`` studies).
    force : replace an existing assets folder.
    sample : how the sample study is generated (matrix size, slice counts).
    num_threads : interpreter threads used to compute the golden outputs.
    parity_report : the ``ich-edge parity`` report.json (or the --out folder holding it)
        with a PASS verdict (conversion and deployment) for this exact file.
    allow_failed_parity : ship without one; the manifest and README then say so.
    allow_weak_evidence : ship a PASS judged on less evidence than the defaults (fewer
        studies, fewer positives, labels not gated: :mod:`ich_edge.evidence`); the manifest and
        README then state the minimums used.
    """

    model_path: Path
    out_dir: Path
    sample_seed: int = 0
    force: bool = False
    sample: SampleConfig = SampleConfig()
    num_threads: int = 2
    parity_report: Path | None = None
    allow_failed_parity: bool = False
    allow_weak_evidence: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_path", Path(self.model_path))
        if self.parity_report is not None:
            object.__setattr__(self, "parity_report", Path(self.parity_report))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.sample_seed < 0:
            raise ConfigError(f"--sample-seed must be >= 0, got {self.sample_seed}")
        if self.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1, got {self.num_threads}")


@dataclass(frozen=True)
class AssetsResult:
    """What was written, and what deserves a look."""

    out_dir: Path
    manifest: dict
    model_bytes: int
    sample_bytes: int
    notes: list[str]


def write_assets(config: AssetsConfig) -> AssetsResult:
    """Write the assets folder for ``config.model_path`` into ``config.out_dir``.

    The folder is built beside ``out_dir`` in a hidden temporary folder and renamed into
    place at the end, so a failure leaves nothing half-written.

    Raises
    ------
    OutputExistsError
        If ``out_dir`` exists and is not empty, and ``force`` is not set.
    ConfigError
        If ``force`` is set but ``out_dir`` holds files that are not assets.
    ModelError
        If the model cannot be loaded or has no ich-edge description.
    """
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    out_dir = config.out_dir
    _check_output(out_dir, config.force)
    model = TFLiteStudyModel(config.model_path, num_threads=config.num_threads)
    parity = parity_status(config.model_path, config.parity_report, config.allow_failed_parity, config.allow_weak_evidence)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        shutil.copyfile(model.path, staging / "model.tflite")
        labels = list(model.labels)
        (staging / "labels.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        sample = make_sample_within_spread(model, staging / "sample", config.sample_seed, config.sample)
        manifest = build_manifest(model, staging / "model.tflite", sample)
        manifest["parity"] = parity
        notes = _notes(manifest, staging)
        manifest["notes"] = notes
        _write_json(staging / "manifest.json", manifest)
        (staging / "snippets").mkdir()
        for name, (template, float_suffix) in SNIPPETS.items():
            text = render(template, snippet_placeholders(manifest, float_suffix))
            (staging / "snippets" / name).write_text(text, encoding="utf-8")
        values = snippet_values(manifest)
        (staging / "README.md").write_text(render("README.md.in", readme_values(manifest, values)), encoding="utf-8")
        replace_dir(staging, out_dir, verb="assets", written=ASSET_NAMES, mark=False)  # ships as it is: its names mark it
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return AssetsResult(
        out_dir=out_dir,
        manifest=manifest,
        model_bytes=(out_dir / "model.tflite").stat().st_size,
        sample_bytes=folder_bytes(out_dir / "sample"),
        notes=notes,
    )


def _check_output(out_dir: Path, force: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; pass a folder path")
    entries = sorted(entry.name for entry in out_dir.iterdir())
    if not entries:
        return
    # --force replaces only an assets folder (marked, or holding only what assets writes)
    refuse_existing(out_dir, force, "assets --out", written=ASSET_NAMES)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def parity_status(model_path: Path, parity_report: Path | None, allow_failed_parity: bool,
                  allow_weak_evidence: bool = False) -> dict:
    """The manifest's ``parity`` section for ``model_path``; raises when the model may not ship.

    The model ships when ``parity_report`` (an ``ich-edge parity`` report.json, or the folder
    holding it) has an entry with this file's sha256 whose verdict is PASS on both questions
    (conversion and deployment parity). Otherwise :class:`GateFailedError` (exit code 1),
    unless ``allow_failed_parity``: then the section records why it did not pass. A PASS
    judged on less evidence than the defaults (:func:`ich_edge.evidence.below_defaults`) is
    :class:`InsufficientEvidenceError` (exit code 4) unless ``allow_weak_evidence``; the
    section's ``evidence`` records the minimums used either way.
    """
    digest = sha256_of(model_path)
    path, entry, problem, report = None, None, None, None
    if parity_report is None:
        problem = "no parity report was given (--parity)"
    else:
        path = parity_report / "report.json" if parity_report.is_dir() else parity_report
        report = read_json(path, "the ich-edge parity report.json (--parity)",
                           "pass the report.json (or its folder) that `ich-edge parity --out` wrote")
        entry = next((m for m in report.get("models", []) if m.get("sha256") == digest), None)
        if entry is None:
            problem = f"{path} holds no result for this file (sha256 {digest[:16]}...)"
        elif "deployment" not in entry:
            problem = f"{path} predates deployment parity ({report.get('format')}); run `ich-edge parity` again"
        elif entry.get("verdict") != "PASS":
            questions = [entry.get("deployment") or {}, entry.get("conversion") or {}]
            reasons = ([line for q in questions for line in q.get("failures", [])]
                       or [line for q in questions for line in q.get("not_evaluable", [])] or ["(no reason recorded)"])[:3]
            problem = f"parity verdict {entry.get('verdict')} in {path}: " + "; ".join(reasons)
    if problem is not None and not allow_failed_parity:
        raise GateFailedError(
            f"{model_path} is not shipped: {problem}. Run `ich-edge parity --reference RUN_DIR [--converted-from QAT_DIR] "
            f"--model {model_path} --data TEST_CACHE --out PARITY_DIR` and pass --parity PARITY_DIR; "
            "or pass --allow-failed-parity to ship it anyway (manifest.json and README.md will say so)"
        )
    evidence = _evidence_status(report, model_path, path, problem is None, allow_weak_evidence)
    # What ships names no folder of this machine (fileio.folder_names): the report by its name, the
    # reference by its folder name.
    return folder_names({
        "passed": problem is None,
        "allowed_failed_parity": problem is not None,
        "evidence": evidence,
        "problem": problem if problem is None or path is None else problem.replace(str(path), path.name),
        "report": None if path is None else str(path),
        "sha256": digest,
        "verdict": None if entry is None else entry.get("verdict"),
        "conversion": None if entry is None else entry["conversion"]["verdict"] if "conversion" in entry else None,
        "deployment": None if entry is None else entry["deployment"]["verdict"] if "deployment" in entry else None,
        "validated_reference": None if entry is None or "deployment" not in entry else entry["deployment"]["reference"],
    })


def _evidence_status(report: dict | None, model_path: Path, path: Path | None, passed: bool, allow_weak: bool) -> dict | None:
    """The minimums the verdict was judged with, and how they fall below the defaults (refused unless ``allow_weak``)."""
    if report is None:
        return None
    labels = report.get("labels") or list(LABELS)
    evidence = report.get("evidence") if isinstance(report.get("evidence"), dict) else {}
    short = below_defaults(evidence, labels)
    if passed and short and not allow_weak:
        raise InsufficientEvidenceError(
            f"{model_path} is not shipped: its parity PASS in {path} was judged on less evidence than the defaults "
            f"({'; '.join(short)}). Run `ich-edge parity` again on a larger held-out cache with the default minimums, "
            "or pass --allow-weak-evidence to ship it anyway (manifest.json and README.md will state the minimums)"
        )
    return {
        "min_studies": evidence.get("min_studies"),
        "min_positive_studies": evidence.get("min_positive_studies"),
        "gated_labels": evidence.get("gated_labels"),
        "studies": evidence.get("studies"),
        "defaults": default_minimums(labels),
        "below_defaults": short,
        "allowed_weak_evidence": bool(short),
    }


def _evidence_sentence(parity: dict) -> str:
    evidence = parity.get("evidence") or {}
    if not evidence.get("below_defaults"):
        return ""
    return (f" **Judged on weaker evidence than the defaults (--allow-weak-evidence)**: {'; '.join(evidence['below_defaults'])} "
            f"(minimums used: {evidence.get('min_studies')} studies, {evidence.get('min_positive_studies')} positive studies "
            f"per gated label, gated labels {', '.join(evidence.get('gated_labels') or []) or 'none'}; "
            f"{evidence.get('studies')} held-out studies).")


def _parity_sentence(parity: dict | None) -> str:
    if not parity:
        return "not recorded."
    if parity["passed"]:
        return (
            f"this file passed `ich-edge parity` (sha256 in `{Path(parity['report']).name}`): conversion parity "
            "against the Keras model it was converted from and deployment parity against the validated float "
            "model, on held-out studies." + _evidence_sentence(parity)
        )
    return f"**shipped WITHOUT a passing parity report (--allow-failed-parity)**: {parity['problem']}."


def _notes(manifest: dict, staging: Path) -> list[str]:
    notes = []
    parity = manifest.get("parity")
    if parity and not parity["passed"]:
        notes.append(f"shipped without a passing parity report (--allow-failed-parity): {parity['problem']}")
    if parity and parity["passed"] and (parity.get("evidence") or {}).get("below_defaults"):
        notes.append("shipped a parity PASS judged on weaker evidence than the defaults (--allow-weak-evidence): "
                     + "; ".join(parity["evidence"]["below_defaults"]))
    if not getattr(BY_NAME.get(manifest["precision"]), "integer", False):  # int8-mixed is a phone file too
        notes.append(
            f"the model's precision is {manifest['precision']}; phones should get {RECOMMENDED_PRECISION} "
            f"(ich-edge convert --precision {RECOMMENDED_PRECISION}, or int8-mixed: float only where int8 costs decisions)"
        )
    size = (staging / "model.tflite").stat().st_size
    if size > MAX_MODEL_BYTES:
        notes.append(f"model.tflite is {size / 1e6:.1f} MB, over the {MAX_MODEL_BYTES / 2**20:.0f} MiB aimed at for phones")
    dicom = folder_bytes(staging / "sample" / "dicom")
    if dicom > MAX_SAMPLE_BYTES:
        notes.append(f"sample/dicom is {dicom / 1e6:.1f} MB, over the {MAX_SAMPLE_BYTES / 2**20:.0f} MiB budget")
    return notes


# --- templates -----------------------------------------------------------------------------


def render(template_name: str, values: dict[str, str]) -> str:
    """Fill ``{{NAME}}`` placeholders of a template in ``ich_edge/assets/templates``."""
    text = resources.files("ich_edge.assets").joinpath("templates", template_name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    if "{{" in text:
        start = text.index("{{")
        raise ConfigError(f"template {template_name} has an unfilled placeholder {text[start:start + 40]!r}")
    return text


def _plain_text(text: str) -> str:
    """``text`` for a Kotlin/Swift string literal: refused when it holds a quote, backslash or ``$``."""
    if any(ch in text for ch in '"\\$') or "\n" in text:
        raise ConfigError(f"input_checks text {text!r} cannot go into a snippet's string literal as is")
    return text


def input_check_values(manifest: dict) -> dict[str, str]:
    """Placeholders of the snippets' input-check constants, from ``manifest["input_checks"]``.

    Numbers are float64 literals (``45.0``, ``0.01``) that Kotlin and Swift read as Double,
    counts are integers, flags ``true``/``false``, words a list of quoted string literals.
    """
    checks = manifest.get("input_checks")
    if not checks:
        raise ConfigError("manifest.json has no input_checks: regenerate the assets with `ich-edge assets`")
    orientation, series, pixel_module, hu, coverage = (
        checks[key] for key in ("orientation", "series", "pixel_module", "hu", "coverage"))
    if coverage["min_slices_from"] != "sequence.window_slices":
        raise ConfigError(f"input_checks.coverage.min_slices_from is {coverage['min_slices_from']!r}; "
                          "the snippets take the minimum from sequence.window_slices")

    def number(value) -> str:
        return repr(float(value))

    def numbers(values) -> str:
        return ", ".join(number(v) for v in values)

    return {
        "MAX_ORIENTATION_DIFF_DEG": number(orientation["max_orientation_diff_deg"]),
        "DROP_LOCALIZERS": "true" if series["drop_localizers"] else "false",
        "MAX_TILT_DEG": number(series["max_tilt_deg"]),
        "MAX_AXIS_TURN_DEG": number(series["max_axis_turn_deg"]),
        "AXIAL_ORIENTATION": numbers(series["axial_orientation"]),
        "MIN_SLICE_MM": number(series["min_slice_mm"]),
        "SEND_INSTEAD": _plain_text(series["send_instead"]),
        "FIELD_OF_VIEW_MM_RANGE": numbers(series["field_of_view_mm_range"]),
        "DROP_CONTRAST": "true" if series["drop_contrast"] else "false",
        "NO_CONTRAST_WORDS": ", ".join(f'"{_plain_text(word)}"' for word in series["no_contrast_words"]),
        "CONTRAST_INSTEAD": _plain_text(series["contrast_instead"]),
        "PADDING_FORBIDDEN_RANGE_HU": numbers(pixel_module["padding_forbidden_range_hu"]),
        "AIR_MAX_HU": number(hu["air_max_hu"]),
        "TISSUE_RANGE_HU": numbers(hu["tissue_range_hu"]),
        "BONE_MAX_HU": number(hu["bone_max_hu"]),
        "MIN_AIR_SHARE": number(hu["min_air_share"]),
        "MIN_TISSUE_SHARE": number(hu["min_tissue_share"]),
        "MIN_TISSUE_SHARE_OF_BODY": number(hu["min_tissue_share_of_body"]),
        "MAX_ABOVE_BONE_SHARE": number(hu["max_above_bone_share"]),
        "MIN_NEIGHBOUR_CORRELATION": number(hu["min_neighbour_correlation"]),
        "MIN_NEIGHBOUR_PAIRS": str(int(hu["min_neighbour_pairs"])),
        "NEIGHBOUR_ROW_STEP": str(int(hu["neighbour_row_step"])),
        "MIN_HEAD_EXTENT_MM": number(coverage["min_head_extent_mm"]),
        "GAP_FACTOR": number(coverage["gap_factor"]),
        "MAX_SLICE_SPACING_MM": number(coverage["max_slice_spacing_mm"]),
    }


def snippet_placeholders(manifest: dict, float_suffix: str = "") -> dict[str, str]:
    """Every placeholder of the Kotlin/Swift snippets: :func:`snippet_values` and :func:`input_check_values`."""
    return {**snippet_values(manifest, float_suffix), **input_check_values(manifest)}


def readme_values(manifest: dict, values: dict[str, str]) -> dict[str, str]:
    """Placeholders of the folder README: the snippet values plus tables built from the manifest."""
    pre = manifest["preprocessing"]
    windows = "\n".join(
        f"      | {w['channel']} | {w['name']} | {w['center_hu']:g} | {w['width_hu']:g} | {w['low_hu']:g} .. {w['high_hu']:g} |"
        for w in pre["windows"]
    )
    thresholds = "\n".join(
        f"   | {label} | {manifest['thresholds']['slice'].get(label, 0.5):.4f} "
        f"| {manifest['thresholds']['study'].get(label, 0.5):.4f} |"
        for label in manifest["labels"]
    )
    sample = manifest["sample"]
    expected = sample["expected_study"]
    study = ", ".join(f"{label} {expected[label]:.3f}" for label in manifest["labels"])
    truth = [label for label, flag in sample["ground_truth_study"].items() if flag]
    if sample.get("encode_input"):
        encode_input = sample["encode_input"]
    elif manifest["signatures"]["encode"]["inputs"][0]["dtype"].startswith("float"):
        encode_input = "(not shipped: the float32 input is `images_uint8.npy * float32(1/255)`, exactly)"
    else:
        encode_input = "(not needed: the uint8 images are the encode input)"
    return {
        **values,
        "WINDOWS_TABLE": windows,
        "THRESHOLDS_TABLE": thresholds,
        "LABEL_COUNT": len(manifest["labels"]),
        "SAMPLE_SLICES": sample["num_slices"],
        "SAMPLE_MATRIX_PX": sample["matrix_px"],
        "SAMPLE_BYTES_MB": f"{sample['bytes'] / 1e6:.1f}",
        "SAMPLE_TRUTH": ", ".join(truth) or "none",
        "SAMPLE_EXPECTED_STUDY": study,
        "SAMPLE_ENCODE_INPUT": encode_input,
        "THRESHOLDS_NOTE": _thresholds_note(manifest["thresholds"]),
        "TOLERANCE_ABS": f"{sample['tolerance']['probabilities_abs']:g}",
        "DEVICE_TOLERANCE_ABS": f"{sample['tolerance']['on_device']['probabilities_abs']:g}",
        "DEVICE_FEATURES_ABS": f"{sample['tolerance']['on_device'].get('features_abs', 1e-4):g}",
        "DEVICE_NOT_MEASURED": "".join(f"Not measured: {line}." for line in sample["tolerance"]["on_device"].get("not_measured", [])),
        "SAMPLES_REFUSED": _samples_refused_sentence(sample.get("samples_refused") or []),
        "MAX_SAMPLES": str(SampleConfig.max_samples),
        "DEVICE_SPREAD": "; ".join(f"{name} {value:.2g}" for name, value in
                                   sample["tolerance"]["on_device"]["measured_max_abs_difference"].items()),
        "RUNTIME": manifest["runtime"]["tested_with"],
        "TRAINING_SENTENCE": _training_sentence(manifest.get("training_data")),
        "ICH_EDGE_VERSION": __version__,
        "PARITY_SENTENCE": _parity_sentence(manifest.get("parity")),
        "MODEL_MB": f"{manifest['size_bytes'] / 1e6:.2f}",
    }


def _samples_refused_sentence(refused: list[dict]) -> str:
    """Which sample studies ``assets`` tried first and why they could not be the golden sample."""
    if not refused:
        return ""
    seeds = ", ".join(str(r["seed"]) for r in refused)
    return (f"The studies tried before this one (synth seeds {seeds}; `manifest.json` -> `sample.samples_refused`) "
            "each had a study probability within the spread measured on it of its threshold (the numbers are there): "
            "on kernels other than XNNPACK this file can decide such studies otherwise, so keep XNNPACK on (the "
            "snippets do).")


def _training_sentence(training: dict | None) -> str:
    """What the model was trained on, from the description's ``training_data``."""
    if not training:
        return "Its training data are not recorded in the model description."
    # Counts and seeds, not the cache paths of the machine that trained it.
    details = "; ".join(
        f"{k}: {v}" for k, v in training.items()
        if v is not None and not isinstance(v, (dict, list)) and not k.endswith("cache") and k != "synthetic"
    )
    kind = {True: "synthetic phantom studies (not real patients)", False: "DICOM studies not made by ich-edge synth"}.get(
        training.get("synthetic"), "data of unrecorded origin"
    )
    return f"The model was trained on {kind} ({details})."


def _thresholds_note(thresholds: dict) -> str:
    specificity = thresholds.get("specificity")
    if isinstance(specificity, (int, float)):
        return f"chosen on validation data for {specificity:.0%} specificity"
    if not thresholds.get("study"):
        return "the model carries no thresholds: 0.5 is used"
    return "as stored in the model"
