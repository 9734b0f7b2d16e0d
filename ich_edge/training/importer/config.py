"""What ``ich-edge import`` does: its options as a checked :class:`ImportConfig`, and its constants.

A leaf of the importer package (no TensorFlow), so the package and its submodules
(:mod:`split` reads :data:`BACKGROUND`) share these names without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ich_edge.errors import ConfigError, LabelsError
from ich_edge.labels import check_label_names
from ich_edge.transforms import ModelInput

DEFAULT_THRESHOLD = 0.5
#: ``--output-labels`` name of a softmax's background (no-bleed) class, e.g. ``background,any``: its column is dropped.
BACKGROUND = "background"
#: Window of a per-slice model (no recurrent part) when --window-slices is not given.
DEFAULT_SLICE_WINDOW = 8
CHANNEL_SETS = {"brain,subdural,bone": ("brain", "subdural", "bone"), "brain": ("brain",)}


@dataclass(frozen=True)
class ImportConfig:
    """What ``ich-edge import`` does (see its ``--help``).

    Attributes
    ----------
    window_slices : window length when the model's is None (and for a per-slice model).
    input_scale, channels : what the model was trained on (:class:`ModelInput`).
    labels : the model's output classes in order (default: ich-edge's six); a subset of the
        six is imported as a model with those labels only (in ich-edge's order); ``background``
        names a softmax's no-bleed class, whose column is dropped after the softmax.
    softmax_ok : accept a softmax output (with ``labels``).
    force : replace a non-empty ``out``.
    """

    window_slices: int | None = None
    input_scale: str = "unit"
    channels: tuple[str, ...] = ("brain", "subdural", "bone")
    labels: tuple[str, ...] | None = None
    softmax_ok: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        if self.window_slices is not None and not 2 <= self.window_slices <= 512:
            raise ConfigError(f"--window-slices must be in 2..512, got {self.window_slices}")
        if self.softmax_ok and not self.labels:
            raise ConfigError("--softmax-ok needs --output-labels naming the softmax classes in order")
        if self.labels is not None:
            labels = tuple(self.labels)
            if labels.count(BACKGROUND) > 1 or labels == (BACKGROUND,):
                raise ConfigError(f"--output-labels may name {BACKGROUND!r} once, beside at least one label")
            try:
                check_label_names([l for l in labels if l != BACKGROUND], "--output-labels")
            except LabelsError as err:
                raise ConfigError(f"{err} (or {BACKGROUND!r} for a softmax's no-bleed class)") from err
            object.__setattr__(self, "labels", labels)
        ModelInput(self.input_scale, self.channels)  # validates
