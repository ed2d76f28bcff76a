"""Data-quality checks: each incident kind on a synthetic window, and a clean window passes."""

import numpy as np
import pandas as pd

from drift.features import FEATURES
from drift.quality import check_quality
from tests.drift.conftest import synthetic_hours


def _window():
    return synthetic_hours(10, seed=5)[list(FEATURES)]


def _kinds(report):
    return {(f.kind, f.column) for f in report.findings}


def test_clean_window_is_ok():
    reference = synthetic_hours(10, seed=4)[list(FEATURES)]
    assert check_quality(_window(), reference).ok


def test_missing_and_unexpected_columns():
    reference = _window()
    current = reference.drop(columns=["windspeed"]).assign(wind_mph=1.0)
    kinds = _kinds(check_quality(current, reference))
    assert ("missing_column", "windspeed") in kinds
    assert ("unexpected_column", "wind_mph") in kinds


def test_null_burst():
    reference, current = _window(), _window()
    current.loc[current.index[:30], "hum"] = np.nan  # 30 / 240 = 12.5% > 5%
    assert ("null_burst", "hum") in _kinds(check_quality(current, reference))


def test_celsius_temperature_is_out_of_range_and_unit_change():
    reference, current = _window(), _window()
    current["temp"] = current["temp"] * 41
    kinds = _kinds(check_quality(current, reference))
    assert {("out_of_range", "temp"), ("unit_change", "temp")} <= kinds


def test_unit_change_inside_range_is_caught():
    """Humidity as a 0-1 share vs a 0-1 share / 10 stays in range; the magnitude check sees it."""
    reference, current = _window(), _window()
    current["hum"] = current["hum"] / 10
    assert ("unit_change", "hum") in _kinds(check_quality(current, reference))


def test_wrong_type():
    reference, current = _window(), _window()
    current["weathersit"] = current["weathersit"].map({1: "clear", 2: "mist", 3: "rain"})
    assert ("wrong_type", "weathersit") in _kinds(check_quality(current, reference))


def test_flags_are_not_unit_checked():
    """A 0/1 flag whose share of ones jumps tenfold (10% of hours to all of them) moves its mean
    10x, past the 5x unit-change factor: that is drift, which only unit columns may call a unit
    change. (A reference of all zeros would not test this: the magnitude ratio is then 1.0.)"""
    reference, current = _window(), _window()
    reference["holiday"] = (np.arange(len(reference)) % 10 == 0).astype(int)  # 10% holidays
    current["holiday"] = 1  # every hour a holiday
    assert reference["holiday"].mean() == 0.1
    assert ("unit_change", "holiday") not in _kinds(check_quality(current, reference))


def test_empty_window_is_too_few_rows_and_nothing_spurious():
    """An empty window is not healthy: it is one ``too_few_rows`` finding, and no null, range or
    unit finding invented from zero values."""
    reference = _window()
    report = check_quality(reference.iloc[:0], reference)
    assert not report.ok
    assert [(f.kind, f.value) for f in report.findings] == [("too_few_rows", 0.0)]
    assert report.to_dict()["ok"] is False
    assert pd.api.types.is_numeric_dtype(reference["temp"])
