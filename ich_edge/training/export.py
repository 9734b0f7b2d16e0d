"""The deployable TFLite graph and ``ich-edge convert``: one file, two signatures, per precision.

The CNN-LSTM is exported so that an app encodes each slice once:

* ``encode``: ``image (B, S, S, 3)`` float in [0, 1] -> ``features (B, F)``, B resizable;
* ``classify``: ``features (1, T, F)`` -> ``probabilities (1, T, 6)``.

Both are concrete functions of one ``tf.Module`` saved as a SavedModel with two
signatures, converted by ``TFLiteConverter.from_saved_model(signature_keys=[...])`` and
configured by a precision recipe from :mod:`converters`. Every file gets the checks below,
an embedded description (:mod:`ich_edge.runtime.description`) and a sidecar JSON, and is
written atomically; an existing file is never replaced without ``force``.

``classify`` is *stateless*: the recurrent head is unrolled over the fixed window
(:mod:`ich_edge.training.stateless`), so no tensor keeps state between invocations and
LiteRT's CompiledModel, GPU accelerators and LiteRT.js run the file as it is.

Checks: builtin ops only (no Flex), no variable tensors in any signature, and, where the
encoder has BatchNormalization, BN folded into the convolutions (no MUL in ``encode`` and
exactly one ADD per residual Add layer).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters import ALL, ConvertOptions, Recipe, select_recipes
from converters.calibration import DEFAULT_CALIBRATION_WINDOWS, calibration_set, representative_dataset
from ich_edge import LABELS, __version__
from ich_edge.cache import Cache
from ich_edge.errors import ConfigError, ConversionError, OutputExistsError
from ich_edge.fileio import write_files_atomic
from ich_edge.quiet import native_output_silenced
from ich_edge.runtime.description import FORMAT, custom_ops, embed_description, format_op_summary, op_summary, sidecar_path
from ich_edge.runtime.tflite_model import CLASSIFY, ENCODE
from ich_edge.training.keras import keras, tf
from ich_edge.training.model import MODEL_VERSION
from ich_edge.training.stateless import stateless_head_fn
from ich_edge.training.run import CONFIG_FILE

IMAGE, FEATURES, PROBABILITIES = "image", "features", "probabilities"
VALUE_SCALING = (
    "uint8 window image / 255 -> [0, 1] float input; int8/uint8 inputs take the quantized value per the "
    "input's scale/zero_point"
)
SLICE_ORDER = "by ImagePositionPatient projected on the slice normal, bottom of the head to the top"
HU_RULE = "stored * RescaleSlope + RescaleIntercept"
ORDER_OF_OPS = ["HU", "area resize to input_size_px", "windows (one per channel, clipped to [0, 1])", "uint8 = round(x * 255)"]


@dataclass(frozen=True)
class ConvertConfig:
    """What ``ich-edge convert`` does (see its ``--help``).

    Attributes
    ----------
    precisions : recipe names or ``all``.
    calibration_windows : windows drawn from the cache to calibrate the integer recipes.
    io : "float" or "int8" I/O tensors for the integer recipes (see ``converters.recipe``).
    force : replace existing output files.
    seed : seed of the calibration draw.
    """

    precisions: tuple[str, ...] = ("all",)
    calibration_windows: int = DEFAULT_CALIBRATION_WINDOWS
    io: str = "float"
    force: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "precisions", tuple(self.precisions))
        if not self.precisions:
            raise ConfigError("name at least one --precision (or all)")
        if not 1 <= self.calibration_windows <= 100_000:
            raise ConfigError(f"calibration_windows must be in 1..100000, got {self.calibration_windows}")
        ConvertOptions(io=self.io)  # validates io


def deployable_module(encoder, head, window_slices: int, stateless: bool = True):
    """A ``tf.Module`` with the ``encode`` and ``classify`` functions of the deployed model.

    The Keras models are reached through the closure and only their variables are tracked:
    saving the Keras objects themselves would add every layer's traced call functions to the
    SavedModel (hundreds of functions that the converter then loads for nothing).
    ``stateless=False`` keeps the Keras head as it is (the fused, stateful LSTM): only for
    ``benchmarks/stateless_head.py``, which compares the two forms; convert refuses it.
    """
    size_px = int(encoder.input_shape[1])
    feature_dim = int(encoder.output_shape[-1])
    head_fn = stateless_head_fn(head, window_slices) if stateless else (lambda x: head(x, training=False))

    class Deployable(tf.Module):
        def __init__(self):
            super().__init__(name="ich_edge_cnn_lstm")
            self.model_variables = list(encoder.variables) + list(head.variables)

        @tf.function(input_signature=[tf.TensorSpec([None, size_px, size_px, 3], tf.float32, name=IMAGE)])
        def encode(self, image):
            return {FEATURES: encoder(image, training=False)}

        @tf.function(input_signature=[tf.TensorSpec([1, window_slices, feature_dim], tf.float32, name=FEATURES)])
        def classify(self, features):
            return {PROBABILITIES: head_fn(features)}

    return Deployable()


def save_deployable(encoder, head, window_slices: int, directory: str | Path, stateless: bool = True) -> Path:
    """Write the two-signature SavedModel to ``directory`` (a scratch folder)."""
    module = deployable_module(encoder, head, window_slices, stateless)
    tf.saved_model.save(module, str(directory), signatures={ENCODE: module.encode, CLASSIFY: module.classify})
    return Path(directory)


def run_converter(saved_model_dir: str | Path, recipe: Recipe, options: ConvertOptions) -> bytes:
    """Convert the SavedModel with ``recipe``; :class:`ConversionError` says why it failed."""
    recipe.check_options(options)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[ENCODE, CLASSIFY])
    recipe.configure(converter, options)
    try:
        with native_output_silenced():  # the quantizer's "fully_quantize: 0, ..." line (--debug shows it)
            return bytes(converter.convert())
    except Exception as err:  # the converter raises ConverterError, RuntimeError or ValueError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        flex = "select_tf_ops" in str(err).lower() or "flex" in str(err).lower()
        hint = (
            "the model needs TensorFlow (Flex) ops, which ich-edge does not allow; keep to builtin layers"
            if flex
            else "run with --debug for the converter's full message"
        )
        raise ConversionError(f"{recipe.name} conversion failed: {first} ({hint})") from err


def unclip_lstm_cells(tflite_bytes: bytes) -> bytes:
    """Set ``cell_clip`` of every UNIDIRECTIONAL_SEQUENCE_LSTM to 0 (no clipping), as in Keras.

    Only the fused, stateful form has this op; ``benchmarks/stateless_head.py`` builds that
    form to compare it with the stateless one that ``convert`` writes.

    The converter fuses a Keras LSTM with a hard-coded ``cell_clip`` of 10, which Keras never
    applies: a trained head whose cell state exceeds 10 (22 on the demo model) then differs
    from Keras by up to 4e-4 in fp32. Integer kernels clip to their int16 cell range anyway.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(tflite_bytes, 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    changed = False
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM and op.builtinOptions.cellClip:
                op.builtinOptions.cellClip = 0.0
                changed = True
    if not changed:
        return tflite_bytes
    builder = flatbuffers.Builder(len(tflite_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def count_layers(model, layer_type) -> int:
    """Layers of ``layer_type`` in ``model``, looking inside TFMOT QuantizeWrapper layers."""
    return sum(isinstance(getattr(layer, "layer", layer), layer_type) for layer in model.layers)


def check_graph(summary: dict, encoder) -> None:
    """Builtin ops only, no variable tensors, BatchNormalization folded; :class:`ConversionError` if not."""
    custom = custom_ops(summary)
    if custom:
        raise ConversionError(f"the converted model needs non-builtin ops {custom} (Flex/SELECT_TF_OPS are not allowed)")
    stateful = {sig: info["variable_tensors"] for sig, info in summary.items() if info.get("variable_tensors")}
    if stateful:
        raise ConversionError(
            f"the converted model keeps state in variable tensors {stateful}, which LiteRT's CompiledModel, "
            "GPU accelerators and LiteRT.js refuse; classify must be converted from the stateless head "
            "(ich_edge.training.stateless)"
        )
    if not count_layers(encoder, keras.layers.BatchNormalization):
        return
    encode_ops = summary[ENCODE]["ops"]
    adds = encode_ops.get("ADD", {}).get("count", 0)
    residual_adds = count_layers(encoder, keras.layers.Add)
    if "MUL" in encode_ops or adds != residual_adds:
        raise ConversionError(
            f"BatchNormalization was not folded into the convolutions: encode has {encode_ops.get('MUL', {}).get('count', 0)} "
            f"MUL and {adds} ADD ops for {residual_adds} residual additions; keep the conv -> BN -> ReLU order"
        )


def signature_details(tflite_bytes: bytes) -> dict:
    """``{signature: {"inputs": [...], "outputs": [...]}}`` with shape, dtype and quantization."""
    from ich_edge.runtime.interpreter import interpreter_module

    interpreter = interpreter_module().Interpreter(model_content=tflite_bytes)

    def describe(name: str, detail: dict) -> dict:
        scale, zero_point = detail["quantization"]
        return {
            "name": name,
            "shape": [int(d) for d in detail["shape_signature"]],
            "dtype": np.dtype(detail["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
        }

    out = {}
    for key in (ENCODE, CLASSIFY):
        runner = interpreter.get_signature_runner(key)
        out[key] = {
            "inputs": [describe(n, d) for n, d in runner.get_input_details().items()],
            "outputs": [describe(n, d) for n, d in runner.get_output_details().items()],
        }
    return out


def describe_model(run, recipe: Recipe, options: ConvertOptions, tflite_bytes: bytes, summary: dict, calibration) -> dict:
    """The description embedded in the file (see :mod:`ich_edge.runtime.description`)."""
    config = run.config
    report = _read_optional_json(run.path / "report.json")
    data = dict(config.get("data", {}))
    cache = data.get("cache")
    return {
        "format": FORMAT,
        "model_version": config.get("model_version", MODEL_VERSION),
        "precision": recipe.name,
        "precision_summary": recipe.summary,
        "io": options.io,
        "labels": list(config.get("labels", LABELS)),
        "signatures": signature_details(tflite_bytes),
        "preprocessing": {
            **run.preprocess_config.to_dict(),
            "value_scaling": VALUE_SCALING,
            "slice_order": SLICE_ORDER,
            "hu": HU_RULE,
            "order_of_ops": ORDER_OF_OPS,
        },
        "sequence": {
            **run.sequence_config.to_dict(),
            "padding": "a study shorter than window_slices is padded at the end with blank (all-zero) slices; "
            "their features are encode(blank image) and their outputs are dropped",
            "state": "stateless: classify has no variable tensors; every invocation is one window from the zero "
            "state, so windows can run in any order and on any runtime",
        },
        "thresholds": run.thresholds,
        "model_input": config.get("model_input"),  # imported models: scale/channels applied inside encode
        "imported_from": {k: (config.get("import") or {}).get(k) for k in ("path", "format", "sha256")} if config.get("import") else None,
        "training_data": {
            **data,
            "synthetic": _is_synthetic(cache),
            "validation_study_auc": ((report or {}).get("validation", {}).get("model", {}).get("study", {}).get("auc")),
        },
        "source_run": {
            "path": str(Path(run.path).resolve()),
            "quantized": bool(config.get("quantized", False)),
            "model": run.model_config.to_dict(),
            "qat": {k: (config.get("qat") or {}).get(k) for k in ("epochs", "learning_rate", "source_run")}
            if config.get("quantized") else None,
        },
        "calibration": None if calibration is None else {
            "windows": calibration.num_windows,
            "slices": calibration.num_slices,
            "drawn_from": "training studies of the run (split.json) in the --data cache",
        },
        "created_by": f"ich-edge {__version__} (tensorflow {tf.__version__})",
        "quantized_ops": {sig: {op: {k: v for k, v in e.items() if k != "weight_dtypes"} for op, e in info["ops"].items()}
                          for sig, info in summary.items()},
    }


def _read_optional_json(path: Path):
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _is_synthetic(cache) -> bool | None:
    """Whether the training cache was prepared from ``ich-edge synth`` output; None if unknown.

    ``prepare`` records its DICOM folder in CACHE/problems/*.json; ``synth --out DIR``
    writes DIR/synth_config.json beside DIR/dicom, the folder ``prepare`` reads (a cache
    prepared from DIR itself counts too).
    """
    folders = set()
    for report in sorted(Path(cache).glob("problems/*.json")) if cache else ():
        folder = (_read_optional_json(report) or {}).get("dicom_dir")
        if folder and Path(folder).is_dir():
            folders.add(Path(folder).resolve())
    if not folders:
        return None
    return all(any((d / "synth_config.json").is_file() for d in (folder, folder.parent)) for folder in folders)


def write_model(path: str | Path, tflite_bytes: bytes, description: dict, force: bool = False) -> Path:
    """Write ``path`` (description embedded) and its sidecar JSON atomically.

    Both are written to temporary files next to their targets first, then renamed; if the
    second rename fails, the first new file is removed again (when it did not exist before),
    so a failure leaves neither a partial file nor a model without its sidecar.

    Raises :class:`OutputExistsError` when either exists and ``force`` is False.
    """
    import json

    path = Path(path)
    sidecar = sidecar_path(path)
    for target in (path, sidecar):
        if target.exists() and not force:
            raise OutputExistsError(f"{target} exists; pass --force to overwrite it")
    write_files_atomic([(path, embed_description(tflite_bytes, description)),
                        (sidecar, (json.dumps(description, indent=2) + "\n").encode("utf-8"))])
    return path


def _training_series(series_list, run, log):
    """The run's training studies in the cache (calibration data); all series if none match."""
    from ich_edge.training.data import Split, select_studies
    from ich_edge.training.run import SPLIT_FILE

    split_data = _read_optional_json(Path(run.path) / SPLIT_FILE)
    if split_data:
        chosen = select_studies(series_list, Split.from_dict(split_data).train_studies)
        if chosen:
            return chosen
    log(f"note: the cache holds none of {run.path}'s training studies; calibrating on all its series")
    return series_list


def _load_cache_series(data, runs):
    cache = Cache.open(data)
    for run in runs:
        if cache.preprocess != run.preprocess_config:
            raise ConfigError(f"{data} was prepared with other preprocessing than {run.path}; pass the training cache")
    return cache.series()


def convert_runs(model_dirs, data, out, config: ConvertConfig = ConvertConfig(), log=print) -> list[dict]:
    """Convert a float RUN_DIR and/or a QAT_DIR into ``out/cnn_lstm_<precision>.tflite`` files.

    Parameters
    ----------
    model_dirs : one float RUN_DIR (``ich-edge train``), one QAT_DIR (``ich-edge qat``), or both.
    data : prepared cache for calibration (needed by int8 and qat-int8), else None.
    out : output folder (created).
    config : precisions, calibration windows, I/O type, force, seed.
    log : called with lines of progress (op summaries included).

    Returns
    -------
    list of dict
        Per file: precision, path, size_bytes, seconds, source, io.
    """
    from ich_edge.training.qat import is_quantized_run, load_any_run

    dirs = [Path(d) for d in model_dirs]
    quantized = {d: is_quantized_run(d) for d in dirs}
    float_dirs = [d for d in dirs if not quantized[d]]
    qat_dirs = [d for d in dirs if quantized[d]]
    if len(float_dirs) > 1 or len(qat_dirs) > 1:
        raise ConfigError("pass at most one float RUN_DIR and one QAT_DIR as --model")
    recipes = select_recipes(config.precisions, bool(float_dirs), bool(qat_dirs))
    if data is None and any(r.needs_calibration for r in recipes):
        names = ", ".join(r.name for r in recipes if r.needs_calibration)
        raise ConfigError(f"{names} need calibration data: pass --data CACHE (the cache the run was trained on)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder")
    for recipe in recipes:
        for target in (out / recipe.file_name, sidecar_path(out / recipe.file_name)):
            if target.exists() and not config.force:
                raise OutputExistsError(f"{target} exists; pass --force to overwrite it")
    ios = {}
    for recipe in recipes:
        if config.io in recipe.io_types:
            ios[recipe.name] = config.io
        elif recipe.name in config.precisions:
            recipe.check_options(ConvertOptions(io=config.io, representative_dataset=lambda: iter(())))
        else:
            ios[recipe.name] = "float"
            log(f"note: {recipe.name} has float activations; it keeps float I/O (--io {config.io} applies to int8, qat-int8)")
    results = []
    for source in float_dirs + qat_dirs:
        group = [r for r in recipes if r.needs_qat == quantized[source]]
        if not group:
            continue
        run = load_any_run(source)
        calibration = None
        if any(r.needs_calibration for r in group):
            series = _training_series(_load_cache_series(data, [run]), run, log)
            t0 = time.monotonic()
            calibration = calibration_set(run.encoder, series, run.sequence_config, config.calibration_windows, config.seed)
            log(f"calibration: {calibration.num_windows} windows, {calibration.num_slices} slices ({time.monotonic() - t0:.1f} s)")
        with tempfile.TemporaryDirectory(prefix="ich_edge_export_") as scratch:
            saved = save_deployable(run.encoder, run.head, run.sequence_config.window_slices, Path(scratch) / "saved_model")
            for recipe in group:
                results.append(_convert_one(run, recipe, saved, calibration, ios[recipe.name], out, config.force, log))
    return results


def _convert_one(run, recipe: Recipe, saved: Path, calibration, io: str, out: Path, force: bool, log) -> dict:
    t0 = time.monotonic()
    dataset = representative_dataset(calibration) if recipe.needs_calibration else None
    options = ConvertOptions(io=io, representative_dataset=dataset)
    tflite_bytes = run_converter(saved, recipe, options)
    summary = op_summary(tflite_bytes)
    check_graph(summary, run.encoder)
    description = describe_model(run, recipe, options, tflite_bytes, summary, calibration if dataset else None)
    path = write_model(out / recipe.file_name, tflite_bytes, description, force)
    seconds = time.monotonic() - t0
    size = path.stat().st_size
    log(f"wrote {path} ({size / 1024:.1f} KiB, {io} I/O, {seconds:.1f} s)")
    log(format_op_summary(summary))
    return {"precision": recipe.name, "path": str(path), "size_bytes": size, "seconds": seconds,
            "source": str(run.path), "io": io}
