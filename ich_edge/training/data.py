"""Training input from the prepared cache: study-level split, a seeded window plan, augmentation.

* :func:`split_studies` splits by patient (all series of all studies of one patient land on
  one side: RSNA holds repeat scans of one patient), stratified on the patient's ``any``
  label and seeded, so no slice of a validation patient is trained on.
* Training samples are windows of ``window_slices`` consecutive slices. Each epoch has a
  *window plan* (:func:`epoch_plan`): a grid of windows over every series at a random offset
  (every slice covered once or twice), shuffled and cut to a fixed number of windows, with
  one augmentation draw per window. The plan is a function of ``(seed, epoch)`` only, so a
  resumed run sees the same data and two runs with one seed see the same stream.
* The pipeline is ``from_tensor_slices(plan) -> map(read window by index, parallel) ->
  batch -> prefetch``: windows are sliced out of ``series.images`` by index (numpy arrays
  or read-only memmaps; the cache is never copied whole into memory), several at a time.
  No Python generator runs per window.
* Several workers (:func:`worker_share`): each reads only its share of every global batch
  of the plan (``input_pipeline_id`` of ``num_input_pipelines``); the shares are disjoint
  and together are the plan.
* Series shorter than a window are padded at the end with blank (all-zero) slices exactly
  like :func:`ich_edge.sequence.gather_windows`; the sample weight of padded positions and of
  slices with unknown labels is 0, so the loss ignores them.
* Augmentation, one draw per window and the same for all its slices: left-right flip, a
  rotation of a few degrees and a small shift (bilinear, blank fill), and an intensity
  jitter per channel (gain and offset on the windowed values; pixels below the window stay
  0, so padding stays blank). The draws are in the plan; the transform runs batched in
  TensorFlow in the training step (:class:`AugmentLayer`, first layer of the training model,
  active only in training), so on a GPU it runs on the GPU and the CPU only slices uint8.
* Elements are ``((uint8 (T, S, S, 3), float32 (10,) augmentation), labels, weights)``;
  :class:`AugmentLayer` turns the window into ``images * UNIT_PER_PIXEL`` float32 (the rule of
  :func:`ich_edge.transforms.pixels_to_unit`). Labels are float32
  ``(T, 6)``; sample weights ``(T,)`` are rescaled per batch to average 1 over the batch, so
  the Keras loss (summed over positions, divided by their count) is the mean over the valid
  positions only.
* Study labels only (``labels="study"``, for report-labelled data): an element is a whole
  series (up to :data:`MAX_STUDY_WINDOW_SLICES` slices), its labels the study's on every real
  slice and -1 on padding, and the loss (:func:`ich_edge.training.train.study_loss`) is
  taken on the max over the slices, the study rule of :mod:`ich_edge.sequence`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ich_edge import LABELS
from ich_edge.ingest.cache import CachedSeries
from ich_edge.errors import ConfigError
from ich_edge.sequence import SequenceConfig, epoch_window_starts, window_indices
from ich_edge.study_truth import study_truth
from ich_edge.transforms import UNIT_PER_PIXEL
from ich_edge.training.keras import keras, tf

#: Number of augmentation parameters per window: flip, angle, dx, dy, 3 gains, 3 offsets.
NUM_AUGMENT_PARAMS = 10
#: Identity augmentation (no flip, no rotation or shift, gain 1, offset 0).
IDENTITY_PARAMS = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 0], np.float32)
#: Label sources: per-slice labels, or study labels only (loss on the max over slices).
LABEL_SOURCES = ("slice", "study")
#: Longest series trained whole with study labels; longer ones are cut at a seeded start.
MAX_STUDY_WINDOW_SLICES = 64


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of the training augmentation (all zero / False disables it).

    Attributes
    ----------
    flip : left-right flip with probability 1/2.
    rotation_deg : rotation drawn uniformly in [-rotation_deg, rotation_deg] degrees.
    shift_fraction : shift in x and y drawn uniformly within +/- this fraction of the side.
    intensity_jitter : per-channel gain in 1 +/- jitter and offset in +/- jitter / 2
        on the [0, 1] windowed values.
    """

    flip: bool = True
    rotation_deg: float = 5.0
    shift_fraction: float = 0.05
    intensity_jitter: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.rotation_deg <= 30.0:
            raise ConfigError(f"rotation_deg must be in 0..30 (a few degrees fits CT), got {self.rotation_deg}")
        if not 0.0 <= self.shift_fraction <= 0.25:
            raise ConfigError(f"shift_fraction must be in 0..0.25, got {self.shift_fraction}")
        if not 0.0 <= self.intensity_jitter <= 0.5:
            raise ConfigError(f"intensity_jitter must be in 0..0.5, got {self.intensity_jitter}")

    @property
    def enabled(self) -> bool:
        return self.flip or self.rotation_deg > 0 or self.shift_fraction > 0 or self.intensity_jitter > 0


