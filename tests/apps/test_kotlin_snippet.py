"""The Kotlin snippet of the app assets, compiled with kotlinc and run on the JVM.

``snippets/IchEdgeModel.kt`` (the template rendered with the committed ``android_demo_assets/manifest.json``,
which is what the committed snippet must be, and one freshly written by ``ich-edge assets`` for a
tiny quantized model) is compiled once per session against
stubs of the LiteRT Java API it uses (``apps/jvm/stubs/``, LiteRT's own signatures), together
with a small driver (``apps/jvm/RunSample.kt``). It then runs on the JVM with a test double of
``org.tensorflow.lite.Interpreter`` (``apps/jvm/double/``) whose ``runSignature`` calls are
answered by ai-edge-litert through ``apps/jvm/litert_bridge.py``. The snippet must reproduce
``sample/expected.json`` and, for the first 1, W-1, W and W+1 slices (W = window length),
what ich-edge's own runtime (``TFLiteStudyModel``) computes, within the sample's tolerance;
fed the decoded DICOM slices in shuffled order, it must also rebuild ``images_uint8.npy``
exactly. A double that perturbs one probability by 2e-5 must make the comparison fail.

The input checks (``manifest.json`` -> ``input_checks``): on the sample and on copies of its DICOM
files that ``ich-edge predict`` refuses or does not call negative (scrambled pixels, no Rescale
Intercept, mirrored image axes, a localizer, three slices, thin slices, a body-sized field of view,
a contrast agent named), the snippet's verdict must be ``ich-edge predict``'s, with no probability
and no model call for an UNREADABLE series.

Needs kotlinc (npm package kotlin-compiler, ``bash .ci/provision-kotlin.sh``) and a JDK.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from app_tools import require

REPO = Path(__file__).resolve().parents[2]
JVM_DIR = REPO / "apps" / "jvm"
COMMITTED_ASSETS = REPO / "android_demo_assets"
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the sample's RSNA-style IDs

INSTALL = "bash .ci/provision-kotlin.sh (npm ci in apps/jvm; as root it also apt-installs a JDK if javac is missing)"
PERTURBATION = 2e-5
#: JVM flags for kotlinc and the run: client compiler only and serial GC halve kotlinc's wall time
#: on a loaded 2-core machine (about 70 s -> 30 s measured at load 17; about 10 s when idle).
FAST_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
JVM_TIMEOUT_S = 300


def _kotlin_home() -> Path | None:
    """The kotlin-compiler distribution: apps/jvm/node_modules first, then kotlinc on PATH."""
    local = JVM_DIR / "node_modules" / "kotlin-compiler"
    if (local / "bin" / "kotlinc").is_file():
        return local
    found = shutil.which("kotlinc")
    if found:
        home = Path(found).resolve().parent.parent
        if (home / "lib" / "kotlin-stdlib.jar").is_file():
            return home
    return None


@dataclass(frozen=True)
class Build:
    """Compiled classes: the stubs (compile time), the double (run time), both snippets and drivers."""

    stubs_dir: Path
    double_dir: Path
    stdlib: Path
    classes: Path
    compile_s: float


def _manifest_with_checks(assets: Path) -> dict:
    """``assets/manifest.json``, with the ``input_checks`` of this ich-edge (what ``ich-edge assets``
    writes into it now), also when its own predate them or one of their rules."""
    from ich_edge.assets.manifest import input_checks

    manifest = json.loads((assets / "manifest.json").read_text())
    manifest["input_checks"] = input_checks()
    return manifest


def _render_from_manifest(manifest: dict, template: str, float_suffix: str) -> str:
    from ich_edge.assets.build import render, snippet_placeholders

    return render(template, snippet_placeholders(manifest, float_suffix))


def _repackaged(text: str, package: str) -> str:
    """The snippet (or driver) moved to another package, so two snippets compile in one kotlinc run."""
    assert text.count("package org.ichedge.demo\n") + text.count("package org.ichedge.apptest\n") == 1
    text = text.replace("package org.ichedge.demo\n", f"package {package}\n")
    text = text.replace("package org.ichedge.apptest\n", f"package {package}.apptest\n")
    return text.replace("import org.ichedge.demo.", f"import {package}.")


@pytest.fixture(scope="session")
def fresh_assets(tmp_path_factory) -> Path:
    """``ich-edge assets`` for a tiny uint8-in, int8-features, uint8-probabilities model (window 4)."""
    from ich_edge.assets.build import AssetsConfig, write_assets
    from ich_edge.assets.sample import SampleConfig
    from tiny_app_model import tiny_model_bytes

    model = tmp_path_factory.mktemp("tiny") / "cnn_lstm_qat-int8.tflite"
    model.write_bytes(tiny_model_bytes(size_px=16, window=4, stride=2))
    out = tmp_path_factory.mktemp("fresh") / "android_demo_assets"
    # A hand-built model has no parity report: shipped with the override, as the manifest then says.
    write_assets(AssetsConfig(model_path=model, out_dir=out, sample_seed=3, allow_failed_parity=True,
                              sample=SampleConfig(matrix_px=64, min_slices=20, max_slices=24)))  # <= 10 mm apart
    return out


@pytest.fixture(scope="session")
def build(tmp_path_factory, fresh_assets) -> Build:
    """javac the stubs and the double; kotlinc both snippets (+ driver) in one run against the stubs."""
    home = _kotlin_home()
    javac = shutil.which("javac")
    require(home is not None and javac is not None and shutil.which("java") is not None,
            "kotlinc (npm package kotlin-compiler) and a JDK (javac, java)", INSTALL)
    work = tmp_path_factory.mktemp("kotlin")
    stubs, double, classes, src = (work / name for name in ("stubs", "double", "classes", "src"))
    stub_sources = sorted(str(p) for p in (JVM_DIR / "stubs").rglob("*.java"))
    subprocess.run([javac, "-d", str(stubs), *stub_sources], check=True, capture_output=True, text=True)
    # The double replaces Interpreter; InterpreterApi and the annotation come from the stubs.
    double_sources = [str(p) for p in (JVM_DIR / "double").rglob("*.java")]
    shared = [p for p in stub_sources if not p.endswith("/Interpreter.java")]
    subprocess.run([javac, "-d", str(double), *double_sources, *shared], check=True, capture_output=True, text=True)
    src.mkdir()
    driver = (JVM_DIR / "RunSample.kt").read_text()
    sources = {
        # What android_demo_assets/snippets/IchEdgeModel.kt is (test_committed_snippets_are_the_rendered_templates).
        "committed/IchEdgeModel.kt": _render_from_manifest(_manifest_with_checks(COMMITTED_ASSETS), "IchEdgeModel.kt.in", "f"),
        "committed/RunSample.kt": driver,
        "fresh/IchEdgeModel.kt": _repackaged((fresh_assets / "snippets" / "IchEdgeModel.kt").read_text(),
                                             "org.ichedge.fresh"),
        "fresh/RunSample.kt": _repackaged(driver, "org.ichedge.fresh"),
    }
    for name, text in sources.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    start = time.perf_counter()
    env = {**os.environ, "JAVA_OPTS": " ".join([*FAST_JVM, os.environ.get("JAVA_OPTS", "")]).strip()}
    result = subprocess.run(
        [str(home / "bin" / "kotlinc"), "-cp", str(stubs), "-d", str(classes), *(str(src / n) for n in sources)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    compile_s = time.perf_counter() - start
    assert result.returncode == 0, f"kotlinc failed:\n{result.stdout}\n{result.stderr}"
    return Build(stubs_dir=stubs, double_dir=double, stdlib=home / "lib" / "kotlin-stdlib.jar", classes=classes, compile_s=compile_s)


# --- the app's side: decoded DICOM slices and the job file ------------------------------------


def _number(ds, keyword: str) -> float | None:
    """A header value as the app passes it: one finite-or-not number, None when absent, empty or several."""
    value = ds.get(keyword)
    if value is None or value == "" or (hasattr(value, "__len__") and not isinstance(value, str) and len(value) != 1):
        return None
    return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)


def _decoded_slices(dicom_dir: Path) -> list[dict]:
    """What the app's DICOM library hands to CtSlice, in file order (not sorted)."""
    from ich_edge.dicom import read_dataset
    from ich_edge.dicom.pixels import PixelModule, decode_stored, mask_bits_stored

    out = []
    for path in sorted(dicom_dir.glob("*.dcm")):
        ds = read_dataset(path)
        module = PixelModule.from_dataset(ds, rescale=False)  # the snippet checks the rescale itself
        stored = mask_bits_stored(decode_stored(ds, module), module).astype(np.int32)
        cosines = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(cosines[:3], cosines[3:])
        normal = normal if normal[2] >= 0 else -normal  # turned towards the head (the manifest's rule)
        out.append({
            "rows": module.rows, "columns": module.columns,
            "slope": _number(ds, "RescaleSlope"), "intercept": _number(ds, "RescaleIntercept"),
            "padding": module.padding_range,
            "height_mm": float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)),
            "orientation": [float(v) for v in cosines],
            "thickness_mm": _number(ds, "SliceThickness"),
            "pixel_spacing_mm": [float(v) for v in ds.PixelSpacing] if len(ds.get("PixelSpacing") or []) == 2 else None,
            "image_type": "\\".join(ds.get("ImageType") or []), "patient_id": str(ds.get("PatientID") or ""),
            "contrast_agent": str(ds.get("ContrastBolusAgent") or "").strip(),
            "uid": str(ds.SOPInstanceUID), "stored": stored,
        })
    return out


