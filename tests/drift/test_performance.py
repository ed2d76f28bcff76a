"""PerformanceTracker: the serving model's error against its accepted baseline."""

import math

import numpy as np
import pytest

from drift.errors import ConfigError, DriftError
from drift.performance import PerformanceTracker


def test_the_ratio_is_the_error_over_the_baseline_and_rebaseline_replaces_it():
    tracker = PerformanceTracker(np.float64(20.0))
    check = tracker.update(3, "v0001", error=30.0, n_rows=100)
    assert (check.ratio, check.alarm, check.baseline) == (1.5, True, 20.0)  # 1.5 > 1.25
    tracker.rebaseline(30.0)
    assert tracker.update(4, "v0002", error=30.0, n_rows=100).ratio == 1.0


@pytest.mark.parametrize(
    ("baseline", "shown"),
    [
        (0.0, "got 0.0"),
        (-4.0, "got -4.0"),
        (math.nan, "got nan"),
        (math.inf, "got inf"),  # was accepted: every ratio 0, so the tracker never alarmed
        (np.float64(math.inf), "got np.float64(inf)"),
        ("25", "got '25' (str)"),  # was a TypeError from the comparison
        (True, "got True (bool)"),
    ],
)
def test_a_baseline_that_is_not_a_finite_number_above_0_is_a_config_error(baseline, shown):
    """It was a builtin ValueError (and infinity passed): the package's ConfigError names the
    field, so one ``except DriftError`` catches it."""
    expected = f"baseline: must be a finite number > 0 (the serving model's accepted MAE), {shown}"
    with pytest.raises(ConfigError) as info:
        PerformanceTracker(baseline)
    assert str(info.value) == expected and info.value.field == "baseline"
    tracker = PerformanceTracker(25.0)
    with pytest.raises(DriftError, match="baseline: must be a finite number > 0"):
        tracker.rebaseline(baseline)
    assert tracker.baseline == 25.0  # unchanged
