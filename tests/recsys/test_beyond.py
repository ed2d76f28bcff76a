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
    assert novelty(runs, share, n_users=8) == pytest.approx((1 + 2 + 2 + 3) / 4)
    v = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert intra_list_diversity(runs, v) == pytest.approx((1.0 + 0.0) / 2)


def test_an_item_nobody_has_seen_counts_as_the_rarest_seen_item():
    # a review found a 1e-6 floor: a new film counted 19.9 bits, twice any seen film's maximum
    share = np.array([1 / 943, 0.0])  # one film seen by 1 of 943 users, one new film
    assert novelty({0: [1]}, share, n_users=943) == pytest.approx(math.log2(943))
    assert novelty({0: [1]}, share, 943) == novelty({0: [0]}, share, 943)
    with pytest.raises(InvalidArgumentError, match="n_users"):
        novelty({0: [1]}, share, 0)


def test_mmr_trades_relevance_for_diversity():
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    rel = np.array([1.0, 0.9, 0.1])
    assert mmr_rerank(np.array([0, 1, 2]), rel, v, 2, lam=1.0).tolist() == [0, 1]
    assert mmr_rerank(np.array([0, 1, 2]), rel, v, 2, lam=0.5).tolist() == [0, 2]
    with pytest.raises(InvalidArgumentError):
        mmr_rerank(np.array([0]), np.array([1.0]), v, 1, lam=1.5)


def test_mmr_penalises_similarity_to_every_item_picked_so_far():
    # value = lam * rel - (1 - lam) * max similarity to the picks so far, lam = 0.5, with
    # rel = [1, 0.9, 0.85, 0] (already in [0, 1]); items 1 and 2 are the same direction.
    v = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    rel = np.array([1.0, 0.9, 0.85, 0.0])
    # 1st: item 0 (0.5). 2nd: item 1 (0.45 - 0; item 2: 0.425, item 3: 0). 3rd: item 2 now
    # scores 0.425 - 0.5 = -0.075 for its likeness to item 1, so item 3 (0 - 0) wins.
    assert mmr_rerank(np.arange(4), rel, v, 3, lam=0.5).tolist() == [0, 1, 3]


def test_mmr_scales_relevance_to_the_unit_interval_before_trading_it_for_diversity():
    # Relevance on a wide scale [10, 9.9, 0] scales to [1, 0.99, 0], so the similarity penalty
    # (at most 1) can outweigh it. lam = 0.5: 1st item 0; 2nd: item 1 scores
    # 0.5 * 0.99 - 0.5 * 1 = -0.005 (a copy of item 0), item 2 scores 0.5 * 0 - 0.5 * 0 = 0.
    # Unscaled, item 1 would score 4.95 - 0.5 and the copy would win.
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    rel = np.array([10.0, 9.9, 0.0])
    assert mmr_rerank(np.arange(3), rel, v, 2, lam=0.5).tolist() == [0, 2]
    assert mmr_rerank(np.arange(3), rel / 100, v, 2, lam=0.5).tolist() == [0, 2]  # same scaled


def test_gini_extremes():
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 12])) == pytest.approx(0.75)
    assert gini(np.zeros(3)) == 0.0


def test_gini_matches_the_mean_absolute_difference_definition():
    # G = sum_i sum_j |x_i - x_j| / (2 n^2 mean): the textbook definition, on random counts
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 6, int(rng.integers(1, 50))).astype(float)
        if counts.sum() == 0:
            continue
        n = len(counts)
        reference = np.abs(counts[:, None] - counts[None, :]).sum() / (2 * n**2 * counts.mean())
        assert gini(counts) == pytest.approx(reference, abs=1e-12)


def _loop_data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """A popularity-skewed start log and held-out true items none of which are in it."""
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 80
    popular = rng.random((n_users, n_items)) < np.linspace(0.5, 0.01, n_items)[None, :]
    truth = (rng.random((n_users, n_items)) < 0.1) & ~popular
    return sp.csr_matrix(popular.astype(np.float32)), sp.csr_matrix(truth.astype(np.float32))


def test_exploration_spreads_exposure_in_the_feedback_loop():
    start, truth = _loop_data()
    plain = simulate(start, truth, rounds=2, k=5, explore_slots=0, pool=20, l2=5.0)
    explore = simulate(start, truth, rounds=2, k=5, explore_slots=2, pool=20, l2=5.0)
    assert explore[-1].coverage > plain[-1].coverage
    assert explore[-1].exposure_gini < plain[-1].exposure_gini
    assert all(0.0 <= r.discovered_share <= 1.0 for r in plain + explore)
    assert not math.isnan(plain[0].exposure_gini)


def test_the_loop_learns_from_its_log_and_counts_each_discovery_once():
    # Without curiosity clicks every accepted item is a true item the user has not seen (the
    # truth holds none of the start log, and shown lists leave out what the log holds), so the
    # items discovered so far are exactly the items accepted so far: none is accepted twice,
    # because an accepted item enters the log the next model is trained on and is not shown again.
    start, truth = _loop_data()
    loop = simulate(start, truth, rounds=3, k=5, explore_slots=0, pool=20, l2=5.0, click_noise=0)
    accepted = np.cumsum([r.accepted for r in loop])
    assert accepted[0] > 0
    discovered = [round(r.discovered_share * truth.nnz) for r in loop]
    assert discovered == accepted.tolist()
    shares = [r.discovered_share for r in loop]
    assert shares[0] > 0 and shares == sorted(shares)
    # no exploration: the lists change only because the model retrains on its grown log
    assert loop[0].exposure_gini != loop[1].exposure_gini