def _write_jobs(path: Path, jobs: list[tuple[str, object]]) -> None:
    """Jobs for RunSample.kt (format in its header): ("name", uint8 images) or ("name", [slice dicts])."""
    with path.open("wb") as f:
        f.write(struct.pack(">i", len(jobs)))
        for name, payload in jobs:
            encoded = name.encode()
            f.write(struct.pack(">H", len(encoded)) + encoded)
            if isinstance(payload, np.ndarray):
                f.write(struct.pack(">iii", 0, len(payload), payload.shape[1]))
                f.write(np.ascontiguousarray(payload, np.uint8).tobytes())
                continue
            f.write(struct.pack(">ii", 1, len(payload)))
            for s in payload:
                low, high = s["padding"] or (0, 0)
                orientation = s.get("orientation")
                f.write(struct.pack(">ii", s["rows"], s["columns"]))
                for value in (s["slope"], s["intercept"]):
                    f.write(struct.pack(">if", int(value is not None), 0.0 if value is None else value))
                f.write(struct.pack(">iii", int(s["padding"] is not None), low, high))
                f.write(struct.pack(">id", int(s["height_mm"] is not None), s["height_mm"] or 0.0))
                f.write(struct.pack(">i6d", int(orientation is not None), *(orientation or [0.0] * 6)))
                thickness, pixel = s.get("thickness_mm"), s.get("pixel_spacing_mm")
                f.write(struct.pack(">id", int(thickness is not None), thickness or 0.0))
                f.write(struct.pack(">i2d", int(pixel is not None), *(pixel or [0.0, 0.0])))
                for text in (s.get("image_type", ""), s.get("patient_id", ""), s.get("contrast_agent", ""), s["uid"]):
                    f.write(struct.pack(">H", len(text.encode())) + text.encode())
                f.write(s["stored"].astype(">i4").tobytes())


