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

import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from converters.calibration import DEFAULT_CALIBRATION_WINDOWS, calibration_set, representative_dataset
from converters.describe import describe_model
from converters.graph import check_graph, run_converter, save_deployable
from converters.recipe import ConvertOptions, Recipe
from converters.registry import select_recipes
from converters.verify import verify_fp32
from ich_edge.ingest.cache import Cache
from ich_edge.errors import ConfigError
from ich_edge.fileio import atomic_output, refuse_existing, write_json_atomic
from ich_edge.precisions import FP32
from ich_edge.runtime.description import embed_description, format_op_summary, op_summary, sidecar_path
from ich_edge.training.projection import PROJECTION_MODES, deployed_encoder, deployed_split


#: ``--keep-float`` values that search for the float layers on the training cache.
SEARCHES = (("auto",), ("fewest",))

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
    keep_float : float layers of int8-mixed and qat-int8: ``("auto",)`` (search, :mod:`converters.mixed`),
        ``("fewest",)`` (the search, then :func:`converters.mixed.prune` gives groups back to int8:
        minutes more), ``("none",)`` (all integer) or layer names.
    layer_report : write the per-layer quantization report beside every integer file.
    float_weights : storage of the float layers' weights in int8-mixed and qat-int8: ``int8`` (per channel,
        dequantized when the runtime prepares the graph; :mod:`converters.weight_storage`) or ``float32``.
    projection : where ``encode`` ends (:mod:`ich_edge.training.projection`): ``auto`` moves the recurrent
        layer's input projection into ``encode`` when that narrows the vector per slice; ``always``, ``never``.
    """

    precisions: tuple[str, ...] = ("all",)
    calibration_windows: int = DEFAULT_CALIBRATION_WINDOWS
    io: str = "float"
    force: bool = False
    seed: int = 0
    keep_float: tuple[str, ...] = ("auto",)
    layer_report: bool = True
    float_weights: str = "int8"
    projection: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "precisions", tuple(self.precisions))
        object.__setattr__(self, "keep_float", tuple(self.keep_float))
        for word in ("auto", "fewest", "none"):
            if word in self.keep_float and len(self.keep_float) > 1:
                raise ConfigError(f"--keep-float takes either {word} or layer names, not both")
        if not self.precisions:
            raise ConfigError("name at least one --precision (or all)")
        if not 1 <= self.calibration_windows <= 100_000:
            raise ConfigError(f"calibration_windows must be in 1..100000, got {self.calibration_windows}")
        ConvertOptions(io=self.io)  # validates io
        from converters.layers import check_float_weights

        check_float_weights(self.float_weights)
        if self.projection not in PROJECTION_MODES:
            raise ConfigError(f"projection must be one of {', '.join(PROJECTION_MODES)}, got {self.projection!r}")


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


def _training_series(series_list, run_dir, log):
    """The training studies of ``run_dir`` (a RunDir) in the cache (calibration data); all series if none match."""
    from ich_edge.training.data import select_studies

    if run_dir.split is not None:
        chosen = select_studies(series_list, run_dir.split.train_studies)
        if chosen:
            return chosen
    log(f"note: the cache holds none of {run_dir.path}'s training studies; calibrating on all its series")
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
    model_dirs : one float RUN_DIR (``ich-edge train``), one QAT_DIR (``ich-edge qat``), or both: each
        a :class:`~ich_edge.training.run_dir.RunDir` opened once by the caller (or its path, opened here).
    data : prepared cache for calibration (needed by int8 and qat-int8), else None.
    out : output folder (created).
    config : precisions, calibration windows, I/O type, force, seed.
    log : called with lines of progress (op summaries included).

    Returns
    -------
    list of dict
        Per file: precision, path, size_bytes, seconds, source, io.
    """
    from ich_edge.training.run_dir import RunDir

    dirs = [RunDir.of(d) for d in model_dirs]
    float_dirs = [d for d in dirs if not d.quantized]
    qat_dirs = [d for d in dirs if d.quantized]
    if len(float_dirs) > 1 or len(qat_dirs) > 1:
        raise ConfigError("pass at most one float RUN_DIR and one QAT_DIR as --model")
    recipes = select_recipes(config.precisions, bool(float_dirs), bool(qat_dirs))
    recipes = _searchable(recipes, config, float_dirs, log)
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
    scores: dict = {}  # the Keras models' scores on the judged studies: shared by every search of this call
    for source in float_dirs + qat_dirs:
        group = [r for r in recipes if r.needs_qat == source.quantized]
        if not group:
            continue
        run = source.load_keras()
        split = deployed_split(run, config.projection)
        log(f"split: {split.reason}")
        calibration = None
        if any(r.needs_calibration for r in group):
            series = _training_series(_load_cache_series(data, [run]), source, log)
            t0 = time.monotonic()
            calibration = calibration_set(deployed_encoder(run.encoder, split), series, run.sequence_config,
                                          config.calibration_windows, config.seed)
            log(f"calibration: {calibration.num_windows} windows, {calibration.num_slices} slices ({time.monotonic() - t0:.1f} s)")
        with tempfile.TemporaryDirectory(prefix="ich_edge_export_") as scratch:
            saved = save_deployable(run.encoder, run.head, run.sequence_config.window_slices, Path(scratch) / "saved_model",
                                    split=split)
            layered = _Layered(source, saved, calibration, data, float_dirs[0] if float_dirs else None, config, log, scores,
                               split)
            for recipe in group:
                results.append(_convert_one(run, recipe, saved, calibration, ios[recipe.name], out, config.force, log, layered))
    return results


