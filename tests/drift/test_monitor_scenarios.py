"""The monitor's detectors and the scenario generators (synthetic data)."""

import numpy as np
import pytest

from drift.config import MIN_WINDOW_ROWS, MonitorConfig
from drift.errors import ConfigError, ScenarioError
from drift.features import FEATURES
from drift.monitor import DETECTORS, Monitor
from drift.scenarios import build_scenario, tilt_weights


def test_tilt_weights_shift_the_mean_by_the_requested_sd():
    values = np.random.default_rng(0).uniform(0, 1, 5000)
    for shift in (0.25, 0.5, -0.5):
        w = tilt_weights(values, shift)
        moved = (np.sum(w * values) - values.mean()) / values.std()
        assert moved == pytest.approx(shift, abs=1e-6)
    with pytest.raises(ScenarioError, match="outside"):
        tilt_weights(values, 5.0)


def test_scenarios_have_ground_truth(bike_data):
    cov = build_scenario("covariate_shift", bike_data, n_windows=6, window_rows=200, onset=3)
    before = np.mean([w.features["temp"].mean() for w in cov.windows[:3]])
    after = np.mean([w.features["temp"].mean() for w in cov.windows[3:]])
    assert after > before
    assert cov.windows[3].deploy == "benign" and "rollback" in cov.forbidden
    dq = build_scenario("data_quality", bike_data, n_windows=6, window_rows=200, onset=3)
    assert dq.windows[2].features["temp"].max() <= 1 < dq.windows[3].features["temp"].max()
    concept = build_scenario("concept_drift", bike_data, n_windows=6, window_rows=200, onset=3)
    assert concept.required == {"retrain"}
    real = build_scenario("real_2011_2012", bike_data)
    assert real.onset == 0 and len(real.windows) == 3  # 20 synthetic days of "2012"
    with pytest.raises(ScenarioError, match="unknown scenario"):
        build_scenario("meteor", bike_data)
    with pytest.raises(ScenarioError, match="onset"):
        build_scenario("bad_deployment", bike_data, n_windows=4, onset=4)


def test_monitor_reports_every_detector_and_cusum_catches_a_shift(bike_data):
    scenario = build_scenario(
        "covariate_shift", bike_data, n_windows=6, window_rows=400, onset=3, shift_sd=1.0
    )
    monitor = Monitor(MonitorConfig())
    reports = [monitor.observe(w.index, w.reference, w.features) for w in scenario.windows]
    assert all(set(r.alarms) == set(DETECTORS) for r in reports)
    assert not any(r.alarms["cusum"] for r in reports[:3])
    assert any(r.alarms["cusum"] for r in reports[3:5])
    assert reports[3].drift.ranked()[0].column in ("temp", "atemp")
    assert all(r.seconds >= 0 for r in reports)
    assert set(reports[0].to_dict()) >= {"quality", "drift", "alarms"}
    assert list(scenario.windows[0].features.columns) == list(FEATURES)


def test_uncertainty_detector_sees_wider_intervals(bike_data, models):
    window = bike_data.holdout[list(FEATURES)].iloc[:400]
    reference = bike_data.holdout[list(FEATURES)].iloc[400:800]
    ref_out, cur_out = models.base.predict(reference), models.base.predict(window)
    quiet = Monitor().observe(
        0, reference, window, uncertainty=(ref_out.uncertainty, cur_out.uncertainty)
    )
    loud = Monitor().observe(
        0, reference, window, uncertainty=(ref_out.uncertainty, 2 * cur_out.uncertainty)
    )
    assert loud.alarms["uncertainty"]
    # The same intervals on both sides: no alarm. This was computed but never asserted, so a
    # detector alarming on every window passed (found by a review).
    assert not quiet.alarms["uncertainty"]
    assert not Monitor().observe(0, reference, window).alarms["uncertainty"]
    assert quiet.alarms.keys() == loud.alarms.keys()


def test_scenario_windows_are_never_below_the_monitors_minimum(bike_data):
    with pytest.raises(ScenarioError, match=f"window_rows must be >= {MIN_WINDOW_ROWS}"):
        build_scenario("stationary", bike_data, window_rows=MIN_WINDOW_ROWS - 1)
    assert len(build_scenario("stationary", bike_data, window_rows=MIN_WINDOW_ROWS).windows) == 16


@pytest.mark.parametrize("seed", [-1, 2**32, 0.5, False])
def test_a_seed_numpy_cannot_take_is_a_config_error(bike_data, seed):
    """-1 failed in numpy's SeedSequence with a builtin ValueError (the CLI refused it, the
    library did not)."""
    with pytest.raises(ConfigError, match="seed: must be a whole number from 0 to 2\\*\\*32 - 1"):
        build_scenario("stationary", bike_data, seed=seed)
