"""Score monitors against the scenarios' ground truth.

Definitions (the benchmark's columns):

- **false-alarm rate**: share of windows *without* an incident (all windows of ``stationary``, and
  the windows before the onset elsewhere) on which a detector alarmed;
- **detection delay**: windows from the onset to the first alarm at or after it (0 = the onset
  window itself). Label-based detectors cannot beat ``label_delay``: labels come a window late;
- **missed incident**: no alarm at all from the onset to the end of the timeline;
- **correct actions**: every ``required`` action was taken and no ``forbidden`` one (rolled back the
  bad deployment; did not roll back on benign change; retrained on concept drift);
- **error with vs without actions**: row-weighted MAE of what was served from the onset on, by the
  acting monitor and by the same monitor in observe-only mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drift.monitor import DETECTORS
from drift.timeline import Step, Timeline

__all__ = [
    "ALL_DETECTORS",
    "ActionScore",
    "DetectionScore",
    "alarms_of",
    "false_alarm_rate",
    "score_actions",
    "score_detection",
]

ALL_DETECTORS = (*DETECTORS, "performance", "performance_cusum")


def alarms_of(step: Step) -> dict[str, bool]:
    """Every detector's alarm in one step, label-based ones included (False before labels)."""
    perf = step.performance
    return {
        **step.report.alarms,
        "performance": bool(perf and perf.alarm),
        "performance_cusum": bool(perf and perf.sequential_alarm),
    }


@dataclass(frozen=True)
class DetectionScore:
    """One detector on one timeline. ``delay`` is None when the incident was missed."""

    detector: str
    false_alarms: int
    quiet_windows: int
    delay: int | None
    missed: bool


def score_detection(timeline: Timeline, detector: str) -> DetectionScore:
    """False alarms before the onset and the delay after it (see module docstring)."""
    if detector not in ALL_DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; valid: {', '.join(ALL_DETECTORS)}")
    onset = timeline.scenario.onset
    false_alarms = quiet = 0
    delay = None
    for step in timeline.steps:
        alarm = alarms_of(step)[detector]
        if onset is None or step.window < onset:
            quiet += 1
            false_alarms += alarm
        elif alarm and delay is None:
            delay = step.window - onset
    missed = onset is not None and delay is None
    return DetectionScore(detector, false_alarms, quiet, delay, missed)


@dataclass(frozen=True)
class ActionScore:
    """Were the right actions taken? ``taken`` lists (window, action) pairs."""

    taken: tuple[tuple[int, str], ...]
    missing: frozenset[str]
    forbidden_taken: frozenset[str]
    correct: bool


def score_actions(timeline: Timeline) -> ActionScore:
    """Compare the actions of an acting timeline with the scenario's required/forbidden sets."""
    taken = tuple(timeline.actions())
    kinds = {action for _, action in taken}
    scenario = timeline.scenario
    missing = frozenset(scenario.required - kinds)
    forbidden = frozenset(scenario.forbidden & kinds)
    return ActionScore(taken, missing, forbidden, not missing and not forbidden)


def false_alarm_rate(alarms: Iterable[bool]) -> float:
    """Share of True in a sequence of quiet-window alarms (0.0 for an empty sequence)."""
    values = list(alarms)
    return sum(values) / len(values) if values else 0.0
