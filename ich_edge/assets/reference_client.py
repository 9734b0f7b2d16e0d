"""A reference client that plays the phone app, using nothing but the assets folder.

    python ich_edge/assets/reference_client.py android_demo_assets/ [--json OUT] [--threads N]

It reads only ``ASSETS/`` (manifest.json, labels.txt, model.tflite, sample/) and imports only
numpy, pydicom and ai-edge-litert: no TensorFlow and no ich-edge code, so every rule it
applies comes from ``manifest.json``, exactly as an app developer would have them (run it
by its path, as above, to keep even the package's ``__init__`` out). It

1. checks the model's SHA-256 and labels.txt against the manifest;
2. reads ``sample/dicom/``, sorts the slices bottom to top and preprocesses them from the
   manifest's rules (HU, padding to air, area resize, windows, uint8);
3. checks the uint8 tensor against ``sample/images_uint8.npy`` (exact) and the ``encode``
   input in the model's dtype against ``sample/encode_input.npy`` when shipped (exact);
4. runs the ``encode`` signature slice by slice (batch 1, as the app) and ``classify`` on
   the windows of the manifest's sequence rule with LiteRT signature runners, stitches,
   and checks features (``sample/features.npy``) and probabilities (``sample/expected.json``)
   within the tolerances stated below, or the larger on-device bounds of expected.json
   (``tolerance.on_device``: measured over CPU architectures and LiteRT versions).

Exit code 0 when every check passes, 1 otherwise. Importable: :func:`run_client`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom

#: Features are compared to sample/features.npy within this absolute bound, or one
#: quantization step of an integer encode output (the app encodes one slice per call, the
#: golden file was made in batches; kernels may round differently at a step boundary).
FEATURES_ABS = 1e-4


# --- preprocessing, from manifest["preprocessing"] ---------------------------------------------


def _stored_values(ds) -> np.ndarray:
    """(7FE0,0010) decoded, masked to (0028,0101) Bits Stored, sign-extended if signed."""
    raw = ds.pixel_array
    bits_allocated = int(ds.BitsAllocated)
    bits_stored = int(getattr(ds, "BitsStored", bits_allocated))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    unsigned = raw.astype(np.int64) & ((1 << bits_allocated) - 1)
    masked = unsigned & ((1 << bits_stored) - 1)
    if signed:
        sign = 1 << (bits_stored - 1)
        masked = (masked ^ sign) - sign
    return masked


def to_hu(ds, air_hu: float) -> np.ndarray:
    """HU = stored * slope + intercept (float32); padding and sub-air values -> air_hu."""
    stored = _stored_values(ds)
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    padding_value = getattr(ds, "PixelPaddingValue", None)
    if padding_value is not None:
        limit = getattr(ds, "PixelPaddingRangeLimit", padding_value)
        low, high = sorted((int(padding_value), int(limit)))
        hu[(stored >= low) & (stored <= high)] = np.float32(air_hu)
    return np.maximum(hu, np.float32(air_hu))


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): overlap of [i*s, (i+1)*s) with [k, k+1), divided by s = n_in / n_out."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        start, stop = i * scale, (i + 1) * scale
        for k in range(int(np.floor(start)), int(np.ceil(stop))):
            weights[i, k] = max(0.0, min(stop, k + 1) - max(start, k)) / scale
    return weights.astype(np.float32)


def area_resize(hu: np.ndarray, size: int) -> np.ndarray:
    """Area resize to (size, size): block mean for integer factors, separable weights otherwise."""
    rows, cols = hu.shape
    if (rows, cols) == (size, size):
        return hu
    if rows % size == 0 and cols % size == 0:
        fr, fc = rows // size, cols // size
        blocks = hu.reshape(size, fr, size, fc).sum(axis=(1, 3), dtype=np.float32)
        return blocks / np.float32(fr * fc)
    return area_weights(rows, size) @ hu @ area_weights(cols, size).T


def windows_to_uint8(small: np.ndarray, windows: list[dict]) -> np.ndarray:
    """(size, size) HU -> (size, size, channels) uint8: round_half_even(clip(u, 0, 1) * 255)."""
    channels = []
    for window in sorted(windows, key=lambda w: w["channel"]):
        u = (small - np.float32(window["low_hu"])) * np.float32(window["scale_per_hu"])
        channels.append(np.clip(u, 0.0, 1.0))
    return np.rint(np.stack(channels, axis=-1) * np.float32(255.0)).astype(np.uint8)


def slice_height_mm(ds) -> float:
    """(0020,0032) projected on the normal of (0020,0037) turned towards the head (+z): sort ascending = bottom to top."""
    orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    normal = normal if normal[2] >= 0 else -normal
    return float(np.dot([float(v) for v in ds.ImagePositionPatient], normal))


def read_series(folder: Path) -> tuple[list[str], list]:
    """SOP Instance UIDs and data sets of the one series in ``folder``, bottom to top."""
    logger = logging.getLogger("pydicom")  # pydicom both warns and logs the same line
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # RSNA-style "ID_<hex>" instance UIDs are not valid UIDs
            warnings.filterwarnings("ignore", message="Invalid value for VR UI")
            datasets = [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]
            series = {str(ds.SeriesInstanceUID) for ds in datasets}
            if len(series) != 1:
                raise ValueError(f"{folder}: expected one series, found {len(series)}")
            datasets.sort(key=slice_height_mm)
            return [str(ds.SOPInstanceUID) for ds in datasets], datasets
    finally:
        logger.setLevel(level)


def preprocess(datasets: list, rules: dict) -> np.ndarray:
    """Slices to the model's uint8 input (N, size, size, 3) from manifest['preprocessing']."""
    size = int(rules["input_size_px"])
    return np.stack(
        [windows_to_uint8(area_resize(to_hu(ds, rules["air_hu"]), size), rules["windows"]) for ds in datasets]
    )


