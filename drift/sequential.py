"""Sequential change detectors: CUSUM and Page-Hinkley over a per-window statistic.

A per-window test asks the same question every week with a fresh 5% chance of a false alarm, and on
large windows it flags differences too small to matter. A sequential detector instead accumulates
evidence across windows and alarms when the accumulated excess is large, which trades a window of
delay for far fewer false alarms (Page 1954, "Continuous inspection schemes", Biometrika 41).

One-sided CUSUM on observations x_t with allowance k and threshold h::

    S_0 = 0,   S_t = max(0, S_{t-1} + x_t - k),   alarm when S_t > h

k is the size of excess you are willing to ignore (noise), h how much accumulated excess you demand.
A shift that lifts x_t by d > k is flagged after about h / (d - k) windows.

Page-Hinkley (Page 1954; Hinkley 1971) is the same idea with the running mean as reference::

    m_t = sum_{i<=t} (x_i - mean_i - delta),   M_t = min_{i<=t} m_i,   alarm when m_t - M_t > lambda

where mean_i = (x_1 + ... + x_i) / i is the running mean *at step i*, so each term is fixed once
added (with the final mean_t instead, m_t would be recomputed in full at every step).

After an alarm both detectors reset, so a persisting shift alarms again only after it has
re-accumulated the evidence (that is the hysteresis built into the statistic).

Bad numbers are refused, not absorbed. A NaN threshold passes ``threshold <= 0`` and then fails
every ``S_t > h`` test, so the detector could never alarm: the constructors raise ConfigError for
a threshold that is not a finite number > 0, and for an allowance or delta that is not finite
(a negative one is allowed: k is a reference level, and on a statistic that is negative when all
is well it is negative too). A NaN observation would be worse than no observation: CUSUM's
``max(0, nan)`` is 0, so one NaN silently wipes the accumulated evidence, and Page-Hinkley's
running mean becomes NaN and never alarms again. ``update`` therefore raises ObservationError for
a NaN or infinite ``x`` and leaves the state as it was; skipping it quietly would hide the bug
upstream that produced it (the monitor's own statistics are always finite).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from drift.errors import ConfigError, ObservationError

__all__ = ["Cusum", "PageHinkley", "SequentialState"]


@dataclass(frozen=True)
class SequentialState:
    """After one update: the ``statistic`` (S_t or m_t - M_t) and whether it ``alarm``-ed."""

    statistic: float
    alarm: bool


class Cusum:
    """One-sided upper CUSUM (see module docstring)."""

    def __init__(self, allowance: float, threshold: float) -> None:
        self.allowance = _number("allowance", allowance)
        self.threshold = _number("threshold", threshold, positive=True)
        self.value = 0.0

    def update(self, x: float) -> SequentialState:
        """Add one observation; ObservationError (state unchanged) if it is NaN or infinite."""
        x = _observation(x)
        self.value = max(0.0, self.value + x - self.allowance)
        alarm = self.value > self.threshold
        state = SequentialState(self.value, alarm)
        if alarm:
            self.value = 0.0
        return state

    def reset(self) -> None:
        self.value = 0.0


class PageHinkley:
    """Page-Hinkley test for an increase in the mean (see module docstring)."""

    def __init__(self, delta: float, threshold: float) -> None:
        self.delta = _number("delta", delta)
        self.threshold = _number("threshold", threshold, positive=True)
        self.reset()

    def update(self, x: float) -> SequentialState:
        """Add one observation; ObservationError (state unchanged) if it is NaN or infinite."""
        x = _observation(x)
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.cumulative += x - self.mean - self.delta
        self.minimum = min(self.minimum, self.cumulative)
        statistic = self.cumulative - self.minimum
        alarm = statistic > self.threshold
        if alarm:
            self.reset()
        return SequentialState(statistic, alarm)

    def reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.cumulative = 0.0
        self.minimum = 0.0


def _number(name: str, value: float, *, positive: bool = False) -> float:
    """``value`` as a float; ConfigError naming ``name`` unless it is a finite real number (and
    > 0 if ``positive``). A bool is refused: ``True`` for a threshold is always a mistake."""
    valid = "a finite number > 0" if positive else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(name, f"must be {valid}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or (positive and not value > 0):
        raise ConfigError(name, f"must be {valid}, got {value!r}")
    return float(value)


def _observation(x: float) -> float:
    """``x`` as a float, or ObservationError if it is not a finite real number."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
        raise ObservationError(
            f"observation {x!r} is not a finite number; the detector's state is unchanged "
            "(a NaN would reset CUSUM's evidence and stop Page-Hinkley for good)",
            value=x,
        )
    return float(x)
