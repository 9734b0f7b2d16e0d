"""Training input from the prepared cache: study-level split, slice windows, CT augmentation.

* :func:`split_studies` splits by patient (all series of all studies of one patient land on
  one side: RSNA holds repeat scans of one patient), stratified on the patient's ``any``
  label and seeded, so no slice of a validation patient is trained on.
* Training samples are windows of ``window_slices`` consecutive slices. Each epoch lays a
  grid of windows over every series at a random offset (every slice covered once or twice),
  shuffles them and keeps a fixed number, so epochs have a fixed number of steps and the
  whole stream is a function of ``(seed, epoch)``: a resumed run sees the same data.
* Series shorter than a window are padded at the end with blank (all-zero) slices exactly
  like :func:`ich_edge.sequence.gather_windows`; the sample weight of padded positions and of
  slices with unknown labels is 0, so the loss ignores them.
* Augmentation, one draw per window and the same for all its slices: left-right flip, a
  rotation of a few degrees and a small shift (bilinear, blank fill), and an intensity
  jitter per channel (gain and offset on the windowed values; pixels below the window stay
  0, so padding stays blank). The draws are made in numpy from the epoch's generator.
* Model input is ``images / 255`` as float32; labels are float32 ``(T, 6)``; sample weights
  ``(T,)`` are rescaled per batch to average 1 over the batch, so the Keras loss (summed over
  positions, divided by their count) is the mean over the valid positions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ich_edge import ANY_INDEX, LABELS
from ich_edge.cache import CachedSeries
from ich_edge.errors import ConfigError
from ich_edge.sequence import SequenceConfig, epoch_window_starts, window_indices
from ich_edge.training.keras import tf

#: Number of augmentation parameters per window: flip, angle, dx, dy, 3 gains, 3 offsets.
NUM_AUGMENT_PARAMS = 10


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
    """``{study_uid: int8 (6,)}``: study labels, else the max of known slice labels, else -1."""
    table: dict[str, np.ndarray] = {}
    for series in series_list:
        if series.has_study_labels:
            labels = np.asarray(series.study_labels, np.int8)
        elif series.slice_labels.size and series.has_slice_labels:
            labels = series.slice_labels.max(axis=0).astype(np.int8)
        else:
            labels = np.full(len(LABELS), -1, np.int8)
        previous = table.get(series.study_uid)
        table[series.study_uid] = labels if previous is None else np.maximum(previous, labels)
    return table


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
    strata: dict[int, list[tuple[str, ...]]] = {}
    for group in groups:
        positive = max(int(table[uid][ANY_INDEX]) for uid in group)
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

    Returns ``uint8 (T, S, S, 3)``, ``float32 (T, 6)`` (0 where unknown) and ``float32 (T,)``
    (1 on slices with all six labels known, 0 on padding and unknown labels).
    """
    valid = indices >= 0
    images = np.zeros((len(indices), *series.images.shape[1:]), np.uint8)
    images[valid] = series.images[indices[valid]]
    raw = np.zeros((len(indices), len(LABELS)), np.int8)
    raw[valid] = series.slice_labels[indices[valid]]
    weights = (valid & (raw >= 0).all(axis=1)).astype(np.float32)
    labels = np.clip(raw, 0, 1).astype(np.float32)
    return images, labels, weights