def _run_jvm(build: Build, package: str, model: Path, jobs: Path, out_dir: Path,
             perturb: str = "") -> tuple[list[dict], list[dict]]:
    """One JVM: every job on one IchEdgeModel. Returns the jobs' results and the double's call log."""
    log = out_dir / "calls.jsonl"
    command = [
        "java", *FAST_JVM, "-cp", os.pathsep.join(map(str, (build.double_dir, build.classes, build.stdlib))),
        f"-Dichedge.bridge.python={sys.executable}",
        f"-Dichedge.bridge.script={JVM_DIR / 'litert_bridge.py'}",
        f"-Dichedge.bridge.log={log}",
        f"-Dichedge.bridge.perturb={perturb}",
        f"{package}.RunSampleKt", str(model), str(jobs), str(out_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=JVM_TIMEOUT_S)
    assert result.returncode == 0, f"the snippet failed on the JVM:\n{result.stdout}\n{result.stderr[-4000:]}"
    results = json.loads((out_dir / "results.json").read_text())["jobs"]
    return results, [json.loads(line) for line in log.read_text().splitlines()]


# --- what the JVM must reproduce ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """An assets folder, the jobs run on it, and what each job must give."""

    assets: Path
    package: str
    window: int
    jobs: list
    expected: dict  # job name -> float32 (N, 6)
    tolerance: float


def _case(assets: Path, package: str) -> Case:
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    manifest = json.loads((assets / "manifest.json").read_text())
    labels = manifest["labels"]
    golden = json.loads((assets / "sample" / "expected.json").read_text())
    images = np.load(assets / "sample" / "images_uint8.npy")
    window = manifest["sequence"]["window_slices"]
    model = TFLiteStudyModel(assets / "model.tflite")
    jobs, expected = [], {}
    for k in sorted({1, window - 1, window, window + 1}):
        if 1 <= k < len(images):
            jobs.append((f"first_{k}", images[:k]))
            expected[f"first_{k}"] = model.predict_series(images[:k])
    full = np.array([[s["probabilities"][label] for label in labels] for s in golden["slices"]], np.float32)
    jobs.append(("sample", images))
    expected["sample"] = full
    slices = _decoded_slices(assets / "sample" / "dicom")
    order = np.random.default_rng(0).permutation(len(slices))
    jobs.append(("sample_dicom", [slices[i] for i in order]))
    expected["sample_dicom"] = full
    return Case(assets, package, window, jobs, expected, manifest["sample"]["tolerance"]["probabilities_abs"])


def max_abs_difference(got, want, tolerance: float) -> float:
    """The comparison every job goes through: max |got - want|, AssertionError beyond ``tolerance``."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    difference = float(np.max(np.abs(got - want)))
    assert difference <= tolerance, f"max |difference| {difference:.3g} > tolerance {tolerance:g}"
    return difference


def _window_starts(n: int, window: int, stride: int) -> list[int]:
    from ich_edge.sequence import SequenceConfig, window_starts

    return list(window_starts(n, SequenceConfig(window_slices=window, stride_slices=stride)))


CASES = {"committed": (None, "org.ichedge.apptest"), "fresh": ("fresh_assets", "org.ichedge.fresh.apptest")}


@pytest.fixture(scope="session", params=sorted(CASES))
def case(request) -> Case:
    fixture, package = CASES[request.param]
    assets = COMMITTED_ASSETS if fixture is None else request.getfixturevalue(fixture)
    return _case(assets, package)


def test_committed_snippets_are_the_rendered_templates():
    """android_demo_assets/snippets are the templates rendered with the committed manifest's values."""
    manifest = json.loads((COMMITTED_ASSETS / "manifest.json").read_text())
    assert "input_checks" in manifest, "android_demo_assets/manifest.json predates input_checks: regenerate it"
    for name, template, suffix in (("IchEdgeModel.kt", "IchEdgeModel.kt.in", "f"),
                                   ("IchEdgeModel.swift", "IchEdgeModel.swift.in", "")):
        committed = (COMMITTED_ASSETS / "snippets" / name).read_text()
        assert committed == _render_from_manifest(manifest, template, suffix), (
            f"{name} differs from its template: regenerate android_demo_assets with `ich-edge assets`")


def test_snippet_has_no_state_reset():
    """classify is stateless: no variable-tensor reset is left in the snippets or their templates."""
    templates = REPO / "ich_edge" / "assets" / "templates"
    for path in [*templates.glob("IchEdgeModel.*.in"), *(COMMITTED_ASSETS / "snippets").iterdir()]:
        text = path.read_text()
        assert "resetVariableTensors" not in text and "variable tensors" not in text, path


def test_double_has_exactly_the_stub_signatures(build):
    """The double answers the same public API the snippet was compiled against (LiteRT's)."""
    def public_api(classes: Path) -> list[str]:
        out = subprocess.run(["javap", "-public", "-cp", str(classes), "org.tensorflow.lite.Interpreter",
                              "org.tensorflow.lite.Interpreter$Options", "org.tensorflow.lite.InterpreterApi",
                              "org.tensorflow.lite.InterpreterApi$Options"],
                             check=True, capture_output=True, text=True).stdout
        return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith("Compiled from")]

    stubs = public_api(build.stubs_dir)
    assert "public void runSignature(java.util.Map<java.lang.String, java.lang.Object>, " \
           "java.util.Map<java.lang.String, java.lang.Object>, java.lang.String);" in stubs
    assert not any("resetVariableTensors" in line for line in stubs)
    assert public_api(build.double_dir) == stubs


