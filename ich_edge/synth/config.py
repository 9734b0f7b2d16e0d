"""What ``ich-edge synth`` generates: a frozen, validated configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ich_edge.errors import ConfigError

GENERATOR_VERSION = 1  # bump when the same seed would give different studies


def default_workers() -> int:
    """Every usable core (the same rule as ``ich-edge prepare``'s workers)."""
    from ich_edge.ingest.prepare import default_workers as every_core

    return every_core()


def parse_slice_range(text: str) -> tuple[int, int]:
    """``"28-40"`` to ``(28, 40)``; a single number ``"32"`` to ``(32, 32)``."""
    low, sep, high = str(text).strip().partition("-")
    try:
        bounds = (int(low), int(high) if sep else int(low))
    except ValueError as err:
        raise ConfigError(f"--slices must look like MIN-MAX (e.g. 28-40), got {text!r}") from err
    return bounds


@dataclass(frozen=True)
class SynthConfig:
    """Options of a synthetic set; the output depends on everything except ``workers``.

    Attributes
    ----------
    studies : number of studies (series) to write.
    seed : base seed; study ``i`` draws from ``numpy.random.default_rng([seed, i])``.
    matrix_px : rows and columns of each slice (512 like real CT; 64 for fast tests).
    slices_min, slices_max : bounds on the slices per study; a study whose natural coverage
        (skull base to vertex at its slice increment) falls outside is respaced to fit.
    positive_fraction : probability that a study has at least one bleed.
    workers : processes generating studies in parallel.
    """

    studies: int = 200
    seed: int = 0
    matrix_px: int = 512
    slices_min: int = 20
    slices_max: int = 60
    positive_fraction: float = 0.5
    workers: int = field(default_factory=default_workers)

    def __post_init__(self) -> None:
        if not isinstance(self.studies, int) or self.studies < 1:
            raise ConfigError(f"studies must be an integer >= 1, got {self.studies!r} (pass --studies N)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not 32 <= self.matrix_px <= 1024:
            raise ConfigError(f"matrix_px must be in 32..1024 (512 like real CT), got {self.matrix_px}")
        if not 2 <= self.slices_min <= self.slices_max <= 200:
            raise ConfigError(
                f"slices must satisfy 2 <= MIN <= MAX <= 200, got {self.slices_min}-{self.slices_max} "
                "(e.g. --slices 20-60)"
            )
        if not 0.0 <= self.positive_fraction <= 1.0:
            raise ConfigError(f"positive_fraction must be in [0, 1], got {self.positive_fraction}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {self.workers!r}")

    def to_dict(self) -> dict:
        """What the output depends on (``workers`` left out: a set is the same whatever it was)."""
        options = {key: value for key, value in asdict(self).items() if key != "workers"}
        return {**options, "generator_version": GENERATOR_VERSION}
