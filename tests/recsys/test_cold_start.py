"""Cold-start scorers on the checkerboard: demographics and content carry the signal."""

from __future__ import annotations

import math

import numpy as np
import pytest

import recsys.cold_start as cold_start
from evals.metrics import evaluate
from recsys.cold_start import (
    SHRINKAGE_GRID,
    TASTE_SHRINKAGE,
    ContentScorer,
    SegmentPopularity,
    _cold_user_folds,
    _ndcg_at_k,
    choose_shrinkage,
    compare_genre_rules,
    content_vectors,
    genre_popularity,
    top_genres,
)
from recsys.errors import InvalidArgumentError
from tests.recsys.conftest import N_ITEMS, block_of_item


def test_segment_popularity_prefers_the_segments_items(frames, catalog):
    x = catalog.matrix(frames[0])
    seg = SegmentPopularity(catalog, shrinkage=1.0).fit(x)
    scores = seg.score_users(np.array([0, 39]))  # a group-A man and a group-B woman
    assert all(block_of_item(i + 1) == 0 for i in np.argsort(-scores[0])[:10])
    assert all(block_of_item(i + 1) == 1 for i in np.argsort(-scores[1])[:10])
    # with infinite shrinkage the segment is ignored: global popularity for everyone
    flat = SegmentPopularity(catalog, shrinkage=1e12).fit(x).score_users(np.array([0, 39]))
    np.testing.assert_allclose(flat[0], flat[1], rtol=1e-6)


def test_an_empty_segment_without_shrinkage_gets_global_popularity_not_nan(frames, catalog):
    # The tiny catalogue has only 25-year-old men and 52-year-old women: a 30-year-old woman's
    # segment is empty, and with shrinkage 0 its score was 0/0, NaN for every item, served in
    # item-id order (found by a review). Group B without history: their segments are empty too.
    ratings = frames[0]
    x = catalog.matrix(ratings[ratings["user_id"] <= 20])  # group B (users 21-40) has no history
    seg = SegmentPopularity(catalog, shrinkage=0.0).fit(x)
    new_user = seg.score_new_user(age=30, gender="F")
    np.testing.assert_array_equal(new_user, 2 * seg.global_share_)  # both segmentations global
    catalogue_user = seg.score_users(np.array([39]))[0]  # user 40, a writer: no writer is active
    np.testing.assert_array_equal(catalogue_user, 2 * seg.global_share_)
    # an active segment is still its own popularity, unshrunk
    man = seg.score_users(np.array([0]))[0]
    np.testing.assert_allclose(man, 2 * seg.segment_counts_["occupation"][0] / 20)
    assert np.isfinite(man).all()


def test_content_scorer_ranks_cold_items_of_the_users_genre_first(frames, catalog):
    ratings = frames[0]
    cold_items = {5, 15}  # one per block, never seen in training
    x = catalog.matrix(ratings[~ratings["item_id"].isin(cold_items)])
    scores = ContentScorer(catalog).score(x[[0, 39]])
    cold_idx = catalog.item_index(sorted(cold_items))
    assert scores[0, cold_idx[0]] > scores[0, cold_idx[1]]
    assert scores[1, cold_idx[1]] > scores[1, cold_idx[0]]


def test_an_items_content_score_does_not_depend_on_the_items_scored_with_it(frames, catalog):
    """Standardised over the whole catalogue, not over the scored items: two new films are
    ordered as they would be among all of them (z-scores over two items are always +-1, so a
    tiny popularity edge used to outweigh a perfect content match)."""
    ratings = frames[0]
    x = catalog.matrix(ratings[~ratings["item_id"].isin({5, 15})])
    scorer = ContentScorer(catalog, prior_weight=3.0).fit(x)
    pair = catalog.item_index([5, 15])
    every = scorer.score(x[[0, 39]])
    np.testing.assert_allclose(scorer.score(x[[0, 39]], pair), every[:, pair], rtol=1e-6)
    np.testing.assert_allclose(scorer.score(x[[0, 39]], pair[:1]), every[:, pair[:1]], rtol=1e-6)


def test_content_vectors_are_unit_length_and_genre_popularity_is_shared_by_genre(frames, catalog):
    v = content_vectors(catalog)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    gp = genre_popularity(catalog, catalog.matrix(frames[0]))
    assert gp.shape == (N_ITEMS,)
    assert len(set(np.round(gp[:10], 6))) == 1  # all Action items share the genre's mean


def test_infinite_shrinkage_is_global_popularity(frames, catalog):
    x = catalog.matrix(frames[0])
    seg = SegmentPopularity(catalog, shrinkage=math.inf).fit(x)
    scores = seg.score_users(np.array([0, 39]))
    np.testing.assert_allclose(scores[0], scores[1])
    np.testing.assert_allclose(scores[0], 2 * seg.global_share_)  # two segmentations summed


def test_choose_shrinkage_uses_segments_when_they_predict_taste(frames, catalog):
    # On the checkerboard, demographics decide the block: a finite pseudo-count must beat
    # global popularity (m = inf), which mixes both blocks.
    best, means = choose_shrinkage(catalog, catalog.matrix(frames[0]), seed=0)
    assert math.isfinite(best)
    assert means[best] > means[math.inf]
    assert set(means) == set(SHRINKAGE_GRID)