def test_kotlin_snippet_reproduces_the_sample_on_the_jvm(build, case, tmp_path, record_property):
    jobs = tmp_path / "jobs.bin"
    _write_jobs(jobs, case.jobs)
    results, calls = _run_jvm(build, case.package, case.assets / "model.tflite", jobs, tmp_path)
    record_property("kotlinc_s", round(build.compile_s, 1))
    by_name = {r["name"]: r for r in results}
    assert list(by_name) == [name for name, _ in case.jobs]
    differences = {}
    for name, want in case.expected.items():
        differences[name] = max_abs_difference(by_name[name]["slices"], want, case.tolerance)
        max_abs_difference(by_name[name]["study"], want.max(axis=0), case.tolerance)
    record_property("max_abs_difference", differences)
    print(f"\n{case.assets}: kotlinc {build.compile_s:.1f} s; max |difference| per job: "
          + ", ".join(f"{k} {v:.2g}" for k, v in differences.items()))
    # Fed decoded DICOM slices in shuffled order, the snippet sorts them and rebuilds the tensors.
    golden = json.loads((case.assets / "sample" / "expected.json").read_text())
    assert by_name["sample_dicom"]["ids"] == [s["id"] for s in golden["slices"]]
    # ... and judges it: a verdict, with complete coverage (no reason, nothing skipped).
    assert by_name["sample_dicom"]["verdict"] in ("POSITIVE", "NEGATIVE")
    assert by_name["sample_dicom"]["reasons"] == [] and by_name["sample_dicom"]["skipped"] == []
    assert by_name["sample_dicom"]["to_hu_refuses"] is False
    images = np.load(case.assets / "sample" / "images_uint8.npy")
    rebuilt = np.fromfile(tmp_path / "sample_dicom.images.u8", np.uint8).reshape(images.shape)
    np.testing.assert_array_equal(rebuilt, images)
    # One interpreter for every job: each slice encoded once (plus one blank for a short series),
    # one classify call per window; the options the snippet sets reach the interpreter.
    manifest = json.loads((case.assets / "manifest.json").read_text())
    stride = manifest["sequence"]["stride_slices"]
    sizes = [len(payload) for _, payload in case.jobs]
    assert calls == [{
        "calls": {"classify": sum(len(_window_starts(n, case.window, stride)) for n in sizes),
                  "encode": sum(n + (n < case.window) for n in sizes)},
        "num_threads": 2, "use_xnnpack": True,
    }]


