"""Monitor.observe at its boundary: windows too small to judge, bad model outputs, malformed
arguments. Each case has a known answer on tiny synthetic windows."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from drift import config as config_module
from drift.config import MonitorConfig
from drift.data_drift import detect_drift
from drift.errors import ConfigError, SchemaError
from drift.features import FEATURES
from drift.monitor import DETECTORS, Monitor
from drift.quality import check_quality
from tests.drift.conftest import synthetic_hours

DRIFT_DETECTORS = tuple(d for d in DETECTORS if d != "quality")


def _frames():
    reference = synthetic_hours(10, seed=4)[list(FEATURES)].reset_index(drop=True)
    current = synthetic_hours(10, seed=5)[list(FEATURES)].reset_index(drop=True)
    return reference, current


def _outputs(n, seed=0):
    return np.random.default_rng(seed).gamma(2.0, 50.0, n)


# ---- windows too small to judge (finding 14) -------------------------------------------------


def test_empty_window_is_a_quality_incident_not_healthy():
    reference, current = _frames()
    report = Monitor().observe(0, reference, current.iloc[:0])
    assert not report.quality.ok
    assert [f.kind for f in report.quality.findings] == ["too_few_rows"]
    assert report.alarms["quality"]
    assert not any(report.alarms[d] for d in DRIFT_DETECTORS)
    assert report.drift.features == () and report.n_rows == 0


def test_empty_reference_is_an_error():
    reference, current = _frames()
    with pytest.raises(SchemaError, match="reference has 0 rows"):
        Monitor().observe(0, reference.iloc[:0], current)
    with pytest.raises(SchemaError, match="reference has 0 rows"):
        detect_drift(reference.iloc[:0], current)


def test_tiny_window_is_flagged_and_leaves_the_sequential_state_alone():
    """A 1-row window used to fire the CUSUM (distance ~1.3 against k = 0.15) and carry the
    excess into later windows. Now it is ``too_few_rows`` and the detectors never see it."""
    reference, current = _frames()
    config = MonitorConfig()
    half = len(current) // 2
    with_tiny, without = Monitor(config), Monitor(config)
    first = with_tiny.observe(0, reference, current.iloc[:half])
    tiny = with_tiny.observe(1, reference, current.iloc[:1])
    assert [f.kind for f in tiny.quality.findings] == ["too_few_rows"]
    assert not tiny.alarms["cusum"] and not tiny.alarms["page_hinkley"]
    assert tiny.cusum_statistic == first.cusum_statistic
    without.observe(0, reference, current.iloc[:half])
    assert vars(with_tiny.cusum) == vars(without.cusum)  # both detectors' whole state
    assert vars(with_tiny.page_hinkley) == vars(without.page_hinkley)
    after = with_tiny.observe(2, reference, current.iloc[half:])
    baseline = without.observe(2, reference, current.iloc[half:])
    assert after.alarms == baseline.alarms
    assert after.cusum_statistic == baseline.cusum_statistic
    # the minimum is the documented one, and a window of exactly that size is judged
    judged = Monitor(config).observe(0, reference, current.iloc[: config.min_window_rows])
    assert judged.quality.ok and judged.drift.features


def test_window_with_every_feature_renamed_is_a_quality_incident_not_a_crash():
    """Upper-cased column names upstream left no feature to test: detect_drift raised
    SchemaError and the quality findings were lost. Now the window is judged like a tiny one."""
    reference, current = _frames()
    monitor = Monitor()
    before = vars(monitor.cusum).copy(), vars(monitor.page_hinkley).copy()
    predictions = (_outputs(len(reference)), _outputs(len(current), seed=1))
    renamed = current.rename(columns=str.upper)
    report = monitor.observe(0, reference, renamed, predictions=predictions)
    kinds = {(f.kind, f.column) for f in report.quality.findings}
    assert {("missing_column", c) for c in FEATURES} <= kinds
    assert report.alarms["quality"]
    assert not any(report.alarms[d] for d in DRIFT_DETECTORS)
    assert report.drift.features == ()
    assert (vars(monitor.cusum), vars(monitor.page_hinkley)) == before
    # one renamed column is still judged: the others are tested, the rename is a finding
    one = Monitor().observe(0, reference, current.rename(columns={"temp": "temperature"}))
    assert ("missing_column", "temp") in {(f.kind, f.column) for f in one.quality.findings}
    assert one.drift.features and one.alarms["quality"]


def test_reference_below_the_minimum_is_an_error():
    reference, current = _frames()
    with pytest.raises(SchemaError, match="min_window_rows"):
        Monitor().observe(0, reference.iloc[:5], current)


# ---- bad model outputs (finding 15) ----------------------------------------------------------


@pytest.mark.parametrize("which", ["predictions", "uncertainty"])
def test_outputs_of_the_wrong_length_are_an_error(which):
    reference, current = _frames()
    ref_out, cur_out = _outputs(len(reference)), _outputs(len(current), seed=1)
    for pair in ((ref_out, cur_out[:10]), (ref_out[:10], cur_out), (ref_out, np.array([]))):
        with pytest.raises(SchemaError, match="one value per row"):
            Monitor().observe(0, reference, current, **{which: pair})
    with pytest.raises(SchemaError, match="one value per row"):
        Monitor().observe(0, reference, current, **{which: (ref_out, None)})
    with pytest.raises(SchemaError, match="pair"):
        Monitor().observe(0, reference, current, **{which: cur_out})


@pytest.mark.parametrize("which", ["predictions", "uncertainty"])
@pytest.mark.parametrize("finite", [0, 3])
def test_nan_outputs_are_a_quality_incident(which, finite):
    """A model emitting NaN used to give a quiet window (a drift test drops NaN)."""
    reference, current = _frames()
    ref_out = _outputs(len(reference))
    bad = np.full(len(current), np.nan)
    bad[:finite] = 100.0
    report = Monitor().observe(0, reference, current, **{which: (ref_out, bad)})
    column = "prediction" if which == "predictions" else which
    assert [(f.kind, f.column) for f in report.quality.findings] == [("null_burst", column)]
    assert report.alarms["quality"]
    healthy = (ref_out, _outputs(len(current), seed=1))
    assert Monitor().observe(0, reference, current, **{which: healthy}).quality.ok


def test_infinite_predictions_count_as_missing():
    reference, current = _frames()
    outputs = {"prediction": np.full(len(current), np.inf)}
    report = check_quality(current, reference, outputs=outputs)
    assert [(f.kind, f.column, f.value) for f in report.findings] == [
        ("null_burst", "prediction", 1.0)
    ]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"method": "pvalue"},
        {"method": "pvalue", "correction": "bonferroni"},
        # exactly the monitor's alibi-detect verdict, which is computed without predictions
        {"method": "pvalue", "correction": "bonferroni", "chi_squared": "two_sample"},
    ],
    ids=["default", "pvalue", "pvalue+bonferroni", "alibi"],
)
def test_the_configured_verdict_carries_the_prediction_drift_under_every_method(options):
    """Triage's ``3_drift`` is ``report.drift``, so under every method it carries the
    predictions' drift, judged by that method's test; otherwise the report of a bad deployment
    would have no prediction drift to show."""
    reference, current = _frames()
    shifted = (_outputs(len(reference)), _outputs(len(current), seed=1) + 300.0)  # ~3 sd up
    report = Monitor(MonitorConfig(**options)).observe(0, reference, current, predictions=shifted)
    assert report.alarms["prediction"]
    prediction = report.drift.prediction
    assert prediction is not None and prediction.drifted
    assert (prediction.test, prediction.threshold) == ("ks", 0.05)  # 240 reference rows: KS
    assert report.drift.to_dict()["prediction"]["drifted"]
    quiet = (_outputs(len(reference)), _outputs(len(current), seed=1))
    calm = Monitor(MonitorConfig(**options)).observe(0, reference, current, predictions=quiet)
    assert calm.drift.prediction is not None and not calm.drift.prediction.drifted
    assert Monitor(MonitorConfig(**options)).observe(0, reference, current).drift.prediction is None


# ---- malformed arguments (finding 16) ------------------------------------------------------


def test_reference_missing_a_column_is_a_schema_error():
    reference, current = _frames()
    with pytest.raises(SchemaError, match=r"reference: missing columns \['temp'\]") as info:
        Monitor().observe(0, reference.drop(columns=["temp"]), current)
    assert info.value.columns == ("temp",)
    with pytest.raises(SchemaError, match="reference: missing columns"):
        detect_drift(reference.drop(columns=["temp"]), current)


@pytest.mark.parametrize("shape", ["dict", "ndarray", "list"])
def test_a_window_that_is_not_a_dataframe_is_a_schema_error(shape):
    reference, current = _frames()
    window = {
        "dict": current.to_dict("list"),
        "ndarray": current.to_numpy(),
        "list": current.values.tolist(),
    }[shape]
    with pytest.raises(SchemaError, match="current: expected a pandas DataFrame"):
        Monitor().observe(0, reference, window)
    with pytest.raises(SchemaError, match="expected a pandas DataFrame"):
        Monitor().observe(0, window, current)
    with pytest.raises(SchemaError, match="current: expected a pandas DataFrame"):
        check_quality(window, reference)
    with pytest.raises(SchemaError, match="current: expected a pandas DataFrame"):
        detect_drift(reference, window)


@pytest.mark.parametrize("engine", ["numpy", "evidently"])
def test_a_window_with_a_repeated_column_is_a_schema_error(engine):
    """``frame["temp"]`` is a DataFrame when "temp" appears twice: the monitor failed with an
    AttributeError (a TypeError for the reference) from inside pandas."""
    reference, current = _frames()
    twice = pd.concat([current, current[["temp"]]], axis=1)
    reference_twice = pd.concat([reference, reference[["temp"]]], axis=1)
    config = MonitorConfig(engine=engine)
    for call in (
        lambda: Monitor(config).observe(0, reference, twice),
        lambda: Monitor(config).observe(0, reference_twice, current),
        lambda: detect_drift(reference, twice, config=config),
        lambda: detect_drift(reference_twice, current, config=config),
        lambda: check_quality(twice, reference),
    ):
        with pytest.raises(SchemaError, match=r"columns \['temp'\] appear more than once") as bad:
            call()
        assert bad.value.columns == ("temp",)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("field", ["cusum_allowance", "cusum_threshold", "ph_delta", "patience"])
def test_config_rejects_non_finite_numbers(field, value):
    with pytest.raises(ConfigError, match="finite") as info:
        MonitorConfig(**{field: value})
    assert info.value.field == field


# Every number field, found from the defaults rather than the annotations, so the list does not
# depend on how the annotations are spelt (strings under ``from __future__ import annotations``).
NUMERIC_FIELDS = [
    f.name
    for f in dataclasses.fields(MonitorConfig)
    if isinstance(f.default, int | float) and not isinstance(f.default, bool)
]


def test_the_numeric_fields_are_the_configs_numbers():
    assert len(NUMERIC_FIELDS) == 23
    assert set(config_module._RANGES) <= set(NUMERIC_FIELDS)  # no range for a missing field


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
def test_every_numeric_config_field_is_validated(field):
    with pytest.raises(ConfigError, match=f"{field}: must be finite") as info:
        MonitorConfig(**{field: float("nan")})
    assert info.value.field == field
    with pytest.raises(ConfigError, match=f"{field}: must be") as info:
        MonitorConfig(**{field: "1"})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # a zero threshold fires its detector on every window (S_t > h = 0)
        ("cusum_threshold", 0.0, r"cusum_threshold: must be a number > 0, got 0\.0"),
        ("perf_cusum_threshold", 0, "perf_cusum_threshold: must be a number > 0"),
        ("ph_threshold", -0.3, "ph_threshold: must be a number > 0"),
        # numpy's NaN is not a Python float, and NaN would switch the CUSUM off for good
        ("cusum_allowance", np.float32("nan"), r"cusum_allowance: must be finite .*>= 0"),
        ("cusum_threshold", np.float64("inf"), "cusum_threshold: must be finite"),
        ("cusum_threshold", "0.3", r"must be a number > 0, got '0\.3' \(str\)"),
        ("cusum_threshold", True, r"must be a number > 0, got True \(bool\)"),
        ("patience", 2.5, r"patience: must be an integer >= 1, got 2\.5"),
        ("patience", 0, "patience: must be an integer >= 1, got 0"),
        ("retrain_windows", 0, "retrain_windows: must be an integer >= 1"),
        ("drift_share", np.float32(1.5), r"drift_share: must be a number in \(0, 1\]"),
        ("cooldown", -1, "cooldown: must be an integer >= 0"),
    ],
)
def test_config_refuses_numbers_out_of_range_or_of_the_wrong_type(field, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        MonitorConfig(**{field: value})
    assert info.value.field == field


def test_config_accepts_numpy_scalars_and_stores_python_numbers():
    """A config built from numpy values (e.g. a grid search) is accepted and stays JSON-ready."""
    config = MonitorConfig(cusum_threshold=np.float32(0.5), patience=np.int64(3), cooldown=0)
    assert (config.cusum_threshold, config.patience) == (0.5, 3)
    assert type(config.cusum_threshold) is float and type(config.patience) is int
    assert Monitor(config).cusum.threshold == 0.5