# --- tensors and the model -----------------------------------------------------------------------


def quantize(values: np.ndarray, spec: dict) -> np.ndarray:
    """Real values -> the tensor dtype: float as is, integer q = clip(rint(v / scale + zero_point))."""
    dtype = np.dtype(spec["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype)
    scale, zero_point = spec["quantization"]["scale"], spec["quantization"]["zero_point"]
    info = np.iinfo(dtype)
    return np.clip(np.rint(values / np.float32(scale) + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, spec: dict) -> np.ndarray:
    """Tensor -> float32: integer outputs mean (q - zero_point) * scale."""
    if np.dtype(spec["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = spec["quantization"]["scale"], spec["quantization"]["zero_point"]
    return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def window_starts(num_slices: int, length: int, stride: int) -> list[int]:
    """Manifest rule: 0, stride, ... while a window fits, plus one ending at the last slice."""
    if num_slices <= length:
        return [0]
    starts = list(range(0, num_slices - length + 1, stride))
    if starts[-1] != num_slices - length:
        starts.append(num_slices - length)
    return starts


class AppModel:
    """The two signatures of the shipped model, driven from the manifest only."""

    def __init__(self, model_path: Path, manifest: dict, num_threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self.specs = manifest["signatures"]
        self.encode_runner = self.interpreter.get_signature_runner("encode")
        self.classify_runner = self.interpreter.get_signature_runner("classify")
        self.unit_per_pixel = np.float32(manifest["preprocessing"]["unit_per_pixel"])
        self.window_slices = int(manifest["sequence"]["window_slices"])
        self.stride_slices = int(manifest["sequence"]["stride_slices"])

    def encode_input(self, images: np.ndarray) -> np.ndarray:
        """uint8 images -> the encode input: pixel * unit_per_pixel, quantized for the input dtype."""
        return quantize(images.astype(np.float32) * self.unit_per_pixel, self.specs["encode"]["inputs"][0])

    def encode(self, images: np.ndarray) -> np.ndarray:
        """One slice per call (batch 1), as the app does: (N, S, S, 3) uint8 -> (N, F) float32."""
        inp, out = self.specs["encode"]["inputs"][0], self.specs["encode"]["outputs"][0]
        fed = self.encode_input(images)
        rows = [dequantize(self.encode_runner(**{inp["name"]: fed[k : k + 1]})[out["name"]], out)[0] for k in range(len(fed))]
        return np.stack(rows)

    def classify(self, window: np.ndarray) -> np.ndarray:
        """(T, F) features -> (T, labels) probabilities."""
        inp, out = self.specs["classify"]["inputs"][0], self.specs["classify"]["outputs"][0]
        result = self.classify_runner(**{inp["name"]: quantize(window[None], inp)})[out["name"]]
        return dequantize(result, out)[0]  # stateless: nothing to reset between windows

    def predict_series(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per-slice probabilities (N, labels), features (N, F)): encode once, window, stitch."""
        features = self.encode(images)
        n, length = len(features), self.window_slices
        blank = self.encode(np.zeros((1, *images.shape[1:]), np.uint8))[0] if n < length else None
        total, count = None, np.zeros((n, 1))
        for start in window_starts(n, length, self.stride_slices):
            window = np.stack([features[start + t] if start + t < n else blank for t in range(length)])
            probabilities = self.classify(window).astype(np.float64)
            if total is None:
                total = np.zeros((n, probabilities.shape[-1]))
            valid = min(length, n - start)
            total[start : start + valid] += probabilities[:valid]
            count[start : start + valid] += 1
        return (total / count).astype(np.float32), features


# --- the checks ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_client(assets: str | Path, num_threads: int = 2) -> dict:
    """Run every check on an assets folder; return a report with ``passed`` and ``checks``."""
    assets = Path(assets)
    manifest = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    labels = manifest["labels"]
    checks: list[dict] = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    model_path = assets / manifest["model"]
    digest = _sha256(model_path)
    check("model sha256", digest == manifest["sha256"], f"{digest[:16]} vs manifest {manifest['sha256'][:16]}")
    label_lines = (assets / manifest["labels_file"]).read_text(encoding="utf-8").split()
    check("labels.txt", label_lines == labels, ", ".join(label_lines))

    sample = manifest["sample"]
    slice_ids, datasets = read_series(assets / sample["dicom_dir"])
    images = preprocess(datasets, manifest["preprocessing"])
    shipped = np.load(assets / sample["images_uint8"])
    same_shape = images.shape == shipped.shape
    mismatched = int(np.count_nonzero(images != shipped)) if same_shape else -1
    max_diff = int(np.abs(images.astype(int) - shipped.astype(int)).max()) if same_shape else -1
    check(
        "preprocessed uint8 images (exact)",
        same_shape and mismatched == 0,
        f"shape {images.shape}, {mismatched} values differ (max diff {max_diff})",
    )

    model = AppModel(model_path, manifest, num_threads=num_threads)
    if sample.get("encode_input"):
        fed = model.encode_input(images)
        golden = np.load(assets / sample["encode_input"])
        check(
            "encode input tensor (exact)",
            fed.dtype == golden.dtype and np.array_equal(fed, golden),
            f"{fed.dtype} {fed.shape} vs {golden.dtype} {golden.shape}",
        )
    probabilities, features = model.predict_series(images)

    golden_features = np.load(assets / sample["features"])
    out_spec = manifest["signatures"]["encode"]["outputs"][0]
    expected = json.loads((assets / sample["expected"]).read_text(encoding="utf-8"))
    on_device = expected["tolerance"].get("on_device") or {}  # measured over architectures and LiteRT versions
    features_tol = max(FEATURES_ABS, 1.01 * out_spec["quantization"]["scale"], on_device.get("features_abs", 0.0))
    features_diff = float(np.abs(features - golden_features).max())
    check("encode features", features_diff <= features_tol, f"max abs diff {features_diff:.2e} (tolerance {features_tol:.2e})")

    tolerance = max(float(expected["tolerance"]["probabilities_abs"]), float(on_device.get("probabilities_abs", 0.0)))
    check("slice order", [s["id"] for s in expected["slices"]] == slice_ids, f"{len(slice_ids)} slices bottom to top")
    golden = np.array([[s["probabilities"][label] for label in labels] for s in expected["slices"]], np.float32)
    slice_diff = float(np.abs(probabilities - golden).max())
    check("slice probabilities", slice_diff <= tolerance, f"max abs diff {slice_diff:.2e} (tolerance {tolerance:g})")
    study = probabilities.max(axis=0)
    golden_study = np.array([expected["study"][label] for label in labels], np.float32)
    study_diff = float(np.abs(study - golden_study).max())
    check("study probabilities", study_diff <= tolerance, f"max abs diff {study_diff:.2e} (tolerance {tolerance:g})")
    thresholds = manifest["thresholds"].get("study") or {}
    positive = {label: bool(study[i] >= thresholds[label]) for i, label in enumerate(labels) if label in thresholds}
    check("study decisions", positive == expected.get("positive", positive), json.dumps(positive))
    return {
        "assets": str(assets),
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "study": {label: float(study[i]) for i, label in enumerate(labels)},
        "positive": positive,
        "max_abs_diff": {"slice": slice_diff, "study": study_diff, "features": features_diff},
        "num_slices": len(slice_ids),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assets", type=Path, help="the assets folder (e.g. android_demo_assets/)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    report = run_client(args.assets, num_threads=args.threads)
    for item in report["checks"]:
        print(f"{'PASS' if item['passed'] else 'FAIL'}  {item['check']:<36} {item['detail']}")
    found = [label for label, flag in report["positive"].items() if flag]
    print(f"study: {', '.join(f'{k} {v:.3f}' for k, v in report['study'].items())}")
    print(f"positive at the manifest's thresholds: {', '.join(found) or 'none'}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("reference client: " + ("all checks passed" if report["passed"] else "FAILED"))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