@dataclass(frozen=True)
class Split:
    """Study uids on each side of the train/validation split."""

    train_studies: tuple[str, ...]
    val_studies: tuple[str, ...]
    seed: int
    val_fraction: float

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "train_studies": list(self.train_studies),
            "val_studies": list(self.val_studies),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Split":
        return cls(tuple(data["train_studies"]), tuple(data["val_studies"]), int(data["seed"]), float(data["val_fraction"]))


def study_label_table(series_list: list[CachedSeries]) -> dict[str, np.ndarray]:
    """``{study_uid: int8 (K,)}``: the study truth of :func:`ich_edge.study_truth.study_truth` (-1: unknown; K: the series' label columns)."""
    return study_truth(series_list)


def label_width(series_list: list[CachedSeries]) -> int:
    """Label columns of the series (six, or a model's subset after ``CachedSeries.with_labels``); one width for all."""
    widths = {len(s.label_names) for s in series_list}
    if len(widths) > 1:
        raise ConfigError(f"the series carry different label columns ({sorted(widths)}); select one set with with_labels")
    return widths.pop() if widths else len(LABELS)


def patient_groups(series_list: list[CachedSeries]) -> list[tuple[str, ...]]:
    """Studies that must stay together: those sharing a patient (``patient_uid``), transitively.

    Each group is a sorted tuple of study uids; the groups are sorted by their first study.
    A study whose patient is unknown (``patient_uid`` equal to its study uid) is its own group.
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for series in series_list:
        study, patient = f"s:{series.study_uid}", f"p:{series.patient_uid or series.study_uid}"
        for node in (study, patient):
            parent.setdefault(node, node)
        a, b = root(study), root(patient)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for node in parent:
        if node.startswith("s:"):
            groups.setdefault(root(node), []).append(node[2:])
    return sorted(tuple(sorted(studies)) for studies in groups.values())


def split_studies(series_list: list[CachedSeries], val_fraction: float, seed: int) -> Split:
    """Split the studies of ``series_list`` into train and validation by patient, stratified on ``any``.

    Parameters
    ----------
    series_list : the cache's series; all studies of one patient (:func:`patient_groups`)
        stay on one side, and so do the several series of one study.
    val_fraction : share of patients (per stratum, rounded) kept for validation; a patient is
        positive when any of its studies is.
    seed : seed of the shuffle; the same seed and cache give the same split. When every
        patient has one study the split is the former study-level split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    table = study_label_table(series_list)
    groups = patient_groups(series_list)
    if len(groups) < 2:
        hint = (
            "; they all carry one (0010,0020) Patient ID (sets from an older `ich-edge synth` say SYNTHETIC "
            "for every study: write the set again)" if len(table) > 1 else ""
        )
        raise ConfigError(
            f"the cache holds {len(table)} studies of {len(groups)} patient; training needs at least 2 patients "
            f"(one to validate on){hint}"
        )
    rng = np.random.default_rng(seed)
    names = series_list[0].label_names
    any_column = names.index("any") if "any" in names else None  # else: positive when any label is
    strata: dict[int, list[tuple[str, ...]]] = {}
    for group in groups:
        positive = max(int(table[uid][any_column] if any_column is not None else table[uid].max()) for uid in group)
        strata.setdefault(positive, []).append(group)
    # Validation size rounded half up overall, shared between strata by largest remainder.
    n_total = min(len(groups) - 1, max(1, int(val_fraction * len(groups) + 0.5)))
    keys = sorted(strata)
    quotas = {k: val_fraction * len(strata[k]) for k in keys}
    counts = {k: int(quotas[k]) for k in keys}
    for k in sorted(keys, key=lambda k: quotas[k] - counts[k], reverse=True)[: max(0, n_total - sum(counts.values()))]:
        counts[k] += 1
    val: list[str] = []
    for key in keys:
        members = strata[key]
        order = rng.permutation(len(members))
        val.extend(uid for i in order[: counts[key]] for uid in members[i])
    val_set = set(val)
    train = tuple(uid for uid in sorted(table) if uid not in val_set)
    return Split(train, tuple(sorted(val_set)), seed, val_fraction)


