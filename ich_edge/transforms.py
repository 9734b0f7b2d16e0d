"""Image transforms shared by training and the device path.

Each transform is a small class: a typed ``__init__`` that stores its parameters and a
``__call__(array) -> array`` that does the work. :class:`Preprocess` chains them in the one
order used everywhere (``prepare`` for training, ``predict`` and the app on the device):

    stored pixels --ToHounsfield--> HU --Resize(area)--> HU at input size
        --Window x3--> [0, 1] per channel --ToUint8--> uint8 (H, W, 3)

Resizing happens on HU, before windowing, so each slice is resized once instead of once per
window; the app reproduces the same order (see ``android_demo_assets/manifest.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from ich_edge.errors import ConfigError

#: (center_hu, width_hu) of the default channels: brain, subdural, bone.
DEFAULT_WINDOWS_HU: tuple[tuple[float, float], ...] = ((40.0, 80.0), (80.0, 200.0), (600.0, 2800.0))
DEFAULT_WINDOW_NAMES: tuple[str, ...] = ("brain", "subdural", "bone")
DEFAULT_INPUT_SIZE_PX = 128


class ToHounsfield:
    """Stored pixel values to Hounsfield units: ``HU = stored * slope + intercept``.

    Parameters
    ----------
    slope : float
        (0028,1053) Rescale Slope.
    intercept : float
        (0028,1052) Rescale Intercept.
    """

    def __init__(self, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.slope = float(slope)
        self.intercept = float(intercept)

    def __call__(self, stored: np.ndarray) -> np.ndarray:
        hu = stored.astype(np.float32, copy=True)
        if self.slope != 1.0:
            hu *= np.float32(self.slope)
        if self.intercept != 0.0:
            hu += np.float32(self.intercept)
        return hu


class Window:
    """Map ``[center - width/2, center + width/2]`` HU linearly to ``[0, 1]``, clipped."""

    def __init__(self, center_hu: float, width_hu: float) -> None:
        if not width_hu > 0:
            raise ConfigError(f"window width_hu must be > 0, got {width_hu}")
        self.center_hu = float(center_hu)
        self.width_hu = float(width_hu)

    @property
    def low_hu(self) -> float:
        return self.center_hu - self.width_hu / 2.0

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        scaled = (hu - np.float32(self.low_hu)) * np.float32(1.0 / self.width_hu)
        return np.clip(scaled, 0.0, 1.0, out=scaled)


@lru_cache(maxsize=32)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix: output pixel i averages the input it covers, by overlap length."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in), dtype=np.float32)
    for i in range(n_out):
        start, stop = i * scale, (i + 1) * scale
        for j in range(int(np.floor(start)), int(np.ceil(stop))):
            overlap = min(stop, j + 1) - max(start, j)
            if overlap > 0:
                weights[i, j] = overlap / scale
    return weights


class Resize:
    """Area resize (each output pixel is the mean of the input area it covers) to a square.

    Integer downscale factors use a block mean; other factors, upscaling included, use the
    same rule through separable overlap weights (OpenCV's INTER_AREA for downscaling).
    """

    def __init__(self, size_px: int) -> None:
        if int(size_px) < 8:
            raise ConfigError(f"resize size_px must be >= 8, got {size_px}")
        self.size_px = int(size_px)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        rows, cols = image.shape[:2]
        out = self.size_px
        if rows == out and cols == out:
            return image.astype(np.float32, copy=False)
        if rows % out == 0 and cols % out == 0 and rows >= out and cols >= out:
            # Block mean as a sum of strided slices (fr + fc passes) rather than a mean over
            # two axes of a 4-D view: about 15x faster for 512 -> 128, and bit-identical to
            # the 4-D mean whenever the float32 sums are exact (integer HU, as CT gives).
            fr, fc = rows // out, cols // out
            image = image.astype(np.float32, copy=False)
            summed = image[0::fr].copy()
            for offset in range(1, fr):
                summed += image[offset::fr]
            blocks = summed[:, 0::fc].copy()
            for offset in range(1, fc):
                blocks += summed[:, offset::fc]
            blocks /= np.float32(fr * fc)
            return blocks
        wr = _area_weights(rows, out)
        wc = _area_weights(cols, out)
        rows_done = np.tensordot(wr, image.astype(np.float32, copy=False), axes=(1, 0))
        return np.moveaxis(np.tensordot(wc, rows_done, axes=(1, 1)), 0, 1)


#: The one input scaling: a model's float input is ``uint8 window pixel * UNIT_PER_PIXEL``
#: (a float32 multiplication, as the apps do it; ``x / 255`` differs in the last bit for
#: 126 of the 256 pixel values). Training, evaluation, predict and the app assets use this.
UNIT_PER_PIXEL = np.float32(1.0 / 255.0)


def pixels_to_unit(images_uint8: np.ndarray) -> np.ndarray:
    """``uint8`` window pixels to the model's ``float32`` input in [0, 1]: ``x * UNIT_PER_PIXEL``."""
    return np.asarray(images_uint8).astype(np.float32) * UNIT_PER_PIXEL


class ToUint8:
    """``[0, 1]`` floats to uint8 by ``round(x * 255)`` (round half to even)."""

    def __call__(self, unit: np.ndarray) -> np.ndarray:
        return np.rint(unit * np.float32(255.0)).astype(np.uint8)


@dataclass(frozen=True)
class PreprocessConfig:
    """What turns a slice in HU into the model's input; stored with every cache and model.

    Attributes
    ----------
    windows_hu : ((center_hu, width_hu), ...)
        One window per input channel, in channel order.
    window_names : names of the windows, for reports and the app manifest.
    input_size_px : side of the square model input in pixels.
    """

    windows_hu: tuple[tuple[float, float], ...] = DEFAULT_WINDOWS_HU
    window_names: tuple[str, ...] = DEFAULT_WINDOW_NAMES
    input_size_px: int = DEFAULT_INPUT_SIZE_PX
    resize_method: str = field(default="area")

    def __post_init__(self) -> None:
        windows = tuple((float(c), float(w)) for c, w in self.windows_hu)
        object.__setattr__(self, "windows_hu", windows)
        object.__setattr__(self, "window_names", tuple(self.window_names))
        if len(windows) != 3:
            raise ConfigError(f"windows_hu needs 3 (center, width) pairs, one per channel, got {len(windows)}")
        if len(self.window_names) != len(windows):
            raise ConfigError("window_names needs one name per window")
        for center, width in windows:
            Window(center, width)  # validates the width
        if self.resize_method != "area":
            raise ConfigError(f"resize_method must be 'area', got {self.resize_method!r}")
        Resize(self.input_size_px)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["windows_hu"] = [list(w) for w in self.windows_hu]
        data["window_names"] = list(self.window_names)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessConfig":
        try:
            return cls(
                windows_hu=tuple(tuple(w) for w in data["windows_hu"]),
                window_names=tuple(data.get("window_names", DEFAULT_WINDOW_NAMES)),
                input_size_px=int(data["input_size_px"]),
                resize_method=data.get("resize_method", "area"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"preprocessing description is incomplete: {err}") from err


class Preprocess:
    """One slice in HU ``(rows, cols)`` to the model input ``uint8 (size, size, 3)``."""

    def __init__(self, config: PreprocessConfig | None = None) -> None:
        self.config = config or PreprocessConfig()
        self.resize = Resize(self.config.input_size_px)
        self.windows = [Window(c, w) for c, w in self.config.windows_hu]
        self.to_uint8 = ToUint8()

    def __call__(self, hu: np.ndarray) -> np.ndarray:
        small = self.resize(hu)
        channels = np.stack([window(small) for window in self.windows], axis=-1)
        return self.to_uint8(channels)

    def volume(self, hu_slices) -> np.ndarray:
        """Slices in HU (an iterable of 2-D arrays) to ``uint8 (N, size, size, 3)``."""
        return np.stack([self(hu) for hu in hu_slices], axis=0)


#: How a model wants its input values (``ich-edge import --input-scale``).
INPUT_SCALES = ("unit", "symmetric", "hu")


@dataclass(frozen=True)
class ModelInput:
    """What a model built elsewhere was trained on, from the [0, 1] window channels.

    Every ich-edge model file takes ``uint8 window / 255`` in [0, 1] with the three channels
    of :class:`PreprocessConfig`; an imported model may want other values. This maps the
    standard input to them, per output channel ``c`` taken from window ``source[c]``:

    * ``unit``: ``x`` (unchanged);
    * ``symmetric``: ``2 x - 1`` in [-1, 1];
    * ``hu``: ``low_hu + x * width_hu`` of that window (HU clipped to the window).

    :meth:`affine` gives the same map as a (3, C) matrix and (C,) offset, which the importer
    builds into the model as a fixed 1x1 convolution, so apps keep feeding [0, 1] values.

    Attributes
    ----------
    scale : one of :data:`INPUT_SCALES`.
    channels : window names in the model's channel order (a subset of the windows).
    """

    scale: str = "unit"
    channels: tuple[str, ...] = DEFAULT_WINDOW_NAMES

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.scale not in INPUT_SCALES:
            raise ConfigError(f"input scale must be one of {INPUT_SCALES}, got {self.scale!r}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise ConfigError(f"channels must name distinct windows, got {self.channels}")

    @property
    def is_identity(self) -> bool:
        return self.scale == "unit" and self.channels == DEFAULT_WINDOW_NAMES

    def affine(self, preprocess: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
        """``(matrix float32 (3, C), offset float32 (C,))``: model input = x @ matrix + offset."""
        names = list(preprocess.window_names)
        missing = [c for c in self.channels if c not in names]
        if missing:
            raise ConfigError(f"channels {missing} are not windows of the preprocessing ({', '.join(names)})")
        matrix = np.zeros((len(names), len(self.channels)), np.float32)
        offset = np.zeros(len(self.channels), np.float32)
        for c, name in enumerate(self.channels):
            k = names.index(name)
            center, width = preprocess.windows_hu[k]
            if self.scale == "unit":
                matrix[k, c] = 1.0
            elif self.scale == "symmetric":
                matrix[k, c], offset[c] = 2.0, -1.0
            else:
                matrix[k, c], offset[c] = width, Window(center, width).low_hu
        return matrix, offset

    def __call__(self, unit: np.ndarray, preprocess: PreprocessConfig) -> np.ndarray:
        """``float32 (..., 3)`` in [0, 1] to the model's ``(..., C)`` values."""
        matrix, offset = self.affine(preprocess)
        return (np.asarray(unit, np.float32) @ matrix + offset).astype(np.float32)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict | None) -> "ModelInput":
        data = data or {}
        return cls(data.get("scale", "unit"), tuple(data.get("channels", DEFAULT_WINDOW_NAMES)))
