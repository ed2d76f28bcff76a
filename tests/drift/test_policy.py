"""Each policy rule: hysteresis, cool-down, promotion guard, quality gate, rollback vs retrain."""

from drift.config import MonitorConfig
from drift.performance import PerformanceCheck
from drift.policy import Evidence, PolicyEngine, ShadowScore

CONFIG = MonitorConfig(patience=2, cooldown=3, rollback_margin=0.1, promote_margin=0.02)


def perf(window, error, baseline=10.0, version="v2"):
    ratio = error / baseline
    return PerformanceCheck(window, version, error, baseline, ratio, ratio > 1.25, False, 100)


def ev(window, error, **kwargs):
    return Evidence(window=window, performance=perf(window - 1, error), **kwargs)


def actions(decisions):
    return [d.action for d in decisions]


def test_rollback_needs_patience_windows_in_a_row():
    engine = PolicyEngine(CONFIG)
    previous = {"previous": ShadowScore("v1", 10.0)}
    assert actions(engine.decide(ev(1, 20.0, shadows=previous))) == []  # one bad window: wait
    assert actions(engine.decide(ev(2, 10.5, shadows=previous))) == []  # within margin: reset
    assert actions(engine.decide(ev(3, 20.0, shadows=previous))) == []
    decisions = engine.decide(ev(4, 20.0, shadows=previous))
    assert actions(decisions) == ["rollback"]
    assert decisions[0].evidence["previous_mae"] == 10.0
    assert "previous v1" in decisions[0].reasons[0]


def test_no_rollback_when_new_model_is_not_worse():
    engine = PolicyEngine(CONFIG)
    previous = {"previous": ShadowScore("v1", 10.0)}
    for w in range(1, 8):
        assert "rollback" not in actions(engine.decide(ev(w, 10.9, shadows=previous)))


def test_retrain_after_sustained_degradation_then_cooldown():
    engine = PolicyEngine(CONFIG)
    assert actions(engine.decide(ev(1, 20.0))) == []
    assert actions(engine.decide(ev(2, 20.0))) == ["retrain"]
    # still degraded, but inside the cool-down (windows 3..5): no second retrain
    for w in (3, 4, 5):
        assert actions(engine.decide(ev(w, 20.0))) == []
    assert actions(engine.decide(ev(6, 20.0))) == ["retrain"]


def test_retrain_is_not_triggered_while_rollback_is_in_question():
    engine = PolicyEngine(CONFIG)
    close_previous = {"previous": ShadowScore("v1", 19.5)}  # new model not worse than previous
    for w in range(1, 6):
        assert "retrain" not in actions(engine.decide(ev(w, 20.0, shadows=close_previous)))


def test_promotion_guard_requires_a_win():
    engine = PolicyEngine(CONFIG)
    loses = {"candidate": ShadowScore("v3", 19.9)}  # not 2% better than 20.0
    assert actions(engine.decide(ev(1, 20.0, shadows=loses))) == []
    assert actions(engine.decide(ev(2, 20.0, shadows=loses))) == ["discard"]
    wins = {"candidate": ShadowScore("v4", 15.0)}
    decisions = engine.decide(ev(3, 20.0, shadows=wins))
    assert actions(decisions) == ["promote"]
    assert decisions[0].evidence["candidate"] == "v4"


def test_quality_gate_suspends_model_actions():
    engine = PolicyEngine(CONFIG)
    previous = {"previous": ShadowScore("v1", 5.0)}
    engine.decide(ev(1, 20.0, shadows=previous))
    decisions = engine.decide(
        ev(2, 20.0, shadows=previous, quality_findings=("temp: 100% out of range",))
    )
    assert actions(decisions) == ["quarantine"]
    assert "temp: 100% out of range" in decisions[0].reasons


def test_labels_from_a_broken_window_are_not_evidence():
    engine = PolicyEngine(CONFIG)
    for w in range(1, 6):
        decisions = engine.decide(ev(w, 30.0, labelled_window_quality_ok=False))
        assert actions(decisions) == []


def test_drift_without_labels_is_an_alert_only():
    engine = PolicyEngine(CONFIG)
    decisions = engine.decide(Evidence(window=0, data_drift=True, drifted_features=("temp",)))
    assert actions(decisions) == ["investigate"]
    assert decisions[0].evidence["drifted_features"] == ["temp"]


def test_prediction_drift_alone_raises_an_alert():
    engine = PolicyEngine(CONFIG)
    decisions = engine.decide(Evidence(window=6, prediction_drift=True))
    assert actions(decisions) == ["investigate"]
    assert decisions[0].reasons[0].startswith("prediction drift")


def test_no_rollback_inside_the_cooldown_of_a_retrain():
    """The cool-down guards rollback too: evidence that the previous model is better, arriving
    right after a retrain, waits until the system has seen that action's effect."""
    engine = PolicyEngine(CONFIG)
    assert actions(engine.decide(ev(1, 20.0))) == []
    assert actions(engine.decide(ev(2, 20.0))) == ["retrain"]  # cool-down: windows 3..5
    previous = {"previous": ShadowScore("v1", 10.0)}  # serving 20.0 > 10.0 x 1.1
    # the rollback condition holds for patience (2) windows and more, all inside the cool-down
    for w in (3, 4, 5):
        assert actions(engine.decide(ev(w, 20.0, shadows=previous))) == []
    assert actions(engine.decide(ev(6, 20.0, shadows=previous))) == ["rollback"]


def test_a_promotion_starts_the_cooldown():
    """A promotion is an action like a retrain: a degraded serving model right after it gets no
    new retrain until ``cooldown`` windows have passed."""
    engine = PolicyEngine(CONFIG)
    wins = {"candidate": ShadowScore("v3", 15.0)}  # promote_patience 1
    assert actions(engine.decide(ev(1, 20.0, shadows=wins))) == ["promote"]  # cool-down: 2..4
    # degraded (ratio 2.0 > 1.25) with no candidate and no previous: the retrain condition
    # holds for patience (2) windows and more, all inside the cool-down
    for w in (2, 3, 4):
        assert actions(engine.decide(ev(w, 20.0))) == []
    assert actions(engine.decide(ev(5, 20.0))) == ["retrain"]


def test_no_retrain_while_a_candidate_waits_for_its_first_labelled_window():
    """A candidate is scored only on windows it shadowed, so with labels late it has no score for
    a while. Rule 4 used to fire again as soon as the cool-down ended, and the timeline replaced the
    unscored candidate: under concept drift nothing was ever promoted (found by a review)."""
    engine = PolicyEngine(MonitorConfig(patience=1, cooldown=0))
    assert actions(engine.decide(ev(1, 20.0))) == ["retrain"]
    for w in (2, 3, 4):  # degraded, out of cool-down, but the candidate v3 is not scored yet
        assert actions(engine.decide(ev(w, 20.0, pending_candidate="v3"))) == []
    wins = {"candidate": ShadowScore("v3", 15.0)}
    assert actions(engine.decide(ev(5, 20.0, shadows=wins))) == ["promote"]
    # The streak counts on while the retrain is held back, as during a cool-down.
    engine = PolicyEngine(MonitorConfig(patience=2, cooldown=0))
    assert actions(engine.decide(ev(1, 20.0, pending_candidate="v3"))) == []
    assert actions(engine.decide(ev(2, 20.0, pending_candidate="v3"))) == []
    assert actions(engine.decide(ev(3, 20.0))) == ["retrain"]