def test_choose_shrinkage_falls_back_to_popularity_without_enough_users(frames, catalog):
    x = catalog.matrix(frames[0])
    assert choose_shrinkage(catalog, x, min_history=100) == (math.inf, {})


def test_ndcg_at_k_matches_the_shared_metric():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.random(30)
        relevant = set(rng.choice(30, size=int(rng.integers(1, 15)), replace=False).tolist())
        ranked = [str(i) for i in np.argsort(-scores, kind="stable")]
        expected = evaluate({"q": {str(i): 1 for i in relevant}}, {"q": ranked}, ["ndcg@10"])
        assert _ndcg_at_k(scores, relevant, 10) == pytest.approx(expected["ndcg@10"])


def test_top_genres_breaks_ties_in_catalogue_order_and_skips_unknown(catalog):
    # items 1..10 are Action, 11..20 Drama (indices 0..19)
    assert top_genres(catalog, [0, 1, 10, 11, 12], 2) == ["Drama", "Action"]
    assert top_genres(catalog, [0, 10], 3) == ["Action", "Drama"]  # a tie: catalogue order
    assert top_genres(catalog, [0, 1], 3) == ["Action"]  # genres never rated are not named
    assert top_genres(catalog, [], 3) == []


def test_taste_rule_adds_the_genre_fans_shrunk_popularity(frames, catalog):
    x = catalog.matrix(frames[0])
    seg = SegmentPopularity(catalog, shrinkage=math.inf).fit(x)
    # Every group-A user (ids 1-20) rates only Action: they are the Action taste segment.
    fans = catalog.user_index(range(1, 21))
    counts = np.asarray(x[fans].sum(axis=0)).ravel()
    m = TASTE_SHRINKAGE
    expected = (counts + m * seg.global_share_) / (len(fans) + m)
    np.testing.assert_allclose(seg.add_genres(np.zeros(N_ITEMS), ["Action"]), expected)
    assert seg.taste_sizes_.tolist() == [0, 20, 20]  # unknown, Action, Drama


def test_first_rule_puts_every_named_genre_item_first(frames, catalog):
    seg = SegmentPopularity(catalog).fit(catalog.matrix(frames[0]))
    scores = np.where(np.arange(N_ITEMS) < 10, 1.0, 0.0)  # the Action block scores higher
    ranked = np.argsort(-seg.add_genres(scores, ["Drama"], rule="first"), kind="stable")
    assert all(block_of_item(i + 1) == 1 for i in ranked[:10])
    assert seg.add_genres(scores, []) is scores
    with pytest.raises(InvalidArgumentError, match="rule"):
        seg.add_genres(scores, ["Drama"], rule="last")
    with pytest.raises(InvalidArgumentError, match="unknown genres"):
        seg.add_genres(scores, ["Western"])


def test_named_genres_beat_ignoring_them_when_taste_follows_genre(frames, catalog):
    # Global popularity (m = inf) mixes both blocks; the genres a held-out user names (from the
    # part of their history that is not their truth) point to their block.
    means = compare_genre_rules(catalog, catalog.matrix(frames[0]), math.inf, seed=0)
    assert means["taste"] > means["none"] + 0.1
    assert means["first"] > means["none"] + 0.1


def test_cold_user_folds_hold_each_user_out_of_the_fitted_matrix_once(frames, catalog):
    x = catalog.matrix(frames[0])
    folds = list(_cold_user_folds(x, folds=5, min_history=5, truth_share=1 / 3, seed=0))
    assert len(folds) == 5
    eligible = np.flatnonzero(np.diff(x.indptr) >= 5)
    held_all = np.concatenate([held for held, _, _ in folds])
    assert sorted(held_all.tolist()) == eligible.tolist()  # every eligible user, once
    for held, rest, truth in folds:
        sizes = np.diff(rest.indptr)
        assert (sizes[held] == 0).all()  # cold: nothing of theirs, truth included, is fitted
        others = np.setdiff1d(np.arange(x.shape[0]), held)
        assert (rest[others] != x[others]).nnz == 0  # everyone else's rows as they were
        for u, t in zip(held.tolist(), truth, strict=True):
            history = set(x[u].indices.tolist())
            assert t <= history and len(t) == max(1, round(len(history) / 3))


def test_compare_genre_rules_names_genres_from_the_history_without_the_truth(
    frames, catalog, monkeypatch
):
    # A spy on the carve and on top_genres: each held-out user's named genres must be read from
    # their history minus their truth, or the truth leaks into what the user "names".
    x = catalog.matrix(frames[0])
    carved, named_from = [], []

    def folds_spy(*args, **kwargs):
        for held, rest, truth in _cold_user_folds(*args, **kwargs):
            carved.extend(zip(held.tolist(), truth, strict=True))
            yield held, rest, truth

    def top_genres_spy(catalog, items, n):
        named_from.append(set(items))
        return top_genres(catalog, items, n)

    monkeypatch.setattr(cold_start, "_cold_user_folds", folds_spy)
    monkeypatch.setattr(cold_start, "top_genres", top_genres_spy)
    compare_genre_rules(catalog, x, math.inf, seed=0)
    assert len(carved) == len(named_from) > 0
    for (u, t), items in zip(carved, named_from, strict=True):
        assert items == set(x[u].indices.tolist()) - t
