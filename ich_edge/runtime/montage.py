"""A PNG per series for a person to look at: the most suspicious slices and where the model fires.

Top: up to :data:`MAX_TILES` slices with the highest ``any`` probability, shown in the brain
window exactly as the model saw them (input channel of the window named "brain", else
channel 0, at the model's input size), in bottom-to-top order with their slice number and
probabilities. Bottom: a probability strip, one row per label and one column per slice
along the series (bottom of the head on the left); cells at or above the label's slice
threshold are outlined.

matplotlib is optional (``pip install matplotlib`` or ``pip install 'ich-edge[viz]'``) and
imported only here, inside :func:`write_montage`, with the non-interactive Agg canvas.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ich_edge import SHORT_NAMES
from ich_edge.errors import ConfigError, MissingDependencyError
from ich_edge.fileio import atomic_output
from ich_edge.runtime.predict import ANY_LABEL, OperatingPoints, SeriesPrediction, triage_line

MAX_TILES = 8


def require_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError as err:
        raise MissingDependencyError(
            "--png needs matplotlib: pip install matplotlib (or pip install 'ich-edge[viz]')"
        ) from err
    return Figure, FigureCanvasAgg, Rectangle


def png_paths(out: str | Path, num_series: int) -> list[Path]:
    """Where the PNG of each series goes.

    ``OUT`` ending in ``.png``: one series -> ``OUT``; several -> ``<stem>_<k>.png`` beside it
    (k = the series index, 1-based, as printed by predict). Any other ``OUT`` is a folder
    (created if needed) holding ``series_<k>.png``.
    """
    out = Path(out)
    if out.suffix.lower() == ".png":
        if num_series == 1:
            return [out]
        return [out.with_name(f"{out.stem}_{k}.png") for k in range(1, num_series + 1)]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--png {out}: exists and is not a folder; pass a .png path or a folder")
    return [out / f"series_{k}.png" for k in range(1, num_series + 1)]


def brain_channel(window_names) -> int:
    """Index of the channel windowed for brain (40/80 HU), or 0 when none is named so."""
    names = [str(name).lower() for name in window_names or ()]
    return names.index("brain") if "brain" in names else 0


def suspicious_slices(prediction: SeriesPrediction, points: OperatingPoints, max_tiles: int = MAX_TILES) -> list[int]:
    """0-based indices of the slices with the highest ``any`` probability, bottom to top."""
    labels = list(points.labels)
    column = labels.index(ANY_LABEL) if ANY_LABEL in labels else None
    probabilities = prediction.slice_probabilities
    score = probabilities[:, column] if column is not None else probabilities.max(axis=1)
    count = min(max_tiles, len(score))
    top = np.argsort(-score, kind="stable")[:count]
    return sorted(int(i) for i in top)


@dataclass(frozen=True)
class _Layout:
    """The montage's sizes in inches and the coverage warning's wrapped lines."""

    tile_in: float
    left_in: float
    right_in: float
    width_in: float
    title_in: float
    caption_in: float
    gap_in: float
    strip_in: float
    bottom_in: float
    warning: tuple[str, ...]

    @property
    def height_in(self) -> float:
        return self.title_in + self.caption_in + self.tile_in + self.gap_in + self.strip_in + self.bottom_in


def _layout(prediction: SeriesPrediction, num_tiles: int, num_labels: int) -> _Layout:
    """Title band, a row of square tiles with a 3-line caption, the strip; a wider figure for more tiles."""
    tile_in, left_in, right_in = 1.8, 1.4, 0.9
    width_in = max(12.0, left_in + right_in + tile_in * num_tiles * 1.04)
    # What the model could not see, in red under the title, wrapped to the figure's width.
    reasons = prediction.coverage.reasons if prediction.coverage is not None else ()
    warning = textwrap.wrap(f"Coverage incomplete: {'; '.join(reasons)}.", width=int(width_in * 15)) if reasons else []
    return _Layout(
        tile_in=tile_in, left_in=left_in, right_in=right_in, width_in=width_in,
        title_in=0.9 + 0.22 * len(warning), caption_in=0.6, gap_in=0.55, strip_in=0.32 * num_labels + 0.35,
        bottom_in=0.55, warning=tuple(warning),
    )


def _draw_header(figure, layout: _Layout, prediction: SeriesPrediction, points: OperatingPoints,
                 model_name: str, num_series: int) -> None:
    """The bold triage line, the coverage warning (if any) and the grey line saying what is shown."""
    height_in = layout.height_in
    figure.text(
        0.01, 1 - 0.3 / height_in,
        f"Series {prediction.index}/{num_series}  ({prediction.num_slices} slices)   "
        f"{triage_line(prediction, points, with_coverage=False)}",
        fontsize=12, fontweight="bold", ha="left", va="center",
    )
    for row, line in enumerate(layout.warning):
        figure.text(0.01, 1 - (0.6 + 0.22 * row) / height_in, line, fontsize=9.5, color="firebrick", ha="left", va="center")
    figure.text(
        0.01, 1 - (0.62 + 0.22 * len(layout.warning)) / height_in,
        f"Top: the most suspicious slices by 'any' probability, brain window as the model sees it "
        f"({prediction.images.shape[1]} px input). Model: {model_name}. A triage aid, not a diagnosis.",
        fontsize=9, color="0.3", ha="left", va="center",
    )


def _draw_tile(axes, prediction: SeriesPrediction, points: OperatingPoints, index: int, channel: int) -> None:
    """One slice in the brain window, captioned with its number, ``any`` and the top subtype; red when flagged."""
    labels = list(points.labels)
    any_column = labels.index(ANY_LABEL) if ANY_LABEL in labels else None
    subtype_columns = [i for i, label in enumerate(labels) if label != ANY_LABEL]
    axes.imshow(prediction.images[index, :, :, channel], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    p = prediction.slice_probabilities[index]
    caption = [f"slice {index + 1}/{prediction.num_slices}"]
    flagged = False
    if any_column is not None:
        caption.append(f"any {p[any_column]:.2f}")
        flagged = p[any_column] >= points.slice_thresholds[ANY_LABEL]
    if subtype_columns:
        best = max(subtype_columns, key=lambda i: p[i])
        caption.append(f"{SHORT_NAMES.get(labels[best], labels[best])} {p[best]:.2f}")
    axes.set_title("\n".join(caption), fontsize=9, color="firebrick" if flagged else "black")
    for spine in axes.spines.values():
        spine.set_edgecolor("firebrick" if flagged else "0.6")
        spine.set_linewidth(2.5 if flagged else 1.0)


def _draw_strip(figure, strip, prediction: SeriesPrediction, points: OperatingPoints, tiles: list[int], Rectangle) -> None:
    """Probability per label (rows) and slice (columns); cells at or above the slice threshold boxed."""
    labels = list(points.labels)
    num_slices = prediction.num_slices
    table = prediction.slice_probabilities.T
    image = strip.imshow(table, aspect="auto", cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest",
                         extent=(0.5, num_slices + 0.5, len(labels) - 0.5, -0.5))
    for row, label in enumerate(labels):
        threshold = points.slice_thresholds[label]
        for k in np.flatnonzero(table[row] >= threshold):
            strip.add_patch(Rectangle((k + 0.5, row - 0.5), 1.0, 1.0, fill=False, edgecolor="cyan", linewidth=1.4))
    for index in tiles:
        strip.axvline(index + 1, color="white", linewidth=0.6, alpha=0.5, linestyle=":")
    strip.set_yticks(range(len(labels)))
    strip.set_yticklabels(labels, fontsize=9)
    step = max(1, int(np.ceil(num_slices / 30)))
    strip.set_xticks(range(1, num_slices + 1, step))
    strip.tick_params(axis="x", labelsize=8)
    strip.set_xlabel("slice (1 = bottom of the head, skull base; last = vertex)", fontsize=9)
    strip.set_title(
        "Slice probability per label along the series (cyan box: at or above the slice threshold; "
        "dotted: slices shown above)",
        fontsize=9, loc="left",
    )
    colorbar = figure.colorbar(image, ax=strip, fraction=0.03, pad=0.01)
    colorbar.set_label("probability", fontsize=8)


def write_montage(
    prediction: SeriesPrediction,
    points: OperatingPoints,
    out_png: str | Path,
    *,
    window_names=("brain", "subdural", "bone"),
    model_name: str = "",
    num_series: int = 1,
) -> Path:
    """Draw the montage of ``prediction`` and write it atomically to ``out_png``.

    Raises
    ------
    MissingDependencyError
        If matplotlib is not installed.
    """
    Figure, FigureCanvasAgg, Rectangle = require_matplotlib()
    out_png = Path(out_png)
    channel = brain_channel(window_names)
    tiles = suspicious_slices(prediction, points)
    num_tiles = max(len(tiles), 4)
    layout = _layout(prediction, num_tiles, len(points.labels))
    width_in, height_in = layout.width_in, layout.height_in
    figure = Figure(figsize=(width_in, height_in), dpi=110)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(
        2, num_tiles, height_ratios=[layout.tile_in, layout.strip_in],
        hspace=layout.gap_in / ((layout.tile_in + layout.strip_in) / 2),
        wspace=0.04, left=layout.left_in / width_in, right=1 - layout.right_in / width_in,
        top=1 - (layout.title_in + layout.caption_in) / height_in, bottom=layout.bottom_in / height_in,
    )
    _draw_header(figure, layout, prediction, points, model_name, num_series)
    for slot, index in enumerate(tiles):
        _draw_tile(figure.add_subplot(grid[0, slot]), prediction, points, index, channel)
    _draw_strip(figure, figure.add_subplot(grid[1, :]), prediction, points, tiles, Rectangle)

    with atomic_output(out_png) as tmp:
        figure.savefig(tmp, format="png")
    return out_png
