"""The action policies: small readable rules with hysteresis and a cool-down.

Detecting drift is the easy half; the hard half is acting on it without flapping. Each rule below
is one sentence of on-call judgement, and the engine adds the two guards every production control
loop needs (the same ideas as a thermostat's dead band and an autoscaler's stabilisation window):

- **hysteresis**: a rule acts only after its condition held for ``patience`` labelled windows in a
  row, so one noisy window never rolls a model back;
- **cool-down**: after a rollback, retrain or promotion, no new rollback or retrain starts for
  ``cooldown`` windows, so the system observes the effect of its last action before the next one.

A hysteresis counter keeps counting while its action is held back (by the cool-down or by a pending
candidate, below), so a rule whose condition held throughout acts on the first window it may.

Rules, in the order they are consulted:

1. ``quality_gate``: a data-quality incident in the window -> ``quarantine``. Fix the pipeline, not
   the model: nothing below may retrain on, or blame the model for, broken inputs.
2. ``rollback``: a newly deployed model is worse than the one before it (scored as a shadow on the
   same rows) by ``rollback_margin`` -> ``rollback``.
3. ``promote``: a candidate (a retrained model running as a shadow) beats the serving model on
   recent labelled windows by ``promote_margin`` -> ``promote``; if it loses -> ``discard``.
4. ``retrain``: the serving model's error stays above its baseline (concept drift) -> ``retrain``
   a candidate on recent labelled data. It never serves directly: it must win rule 3 first. Held
   back while a rollback is being considered (the previous model is still being scored), and
   while a candidate is *pending*: shadowing, but its first shadow window not yet labelled. A
   candidate is judged only on windows it shadowed, so with labels ``label_delay`` windows late it
   has no score for ``label_delay`` windows; a retrain then would replace it unscored, and under
   concept drift a loop whose labels lag the cool-down would retrain for ever and promote nothing.
5. ``drift_alert``: inputs or predictions drifted but no label evidence of harm (yet) ->
   ``investigate`` (alert only: drift alone is not a reason to change a model).

Policies decide; they do not act. :mod:`drift.timeline` executes decisions against the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drift.config import MonitorConfig
from drift.performance import PerformanceCheck

__all__ = ["Decision", "Evidence", "PolicyEngine", "ShadowScore"]


@dataclass(frozen=True)
class ShadowScore:
    """A shadow model's MAE on the same labelled rows as the serving model."""

    version: str
    error: float


@dataclass(frozen=True)
class Evidence:
    """Everything the rules may look at for one serving window.

    ``performance`` is None until labels for some window arrive; ``shadows`` maps a shadow role
    ("previous": the model served before the last deployment, "candidate": a retrained model) to
    its score on the same labelled window. ``pending_candidate`` is the version of a candidate that
    is shadowing but has no score here (the labelled window predates it): rule 4 waits for it.
    """

    window: int
    quality_findings: tuple[str, ...] = ()
    labelled_window_quality_ok: bool = True
    performance: PerformanceCheck | None = None
    shadows: dict[str, ShadowScore] = field(default_factory=dict)
    pending_candidate: str | None = None
    data_drift: bool = False
    drifted_features: tuple[str, ...] = ()
    prediction_drift: bool = False


@dataclass(frozen=True)
class Decision:
    """A decision: the ``rule`` that made it, the ``action``, human ``reasons`` and the numbers."""

    window: int
    rule: str
    action: str
    reasons: tuple[str, ...]
    evidence: dict[str, Any]


class _Streak:
    """Counts consecutive windows a condition held (the hysteresis counter)."""

    def __init__(self) -> None:
        self.count = 0

    def observe(self, holds: bool) -> int:
        self.count = self.count + 1 if holds else 0
        return self.count


