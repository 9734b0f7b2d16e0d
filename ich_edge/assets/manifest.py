"""``manifest.json`` of the app assets: everything needed to feed the model, from the model itself.

Numbers come from the model (its embedded description and its tensors as the interpreter
reports them); the rules are written out in words and formulas precise enough that an app
developer reimplements the preprocessing from the manifest alone and gets the same uint8
tensors bit for bit (``ich_edge/assets/reference_client.py`` proves it on the sample study).
The rules describe :mod:`ich_edge.transforms`, :mod:`ich_edge.dicom.pixels` and
:mod:`ich_edge.sequence`, the code the trainer and ``ich-edge predict`` run.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from ich_edge import __version__
from ich_edge.dicom import plausibility
from ich_edge.dicom.pixels import AIR_HU
from ich_edge.dicom.series import GAP_FACTOR, MAX_ORIENTATION_DIFF_DEG
from ich_edge.dicom.write import AXIAL_ORIENTATION
from ich_edge.fileio import folder_names, sha256_of
from ich_edge.ingest.series_filter import CONTRAST_INSTEAD, JUDGED, NO_CONTRAST_WORDS, SEND_INSTEAD
from ich_edge.runtime.completeness import MAX_SLICE_SPACING_MM, MIN_HEAD_EXTENT_MM
from ich_edge.runtime.interpreter import make_interpreter, runtime_name
from ich_edge.transforms import UNIT_PER_PIXEL, PreprocessConfig, Window

FORMAT = "ich-edge-app-assets/1"
SIGNATURES = ("encode", "classify")
#: uint8 window pixel -> model input value in [0, 1]: a float32 multiplication.

RULES = {
    "order": [
        "1. read each slice's stored pixel values and convert them to HU (float32)",
        "2. set padding and every value below air to air_hu",
        "3. area-resize the HU image to input_size_px x input_size_px",
        "4. apply the three windows (one per channel) and round to uint8",
        "5. stack the slices bottom of the head to the top; feed each slice to `encode` "
        "(uint8 -> the encode input dtype), then windows of features to `classify`",
    ],
    "stored_values": "(7FE0,0010) Pixel Data as integers, masked to (0028,0101) Bits Stored (stray high bits "
    "dropped) and sign-extended when (0028,0103) Pixel Representation is 1. MONOCHROME1 is not inverted "
    "(the rescale already gives HU).",
    "hu": "HU = stored * (0028,1053) RescaleSlope + (0028,1052) RescaleIntercept in float32. Both are "
    "required on CT (Type 1): a slice without them, with a value that is not one finite number, or with a "
    "slope <= 0 has unknown HU and makes its series UNREADABLE (input_checks.pixel_module); never assume "
    "slope 1 and intercept 0",
    "padding": "stored values equal to (0028,0120) Pixel Padding Value (or between it and (0028,0121) Pixel "
    "Padding Range Limit) become air_hu; then every HU below air_hu becomes air_hu",
    "resize": "area: output pixel (i, j) = sum over input pixels (r, c) of wr[i][r] * wc[j][c] * hu[r][c], "
    "where w[i][k] = overlap of the intervals [i*s, (i+1)*s) and [k, k+1) divided by s, s = n_in / n_out "
    "(separable, per axis). When both factors are integers (e.g. 512 -> 128) this is the block mean: the "
    "float32 sum of each block divided by its pixel count. Resizing is done on HU, before windowing, "
    "with rows and columns as stored (no flips, no transposes).",
    "window": "u = clip((hu - low_hu) * scale_per_hu, 0, 1) in float32, low_hu = center_hu - width_hu / 2, "
    "scale_per_hu = float32(1 / width_hu)",
    "uint8": "pixel = round_half_to_even(u * 255) as uint8 (u * 255 in float32)",
    "layout": "NHWC: image[row][column][channel], channel order as in `windows`; one slice per encode call "
    "is fine (batch dimension 1), the batch dimension is resizable",
    "value_scaling": "the model's real-valued input is pixel * unit_per_pixel (float32 multiplication by "
    "float32(1/255), not a division)",
    "quantize": "a float32 input tensor takes the real values as they are; an int8/uint8 input tensor takes "
    "q = clip(round_half_to_even(value / scale + zero_point), dtype min, dtype max) in float32",
    "dequantize": "an int8/uint8 output tensor means value = (q - zero_point) * scale in float32",
    "slice_order": "sort slices by (0020,0032) Image Position (Patient) projected on the slice normal (the cross "
    "product of the row and column direction cosines of (0020,0037) Image Orientation (Patient), negated when its "
    "z component is negative, so that it points to the head), ascending: "
    "the bottom of the head (skull base) first, the vertex last. (0020,0013) Instance Number is not reliable.",
}

SEQUENCE_RULES = {
    "window_starts": "0, stride, 2*stride, ... while a window of window_slices fits, plus one last window "
    "ending at the last slice; a study of at most window_slices slices is one window starting at 0",
    "padding": "a study shorter than one window is padded at the end; padding positions get the encode "
    "output of a blank (all-zero uint8) image, and their outputs are dropped",
    "encode_once": "each slice is encoded once; windows reuse the features of the slices they cover",
}


def f32(value: float) -> float:
    """``value`` rounded to float32 (and back to a Python float, exactly)."""
    return float(np.float32(value))


def tensor_spec(name: str, detail: dict) -> dict:
    """A signature tensor as the interpreter reports it: names, shape, dtype, quantization."""
    scale, zero_point = detail["quantization"]
    return {
        "name": name,
        "tensor": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "shape_signature": [int(d) for d in detail["shape_signature"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": f32(scale), "zero_point": int(zero_point)},
    }


def signature_specs(model_file: str | Path) -> dict:
    """``{signature: {"inputs": [...], "outputs": [...]}}`` of a model file, as loaded (not resized)."""
    interpreter = make_interpreter(str(model_file), num_threads=1)
    specs = {}
    for key in SIGNATURES:
        runner = interpreter.get_signature_runner(key)
        specs[key] = {
            "inputs": [tensor_spec(n, d) for n, d in runner.get_input_details().items()],
            "outputs": [tensor_spec(n, d) for n, d in runner.get_output_details().items()],
        }
    return specs


def window_specs(config: PreprocessConfig) -> list[dict]:
    """One entry per channel: name, center/width, and the float32 low end and scale used."""
    specs = []
    for channel, ((center, width), name) in enumerate(zip(config.windows_hu, config.window_names)):
        window = Window(center, width)
        specs.append(
            {
                "channel": channel,
                "name": name,
                "center_hu": center,
                "width_hu": width,
                "low_hu": f32(window.low_hu),
                "high_hu": window.low_hu + width,
                "scale_per_hu": f32(1.0 / width),
            }
        )
    return specs


# --- input checks: when a series must not be judged, or a negative not trusted ---------------

#: What an app does with the checks of :func:`input_checks`, in order.
INPUT_CHECK_ORDER = [
    "1. per slice, before decoding: skip slices whose image axes are off the series' (orientation)",
    "2. per series, before the model: the series rules (series) and the pixel module of every slice "
    "(pixel_module); any failure: UNREADABLE, the model is not run",
    "3. while decoding: count each slice's HU (hu); a slice without image structure, or counts over the "
    "series that are no head's: UNREADABLE and no probability is shown",
    "4. after the model: coverage; no positive label and incomplete coverage: INCOMPLETE instead of NEGATIVE",
]


def _orientation_check() -> dict:
    """The per-slice orientation rule of :mod:`ich_edge.dicom.series`."""
    return {
        "max_orientation_diff_deg": MAX_ORIENTATION_DIFF_DEG,
        "rule": "group the slices' (0020,0037) Image Orientation (Patient) by their six cosines rounded to 3 "
        "decimals; the largest group (the first met on a tie) is the series' orientation (its first slice's "
        "unrounded cosines). A slice whose axes_angle_deg to it exceeds max_orientation_diff_deg is another "
        "image filed in the series (a scout, a reformat): skip it and list it as a problem; slices without "
        "(0020,0037) are kept. axes_angle_deg(a, b) = the larger of the angle between the row cosines "
        "a[0:3], b[0:3] and the angle between the column cosines a[3:6], b[3:6], each acos(dot / (|a| |b|)) "
        "in degrees (180 when a norm is 0)",
    }


def _series_checks() -> dict:
    """The series rules of :data:`ich_edge.ingest.series_filter.JUDGED`, on the slices kept."""
    return {
        "drop_localizers": JUDGED.drop_localizers,
        "max_tilt_deg": JUDGED.max_tilt_deg,
        "max_axis_turn_deg": JUDGED.max_axis_turn_deg,
        "axial_orientation": list(AXIAL_ORIENTATION),
        "min_slice_mm": JUDGED.min_slice_mm,
        "field_of_view_mm_range": list(JUDGED.field_of_view_mm_range),
        "send_instead": SEND_INSTEAD,
        "drop_contrast": JUDGED.drop_contrast,
        "no_contrast_words": list(NO_CONTRAST_WORDS),
        "contrast_instead": CONTRAST_INSTEAD,
        "rule": "checked in this order on the slices kept, the first failure makes the series UNREADABLE: "
        "(1) localizer: the most common (0008,0008) Image Type (values upper case) contains LOCALIZER; "
        "(2) several patients: more than one different non-empty (0010,0020) Patient IDs; "
        "(2b) contrast-enhanced (when drop_contrast): a slice whose (0018,0010) Contrast/Bolus Agent, upper case "
        "with every character other than A-Z and 0-9 removed, is not one of no_contrast_words (missing: not "
        "checked); the reason ends with contrast_instead; "
        "(3) not axial: tilt_deg = acos(min(1, |n_z|)) in degrees exceeds max_tilt_deg, n the unit normal "
        "(row cosines x column cosines) of the series' orientation (no or a degenerate orientation: axial, "
        "tilt 0); (4) mirrored or rotated image axes: axes_angle_deg (see orientation) between the series' "
        "orientation and axial_orientation exceeds max_axis_turn_deg (no orientation: not checked); "
        "(5) thin slices: with two or more slices, all with (0020,0032), the median step between their sorted "
        "heights (as in coverage) is under min_slice_mm; (6) thin slices: a slice's (0018,0050) Slice Thickness "
        "is under min_slice_mm; (7) field of view: a slice with (0028,0030) Pixel Spacing (row spacing, column "
        "spacing) whose Columns x column spacing or Rows x row spacing lies outside field_of_view_mm_range "
        "(a targeted or body-sized reconstruction). Reasons (5)-(7) end with send_instead. "
        "A short series is not refused here: the coverage rule calls it INCOMPLETE",
    }


def _pixel_module_checks() -> dict:
    """The refusals of :mod:`ich_edge.dicom.pixels`: pixel modules whose HU are unknown."""
    low_hu, high_hu = plausibility.TISSUE_RANGE_HU
    return {
        "padding_forbidden_range_hu": [low_hu, high_hu],
        "rule": "a CT slice ((0008,0060) Modality CT or missing) makes its series UNREADABLE when "
        "(0028,1052) Rescale Intercept or (0028,1053) Rescale Slope is missing or empty, is not exactly one "
        "finite number, or the slope is not > 0 (never assume slope 1, intercept 0); when "
        "the HU of its padding, low = min(ends) * slope + intercept and high = max(ends) * slope + intercept "
        "with ends = (0028,0120) Pixel Padding Value and (0028,0121) Pixel Padding Range Limit (the value "
        "alone without a limit) in the pixels' bit pattern, reach padding_forbidden_range_hu "
        "(low <= its high end and high >= its low end: brain would become air); or when uncompressed "
        "(7FE0,0010) Pixel Data holds more than Rows x Columns x Bits Allocated / 8 bytes plus one pad byte "
        "(a mis-declared matrix or Bits Allocated)",
    }


def _hu_checks() -> dict:
    """The whole-series HU plausibility rule of :mod:`ich_edge.dicom.plausibility`."""
    p = plausibility
    return {
        "air_max_hu": p.AIR_MAX_HU,
        "tissue_range_hu": list(p.TISSUE_RANGE_HU),
        "bone_max_hu": p.BONE_MAX_HU,
        "min_air_share": p.MIN_AIR_SHARE,
        "min_tissue_share": p.MIN_TISSUE_SHARE,
        "min_tissue_share_of_body": p.MIN_TISSUE_SHARE_OF_BODY,
        "max_above_bone_share": p.MAX_ABOVE_BONE_SHARE,
        "min_neighbour_correlation": p.MIN_NEIGHBOUR_CORRELATION,
        "min_neighbour_pairs": p.MIN_NEIGHBOUR_PAIRS,
        "neighbour_row_step": p.NEIGHBOUR_ROW_STEP,
        "count_names": list(p.COUNT_NAMES),
        "counts": "on each decoded slice's float32 HU after padding and sub-air values became air_hu, before "
        "the resize (float64): pixels; air = pixels with hu <= air_max_hu; tissue = pixels with "
        "tissue_range_hu[0] <= hu <= tissue_range_hu[1]; above_bone = pixels with hu > bone_max_hu; then, for "
        "the rows r = 0, neighbour_row_step, 2 * neighbour_row_step, ..., the pairs (a, b) with both > "
        "air_max_hu, across: (hu[r][c], hu[r][c + 1]), and down: (hu[r][c], hu[r + 1][c]) for r + 1 < rows; "
        "per direction: pairs, sum a, sum b, sum a*a, sum b*b, sum a*b (count_names, h_ across, v_ down)",
        "correlation": "of one direction's sums: with pairs >= min_neighbour_pairs, ma = sum a / pairs, mb = "
        "sum b / pairs, va = sum a*a / pairs - ma^2, vb = sum b*b / pairs - mb^2 (both > 0, else not judged), "
        "(sum a*b / pairs - ma * mb) / sqrt(va * vb); the neighbour correlation is the lower of the two "
        "directions judged (none judged: not judged)",
        "rule": "a slice whose own counts give a neighbour correlation < min_neighbour_correlation makes the "
        "series UNREADABLE (no image structure; scrambled or wrongly decoded pixels); otherwise, over the counts "
        "added over the series' other slices, it is UNREADABLE at the first of: above_bone / pixels > "
        "max_above_bone_share; air / pixels < min_air_share; tissue / pixels < min_tissue_share; tissue / "
        "(pixels - air) < min_tissue_share_of_body (when pixels > air); neighbour correlation < "
        "min_neighbour_correlation. No pixels: not judged",
    }


def _coverage_checks() -> dict:
    """The coverage rule of :mod:`ich_edge.runtime.completeness` that turns a negative into INCOMPLETE."""
    return {
        "min_slices_from": "sequence.window_slices",
        "min_head_extent_mm": MIN_HEAD_EXTENT_MM,
        "gap_factor": GAP_FACTOR,
        "max_slice_spacing_mm": MAX_SLICE_SPACING_MM,
        "rule": "on the slices the model saw: heights h = Image Position (Patient) . n (n the unit slice normal "
        "turned to +z, as in slice_order), sorted; spacing = median of the steps between neighbours, extent = "
        "h[last] - h[first] + spacing (one slice: its (0018,0050) Slice Thickness, else 0). Coverage is "
        "incomplete when any holds: fewer slices than sequence.window_slices; a step > gap_factor * spacing "
        "(slices missing); spacing > max_slice_spacing_mm (the head between the slices unseen); extent < min_head_extent_mm (part of the head); a slice without (0020,0032) "
        "(coverage unknown). Then no positive label gives INCOMPLETE, not NEGATIVE; a POSITIVE stays POSITIVE "
        "with the note 'coverage incomplete: <reasons>'",
    }


def input_checks() -> dict:
    """The ``input_checks`` of the manifest: when an app must not judge a series (UNREADABLE) or
    must not call it negative (INCOMPLETE), with the numbers of the Python rules ``predict`` applies.

    Every number is taken from the module that owns the rule (:mod:`ich_edge.dicom.series`,
    :mod:`ich_edge.ingest.series_filter`, :mod:`ich_edge.dicom.pixels`,
    :mod:`ich_edge.dicom.plausibility`, :mod:`ich_edge.runtime.completeness`); each rule has one
    sentence in words for an app developer.
    """
    return {
        "order": INPUT_CHECK_ORDER,
        "verdicts": {
            "UNREADABLE": "not judged: the model is not run (or its output not shown); show the reasons, which "
            "say how to fix the export",
            "INCOMPLETE": "no label is positive but coverage is incomplete: not a negative; show why",
        },
        "orientation": _orientation_check(),
        "series": _series_checks(),
        "pixel_module": _pixel_module_checks(),
        "hu": _hu_checks(),
        "coverage": _coverage_checks(),
    }


def build_manifest(model, model_file: Path, sample: dict) -> dict:
    """The manifest of the assets folder for ``model`` (a TFLiteStudyModel) and its sample."""
    description = model.description
    preprocess = PreprocessConfig.from_dict(description["preprocessing"])
    signatures = signature_specs(model_file)
    encode_input = signatures["encode"]["inputs"][0]
    thresholds = description.get("thresholds") or {}
    return {
        "format": FORMAT,
        "model": model_file.name,
        "sha256": sha256_of(model_file),
        "size_bytes": model_file.stat().st_size,
        "precision": model.precision,
        "model_version": description.get("model_version"),
        "labels": list(model.labels),
        "labels_file": "labels.txt",
        "signatures": signatures,
        "preprocessing": {
            **RULES,
            "air_hu": AIR_HU,
            "input_size_px": preprocess.input_size_px,
            "resize_method": preprocess.resize_method,
            "windows": window_specs(preprocess),
            "unit_per_pixel": f32(UNIT_PER_PIXEL),
            "encode_input": {
                "dtype": encode_input["dtype"],
                "scale": encode_input["quantization"]["scale"],
                "zero_point": encode_input["quantization"]["zero_point"],
            },
            "from_model_description": description["preprocessing"],
        },
        "sequence": {
            "window_slices": model.sequence.window_slices,
            "stride_slices": model.sequence.stride_slices,
            "feature_dim": model.feature_dim,
            # what the vector per slice is: the encoder's features, or the recurrent layer's input projection
            # of them (ich_edge.training.projection); either way encode -> classify as before
            "feature_kind": (description["sequence"].get("features") or {}).get("kind", "slice features"),
            **SEQUENCE_RULES,
            "stitch_rule": description["sequence"].get("stitch_rule", "mean over the windows covering the slice"),
            "state": "stateless: classify keeps nothing between calls (no variable tensors); windows may run "
            "in any order, on any runtime, with nothing to reset",
        },
        "study_rule": description["sequence"].get("study_rule", "max over slices, per label"),
        "input_checks": input_checks(),
        "thresholds": {
            "rule": "positive when probability >= threshold",
            "slice": {label: float(v) for label, v in (thresholds.get("slice") or {}).items()},
            "study": {label: float(v) for label, v in (thresholds.get("study") or {}).items()},
            **{k: v for k, v in thresholds.items() if k not in ("slice", "study")},
        },
        "runtime": {
            "tested_with": runtime_name(),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "sample": sample,
        "training_data": folder_names(description.get("training_data")),
        "source_run": folder_names(description.get("source_run")),
        "created_by": f"ich-edge {__version__}",
        "intended_use": "research demo of on-device inference; a triage aid that reorders a worklist, "
        "not a diagnosis and not a medical device",
    }


# --- snippet constants ---------------------------------------------------------------------


def _float_literal(value: float, suffix: str = "") -> str:
    """The shortest literal that reads back as the same float32 (``suffix``: Kotlin's ``f``)."""
    text = str(np.float32(value))
    text = text if any(ch in text for ch in ".en") else f"{text}.0"
    return text + suffix


def snippet_values(manifest: dict, float_suffix: str = "") -> dict[str, str]:
    """Placeholder values of the Kotlin/Swift snippets, all taken from ``manifest``.

    Floats are float32 literals (with ``float_suffix``, ``"f"`` for Kotlin); strings are
    unquoted.
    """

    def _floats(values) -> str:
        return ", ".join(_float_literal(v, float_suffix) for v in values)

    pre, seq, sig = manifest["preprocessing"], manifest["sequence"], manifest["signatures"]
    labels = manifest["labels"]
    values = {
        "MODEL_FILE": manifest["model"],
        "MODEL_SHA256": manifest["sha256"],
        "PRECISION": manifest["precision"],
        "LABELS_QUOTED": ", ".join(f'"{label}"' for label in labels),
        "AIR_HU": _float_literal(pre["air_hu"], float_suffix),
        "INPUT_SIZE_PX": str(pre["input_size_px"]),
        "WINDOW_CENTER_HU": _floats(w["center_hu"] for w in pre["windows"]),
        "WINDOW_WIDTH_HU": _floats(w["width_hu"] for w in pre["windows"]),
        "WINDOW_LOW_HU": _floats(w["low_hu"] for w in pre["windows"]),
        "WINDOW_SCALE_PER_HU": _floats(w["scale_per_hu"] for w in pre["windows"]),
        "UNIT_PER_PIXEL": _float_literal(pre["unit_per_pixel"], float_suffix),
        "WINDOW_SLICES": str(seq["window_slices"]),
        "STRIDE_SLICES": str(seq["stride_slices"]),
        "FEATURE_DIM": str(seq["feature_dim"]),
        "SLICE_THRESHOLDS": _floats(manifest["thresholds"]["slice"].get(label, 0.5) for label in labels),
        "STUDY_THRESHOLDS": _floats(manifest["thresholds"]["study"].get(label, 0.5) for label in labels),
    }
    for key in SIGNATURES:
        for role, entries in (("INPUT", sig[key]["inputs"]), ("OUTPUT", sig[key]["outputs"])):
            spec = entries[0]
            prefix = f"{key.upper()}_{role}"
            values[prefix] = spec["name"]
            values[f"{prefix}_DTYPE"] = spec["dtype"]
            values[f"{prefix}_SCALE"] = _float_literal(spec["quantization"]["scale"], float_suffix)
            values[f"{prefix}_ZERO_POINT"] = str(spec["quantization"]["zero_point"])
    return values
