"""Our drift statistics against scipy (the formulas) and against Evidently (the exact protocol)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from drift import stattests

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_wasserstein_matches_scipy(shift):
    ref, cur = RNG.normal(size=700), RNG.normal(shift, 1.3, size=400)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert stattests.wasserstein_normed(ref, cur) == pytest.approx(expected, rel=1e-9)


def test_wasserstein_mean_shift_in_sd_units():
    ref = RNG.normal(size=20_000)
    assert stattests.wasserstein_normed(ref, ref + 0.5 * ref.std()) == pytest.approx(0.5, rel=1e-6)


def test_chisquare_goodness_of_fit_matches_scipy():
    ref, cur = RNG.integers(0, 6, 900), RNG.integers(0, 6, 400)
    f_obs = np.bincount(cur, minlength=6)
    f_exp = np.bincount(ref, minlength=6) * len(cur) / len(ref)
    assert stattests.chisquare_pvalue(ref, cur) == pytest.approx(
        stats.chisquare(f_obs, f_exp).pvalue, rel=1e-9
    )


def test_chisquare_unseen_category_is_certain_drift():
    assert stattests.chisquare_pvalue(np.array([1, 1, 2, 2]), np.array([1, 3, 3, 2])) == 0.0


def test_two_sample_chisquare_matches_scipy_contingency():
    ref, cur = RNG.integers(0, 5, 300), RNG.integers(0, 5, 800)
    table = np.vstack([np.bincount(ref, minlength=5), np.bincount(cur, minlength=5)])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert stattests.chisquare_two_sample_pvalue(ref, cur) == pytest.approx(expected, rel=1e-9)


def test_z_test_equals_uncorrected_2x2_chisquare():
    ref, cur = RNG.binomial(1, 0.3, 500), RNG.binomial(1, 0.36, 600)
    table = np.array([np.bincount(ref, minlength=2), np.bincount(cur, minlength=2)])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert stattests.z_pvalue(ref, cur) == pytest.approx(expected, rel=1e-9)


def test_z_test_identical_constant_columns_is_no_drift():
    assert stattests.z_pvalue(np.zeros(10), np.zeros(7)) == 1.0


@pytest.mark.parametrize("numerical", [True, False])
def test_jensenshannon_matches_scipy(numerical):
    if numerical:
        ref, cur = RNG.normal(size=600), RNG.normal(0.4, size=500)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        p, q = np.histogram(ref, edges)[0], np.histogram(cur, edges)[0]
    else:
        ref, cur = RNG.integers(0, 4, 600), RNG.integers(0, 5, 500)
        p, q = np.bincount(ref, minlength=5), np.bincount(cur, minlength=5)
    expected = distance.jensenshannon(p / p.sum(), q / q.sum())
    assert stattests.jensenshannon_distance(ref, cur, numerical=numerical) == pytest.approx(
        expected, rel=1e-9
    )


def test_ks_is_scipy():
    ref, cur = RNG.normal(size=300), RNG.normal(0.2, size=300)
    assert stattests.ks_pvalue(ref, cur) == stats.ks_2samp(ref, cur).pvalue


def test_parity_with_evidently_stattest_functions():
    """Same numbers as Evidently's own implementations (the functions its Report calls)."""
    from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import (
        _wasserstein_distance_norm,
    )
    from evidently.legacy.calculations.stattests.z_stattest import _z_stat_test
    from evidently.legacy.core import ColumnType

    num_ref, num_cur = pd.Series(RNG.normal(size=800)), pd.Series(RNG.normal(0.3, size=500))
    cat_ref, cat_cur = pd.Series(RNG.integers(1, 5, 800)), pd.Series(RNG.integers(1, 5, 500))
    bin_ref, bin_cur = pd.Series(RNG.binomial(1, 0.4, 800)), pd.Series(RNG.binomial(1, 0.5, 500))
    num, cat = ColumnType.Numerical, ColumnType.Categorical
    pairs = [
        (
            _wasserstein_distance_norm(num_ref, num_cur, num, 0.1)[0],
            stattests.wasserstein_normed(num_ref.to_numpy(), num_cur.to_numpy()),
        ),
        (
            _jensenshannon(num_ref, num_cur, num, 0.1)[0],
            stattests.jensenshannon_distance(
                num_ref.to_numpy(), num_cur.to_numpy(), numerical=True
            ),
        ),
        (
            _jensenshannon(cat_ref, cat_cur, cat, 0.1)[0],
            stattests.jensenshannon_distance(
                cat_ref.to_numpy(), cat_cur.to_numpy(), numerical=False
            ),
        ),
        (
            _chi_stat_test(cat_ref, cat_cur, cat, 0.05)[0],
            stattests.chisquare_pvalue(cat_ref.to_numpy(), cat_cur.to_numpy()),
        ),
        (
            _z_stat_test(bin_ref, bin_cur, cat, 0.05)[0],
            stattests.z_pvalue(bin_ref.to_numpy(), bin_cur.to_numpy()),
        ),
    ]
    for theirs, ours in pairs:
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


# On some tied samples scipy's exact KS gives up and falls back to the asymptotic p-value, with
# a RuntimeWarning; Evidently calls it the same way, and the p-value must still be in [0, 1].
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=2, max_size=60),
    st.lists(st.integers(0, 6), min_size=2, max_size=60),
)
def test_properties_on_small_discrete_samples(ref, cur):
    ref, cur = np.array(ref, float), np.array(cur, float)
    js = stattests.jensenshannon_distance(ref, cur, numerical=False)
    assert 0.0 <= js <= np.sqrt(np.log(2)) + 1e-12
    assert stattests.jensenshannon_distance(ref, ref, numerical=False) == pytest.approx(0.0)
    assert stattests.wasserstein_normed(ref, cur) >= 0.0
    for p in (
        stattests.chisquare_two_sample_pvalue(ref, cur),
        stattests.z_pvalue(ref % 2, cur % 2),
        stattests.ks_pvalue(ref, cur),
    ):
        assert 0.0 <= p <= 1.0


def test_goodness_of_fit_chisquare_over_rejects_and_two_sample_does_not():
    """Why the alibi-style detector swaps Evidently's chi-squared: a null simulation."""
    rng = np.random.default_rng(1)
    probs = np.full(12, 1 / 12)
    gof = two = 0
    trials = 300
    for _ in range(trials):
        ref, cur = rng.choice(12, 500, p=probs), rng.choice(12, 500, p=probs)
        gof += stattests.chisquare_pvalue(ref, cur) < 0.05
        two += stattests.chisquare_two_sample_pvalue(ref, cur) < 0.05
    assert gof / trials > 0.3  # nominal 0.05; equal sizes double the statistic's variance
    assert two / trials < 0.1
