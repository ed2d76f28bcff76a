"""End to end on synthetic data: the loop rolls back a bad deployment, quarantines broken data,
retrains on concept drift, and observe-only mode never changes the model."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from drift.config import MonitorConfig
from drift.errors import ConfigError, WorkdirError
from drift.eval import alarms_of, score_actions, score_detection
from drift.model import DemandModel, Prediction
from drift.prediction_log import PredictionLog
from drift.registry import ModelRegistry
from drift.scenarios import build_scenario
from drift.timeline import clear_run_state, run_scenario, run_state, train_models
from drift.triage import write_triage


def _run(name, bike_data, models, tmp_path, act=True):
    scenario = build_scenario(name, bike_data, n_windows=9, window_rows=300, onset=3, seed=1)
    return run_scenario(scenario, models, tmp_path / f"{name}-{act}", act=act)


def test_bad_deployment_is_rolled_back(bike_data, models, tmp_path):
    timeline = _run("bad_deployment", bike_data, models, tmp_path)
    score = score_actions(timeline)
    assert score.correct, score
    rollback_window = next(w for w, a in timeline.actions() if a == "rollback")
    assert 3 < rollback_window <= 6
    assert timeline.steps[-1].serving == "v0001"
    registry = ModelRegistry(timeline.registry_root)
    assert [e.kind for e in registry.events()] == ["activate", "activate", "rollback"]
    with PredictionLog(timeline.log_path) as log:
        stored = log.decisions()
    assert any(d["action"] == "rollback" and d["evidence"]["previous"] == "v0001" for d in stored)
    observed = _run("bad_deployment", bike_data, models, tmp_path, act=False)
    assert observed.actions() == []
    assert observed.steps[-1].serving == "v0002"  # observe-only keeps the bad model
    recommended = [d.action for s in observed.steps for d in s.decisions]
    assert "rollback" in recommended  # decided and recorded, not executed
    assert timeline.served_mae(3) < observed.served_mae(3)


def test_data_quality_bug_is_quarantined_not_retrained(bike_data, models, tmp_path):
    timeline = _run("data_quality", bike_data, models, tmp_path)
    assert score_actions(timeline).correct
    assert score_detection(timeline, "quality").delay == 0


def test_concept_drift_is_seen_by_labels_not_inputs(bike_data, models, tmp_path):
    timeline = _run("concept_drift", bike_data, models, tmp_path, act=False)
    assert score_detection(timeline, "performance").delay == 1  # labels come a window late
    assert score_detection(timeline, "cusum").missed  # inputs never moved
    acted = _run("concept_drift", bike_data, models, tmp_path)
    assert "retrain" in {a for _, a in acted.actions()}


def test_triage_report_json_and_html(bike_data, models, tmp_path):
    timeline = _run("bad_deployment", bike_data, models, tmp_path)
    report = write_triage(timeline, tmp_path / "triage")
    summary = report.summary
    assert summary["alert_window"] >= 3
    assert [e["kind"] for e in summary["2_deployments"]][:2] == ["activate", "activate"]
    assert report.json_path.exists() and report.html_path.stat().st_size > 10_000
    assert set(alarms_of(timeline.steps[0])) >= {"performance", "cusum", "quality"}


def test_a_workdir_holds_one_run(bike_data, models, tmp_path):
    workdir = tmp_path / "shared"
    first = build_scenario("bad_deployment", bike_data, n_windows=5, window_rows=200, onset=2)
    run_scenario(first, models, workdir)
    (workdir / "notes.txt").write_text("the user's own file")
    own = workdir / "registry" / "versions" / "v1"  # looks like a version, is not one of ours
    own.mkdir()
    (own / "mydata.csv").write_text("x")
    second = build_scenario("concept_drift", bike_data, n_windows=9, window_rows=300, onset=3)
    with pytest.raises(WorkdirError, match="already holds a run") as refused:
        run_scenario(second, models, workdir)
    assert workdir / "predictions.sqlite" in refused.value.files
    assert len(ModelRegistry(workdir / "registry").versions()) == 2  # the first run is untouched

    removed = clear_run_state(workdir)
    assert workdir / "registry" / "versions" / "v0002" in removed
    assert run_state(workdir) == () and (workdir / "notes.txt").exists()
    assert (own / "mydata.csv").exists()  # --fresh deletes only what the run wrote
    timeline = run_scenario(second, models, workdir)
    assert "retrain" in {a for _, a in timeline.actions()}  # the new run's labels were used


def test_a_workdir_under_a_file_is_a_workdir_error(bike_data, models, tmp_path):
    """It was a bare NotADirectoryError from mkdir."""
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's own file")
    scenario = build_scenario("stationary", bike_data, n_windows=2, window_rows=50)
    with pytest.raises(WorkdirError, match=f"{notes / 'run'} cannot be created: {notes} is a file"):
        run_scenario(scenario, models, notes / "run")


@pytest.mark.parametrize("share", [0.1, 1.0])
def test_a_model_emitting_nan_is_a_quality_incident_not_a_crash(
    bike_data, models, tmp_path, monkeypatch, share
):
    """The loop logged predictions before monitoring them, and the log refused NaN, so the
    documented null_burst finding never ran: the whole run stopped at the bad deployment."""
    every = round(1 / share)
    predict = DemandModel.predict

    def nan_when_bad(self, frame):  # the bad model (it forgot hr) answers NaN on some rows
        p = predict(self, frame)
        if "hr" in self.features:
            return p
        value = p.value.copy()
        value[::every] = np.nan
        return Prediction(value, p.low, p.high)

    monkeypatch.setattr(DemandModel, "predict", nan_when_bad)  # registry.load builds new models
    scenario = build_scenario("bad_deployment", bike_data, n_windows=6, window_rows=200, onset=2)
    timeline = run_scenario(scenario, models, tmp_path / "wd", act=False)
    after = [s for s in timeline.steps if s.window >= 2]
    assert all(("null_burst", "prediction") in _findings(s) for s in after)
    assert all("quarantine" in {d.action for d in s.decisions} for s in after)
    with PredictionLog(timeline.log_path) as log:  # only the answered rows were stored
        n_answered = 200 - len(range(0, 200, every))
        assert len(log.labelled([2], "v0002").label) == n_answered
        assert len(log.labelled([2], "v0001").label) == 200  # the shadow answered every row


def _findings(step):
    return {(f.kind, f.column) for f in step.report.quality.findings}


def test_a_pending_candidate_is_scored_before_the_next_retrain(bike_data, models, tmp_path):
    """Labels later than the cool-down (or no cool-down at all): every retrain used to replace
    the previous, still unscored candidate, so nothing was ever promoted (found by a review)."""
    scenario = build_scenario("concept_drift", bike_data, n_windows=14, window_rows=200, onset=2)
    for config in (MonitorConfig(label_delay=4), MonitorConfig(cooldown=0, patience=1)):
        workdir = tmp_path / f"delay{config.label_delay}"
        timeline = run_scenario(scenario, models, workdir, config=config)
        model_actions = [a for _, a in timeline.actions() if a != "quarantine"]
        assert "promote" in model_actions, (config, timeline.actions())
        # Each retrain's candidate is promoted or discarded before the next retrain.
        assert "retrain, retrain" not in ", ".join(model_actions), timeline.actions()
        registered = ModelRegistry(timeline.registry_root).versions()
        assert len(registered) == 1 + model_actions.count("retrain")


def test_a_bad_deployment_is_rolled_back_when_labels_are_late(bike_data, models, tmp_path):
    """The previous model stopped shadowing ``rollback_watch`` serving windows after the
    deployment; with ``label_delay=4`` fewer than ``patience`` of its shadow windows were labelled
    by then, so the bad model was never rolled back, and was retrained instead (found by a
    review). It now shadows until ``rollback_watch`` of its windows are labelled."""
    scenario = build_scenario("bad_deployment", bike_data, n_windows=12, window_rows=200, onset=2)
    config = MonitorConfig(label_delay=4)
    timeline = run_scenario(scenario, models, tmp_path / "wd", config=config)
    assert timeline.actions() == [(2 + 4 + 1, "rollback")]  # labels of windows 2 and 3 arrive
    assert timeline.steps[-1].serving == "v0001"
    rollback = timeline.steps[7].decisions[0]
    assert rollback.evidence["labelled_window"] == 3
    assert rollback.evidence["previous"] == "v0001"


def test_a_window_with_text_or_a_repeated_column_is_quarantined_not_a_crash(
    bike_data, models, tmp_path
):
    """The model served the window before the monitor saw it and died inside pandas, on a text
    value (``wrong_type``) or a repeated column name (found by a review)."""
    scenario = build_scenario("stationary", bike_data, n_windows=3, window_rows=100)
    window = scenario.windows[1].features
    text = window.assign(hum=window["hum"].astype(object))
    text.loc[text.index[:5], "hum"] = "n/a"  # 5 of 100 rows: a sensor sent text
    repeated = pd.concat([window, window[["hum"]]], axis=1)
    for name, features, finding in (
        ("text", text, ("wrong_type", "hum")),
        ("repeated", repeated, ("malformed", "hum")),
    ):
        windows = list(scenario.windows)
        windows[1] = dataclasses.replace(windows[1], features=features)
        broken = dataclasses.replace(scenario, windows=tuple(windows))
        timeline = run_scenario(broken, models, tmp_path / name)
        assert timeline.actions() == [(1, "quarantine")]
        assert _findings(timeline.steps[1]) == {finding}
        assert [len(s.report.quality.findings) for s in timeline.steps] == [0, 1, 0]


def test_triage_json_is_strict_json(bike_data, models, tmp_path):
    """A quality finding that measures nothing (an unexpected column) had the value NaN, written
    as the bare token NaN, which strict JSON readers refuse (found by a review)."""
    scenario = build_scenario("stationary", bike_data, n_windows=3, window_rows=100)
    windows = list(scenario.windows)
    windows[1] = dataclasses.replace(windows[1], features=windows[1].features.assign(source="k7"))
    timeline = run_scenario(dataclasses.replace(scenario, windows=tuple(windows)), models, tmp_path)
    report = write_triage(timeline, tmp_path / "triage", window=1, html=False)

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    summary = json.loads(report.json_path.read_text(), parse_constant=refuse)
    finding = summary["1_data_quality"]["findings"][0]
    assert (finding["kind"], finding["column"], finding["value"]) == (
        "unexpected_column",
        "source",
        None,
    )


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_a_bad_seed_is_refused_before_training_or_creating_the_workdir(
    bike_data, models, tmp_path, seed
):
    """train_models(seed=-1) trained (LightGBM takes -1), and run_scenario(seed=2**32) ran until a
    retrain subsampled with it (pandas' RandomState refuses seeds >= 2**32): refused up front."""
    with pytest.raises(ConfigError, match="seed: must be a whole number"):
        train_models(bike_data, seed=seed)
    scenario = build_scenario("stationary", bike_data, n_windows=2, window_rows=30)
    with pytest.raises(ConfigError, match="seed: must be a whole number"):
        run_scenario(scenario, models, tmp_path / "run", seed=seed)
    assert not (tmp_path / "run").exists()


def test_the_largest_seed_trains_every_model(bike_data):
    """The benign retrain takes the next seed, wrapping round to 0 after 2**32 - 1."""
    models = train_models(bike_data, seed=2**32 - 1)
    assert set(models.baseline_mae) == {"base", "benign", "bad"}