def _searchable(recipes: list, config: ConvertConfig, float_dirs: list, log) -> list:
    """``all`` leaves out int8-mixed's automatic search where it cannot judge (no float run with a
    split.json, e.g. an imported model), with a note; a named ``int8-mixed`` is refused later instead."""
    from converters.int8_mixed import NAME as MIXED

    named = MIXED in config.precisions
    judgeable = bool(float_dirs) and float_dirs[0].split_data is not None
    if named or judgeable or config.keep_float not in SEARCHES or MIXED not in [r.name for r in recipes]:
        return recipes
    log(f"note: {MIXED} is left out: its float-layer search judges on the run's training cache (split.json), and "
        f"{float_dirs[0].path if float_dirs else 'no float RUN_DIR'} has no split.json; name the layers with --keep-float")
    return [r for r in recipes if r.name != MIXED]


class _Layered:
    """One source run's calibrated graph (made once, on first use) and the per-layer work on it:
    the layer report of an integer file and int8-mixed's selective quantization (:mod:`converters.mixed`).
    ``source`` and ``float_dir`` are RunDirs (:class:`ich_edge.training.run_dir.RunDir`), opened once."""

    def __init__(self, source, saved: Path, calibration, data, float_dir, config: ConvertConfig, log,
                 scores: dict | None = None, split=None) -> None:
        self.source, self.saved, self.calibration, self.data, self.config, self.log = source, saved, calibration, data, config, log
        self.split = split  # where encode ends (ich_edge.training.projection), as saved
        self.run = source.load_keras()  # loaded once per RunDir: the Run convert_runs holds
        self.float_dir = float_dir  # the validated float RUN_DIR: the deployment reference of the search
        self.scores = {} if scores is None else scores  # Keras scores kept between judge calls (run_parity)
        self._calibrated = None
        self._reports: dict = {}

    def calibrated(self) -> bytes:
        from converters.layers import calibrate

        if self._calibrated is None:
            self._calibrated = calibrate(self.saved, ConvertOptions(representative_dataset=representative_dataset(self.calibration)))
        return self._calibrated

    def judge(self, recipe: Recipe, options: ConvertOptions):
        """Parity on the run's validation studies (None without a float RUN_DIR or split)."""
        from converters.mixed import Judge

        if self.float_dir is None or self.data is None or self.source.split_data is None:
            return None

        def describe(payload: bytes) -> bytes:
            summary = op_summary(payload)
            return embed_description(payload, describe_model(self.run, recipe, options, payload, summary, self.calibration,
                                                                  self.split))

        return Judge(self.float_dir, Path(self.data), describe, converted_from=(self.source,) if self.source.quantized else (),
                     memo=self.scores)

    def mixed(self, recipe: Recipe, options: ConvertOptions) -> tuple[bytes, dict]:
        """The bytes of a recipe that keeps float where int8 breaks parity (int8-mixed, qat-int8) and
        its layer report (with the search path, or the named layers)."""
        from converters import layers, mixed

        calibrated = self.calibrated()
        groups = layers.LayerGroups.of(calibrated)
        auto = self.config.keep_float in SEARCHES
        judge = self.judge(recipe, options) if auto or self.config.layer_report else None
        start = layers.quantize(calibrated, io=options.io)
        weights = self.config.float_weights
        report = self.report(recipe, options, start) if judge is not None else mixed.layer_report(calibrated, start, self.calibration)
        if auto and judge is None and recipe.needs_qat:
            self.log(f"note: {recipe.name} is all integer: the float search judges against the validated float RUN_DIR "
                     "and its split.json; pass it as another --model (and its training cache as --data)")
            kept, path = [], []
        elif auto:
            if judge is None:
                raise ConfigError(f"{recipe.name} --keep-float auto judges on the run's training cache: pass the float "
                                  "RUN_DIR with split.json as --model and its training cache as --data, or name the layers")
            kept, path = mixed.search(calibrated, report, judge, io=options.io, log=self.log, label=recipe.name,
                                      float_weights=weights)
            if kept and self.config.keep_float == ("fewest",):
                kept, pruned = mixed.prune(calibrated, kept, judge, io=options.io, log=self.log, label=recipe.name,
                                           float_weights=weights)
                path += pruned
        elif self.config.keep_float == ("none",):
            kept, path = [], []
        else:
            kept, path = groups.resolve(self.config.keep_float), []
        payload = layers.quantize(calibrated, [n for g in kept for n in groups.nodes[g]], io=options.io, float_weights=weights)
        report["kept_float"], report["search"], report["float_weights"] = kept, path, weights
        return payload, report

    def report(self, recipe: Recipe, options: ConvertOptions, payload: bytes) -> dict:
        """The layer report of an integer file (made once per distinct file: int8 and int8-mixed's start are one)."""
        import hashlib

        from converters import mixed

        key = hashlib.sha256(payload).hexdigest()
        if key not in self._reports:
            self._reports[key] = mixed.layer_report(self.calibrated(), payload, self.calibration, self.judge(recipe, options),
                                                    io=options.io, log=self.log, float_weights=self.config.float_weights)
        return copy.deepcopy(self._reports[key])