def windows_per_epoch(series_list: list[CachedSeries], window_slices: int) -> int:
    """Training windows per epoch: enough to cover every slice once."""
    return sum(-(-s.num_slices // window_slices) for s in series_list)


def trainable(series_list: list[CachedSeries]) -> list[CachedSeries]:
    """Series with at least one slice whose six labels are known."""
    return [s for s in series_list if (s.slice_labels >= 0).all(axis=1).any()]


def augment_params(rng: np.random.Generator, config: AugmentConfig, size_px: int) -> np.ndarray:
    """One window's draw: ``[flip, angle_rad, dx_px, dy_px, gain x3, offset x3]`` float32."""
    flip = float(config.flip and rng.random() < 0.5)
    angle = np.deg2rad(rng.uniform(-config.rotation_deg, config.rotation_deg))
    dx, dy = rng.uniform(-config.shift_fraction, config.shift_fraction, 2) * size_px
    gain = 1.0 + rng.uniform(-config.intensity_jitter, config.intensity_jitter, 3)
    offset = rng.uniform(-config.intensity_jitter / 2, config.intensity_jitter / 2, 3)
    return np.array([flip, angle, dx, dy, *gain, *offset], np.float32)


def _transform_matrix(params, size_px: int):
    """Projective transform (output -> input pixel) for a rotation about the centre plus a shift."""
    angle, dx, dy = params[1], params[2], params[3]
    cos, sin = tf.cos(angle), tf.sin(angle)
    center = (size_px - 1) / 2.0
    a2 = center - cos * center + sin * center - dx
    b2 = center - sin * center - cos * center - dy
    zero = tf.zeros_like(cos)
    return tf.reshape(tf.stack([cos, -sin, a2, sin, cos, b2, zero, zero]), (1, 8))


def apply_augment(images, params):
    """Apply one draw of :func:`augment_params` to a window ``float32 (T, S, S, 3)`` in [0, 1]."""
    size_px = images.shape[1]
    images = tf.cond(params[0] > 0.5, lambda: tf.reverse(images, axis=[2]), lambda: images)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_transform_matrix(params, size_px),
        output_shape=tf.constant([size_px, size_px], tf.int32),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    jittered = tf.clip_by_value(images * params[4:7] + params[7:10], 0.0, 1.0)
    # Pixels below the window (and blank padding slices) stay at 0, as an HU shift would leave them.
    return tf.where(images > 0.0, jittered, tf.zeros_like(images))


def _normalize_weights(images, labels, weights):
    """Rescale a batch's sample weights to mean 1 (mean loss over valid positions only)."""
    total = tf.reduce_sum(weights)
    scale = tf.cast(tf.size(weights), tf.float32) / tf.maximum(total, 1.0)
    return images, labels, weights * scale


def _signature(window_slices: int, size_px: int, with_params: bool):
    spec = (
        tf.TensorSpec((window_slices, size_px, size_px, 3), tf.uint8),
        tf.TensorSpec((window_slices, len(LABELS)), tf.float32),
        tf.TensorSpec((window_slices,), tf.float32),
    )
    return spec + (tf.TensorSpec((NUM_AUGMENT_PARAMS,), tf.float32),) if with_params else spec


def _options():
    options = tf.data.Options()
    # Every worker runs the same seeded generator and keeps its share of each batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return options


def train_dataset(
    series_list: list[CachedSeries],
    window_slices: int,
    batch_size: int,
    seed: int,
    augment: AugmentConfig = AugmentConfig(),
    first_epoch: int = 0,
):
    """Endless, shuffled, augmented, prefetched training batches; returns ``(dataset, steps_per_epoch)``.

    Each element is ``(float32 (B, T, S, S, 3), float32 (B, T, 6), float32 (B, T))``.
    Epoch ``e`` is drawn from ``numpy.random.default_rng((seed, e))``; ``first_epoch`` lets a
    resumed run continue the same stream.
    """
    series_list = trainable(series_list)
    if not series_list:
        raise ConfigError("no training series has slice labels; training needs per-slice labels")
    size_px = int(series_list[0].images.shape[1])
    per_epoch = windows_per_epoch(series_list, window_slices)
    steps = max(1, per_epoch // batch_size)
    count = steps * batch_size

    def generate():
        epoch = first_epoch
        while True:
            rng = np.random.default_rng((seed, epoch))
            plan = [(i, start) for i, s in enumerate(series_list) for start in epoch_window_starts(s.num_slices, window_slices, rng)]
            order = rng.permutation(len(plan))
            order = np.resize(order, count) if len(order) < count else order[:count]
            for k in order:
                i, start = plan[k]
                indices = np.arange(start, start + window_slices)
                indices[indices >= series_list[i].num_slices] = -1
                images, labels, weights = cut_window(series_list[i], indices)
                yield images, labels, weights, augment_params(rng, augment, size_px)
            epoch += 1

    def to_model_input(images, labels, weights, params):
        scaled = tf.cast(images, tf.float32) / 255.0
        if augment.enabled:
            scaled = apply_augment(scaled, params)
        return scaled, labels, weights

    dataset = tf.data.Dataset.from_generator(generate, output_signature=_signature(window_slices, size_px, True))
    dataset = dataset.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True).map(_normalize_weights)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options()), steps


def eval_windows(series_list: list[CachedSeries], sequence_config: SequenceConfig):
    """Every window of every series by the sequence rule (no augmentation), as a generator."""
    for series in series_list:
        for indices in window_indices(series.num_slices, sequence_config):
            yield cut_window(series, indices)


def eval_dataset(series_list: list[CachedSeries], sequence_config: SequenceConfig, batch_size: int):
    """Validation batches of the sequence rule's windows; returns ``(dataset, steps)``.

    The last batch is filled up with blank zero-weight windows so that every batch is full
    (and splits evenly across workers); the dataset declares its length, so Keras
    re-iterates it every epoch.
    """
    series_list = trainable(series_list)
    if not series_list:
        raise ConfigError("no validation series has slice labels; increase --val-fraction or label the slices")
    size_px = int(series_list[0].images.shape[1])
    count = sum(len(window_indices(s.num_slices, sequence_config)) for s in series_list)
    steps = -(-count // batch_size)
    window = sequence_config.window_slices
    blank = (
        np.zeros((window, size_px, size_px, 3), np.uint8),
        np.zeros((window, len(LABELS)), np.float32),
        np.zeros((window,), np.float32),
    )

    def generate():
        yield from eval_windows(series_list, sequence_config)
        for _ in range(steps * batch_size - count):
            yield blank

    dataset = tf.data.Dataset.from_generator(generate, output_signature=_signature(window, size_px, False))
    dataset = dataset.map(lambda x, y, w: (tf.cast(x, tf.float32) / 255.0, y, w))
    dataset = dataset.batch(batch_size, drop_remainder=True).map(_normalize_weights)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options()), steps