def select_studies(series_list: list[CachedSeries], study_uids) -> list[CachedSeries]:
    """The series belonging to ``study_uids``, in cache order (the images stay on disk)."""
    wanted = set(study_uids)
    return [s for s in series_list if s.study_uid in wanted]


def overlapping_studies(test: list[CachedSeries], train: list[CachedSeries]) -> set[str]:
    """Study uids of ``test`` that are in ``train`` or belong to a patient with a study in ``train``."""
    train_studies = {s.study_uid for s in train}
    train_patients = {s.patient_uid for s in train if s.patient_uid}
    return {s.study_uid for s in test if s.study_uid in train_studies or s.patient_uid in train_patients}


def cut_window(series: CachedSeries, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and sample weights of one window; ``indices`` of -1 are blank padding.

    Returns ``uint8 (T, S, S, 3)``, ``float32 (T, K)`` (0 where unknown; K: the series' label
    columns) and ``float32 (T,)`` (1 on slices with all K labels known, 0 on padding and unknown labels).
    """
    valid = indices >= 0
    images = np.zeros((len(indices), *series.images.shape[1:]), np.uint8)
    images[valid] = series.images[indices[valid]]
    raw = np.zeros((len(indices), len(series.label_names)), np.int8)
    raw[valid] = series.slice_labels[indices[valid]]
    weights = (valid & (raw >= 0).all(axis=1)).astype(np.float32)
    labels = np.clip(raw, 0, 1).astype(np.float32)
    return images, labels, weights


def cache_identity(preprocess, series_list: list[CachedSeries]) -> str:
    """Content identity of a cache, independent of where it is mounted: a hash of its
    preprocessing and of its series (uid, study, slice count)."""
    rows = sorted((s.series_uid, s.study_uid, int(s.num_slices)) for s in series_list)
    text = json.dumps({"preprocess": preprocess.to_dict(), "series": rows}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def windows_per_epoch(series_list: list[CachedSeries], window_slices: int) -> int:
    """Training windows per epoch: enough to cover every slice once."""
    return sum(-(-s.num_slices // window_slices) for s in series_list)


def _has_known_slice(series: CachedSeries) -> bool:
    return bool((np.asarray(series.slice_labels) >= 0).all(axis=1).any())


def trainable(series_list: list[CachedSeries], labels: str = "slice") -> list[CachedSeries]:
    """Series usable for training: with a slice whose six labels are known (``slice``), or
    whose study labels are known (``study``: study labels, else the max of its slice labels)."""
    if labels == "slice":
        return [s for s in series_list if _has_known_slice(s)]
    table = study_label_table(series_list)
    return [s for s in series_list if (table[s.study_uid] >= 0).all()]


def label_source(series_list: list[CachedSeries], requested: str = "auto") -> str:
    """``slice`` when any series has known slice labels, else ``study``; or ``requested``."""
    if requested in LABEL_SOURCES:
        return requested
    if requested != "auto":
        raise ConfigError(f"labels must be auto, slice or study, got {requested!r}")
    return "slice" if any(_has_known_slice(s) for s in series_list) else "study"


def study_window_slices(series_list: list[CachedSeries]) -> int:
    """Window length of study-label training: the longest series, at most :data:`MAX_STUDY_WINDOW_SLICES`."""
    return int(min(MAX_STUDY_WINDOW_SLICES, max(s.num_slices for s in series_list)))


def augment_params(rng: np.random.Generator, config: AugmentConfig, size_px: int) -> np.ndarray:
    """One window's draw: ``[flip, angle_rad, dx_px, dy_px, gain x3, offset x3]`` float32."""
    return augment_param_table(rng, config, size_px, 1)[0]


def augment_param_table(rng: np.random.Generator, config: AugmentConfig, size_px: int, count: int) -> np.ndarray:
    """``count`` independent draws of :func:`augment_params` as ``float32 (count, 10)``."""
    flip = (rng.random(count) < 0.5) & bool(config.flip)
    angle = np.deg2rad(rng.uniform(-config.rotation_deg, config.rotation_deg, count))
    shift = rng.uniform(-config.shift_fraction, config.shift_fraction, (count, 2)) * size_px
    gain = 1.0 + rng.uniform(-config.intensity_jitter, config.intensity_jitter, (count, 3))
    offset = rng.uniform(-config.intensity_jitter / 2, config.intensity_jitter / 2, (count, 3))
    return np.column_stack([flip, angle, shift, gain, offset]).astype(np.float32)


def _transform_matrices(params, size_px: int):
    """Projective transforms ``(N, 8)`` (output -> input pixel): rotation about the centre plus a shift."""
    angle, dx, dy = params[:, 1], params[:, 2], params[:, 3]
    cos, sin = tf.cos(angle), tf.sin(angle)
    center = (size_px - 1) / 2.0
    a2 = center - cos * center + sin * center - dx
    b2 = center - sin * center - cos * center - dy
    zero = tf.zeros_like(cos)
    return tf.stack([cos, -sin, a2, sin, cos, b2, zero, zero], axis=1)


def augment_batch(images, params):
    """Apply per-window draws ``params (B, 10)`` to windows ``float32 (B, T, S, S, 3)`` in [0, 1].

    One ``ImageProjectiveTransformV3`` over all ``B*T`` slices (each window's transform
    repeated over its slices), so the work is batched TensorFlow ops on whatever device runs it.
    """
    shape = tf.shape(images)
    batch, slices = shape[0], shape[1]
    size_px = images.shape[2]
    flip = tf.reshape(params[:, 0] > 0.5, (-1, 1, 1, 1, 1))
    images = tf.where(flip, tf.reverse(images, axis=[3]), images)
    flat = tf.reshape(images, (batch * slices, size_px, size_px, 3))
    transforms = tf.repeat(_transform_matrices(params, size_px), slices, axis=0)
    flat = tf.raw_ops.ImageProjectiveTransformV3(
        images=flat,
        transforms=transforms,
        output_shape=tf.constant([size_px, size_px], tf.int32),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    images = tf.reshape(flat, shape)
    gain = tf.reshape(params[:, 4:7], (-1, 1, 1, 1, 3))
    offset = tf.reshape(params[:, 7:10], (-1, 1, 1, 1, 3))
    jittered = tf.clip_by_value(images * gain + offset, 0.0, 1.0)
    # Pixels below the window (and blank padding slices) stay at 0, as an HU shift would leave them.
    return tf.where(images > 0.0, jittered, tf.zeros_like(images))


def apply_augment(images, params):
    """Apply one draw of :func:`augment_params` to a window ``float32 (T, S, S, 3)`` in [0, 1]."""
    return augment_batch(tf.convert_to_tensor(images)[None], tf.convert_to_tensor(params)[None])[0]


class AugmentLayer(keras.layers.Layer):
    """First layer of the training model: ``[uint8 windows, params]`` -> ``images * UNIT_PER_PIXEL``,
    augmented by :func:`augment_batch` in training only (identity at validation)."""

    def __init__(self, enabled: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.enabled = enabled

    def call(self, inputs, training=None):
        window, params = inputs
        images = tf.cast(window, tf.float32) * UNIT_PER_PIXEL
        if training and self.enabled:
            images = augment_batch(images, params)
        return images

    def get_config(self) -> dict:
        return {**super().get_config(), "enabled": self.enabled}


def training_model(model, window_slices: int, size_px: int, augment: AugmentConfig):
    """``model`` behind an :class:`AugmentLayer`: inputs ``(uint8 window, params)``; shares its weights."""
    window = keras.Input((window_slices, size_px, size_px, 3), dtype="uint8", name="window_uint8")
    params = keras.Input((NUM_AUGMENT_PARAMS,), name="augment_params")
    images = AugmentLayer(augment.enabled, name="augment", dtype="float32")([window, params])
    return keras.Model([window, params], model(images), name=f"{model.name}_training")


@dataclass(frozen=True)
class WindowPlan:
    """Which windows an epoch reads, in order: series index (-1: a blank window), first slice,
    and the augmentation draw of each window."""

    series_index: np.ndarray
    start: np.ndarray
    params: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def take(self, positions: np.ndarray) -> "WindowPlan":
        return WindowPlan(self.series_index[positions], self.start[positions], self.params[positions])

    def digest(self) -> str:
        """Short hash of the windows (not the draws): lets workers' logs be compared."""
        pairs = np.stack([self.series_index, self.start], axis=1).astype(np.int64)
        return hashlib.sha1(pairs.tobytes()).hexdigest()[:12]


def epoch_plan(lengths, window_slices: int, count: int, seed: int, epoch: int, augment: AugmentConfig,
               size_px: int, whole_series: bool = False) -> WindowPlan:
    """The seeded window plan of one epoch: ``count`` windows over series of ``lengths`` slices.

    A grid of windows per series at a random offset (:func:`ich_edge.sequence.epoch_window_starts`),
    shuffled, repeated or cut to ``count``; ``whole_series`` (study labels) takes one window
    per series instead, at a seeded start when the series is longer than the window.
    A function of ``(seed, epoch)`` and the inputs only.
    """
    rng = np.random.default_rng((seed, epoch))
    if whole_series:
        plan = [(i, int(rng.integers(n - window_slices + 1)) if n > window_slices else 0) for i, n in enumerate(lengths)]
    else:
        plan = [(i, start) for i, n in enumerate(lengths) for start in epoch_window_starts(int(n), window_slices, rng)]
    order = rng.permutation(len(plan))
    order = np.resize(order, count) if len(order) < count else order[:count]
    pairs = np.asarray(plan, np.int32)[order]
    return WindowPlan(pairs[:, 0], pairs[:, 1], augment_param_table(rng, augment, size_px, count))


def worker_share(count: int, global_batch: int, worker: int, num_workers: int) -> np.ndarray:
    """Positions in a plan of ``count`` windows that input pipeline ``worker`` of ``num_workers`` reads.

    Global batch ``k`` is plan positions ``[k*B, (k+1)*B)``; worker ``w`` reads its ``w``-th
    contiguous ``B / num_workers`` of every batch, so the shares are disjoint and cover the plan.
    """
    if global_batch % num_workers:
        raise ConfigError(f"the global batch {global_batch} must be divisible by the {num_workers} workers")
    per_worker = global_batch // num_workers
    positions = np.arange(count)
    return positions[(positions % global_batch) // per_worker == worker]


@dataclass(frozen=True)
class Share:
    """This input pipeline's place: ``worker`` of ``num_workers``, batches of ``per_replica_batch``."""

    worker: int = 0
    num_workers: int = 1
    per_replica_batch: int | None = None


def _options():
    options = tf.data.Options()
    # Each worker reads its own share of the plan (worker_share): no automatic sharding.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return options


def _normalize_weights(inputs, labels, weights):
    """Rescale a batch's sample weights to mean 1 (mean loss over valid positions only)."""
    total = tf.reduce_sum(weights)
    scale = tf.cast(tf.size(weights), tf.float32) / tf.maximum(total, 1.0)
    return inputs, labels, weights * scale


def _reader(series_list: list[CachedSeries], window_slices: int, labels: str):
    """``read(series_index, start)`` -> uint8 window, float32 labels, float32 weights (numpy)."""
    size_px = int(series_list[0].images.shape[1])
    width = label_width(series_list)
    table = study_label_table(series_list) if labels == "study" else None

    def read(index, start):
        images = np.zeros((window_slices, size_px, size_px, 3), np.uint8)
        raw = np.full((window_slices, width), -1, np.int8)
        if index >= 0:
            series = series_list[int(index)]
            stop = min(series.num_slices, int(start) + window_slices)
            images[: stop - start] = series.images[start:stop]
            raw[: stop - start] = series.slice_labels[start:stop] if table is None else table[series.study_uid]
        if table is not None:  # study labels: -1 marks padding for the loss; one weight per window
            return images, raw.astype(np.float32), np.float32(index >= 0)
        weights = (raw >= 0).all(axis=1).astype(np.float32)
        return images, np.clip(raw, 0, 1).astype(np.float32), weights

    return read, size_px


def _windows_dataset(plans, series_list, window_slices: int, labels: str, batch: int):
    """Plans (a dataset of epoch numbers -> WindowPlan via numpy) -> batched training elements."""
    read, size_px = _reader(series_list, window_slices, labels)
    width = label_width(series_list)
    weight_shape = () if labels == "study" else (window_slices,)

    def read_window(index, start, params):
        images, y, w = tf.numpy_function(read, [index, start], [tf.uint8, tf.float32, tf.float32], stateful=False)
        images.set_shape((window_slices, size_px, size_px, 3))
        y.set_shape((window_slices, width))
        w.set_shape(weight_shape)
        return (images, params), y, w

    dataset = plans.map(read_window, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch, drop_remainder=True).map(_normalize_weights)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _plan_dataset(plan_of_epoch, first_epoch: int, epochs: int | None):
    """Dataset of plan rows ``(series_index, start, params)``, epoch after epoch from ``first_epoch``."""

    def arrays(epoch):
        plan = plan_of_epoch(int(epoch))
        return plan.series_index.astype(np.int32), plan.start.astype(np.int32), plan.params.astype(np.float32)

    def rows(epoch):
        index, start, params = tf.numpy_function(arrays, [epoch], [tf.int32, tf.int32, tf.float32], stateful=False)
        params.set_shape((None, NUM_AUGMENT_PARAMS))
        return tf.data.Dataset.from_tensor_slices((index, start, params))

    stop = first_epoch + epochs if epochs is not None else np.iinfo(np.int64).max
    return tf.data.Dataset.range(first_epoch, stop).flat_map(rows)


def train_plan(series_list, window_slices: int, batch_size: int, seed: int, augment: AugmentConfig = AugmentConfig(),
               labels: str = "slice"):
    """``(plan_of_epoch, steps_per_epoch, window_slices)`` of the training stream (global, unsharded)."""
    series_list = trainable(series_list, labels)
    if not series_list:
        raise ConfigError("no training series has labels of the kind asked for; "
                          "label the slices, or pass study labels and --labels study")
    size_px = int(series_list[0].images.shape[1])
    lengths = [s.num_slices for s in series_list]
    whole = labels == "study"
    if whole:
        window_slices = study_window_slices(series_list)
        per_epoch = len(series_list)
    else:
        per_epoch = windows_per_epoch(series_list, window_slices)
    steps = max(1, per_epoch // batch_size)
    count = steps * batch_size

    def plan_of_epoch(epoch: int) -> WindowPlan:
        return epoch_plan(lengths, window_slices, count, seed, epoch, augment, size_px, whole)

    return plan_of_epoch, steps, window_slices, series_list


def train_dataset(
    series_list: list[CachedSeries],
    window_slices: int,
    batch_size: int,
    seed: int,
    augment: AugmentConfig = AugmentConfig(),
    first_epoch: int = 0,
    labels: str = "slice",
    share: Share = Share(),
    epochs: int | None = None,
):
    """Endless (or ``epochs`` long) shuffled, prefetched training batches; returns ``(dataset, steps_per_epoch)``.

    Each element is ``((uint8 (B, T, S, S, 3), float32 (B, 10)), float32 (B, T, 6), float32
    (B, T))`` (weights ``(B,)`` with study labels), ``B`` the per-replica batch of ``share``
    (default: ``batch_size``, the global batch). Epoch ``e`` reads :func:`epoch_plan` of
    ``(seed, e)``, this worker's :func:`worker_share` of it; ``first_epoch`` lets a resumed
    run continue the same stream. Augmentation is applied by :class:`AugmentLayer`.
    """
    plan_of_epoch, steps, window_slices, series_list = train_plan(series_list, window_slices, batch_size, seed, augment, labels)
    positions = worker_share(steps * batch_size, batch_size, share.worker, share.num_workers)

    def my_plan(epoch: int) -> WindowPlan:
        return plan_of_epoch(epoch).take(positions)

    batch = share.per_replica_batch or batch_size // share.num_workers
    dataset = _windows_dataset(_plan_dataset(my_plan, first_epoch, epochs), series_list, window_slices, labels, batch)
    return dataset, steps


def eval_plan(series_list: list[CachedSeries], sequence_config: SequenceConfig, batch_size: int, labels: str = "slice",
              study_window: int | None = None) -> tuple[WindowPlan, int, int]:
    """``(plan, steps, window_slices)``: every window of the sequence rule (one series per
    element, its first ``study_window`` slices, with study labels), filled up with blank
    windows to whole global batches."""
    if labels == "study":
        window = study_window or study_window_slices(series_list)
        pairs = [(i, 0) for i in range(len(series_list))]
    else:
        window = sequence_config.window_slices
        pairs = [(i, int(idx[0])) for i, s in enumerate(series_list) for idx in window_indices(s.num_slices, sequence_config)]
    steps = -(-len(pairs) // batch_size)
    pairs += [(-1, 0)] * (steps * batch_size - len(pairs))
    pairs = np.asarray(pairs, np.int32)
    params = np.tile(IDENTITY_PARAMS, (len(pairs), 1))
    return WindowPlan(pairs[:, 0], pairs[:, 1], params), steps, window


def eval_dataset(series_list: list[CachedSeries], sequence_config: SequenceConfig, batch_size: int,
                 labels: str = "slice", share: Share = Share(), study_window: int | None = None):
    """Validation batches of the sequence rule's windows, repeated endlessly; returns ``(dataset, steps)``.

    The last batch is filled up with blank zero-weight windows so that every batch is full
    (and splits evenly across workers); each pass is ``steps`` batches, so Keras reads one
    pass per epoch with ``validation_steps=steps``.
    """
    series_list = trainable(series_list, labels)
    if not series_list:
        raise ConfigError("no validation series has labels of the kind training uses; increase --val-fraction or label the slices")
    plan, steps, window = eval_plan(series_list, sequence_config, batch_size, labels, study_window)
    mine = plan.take(worker_share(len(plan), batch_size, share.worker, share.num_workers))
    batch = share.per_replica_batch or batch_size // share.num_workers
    dataset = _windows_dataset(_plan_dataset(lambda epoch: mine, 0, None), series_list, window, labels, batch)
    return dataset, steps
