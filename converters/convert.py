"""``ich-edge convert``: a float RUN_DIR and/or a QAT_DIR -> one ``.tflite`` per precision.

The steps, each in its own module: the deployable two-signature graph and its checks
(:mod:`converters.graph`), the precision recipes (:mod:`converters.registry`), calibration
data for the integer recipes (:mod:`converters.calibration`) and the embedded description
(:mod:`converters.describe`). Every file is written atomically with a sidecar JSON; an
existing file is never replaced without ``force``.

``converters`` builds on the training tier (model loading, the stateless head); the
training tier never imports ``converters``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from converters.calibration import DEFAULT_CALIBRATION_WINDOWS, calibration_set, representative_dataset
from converters.describe import describe_model, read_optional_json
from converters.graph import check_graph, run_converter, save_deployable
from converters.recipe import ConvertOptions, Recipe
from converters.registry import select_recipes
from converters.verify import verify_fp32
from ich_edge.cache import Cache
from ich_edge.errors import ConfigError
from ich_edge.fileio import atomic_output, refuse_existing, write_json_atomic
from ich_edge.runtime.description import embed_description, format_op_summary, op_summary, sidecar_path


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


def write_model(path: str | Path, tflite_bytes: bytes, description: dict, force: bool = False) -> Path:
    """Write ``path`` (description embedded) and its sidecar JSON, each atomically (:mod:`ich_edge.fileio`).

    The sidecar is put in place first, then the model; if the model's rename fails, the new
    sidecar is removed again (when it did not exist before), so a failure leaves neither a
    partial file nor a model without its sidecar.

    Raises :class:`OutputExistsError` when either exists and ``force`` is False.
    """
    path = Path(path)
    sidecar = sidecar_path(path)
    for target in (path, sidecar):
        refuse_existing(target, force, "convert --out:")
    payload = embed_description(tflite_bytes, description)
    sidecar_existed = sidecar.exists()
    try:
        with atomic_output(path) as model_tmp:
            model_tmp.write_bytes(payload)
            write_json_atomic(sidecar, description)
    except BaseException:
        if not sidecar_existed:
            sidecar.unlink(missing_ok=True)
        raise
    return path


def _training_series(series_list, run, log):
    """The run's training studies in the cache (calibration data); all series if none match."""
    from ich_edge.training.data import Split, select_studies
    from ich_edge.training.run import SPLIT_FILE

    split_data = read_optional_json(Path(run.path) / SPLIT_FILE)
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
            refuse_existing(target, config.force, "convert --out:")
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
    if recipe.name == "fp32":  # verify before writing: padded, all-air and extreme windows against Keras
        log(f"fp32 verification: max |file - Keras| {verify_fp32(tflite_bytes, run):.1e} on padded, all-air and extreme windows")
    description = describe_model(run, recipe, options, tflite_bytes, summary, calibration if dataset else None)
    path = write_model(out / recipe.file_name, tflite_bytes, description, force)
    seconds = time.monotonic() - t0
    size = path.stat().st_size
    log(f"wrote {path} ({size / 1024:.1f} KiB, {io} I/O, {seconds:.1f} s)")
    log(format_op_summary(summary))
    return {"precision": recipe.name, "path": str(path), "size_bytes": size, "seconds": seconds,
            "source": str(run.path), "io": io}