def test_negative_control_a_perturbed_probability_fails(build, tmp_path):
    """A double that adds 2e-5 to one classify output makes the same comparison fail."""
    case = _case(COMMITTED_ASSETS, CASES["committed"][1])
    jobs = tmp_path / "jobs.bin"
    sample = [(name, payload) for name, payload in case.jobs if name == "sample"]
    _write_jobs(jobs, sample)
    results, _ = _run_jvm(build, case.package, case.assets / "model.tflite", jobs, tmp_path,
                          perturb=f"classify:probabilities:0:{PERTURBATION}")
    got = results[0]["slices"]
    with pytest.raises(AssertionError, match="max \\|difference\\|"):
        max_abs_difference(got, case.expected["sample"], case.tolerance)
    # The double adds the perturbation to the first output of every classify call: label 0 of each window's
    # first slice, averaged with the other windows covering that slice (slice 0: the whole perturbation).
    difference = np.asarray(got, np.float64) - case.expected["sample"]
    print(f"\nnegative control: max |difference| {np.abs(difference).max():.3g} (perturbation {PERTURBATION:g}, "
          f"tolerance {case.tolerance:g}): the comparison fails as it must")
    n, stride = len(difference), json.loads((case.assets / "manifest.json").read_text())["sequence"]["stride_slices"]
    starts = _window_starts(n, case.window, stride)
    shift = np.zeros_like(difference)
    for start in starts:
        covering = sum(1 for s in starts if s <= start < s + case.window)
        shift[start, 0] += PERTURBATION / covering
    assert difference[0, 0] == pytest.approx(PERTURBATION, abs=2e-7)
    assert np.max(np.abs(difference - shift)) <= case.tolerance  # everything else: the kernels' own difference


