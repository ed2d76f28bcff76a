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
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cusum", "PageHinkley", "SequentialState"]


@dataclass(frozen=True)
class SequentialState:
    """After one update: the ``statistic`` (S_t or m_t - M_t) and whether it ``alarm``-ed."""

    statistic: float
    alarm: bool


class Cusum:
    """One-sided upper CUSUM (see module docstring)."""

    def __init__(self, allowance: float, threshold: float) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.allowance = allowance
        self.threshold = threshold
        self.value = 0.0

    def update(self, x: float) -> SequentialState:
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
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.delta = delta
        self.threshold = threshold
        self.reset()

    def update(self, x: float) -> SequentialState:
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
