"""Coverage, novelty, diversity, MMR, Gini and the feedback loop, with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.beyond import coverage, intra_list_diversity, mmr_rerank, novelty
from recsys.errors import InvalidArgumentError
from recsys.feedback import gini, simulate


def test_coverage_novelty_diversity_by_hand():
    runs = {0: [0, 1], 1: [1, 2]}
    assert coverage(runs, 10) == 0.3
    share = np.array([0.5, 0.25, 0.125])
    assert novelty(runs, share) == pytest.approx((1 + 2 + 2 + 3) / 4)
    v = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert intra_list_diversity(runs, v) == pytest.approx((1.0 + 0.0) / 2)


def test_mmr_trades_relevance_for_diversity():
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    rel = np.array([1.0, 0.9, 0.1])
    assert mmr_rerank(np.array([0, 1, 2]), rel, v, 2, lam=1.0).tolist() == [0, 1]
    assert mmr_rerank(np.array([0, 1, 2]), rel, v, 2, lam=0.5).tolist() == [0, 2]
    with pytest.raises(InvalidArgumentError):
        mmr_rerank(np.array([0]), np.array([1.0]), v, 1, lam=1.5)


def test_gini_extremes():
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 12])) == pytest.approx(0.75)
    assert gini(np.zeros(3)) == 0.0


def test_exploration_spreads_exposure_in_the_feedback_loop():
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 80
    popular = rng.random((n_users, n_items)) < np.linspace(0.5, 0.01, n_items)[None, :]
    truth = (rng.random((n_users, n_items)) < 0.1) & ~popular
    start = sp.csr_matrix(popular.astype(np.float32))
    truth = sp.csr_matrix(truth.astype(np.float32))
    plain = simulate(start, truth, rounds=2, k=5, explore_slots=0, pool=20, l2=5.0)
    explore = simulate(start, truth, rounds=2, k=5, explore_slots=2, pool=20, l2=5.0)
    assert explore[-1].coverage > plain[-1].coverage
    assert explore[-1].exposure_gini < plain[-1].exposure_gini
    assert all(0.0 <= r.discovered_share <= 1.0 for r in plain + explore)
    assert not math.isnan(plain[0].exposure_gini)
