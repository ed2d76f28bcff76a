"""Latency percentiles and the stopwatch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals.errors import MetricError
from evals.timing import Stopwatch, latency_summary


def test_percentiles_are_numpy_linear_interpolation_in_milliseconds():
    seconds = [0.004, 0.001, 0.003, 0.002, 0.010]
    summary = latency_summary(seconds)
    expected = np.percentile(seconds, [50, 95, 99]) * 1000
    assert [summary["p50_ms"], summary["p95_ms"], summary["p99_ms"]] == pytest.approx(expected)
    assert summary["mean_ms"] == pytest.approx(4.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_a_duration_that_is_not_finite_and_non_negative_is_refused(bad):
    # a NaN made every percentile NaN and a negative one pulled p50 to -499 ms, without a sign
    with pytest.raises(MetricError, match=f"finite and >= 0 seconds, got {bad}"):
        latency_summary([0.002, bad])


def test_no_duration_is_an_error():
    with pytest.raises(MetricError, match="at least one duration"):
        latency_summary([])


def test_the_stopwatch_measures_the_block():
    with Stopwatch() as watch:
        sum(range(10_000))
    assert 0 < watch.seconds < 60
