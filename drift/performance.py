"""Concept drift seen through the model's error once labels arrive.

Data drift says the *inputs* moved; it cannot say whether the model still works (a shift along a
direction the model handles well is harmless, and a changed input-output relation with unchanged
inputs is invisible to it). With labels we measure what matters: the error of the serving model on
a labelled window against its *baseline*, the error measured when the model was accepted.

``error_ratio = MAE_window / MAE_baseline``; a ratio above ``error_ratio_threshold`` (1.25 by
default) is the threshold that triggers investigation. The same ratio feeds a CUSUM on
``ratio - 1`` (see :mod:`drift.sequential`) for a slower but quieter alarm.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from drift.config import MonitorConfig
from drift.errors import ConfigError
from drift.sequential import Cusum

__all__ = ["PerformanceCheck", "PerformanceTracker"]


@dataclass(frozen=True)
class PerformanceCheck:
    """The serving model's error on one labelled window.

    ``window`` is the window the labels belong to; ``alarm`` is the per-window threshold rule,
    ``sequential_alarm`` the CUSUM on the same ratio.
    """

    window: int
    model_version: str
    error: float
    baseline: float
    ratio: float
    alarm: bool
    sequential_alarm: bool
    n_rows: int


class PerformanceTracker:
    """Compare each labelled window's MAE with the serving model's baseline.

    ``baseline`` (here and in :meth:`rebaseline`) must be a finite number > 0, else ConfigError
    naming ``baseline``.
    """

    def __init__(self, baseline: float, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self.baseline = self._check(baseline)
        self.cusum = Cusum(self.config.perf_cusum_allowance, self.config.perf_cusum_threshold)

    def rebaseline(self, baseline: float) -> None:
        """A new model serves: its accepted error becomes the baseline, evidence starts over."""
        self.baseline = self._check(baseline)
        self.cusum.reset()

    def update(
        self, window: int, model_version: str, error: float, n_rows: int
    ) -> PerformanceCheck:
        ratio = error / self.baseline
        sequential = self.cusum.update(ratio - 1.0)
        return PerformanceCheck(
            window=window,
            model_version=model_version,
            error=error,
            baseline=self.baseline,
            ratio=ratio,
            alarm=ratio > self.config.error_ratio_threshold,
            sequential_alarm=sequential.alarm,
            n_rows=n_rows,
        )

    @staticmethod
    def _check(baseline: float) -> float:
        """``baseline`` as a float; ConfigError naming ``baseline`` unless it is a finite number
        > 0. The ratio divides by it: 0 makes every ratio infinite, a negative one flips the
        alarms off, and an infinite one makes every ratio 0, so the tracker never alarms."""
        valid = "must be a finite number > 0 (the serving model's accepted MAE)"
        if isinstance(baseline, bool) or not isinstance(baseline, numbers.Real):
            raise ConfigError("baseline", f"{valid}, got {baseline!r} ({type(baseline).__name__})")
        if not (math.isfinite(baseline) and baseline > 0):
            raise ConfigError("baseline", f"{valid}, got {baseline!r}")
        return float(baseline)
