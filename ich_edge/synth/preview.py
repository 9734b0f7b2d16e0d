"""A PNG montage to look at the phantom: brain-window slices with the bleeds outlined.

One row per study: the first study of each subtype and the first negative study of a
configuration (searched by study index, so the rows are exactly the studies a set written
with the same configuration contains, or would contain if it were larger). A positive row
shows the slices where its subtype is largest; the negative row spans skull base to vertex.
matplotlib is imported only here, inside :func:`write_preview`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ich_edge import SHORT_NAMES, SUBTYPES
from ich_edge.errors import ConfigError, MissingDependencyError
from ich_edge.fileio import atomic_output
from ich_edge.synth.config import SynthConfig
from ich_edge.synth.study import plan_study, render_slice
from ich_edge.transforms import Window

SUBTYPE_COLORS = {
    "epidural": "red",
    "intraparenchymal": "lime",
    "intraventricular": "dodgerblue",
    "subarachnoid": "yellow",
    "subdural": "magenta",
}
MAX_SEARCH = 500


def pick_preview_studies(config: SynthConfig, max_search: int = MAX_SEARCH) -> list[tuple[int, str | None]]:
    """``(study index, subtype or None for the negative)``: a study per subtype, then a negative.

    Studies are taken in index order, each used for one row only (the first of its subtypes
    still missing), so the montage shows as many different studies as possible.
    """
    wanted: dict[str | None, int] = {}
    for index in range(max_search):
        plan = plan_study(config, index)
        present = [lesion.subtype for lesion in plan.lesions] or [None]
        missing = [key for key in (*SUBTYPES, None) if key in present and key not in wanted]
        if missing:
            wanted[missing[0]] = index
        if len(wanted) == len(SUBTYPES) + 1:
            break
    return [(wanted[key], key) for key in (*SUBTYPES, None) if key in wanted]


def _choose_slices(areas: np.ndarray, count: int) -> list[int]:
    """Positions with the largest lesion areas (in position order), or spread over the study."""
    if areas.max() > 0:
        best = np.argsort(-areas, kind="stable")[:count]
        return sorted(int(k) for k in best if areas[k] > 0) or [int(np.argmax(areas))]
    n = len(areas)
    return sorted({int(round(f * (n - 1))) for f in np.linspace(0.15, 0.92, count)})


def write_preview(
    config: SynthConfig,
    png_path: str | Path,
    studies: list[tuple[int, str | None]] | None = None,
    slices_per_study: int = 4,
) -> list[tuple[int, str | None]]:
    """Write the montage to ``png_path`` (atomically) and return the rows shown."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is in the train extra
        raise MissingDependencyError("--preview needs matplotlib: pip install matplotlib") from err
    png_path = Path(png_path)
    if png_path.suffix.lower() != ".png":
        raise ConfigError(f"--preview must name a .png file, got {png_path.name!r}")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    rows = studies if studies is not None else pick_preview_studies(config)
    window = Window(40.0, 80.0)
    fig, axes = plt.subplots(len(rows), slices_per_study, figsize=(3.0 * slices_per_study, 3.1 * len(rows)), squeeze=False)
    fig.patch.set_facecolor("black")
    for row, (index, subtype) in zip(axes, rows):
        plan = plan_study(config, index)
        rendered = [render_slice(plan, k) for k in range(plan.num_slices)]
        pixel_area = plan.pixel_mm**2
        if subtype is None:
            areas = np.zeros(plan.num_slices)
        else:
            areas = np.array([r.masks[subtype].sum() * pixel_area for r in rendered])
        chosen = _choose_slices(areas, slices_per_study)
        for ax in row:
            ax.axis("off")
        for ax, position in zip(row, chosen):
            slice_ = rendered[position]
            ax.imshow(window(slice_.hu), cmap="gray", vmin=0.0, vmax=1.0, interpolation="lanczos")
            present = []
            for name in SUBTYPES:
                mask = slice_.masks[name]
                if mask.any():
                    ax.contour(mask.astype(np.float32), levels=[0.5], colors=[SUBTYPE_COLORS[name]], linewidths=0.8)
                if slice_.labels[SUBTYPES.index(name)]:
                    present.append(SHORT_NAMES[name])
            title = f"study {index} [{plan.scenario}]  slice {position + 1}/{plan.num_slices}"
            ax.set_title(title, color="white", fontsize=7, pad=2)
            ax.text(
                4, plan.matrix_px - 6, " ".join(present) or "no bleed", color="white", fontsize=8, va="bottom",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"},
            )
    fig.suptitle(
        "ich-edge synth: brain window 40/80; outlines " + ", ".join(f"{SHORT_NAMES[n]} {c}" for n, c in SUBTYPE_COLORS.items()),
        color="white", fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    try:
        with atomic_output(png_path) as tmp:
            fig.savefig(tmp, dpi=110, facecolor="black")
    finally:
        plt.close(fig)
    return rows