class PolicyEngine:
    """Apply the rules of the module docstring to one window's :class:`Evidence` at a time."""

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self.rollback_streak = _Streak()
        self.retrain_streak = _Streak()
        self.promote_streak = _Streak()
        self.discard_streak = _Streak()
        self.last_action_window: int | None = None

    def in_cooldown(self, window: int) -> bool:
        last = self.last_action_window
        return last is not None and window - last <= self.config.cooldown

    def decide(self, ev: Evidence) -> list[Decision]:
        """Return this window's decisions (possibly none), most urgent first."""
        cfg = self.config
        decisions: list[Decision] = []
        if ev.quality_findings:
            decisions.append(
                Decision(
                    ev.window,
                    "quality_gate",
                    "quarantine",
                    (
                        "data-quality incident; model actions suspended for this window",
                        *ev.quality_findings,
                    ),
                    {"findings": list(ev.quality_findings)},
                )
            )
            return decisions
        perf = ev.performance
        if perf is None or not ev.labelled_window_quality_ok:
            return self._drift_alert(ev)
        numbers: dict[str, Any] = {
            "labelled_window": perf.window,
            "serving": perf.model_version,
            "serving_mae": perf.error,
            "baseline_mae": perf.baseline,
            "error_ratio": perf.ratio,
        }
        # 2. rollback: the model before the last deployment does better on the same rows.
        previous = ev.shadows.get("previous")
        worse = previous is not None and perf.error > previous.error * (1 + cfg.rollback_margin)
        if self.rollback_streak.observe(worse) >= cfg.patience and not self.in_cooldown(ev.window):
            self.rollback_streak.count = 0
            self.last_action_window = ev.window
            return [
                Decision(
                    ev.window,
                    "rollback",
                    "rollback",
                    (
                        f"serving {perf.model_version} MAE {perf.error:.1f} > previous "
                        f"{previous.version} MAE {previous.error:.1f} x "
                        f"{1 + cfg.rollback_margin:.2f} for {cfg.patience} labelled windows",
                    ),
                    {**numbers, "previous": previous.version, "previous_mae": previous.error},
                )
            ]
        # 3. promote / discard a candidate that has been shadowing.
        candidate = ev.shadows.get("candidate")
        if candidate is not None:
            wins = candidate.error < perf.error * (1 - cfg.promote_margin)
            cand = {**numbers, "candidate": candidate.version, "candidate_mae": candidate.error}
            if self.promote_streak.observe(wins) >= cfg.promote_patience:
                self._reset_after_action(ev.window)
                return [
                    Decision(
                        ev.window,
                        "promote",
                        "promote",
                        (
                            f"candidate {candidate.version} MAE {candidate.error:.1f} beat serving "
                            f"MAE {perf.error:.1f} by > {cfg.promote_margin:.0%} for "
                            f"{cfg.promote_patience} labelled window(s)",
                        ),
                        cand,
                    )
                ]
            if self.discard_streak.observe(not wins) >= cfg.patience:
                self.discard_streak.count = 0
                decisions.append(
                    Decision(
                        ev.window,
                        "promote",
                        "discard",
                        (
                            f"candidate {candidate.version} MAE {candidate.error:.1f} did not "
                            f"beat serving MAE {perf.error:.1f}; keeping the serving model",
                        ),
                        cand,
                    )
                )
            return decisions
        # 4. retrain on sustained concept drift; never while a rollback is being considered, and
        # never while a candidate waits for its first labelled window (a retrain would replace it
        # before it was ever scored). The streak counts on meanwhile, as during a cool-down.
        degraded = (perf.alarm or perf.sequential_alarm) and previous is None
        held = self.in_cooldown(ev.window) or ev.pending_candidate is not None
        if self.retrain_streak.observe(degraded) >= cfg.patience and not held:
            self.retrain_streak.count = 0
            self.last_action_window = ev.window
            return [
                Decision(
                    ev.window,
                    "retrain",
                    "retrain",
                    (
                        f"serving MAE {perf.error:.1f} is {perf.ratio:.2f}x its baseline "
                        f"{perf.baseline:.1f} (threshold {cfg.error_ratio_threshold}) for "
                        f"{cfg.patience} labelled windows; training a candidate to run in shadow",
                    ),
                    {**numbers, "drifted_features": list(ev.drifted_features)},
                )
            ]
        return decisions + self._drift_alert(ev)

    def _drift_alert(self, ev: Evidence) -> list[Decision]:
        if not (ev.data_drift or ev.prediction_drift):
            return []
        what = " and ".join(
            name
            for name, flag in (("input", ev.data_drift), ("prediction", ev.prediction_drift))
            if flag
        )
        return [
            Decision(
                ev.window,
                "drift_alert",
                "investigate",
                (f"{what} drift without label evidence of harm; alert only, no model action",),
                {
                    "drifted_features": list(ev.drifted_features),
                    "prediction_drift": ev.prediction_drift,
                },
            )
        ]

    def _reset_after_action(self, window: int) -> None:
        self.promote_streak.count = 0
        self.discard_streak.count = 0
        self.retrain_streak.count = 0
        self.last_action_window = window
