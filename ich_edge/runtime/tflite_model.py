"""Run an ich-edge ``.tflite`` on a study: encode each slice once, classify windows, stitch.

The model file has two signatures (see ``ich-edge convert``):

* ``encode``: ``image (B, S, S, 3)`` -> ``features (B, F)``, batch resizable;
* ``classify``: ``features (1, T, F)`` -> ``probabilities (1, T, 6)``.

Inputs and outputs are float32, or uint8/int8 with per-tensor scale and zero point; this
module converts by each tensor's own dtype and quantization, so every precision is fed the
same uint8 window images. Runtime tier: numpy and the LiteRT interpreter only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ich_edge.errors import ConfigError, ModelError
from ich_edge.runtime.interpreter import make_interpreter
from ich_edge.runtime.model_check import CLASSIFY, ENCODE
from ich_edge.runtime.model_file import ModelFile
from ich_edge.sequence import feature_windows, stitch, study_probabilities
from ich_edge.transforms import pixels_to_unit

#: Slices per ``encode`` call: bounds activation memory for long studies at 256+ px.
DEFAULT_ENCODE_BATCH = 16


def _only(details: dict, role: str, path: Path) -> tuple[str, dict]:
    if len(details) != 1:
        raise ModelError(f"{path}: the {role} should have one tensor, found {sorted(details)}")
    return next(iter(details.items()))


def to_input(values_unit: np.ndarray, detail: dict) -> np.ndarray:
    """Float values (``[0, 1]`` images or features) in the dtype of an input tensor.

    Float inputs take the values as they are; int8/uint8 inputs take
    ``round(value / scale + zero_point)`` clipped to the dtype (for a uint8 image input with
    scale 1/255 and zero point 0 that is the raw window pixel).
    """
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values_unit.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    if not scale:
        raise ModelError(f"integer input {detail['name']} has no quantization scale")
    info = np.iinfo(dtype)
    quantized = np.rint(values_unit / np.float32(scale) + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def takes_raw_pixels(detail: dict) -> bool:
    """True when an input tensor is uint8 with scale 1/255 and zero point 0: raw window pixels."""
    if np.dtype(detail["dtype"]) != np.uint8:
        return False
    scale, zero_point = detail["quantization"]
    return zero_point == 0 and abs(scale * 255.0 - 1.0) < 1e-6


def from_output(values: np.ndarray, detail: dict) -> np.ndarray:
    """An output tensor as float32: ``(q - zero_point) * scale`` for integer outputs."""
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32, copy=False)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def _refuse_stateful(model_file: ModelFile) -> None:
    """:class:`ModelError` if any signature keeps state between invocations (variable tensors)."""
    stateful = model_file.stateful_signatures()
    if stateful:
        raise ModelError(
            f"{model_file.source} keeps state between invocations in variable tensors {stateful} (a fused LSTM "
            "from an older ich-edge): convert the run again with `ich-edge convert` for a stateless classify"
        )


class TFLiteStudyModel:
    """An ich-edge ``.tflite`` with its description, ready to run on uint8 window images.

    Parameters
    ----------
    model : a :class:`~ich_edge.runtime.model_file.ModelFile`, or the path of a ``.tflite``
        written by ``ich-edge convert`` (then opened here: read and checked once).
    num_threads : interpreter threads.
    use_xnnpack : False selects the reference kernels (no default delegate).
    encode_batch : slices per ``encode`` invocation.
    timing_only : accept a file whose ``classify`` keeps state in variable tensors (the fused
        LSTM of ich-edge before stateless conversion): its outputs are wrong from the second
        window on, so only ``bench`` may open one, to time it.
    """

    def __init__(
        self,
        model: ModelFile | str | Path,
        num_threads: int = 2,
        use_xnnpack: bool = True,
        encode_batch: int = DEFAULT_ENCODE_BATCH,
        timing_only: bool = False,
    ) -> None:
        # Validated in Python first (ModelFile.open): LiteRT's C++ loader can crash on a
        # damaged file. The interpreter is built from the bytes read there, not from the path.
        self.file = model if isinstance(model, ModelFile) else ModelFile.open(model)
        self.settings = self.file.require_settings()
        self.path = self.file.path if self.file.path is not None else Path(self.file.source)
        self.description = self.file.description
        if not timing_only:
            _refuse_stateful(self.file)
        if encode_batch < 1:
            raise ConfigError(f"encode_batch must be >= 1, got {encode_batch}")
        self.encode_batch = int(encode_batch)
        try:
            self.interpreter = make_interpreter(self.file.data, num_threads=num_threads, use_xnnpack=use_xnnpack)
            signatures = self.interpreter.get_signature_list()
        except (RuntimeError, ValueError) as err:
            raise ModelError(f"{self.path} cannot be loaded by the TFLite interpreter: {err}") from err
        missing = {ENCODE, CLASSIFY} - set(signatures)
        if missing:
            raise ModelError(f"{self.path} lacks the signature(s) {sorted(missing)}; convert it again with ich-edge convert")
        self._encode = self.interpreter.get_signature_runner(ENCODE)
        self._classify = self.interpreter.get_signature_runner(CLASSIFY)
        self._image_name, self._image = _only(self._encode.get_input_details(), "encode input", self.path)
        self._features_name, self._features = _only(self._encode.get_output_details(), "encode output", self.path)
        self._raw_pixels = takes_raw_pixels(self._image)
        self._window_name, self._window = _only(self._classify.get_input_details(), "classify input", self.path)
        self._probs_name, self._probs = _only(self._classify.get_output_details(), "classify output", self.path)
        self.sequence = self.settings.sequence
        self.input_size_px = int(self._image["shape_signature"][1])  # window and size: checked by model_check
        self._blank_features: np.ndarray | None = None

    @property
    def precision(self) -> str:
        """The conversion recipe the description names (``unknown`` if none)."""
        return self.settings.precision

    @property
    def labels(self) -> tuple[str, ...]:
        """Output labels, in the model's output order."""
        return self.settings.labels

    @property
    def sha256(self) -> str:
        """SHA-256 of the model file, hex (of the bytes read once by :class:`ModelFile`)."""
        return self.file.sha256

    @property
    def window_slices(self) -> int:
        return int(self._window["shape"][1])

    @property
    def feature_dim(self) -> int:
        return int(self._window["shape"][2])

    def _check_images(self, images_uint8: np.ndarray) -> np.ndarray:
        images = np.asarray(images_uint8)
        size = self.input_size_px
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
            raise ConfigError(
                f"expected uint8 window images of shape (N, {size}, {size}, 3), got {images.dtype} {images.shape}; "
                "preprocess the slices with ich_edge.transforms.Preprocess and this model's preprocessing"
            )
        return images

    def encode(self, images_uint8: np.ndarray) -> np.ndarray:
        """Features of each slice: ``uint8 (N, S, S, 3)`` -> ``float32 (N, F)``."""
        images = self._check_images(images_uint8)
        # A uint8 input with scale 1/255 takes the pixels as they are (what to_input would give).
        unit = images if self._raw_pixels else pixels_to_unit(images)
        out = []
        for start in range(0, len(unit), self.encode_batch):
            batch = unit[start : start + self.encode_batch]
            batch = batch if self._raw_pixels else to_input(batch, self._image)
            out.append(from_output(self._encode_batch(batch), self._features))
        if not out:
            return np.zeros((0, self.feature_dim), np.float32)
        return np.concatenate(out, axis=0)

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        """The ``encode`` signature's raw output for one model-ready batch (a subclass may run it elsewhere)."""
        return self._encode(**{self._image_name: batch})[self._features_name]

    def _classify_window(self, window: np.ndarray) -> np.ndarray:
        """The ``classify`` signature's raw output for one model-ready window (a subclass may run it elsewhere)."""
        return self._classify(**{self._window_name: window})[self._probs_name]

    def classify(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities per slice of each window: ``(W, T, F)`` features -> ``float32 (W, T, 6)``.

        ``classify`` is stateless (no variable tensors): each invocation is one window from
        the zero state, as in training, whatever ran before.
        """
        windows = np.asarray(windows, dtype=np.float32)
        expected = (self.window_slices, self.feature_dim)
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ConfigError(f"expected feature windows of shape (W, {expected[0]}, {expected[1]}), got {windows.shape}")
        out = np.empty((len(windows), self.window_slices, int(self._probs["shape"][-1])), np.float32)
        for i, window in enumerate(windows):
            fed = to_input(window[None], self._window)
            out[i] = from_output(self._classify_window(fed), self._probs)[0]
        return out

    def blank_features(self) -> np.ndarray:
        """Features of a blank (all-zero) slice: what pads a study shorter than one window."""
        if self._blank_features is None:
            size = self.input_size_px
            self._blank_features = self.encode(np.zeros((1, size, size, 3), np.uint8))[0]
        return self._blank_features

    def windows(self, features: np.ndarray) -> np.ndarray:
        """Cut per-slice features into windows; padding slots get the blank slice's features."""
        return feature_windows(features, self.sequence, self.blank_features)

    def predict_series(self, images_uint8: np.ndarray) -> np.ndarray:
        """Slice probabilities ``float32 (N, 6)`` of a series (slices bottom to top)."""
        features = self.encode(images_uint8)
        if len(features) == 0:
            raise ConfigError("a series needs at least one slice")
        return stitch(self.classify(self.windows(features)), len(features), self.sequence)

    def study_probabilities(self, images_uint8: np.ndarray) -> np.ndarray:
        """Study probability per label ``float32 (6,)``: the max over slices."""
        return study_probabilities(self.predict_series(images_uint8))