def _convert_one(run, recipe: Recipe, saved: Path, calibration, io: str, out: Path, force: bool, log, layered: _Layered) -> dict:
    from converters.mixed import REPORT_SUFFIX, worst_line

    t0 = time.monotonic()
    dataset = representative_dataset(calibration) if recipe.needs_calibration else None
    options = ConvertOptions(io=io, representative_dataset=dataset)
    layer_report = None
    if recipe.keeps_float:
        recipe.check_options(options)
        tflite_bytes, layer_report = layered.mixed(recipe, options)
    elif recipe.needs_calibration:  # int8: the one calibrated graph, quantized (int8-mixed's start: one layer report)
        from converters.layers import quantize

        recipe.check_options(options)
        tflite_bytes = quantize(layered.calibrated(), io=io)
    else:
        tflite_bytes = run_converter(saved, recipe, options)
    summary = op_summary(tflite_bytes)
    check_graph(summary, run.encoder)
    if recipe.name == FP32:  # verify before writing: padded, all-air and extreme windows against Keras
        log(f"fp32 verification: max |file - Keras| {verify_fp32(tflite_bytes, run, layered.split):.1e} on padded, all-air and extreme windows")
    if recipe.needs_calibration and layer_report is None and layered.config.layer_report:
        layer_report = layered.report(recipe, options, tflite_bytes)
    description = describe_model(run, recipe, options, tflite_bytes, summary, calibration if dataset else None,
                                 layered.split)
    if recipe.keeps_float:
        description["kept_float"] = layer_report["kept_float"]
        description["float_weights"] = layer_report["float_weights"] if layer_report["kept_float"] else None
    path = write_model(out / recipe.file_name, tflite_bytes, description, force)
    if layer_report is not None:
        write_json_atomic(path.with_name(path.name + REPORT_SUFFIX), layer_report)
        log(f"{recipe.name}: {worst_line(layer_report)}"
            + (f"; kept in float: {', '.join(layer_report['kept_float']) or 'none'}" if recipe.keeps_float else ""))
    seconds = time.monotonic() - t0
    size = path.stat().st_size
    log(f"wrote {path} ({size / 1024:.1f} KiB, {io} I/O, {seconds:.1f} s)")
    log(format_op_summary(summary))
    return {"precision": recipe.name, "path": str(path), "size_bytes": size, "seconds": seconds,
            "source": str(run.path), "io": io}