# --- the input checks: the snippet judges as `ich-edge predict` does ----------------------------


def _variant(source: Path, out: Path, change) -> Path:
    """A copy of the sample's DICOM files, each dataset passed through ``change(ds, index)`` (None: left out)."""
    from ich_edge.dicom import read_dataset

    out.mkdir(parents=True)
    for index, path in enumerate(sorted(source.glob("*.dcm"))):
        ds = read_dataset(path)
        if change(ds, index) is not False:
            ds.save_as(out / path.name)
    return out


def _scramble(rng):
    """Each slice's stored pixels in a random order: every HU share kept, the image gone."""
    def change(ds, index):
        ds.decompress()  # the sample is RLE: written back uncompressed
        pixels = ds.pixel_array
        ds.PixelData = rng.permutation(pixels.ravel()).astype(pixels.dtype).tobytes()
    return change


def _rows_shuffled(rng, which: int):
    """Slice ``which``'s rows in a random order: real rows, no image across them (judged slice by slice)."""
    def change(ds, index):
        if index == which:
            ds.decompress()
            pixels = ds.pixel_array
            ds.PixelData = pixels[rng.permutation(pixels.shape[0])].astype(pixels.dtype).tobytes()
    return change


def _variants(source: Path, tmp: Path) -> dict[str, Path]:
    """The sample, and copies that predict refuses (UNREADABLE) or cannot call negative."""
    from ich_edge.dicom import read_dataset

    heights = sorted((float(read_dataset(p).ImagePositionPatient[2]), i) for i, p in enumerate(sorted(source.glob("*.dcm"))))
    bottom = {i for _, i in heights[:3]}  # the skull base: no label near its threshold (0.2 below or more)
    # A slice through the middle of the head: enough body pixel pairs (MIN_NEIGHBOUR_PAIRS) to be judged; near the
    # vertex a shuffled slice keeps too few pairs down to judge (docs/experiments.md, 2026-12-08).
    middle = heights[len(heights) // 2][1]
    return {
        "golden": source,
        "scrambled": _variant(source, tmp / "scrambled", _scramble(np.random.default_rng(1))),
        "one_slice_rows_shuffled": _variant(source, tmp / "one_slice_rows_shuffled", _rows_shuffled(np.random.default_rng(2), middle)),
        "no_intercept": _variant(source, tmp / "no_intercept", lambda ds, i: delattr(ds, "RescaleIntercept")),
        "mirrored": _variant(source, tmp / "mirrored",
                             lambda ds, i: setattr(ds, "ImageOrientationPatient", [-1, 0, 0, 0, 1, 0])),
        "localizer": _variant(source, tmp / "localizer",
                              lambda ds, i: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"])),
        "three_slices": _variant(source, tmp / "three_slices", lambda ds, i: i in bottom),
        "thin_slices": _variant(source, tmp / "thin_slices", _thin(0.625)),
        "sparse": _variant(source, tmp / "sparse", _thin(15.0)),  # 15 mm apart: the head between them unseen
        "body_field_of_view": _variant(source, tmp / "body_field_of_view",
                                       lambda ds, i: setattr(ds, "PixelSpacing", [480.0 / ds.Rows, 480.0 / ds.Columns])),
        "contrast": _variant(source, tmp / "contrast", lambda ds, i: setattr(ds, "ContrastBolusAgent", "Omnipaque 350")),
        "no_contrast_written": _variant(source, tmp / "no_contrast_written",  # words for "none": judged as the sample
                                        lambda ds, i: setattr(ds, "ContrastBolusAgent", NO_AGENT[i % len(NO_AGENT)])),
    }


#: (0018,0010) Contrast/Bolus Agent values that name no agent, as scanners write them.
NO_AGENT = ["No contrast", "N/A", "none", "Non-contrast", "-", ""]


def _thin(mm: float):
    """Positions ``mm`` apart (were about 5) and a Slice Thickness to match (a thin reconstruction, or a sparse one)."""
    def change(ds, index):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient, ds.SliceThickness = [x, y, z * mm / 5.0], mm
    return change


#: variant -> (verdicts allowed, what an UNREADABLE reason must say)
WANT = {
    "golden": ({"POSITIVE", "NEGATIVE"}, None),
    "scrambled": ({"UNREADABLE"}, "no image structure"),
    "one_slice_rows_shuffled": ({"UNREADABLE"}, "1 slice ("),
    "no_intercept": ({"UNREADABLE"}, "(0028,1052) Rescale Intercept is missing"),
    "mirrored": ({"UNREADABLE"}, "image axes mirrored or rotated"),
    "localizer": ({"UNREADABLE"}, "localizer"),
    "three_slices": ({"INCOMPLETE"}, None),  # nothing positive, too little of the head: not NEGATIVE
    "thin_slices": ({"UNREADABLE"}, "thin slices: "),
    "sparse": ({"POSITIVE", "INCOMPLETE"}, None),  # judged, and coverage says the slices are too far apart
    "body_field_of_view": ({"UNREADABLE"}, "field of view 480 x 480 mm"),
    "contrast": ({"UNREADABLE"}, "contrast-enhanced: (0018,0010) Contrast/Bolus Agent names an agent on "),
    "no_contrast_written": ({"POSITIVE", "NEGATIVE"}, None),
}


def _python_verdicts(model_path: Path, folders: dict[str, Path]) -> dict[str, tuple[str, list[str]]]:
    """``ich-edge predict``'s verdict and reasons (coverage or unreadable) on each folder."""
    from ich_edge.runtime.predict import load_model, predict_path, triage

    model = load_model(model_path)
    out = {}
    for name, folder in folders.items():
        result = predict_path(model, folder)
        assert len(result.series) == 1, name
        verdict = triage(result.series[0], result.points)
        out[name] = (verdict.verdict, list(verdict.coverage_reasons))
    return out


def test_kotlin_verdicts_are_those_of_ich_edge_predict(build, tmp_path):
    """Sample, scrambled pixels, no Rescale Intercept, mirrored axes, a localizer, three slices, thin slices, a
    body-sized field of view, a contrast agent named (and words for none): the snippet's verdict is
    ``ich-edge predict``'s; an UNREADABLE series gets no probability and no model call."""
    case = _case(COMMITTED_ASSETS, CASES["committed"][1])
    folders = _variants(COMMITTED_ASSETS / "sample" / "dicom", tmp_path / "variants")
    jobs = [(name, _decoded_slices(folder)) for name, folder in folders.items()]
    _write_jobs(tmp_path / "jobs.bin", jobs)
    results, calls = _run_jvm(build, case.package, case.assets / "model.tflite", tmp_path / "jobs.bin", tmp_path / "out")
    got = {r["name"]: r for r in results}
    python = _python_verdicts(case.assets / "model.tflite", folders)
    print("\n" + "\n".join(f"{name}: kotlin {got[name]['verdict']} {got[name]['reasons'][:1]}; "
                           f"predict {python[name][0]}" for name in folders))
    for name, (allowed, says) in WANT.items():
        result = got[name]
        assert result["verdict"] in allowed, (name, result["verdict"], result["reasons"])
        assert result["verdict"] == python[name][0], (name, result["reasons"], python[name])
        if result["verdict"] == "UNREADABLE":
            assert result["slices"] is None and result["study"] is None and result["ids"] == [], name
            assert any(says in reason for reason in result["reasons"]), (name, result["reasons"])
        else:
            assert len(result["reasons"]) == len(python[name][1]), (name, result["reasons"], python[name][1])
    assert got["golden"]["reasons"] == [] and got["golden"]["slices"] is not None
    assert got["three_slices"]["reasons"] and len(got["three_slices"]["ids"]) == 3  # coverage incomplete, said
    assert any("mm apart, more than 10 mm" in reason for reason in got["sparse"]["reasons"]), got["sparse"]["reasons"]
    assert got["no_contrast_written"]["slices"] == got["golden"]["slices"]  # "No contrast", "N/A", ...: no agent
    assert got["no_intercept"]["to_hu_refuses"] is True and got["golden"]["to_hu_refuses"] is False
    max_abs_difference(got["golden"]["slices"], case.expected["sample_dicom"], case.tolerance)
    # The model ran on the judged series only: each slice encoded once (plus a blank for a short one).
    judged = [len(payload) for name, payload in jobs if got[name]["verdict"] != "UNREADABLE"]
    stride = json.loads((case.assets / "manifest.json").read_text())["sequence"]["stride_slices"]
    assert calls[0]["calls"] == {"encode": sum(n + (n < case.window) for n in judged),
                                 "classify": sum(len(_window_starts(n, case.window, stride)) for n in judged)}


def _is_numbers(value) -> bool:
    """A number or a list of numbers (the rule's constants; not its sentences or names)."""
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def test_kotlin_constants_agree_with_the_manifests_input_checks():
    """Every input-check constant of the rendered snippet is the manifest's number."""
    import re

    from ich_edge.assets.build import input_check_values

    manifest = _manifest_with_checks(COMMITTED_ASSETS)
    text = _render_from_manifest(manifest, "IchEdgeModel.kt.in", "f")
    checks = manifest["input_checks"]
    want = {
        "MAX_ORIENTATION_DIFF_DEG": [checks["orientation"]["max_orientation_diff_deg"]],
        "MAX_TILT_DEG": [checks["series"]["max_tilt_deg"]], "MAX_AXIS_TURN_DEG": [checks["series"]["max_axis_turn_deg"]],
        "AXIAL_ORIENTATION": checks["series"]["axial_orientation"],
        "PADDING_FORBIDDEN_RANGE_HU": checks["pixel_module"]["padding_forbidden_range_hu"],
        "MIN_HEAD_EXTENT_MM": [checks["coverage"]["min_head_extent_mm"]], "GAP_FACTOR": [checks["coverage"]["gap_factor"]],
        "MAX_SLICE_SPACING_MM": [checks["coverage"]["max_slice_spacing_mm"]],
        "MIN_SLICE_MM": [checks["series"]["min_slice_mm"]],
        "FIELD_OF_VIEW_MM_RANGE": checks["series"]["field_of_view_mm_range"],
        **{key.upper(): value if isinstance(value, list) else [value] for key, value in checks["hu"].items()
           if _is_numbers(value)},
    }
    words = {"DROP_LOCALIZERS", "SEND_INSTEAD", "DROP_CONTRAST", "NO_CONTRAST_WORDS", "CONTRAST_INSTEAD"}
    assert set(want) | words == set(input_check_values(manifest))
    assert f'const val SEND_INSTEAD = "{checks["series"]["send_instead"]}"' in text
    assert f'const val CONTRAST_INSTEAD = "{checks["series"]["contrast_instead"]}"' in text
    assert f"const val DROP_CONTRAST = {str(checks['series']['drop_contrast']).lower()}\n" in text
    found = re.search(r"^\s*val NO_CONTRAST_WORDS = listOf\((.*)\)$", text, re.M)
    assert found and json.loads(f"[{found.group(1)}]") == checks["series"]["no_contrast_words"]
    rules = text[text.index("fun seriesProblem("):]  # rule (2b) where ich-edge checks it: after (2), before (3)
    steps = ["several patients in one series", "namesContrastAgent(", "not axial: "]
    assert [rules.index(step) for step in steps] == sorted(rules.index(step) for step in steps)
    for name, values in want.items():
        found = re.search(rf"^\s*(?:const )?val {name} = (?:doubleArrayOf\()?([^)\n/]*)", text, re.M)
        assert found, name
        assert [float(v) for v in found.group(1).split(",")] == [float(v) for v in values], name
    assert re.search(rf"const val DROP_LOCALIZERS = {str(checks['series']['drop_localizers']).lower()}\b", text)
