"""One frozen dataclass holding every knob of the monitor, with the reason for each default.

The defaults reproduce Evidently 0.7's own choices where Evidently has one (test chosen by column
type and reference size, p < 0.05, distance >= 0.1, dataset drift when half the columns drift) and
otherwise follow the issue's targets (a 0.5 standard-deviation shift detected within one window).
"""

from __future__ import annotations

import functools
import math
import numbers
import typing
from dataclasses import dataclass, fields

from drift.errors import ConfigError

__all__ = ["MIN_WINDOW_ROWS", "SEED_LIMIT", "MonitorConfig", "check_seed"]

# Below this many rows a window is too small to judge. Measured on stationary holdout windows
# against a 1,000-row reference, the largest per-feature distance is pure noise of about 0.33 at
# 30 rows (0.54 at 10, 1.57 at 1) against 0.09 at 1,000: the tests lack power and the distance the
# CUSUM accumulates is mostly sampling noise. 30 keeps the shortest real window (the last, 2-day
# week of 2012, 48 rows) judgeable.
MIN_WINDOW_ROWS = 30

# Seeds run from 0 to SEED_LIMIT - 1: numpy's SeedSequence refuses a negative seed, and the
# legacy RandomState behind ``DataFrame.sample(random_state=...)`` (the retrain subsample) also
# one of 2**32 or more, which would fail mid-run, at the first large retrain.
SEED_LIMIT = 2**32

