"""Bootstrap intervals and the paired randomisation test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from evals.errors import MetricError
from evals.stats import bootstrap_ci, paired_test


def test_bootstrap_matches_scipy_percentile_bootstrap():
    values = np.random.default_rng(1).normal(0.5, 0.2, 300)
    ours = bootstrap_ci(values, n_resamples=5000, seed=3)
    theirs = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=5000, method="percentile", random_state=3
    ).confidence_interval
    assert ours.mean == pytest.approx(values.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.005)
    assert ours.high == pytest.approx(theirs.high, abs=0.005)


def test_bootstrap_is_deterministic_for_a_seed():
    # 50 continuous values: resampled means almost never repeat, so an unseeded generator would
    # give another interval (with 4 values the few distinct means often coincide by chance).
    values = np.random.default_rng(0).random(50)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_paired_test_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    base = rng.random(200)
    better = base + 0.05 + rng.normal(0, 0.02, 200)
    result = paired_test(better, base, seed=0)
    assert result.p_value < 0.001 and result.low > 0 and result.wins > result.losses
    noise = base + rng.normal(0, 0.02, 200)
    assert paired_test(noise, base, seed=0).p_value > 0.01


def test_paired_test_agrees_with_scipy_permutation_test():
    rng = np.random.default_rng(5)
    a, b = rng.random(60), rng.random(60) + 0.08
    ours = paired_test(a, b, n_resamples=20000, seed=1).p_value
    theirs = scipy_stats.permutation_test(
        (a, b),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        n_resamples=20000,
        random_state=1,
    ).pvalue
    assert ours == pytest.approx(theirs, abs=0.01)


def test_identical_systems_give_p_value_one():
    assert paired_test([0.3, 0.5], [0.3, 0.5]).p_value == 1.0


def test_bad_input_gets_a_clear_error():
    with pytest.raises(MetricError, match="paired"):
        paired_test([1, 2], [1])
    with pytest.raises(MetricError, match="NaN"):
        bootstrap_ci([0.1, float("nan")])
    with pytest.raises(MetricError, match="non-empty"):
        bootstrap_ci([])


def test_any_iterable_of_numbers_is_read_and_anything_else_is_a_clear_error():
    # evaluate_per_query's values are what these are for; numpy refused dict.values()
    per_query = {"q1": 0.2, "q2": 0.6, "q3": 0.4}
    assert bootstrap_ci(per_query.values()) == bootstrap_ci(list(per_query.values()))
    assert bootstrap_ci(v for v in per_query.values()).mean == pytest.approx(0.4)
    other = {"q1": 0.1, "q2": 0.6, "q3": 0.2}
    assert paired_test(per_query.values(), other.values()) == paired_test(
        [0.2, 0.6, 0.4], [0.1, 0.6, 0.2]
    )
    for bad in (["a", "b"], 3, [[0.1, 0.2], [0.3]]):
        with pytest.raises(MetricError, match="sequence of numbers"):
            bootstrap_ci(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", ["bootstrap_ci", "paired_test"])
def test_settings_outside_their_range_get_a_clear_error(fn):
    call = {"bootstrap_ci": lambda **kw: bootstrap_ci([0.1, 0.5], **kw),
            "paired_test": lambda **kw: paired_test([0.1, 0.5], [0.2, 0.2], **kw)}[fn]  # fmt: skip
    for confidence in (0.0, 1.0, 1.5, float("nan")):
        with pytest.raises(MetricError, match=r"confidence must be in \(0, 1\)"):
            call(confidence=confidence)
    for n_resamples in (0, -1, 2.5):
        with pytest.raises(MetricError, match="n_resamples must be an integer >= 1"):
            call(n_resamples=n_resamples)