_METHODS = ("evidently_default", "pvalue")
_CORRECTIONS = ("none", "bonferroni")
_ENGINES = ("numpy", "evidently")
_CHI_SQUARED = ("goodness_of_fit", "two_sample")
# The valid range of every number field that is not simply ">= 0". Shares and p-values live in
# (0, 1]; a threshold of zero makes its detector fire on every window (a CUSUM alarms when
# S_t > h = 0), so thresholds are strictly positive; and a count of windows or rows below one
# leaves nothing to act on or to train from.
_RANGES = {
    **dict.fromkeys(
        ("pvalue_threshold", "drift_share", "max_null_share", "max_out_of_range_share"),
        ("in (0, 1]", lambda v: 0 < v <= 1),
    ),
    **dict.fromkeys(
        (
            "distance_threshold",
            "cusum_threshold",
            "ph_threshold",
            "error_ratio_threshold",
            "perf_cusum_threshold",
        ),
        ("> 0", lambda v: v > 0),
    ),
    **dict.fromkeys(
        ("min_window_rows", "patience", "promote_patience", "retrain_windows", "max_retrain_rows"),
        (">= 1", lambda v: v >= 1),
    ),
}


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds for drift, performance and the action policies (windows are counted in serving
    windows, e.g. weeks, except ``rollback_watch``, which counts labelled windows)."""

    # --- data drift (per feature, Evidently's semantics) ---
    engine: str = (
        "numpy"  # "numpy": our parity-tested re-implementation (fast); "evidently": Report
    )
    method: str = "evidently_default"  # or "pvalue": KS / chi-squared / z at every sample size
    correction: str = "none"  # "bonferroni" divides the p-value threshold by the number of features
    chi_squared: str = (
        "goodness_of_fit"  # Evidently's; "two_sample" = homogeneity test (calibrated)
    )
    pvalue_threshold: float = 0.05  # Evidently's default for KS, chi-squared and z-tests
    distance_threshold: float = 0.1  # Evidently's default for normed Wasserstein and Jensen-Shannon
    large_sample: int = 1000  # reference rows above which Evidently switches to distances
    drift_share: float = 0.5  # dataset drift when at least this share of features drift

    # --- sequential detector (CUSUM on the largest per-feature drift distance) ---
    cusum_allowance: float = 0.15  # k: distances below this are noise (1k rows: ~0.08-0.09)
    cusum_threshold: float = 0.3  # h: a 0.5-sd shift (distance ~0.5) crosses it in one window
    ph_delta: float = 0.1  # Page-Hinkley tolerance on the same statistic
    ph_threshold: float = 0.3  # Page-Hinkley lambda

    # --- performance / concept drift (needs labels) ---
    error_ratio_threshold: float = (
        1.25  # window MAE above 1.25x the baseline triggers investigation
    )
    perf_cusum_allowance: float = 0.1  # k for CUSUM on (error ratio - 1)
    perf_cusum_threshold: float = 0.4  # h for CUSUM on (error ratio - 1)
    label_delay: int = 1  # labels of window t arrive while window t + label_delay is served

    # --- data quality ---
    min_window_rows: int = MIN_WINDOW_ROWS  # smaller windows: ``too_few_rows``, no drift verdict
    max_null_share: float = 0.05  # more nulls than this in a column is a null burst
    max_out_of_range_share: float = 0.01  # share of values outside the reference range allowed

    # --- action policies ---
    patience: int = 2  # hysteresis: a rule must hold this many labelled windows in a row
    cooldown: int = 3  # windows after an action during which no new rollback/retrain starts
    rollback_margin: float = 0.10  # roll back if the new model's MAE exceeds the previous by 10%
    # Labelled windows on which the previous model is scored after a deployment: it shadows
    # rollback_watch + label_delay serving windows. Below ``patience``, no rollback can fire.
    rollback_watch: int = 4
    promote_margin: float = 0.02  # a candidate must beat the serving MAE by 2% to be promoted
    promote_patience: int = 1  # labelled shadow windows a candidate must win (a full window each)
    retrain_windows: int = 4  # labelled windows of recent data a retrain learns from
    max_retrain_rows: int = 20_000  # subsample cap so a retrain stays a couple of seconds

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ConfigError("method", f"{self.method!r}; valid: {', '.join(_METHODS)}")
        if self.correction not in _CORRECTIONS:
            raise ConfigError(
                "correction", f"{self.correction!r}; valid: {', '.join(_CORRECTIONS)}"
            )
        if self.engine not in _ENGINES:
            raise ConfigError("engine", f"{self.engine!r}; valid: {', '.join(_ENGINES)}")
        if self.chi_squared not in _CHI_SQUARED:
            raise ConfigError(
                "chi_squared", f"{self.chi_squared!r}; valid: {', '.join(_CHI_SQUARED)}"
            )
        if self.engine == "evidently" and self.chi_squared == "two_sample":
            raise ConfigError("chi_squared", "Evidently has no two-sample chi-squared; use numpy")
        for name, kind in _numeric_fields().items():
            self._check_number(name, kind)

    def _check_number(self, name: str, kind: type) -> None:
        """Refuse a value that is not a real number (an integer for ``int`` fields), not finite,
        or out of its field's range; store a numpy scalar as the Python number it holds.

        ``numbers.Real`` admits numpy's scalars (``np.float32``, ``np.int64``), which an
        ``isinstance(value, int | float)`` test would let through unchecked; bools are refused
        because ``True`` for a threshold is always a mistake. NaN slips through every later
        comparison (``nan < 0`` is False) and would silently switch a detector off, so finiteness
        is tested before the range.
        """
        value = getattr(self, name)
        what = "an integer" if kind is int else "a number"
        valid, in_range = _RANGES.get(name, (">= 0", lambda v: v >= 0))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(
                name, f"must be {what} {valid}, got {value!r} ({type(value).__name__})"
            )
        if not math.isfinite(value):
            raise ConfigError(name, f"must be finite ({what} {valid}), got {value!r}")
        if kind is int and not isinstance(value, numbers.Integral):
            raise ConfigError(
                name, f"must be {what} {valid}, got {value!r} ({type(value).__name__})"
            )
        if not in_range(value):
            raise ConfigError(name, f"must be {what} {valid}, got {value!r}")
        # A frozen dataclass: object.__setattr__ is the way to normalise a field in __post_init__.
        object.__setattr__(self, name, kind(value))


def check_seed(seed: int) -> int:
    """``seed`` as a Python int; ConfigError("seed", ...) unless it is a whole number from 0 to
    ``SEED_LIMIT - 1`` (numpy integers accepted; a bool or a float such as 1.5 is refused).

    Called where a seed enters the library (``split_reference``, ``build_scenario``,
    ``train_models``, ``DemandModel.train``, ``run_scenario``), so a bad one fails before any
    work, not from numpy or LightGBM, or half-way through a run.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(
            "seed",
            f"must be a whole number from 0 to 2**32 - 1, got {seed!r} ({type(seed).__name__})",
        )
    if not 0 <= seed < SEED_LIMIT:
        raise ConfigError("seed", f"must be a whole number from 0 to 2**32 - 1, got {seed}")
    return int(seed)


@functools.cache
def _numeric_fields() -> dict[str, type]:
    """Every ``int`` or ``float`` field of MonitorConfig, with its type.

    ``typing.get_type_hints`` resolves the annotations to classes; ``dataclasses.Field.type``
    would be the string ``"int"`` under ``from __future__ import annotations`` and the class
    without it, so comparing it with either silently validates nothing in the other case.
    """
    hints = typing.get_type_hints(MonitorConfig)
    return {f.name: hints[f.name] for f in fields(MonitorConfig) if hints[f.name] in (int, float)}
