"""The LightGBM ranker learns a known ordering; labels and training sets are built correctly."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.candidates import CandidateSet
from recsys.config import RANKER_LABELS
from recsys.ranker import (
    LambdaRanker,
    label_candidates,
    monotone_constraints,
    relevance,
    training_set,
)


def _cands(n_users: int, per_user: int) -> CandidateSet:
    users = np.repeat(np.arange(n_users), per_user)
    items = np.tile(np.arange(per_user), n_users)
    zeros = np.zeros((len(items), 1), dtype=np.float32)
    return CandidateSet(
        users=users,
        items=items,
        scores=zeros,
        ranks=zeros,
        proposed_by=np.zeros(len(items), dtype=np.int64),
        offsets=np.arange(n_users + 1) * per_user,
        source_names=("s",),
    )


def test_labels_mark_held_out_items():
    c = _cands(2, 3)
    labels = label_candidates(c, {0: {2}, 1: {0, 1}})
    assert labels.tolist() == [0, 0, 1, 1, 1, 0]


def test_graded_labels_follow_the_held_out_ratings():
    # user 0 held out item 2 (rated 3); user 1 held out items 0 and 1 (rated 5 and 1)
    c = _cands(2, 3)
    truth = {0: {2: 3.0}, 1: {0: 5.0, 1: 1.0}}
    labels = {scheme: label_candidates(c, truth, scheme).tolist() for scheme in RANKER_LABELS}
    assert labels == {
        "binary": [0, 0, 1, 1, 1, 0],
        "graded2": [0, 0, 1, 2, 1, 0],  # 1-3 -> 1, 4-5 -> 2
        "rating": [0, 0, 3, 5, 1, 0],
    }
    assert [relevance(r, "graded2") for r in (1, 2, 3, 4, 5)] == [1, 1, 1, 2, 2]
    data = training_set(c, np.zeros((6, 1), dtype=np.float32), np.array(labels["rating"]))
    assert data.labels.tolist() == labels["rating"]  # grades survive; 0 stays the negative


def test_graded_labels_refuse_what_they_cannot_grade():
    c = _cands(2, 3)
    with pytest.raises(ValueError, match=r"ranker_labels must be one of \['binary', 'graded2'"):
        label_candidates(c, {0: {2: 3.0}}, "stars")
    with pytest.raises(ValueError, match=r"needs \{item: rating\} per user"):
        label_candidates(c, {0: {2}}, "graded2")  # a set of items has no ratings
    with pytest.raises(ValueError, match="whole-number ratings from 1 to 30"):
        label_candidates(c, {0: {2: 3.5}}, "rating")


def test_training_set_drops_users_without_positives_and_samples_negatives():
    c = _cands(3, 10)
    labels = label_candidates(c, {0: {1}, 2: {3, 4}})
    feats = np.arange(30, dtype=np.float32)[:, None]
    data = training_set(c, feats, labels, negatives_per_user=4, seed=0)
    assert data.groups.tolist() == [5, 6]
    assert data.labels.sum() == 3
    assert len(data.features) == 11
    # each feature value is its candidate's row: the kept rows are users 0 and 2's, in order,
    # every positive kept, and each label still sits next to its own candidate's features
    rows = data.features[:, 0].astype(int)
    assert rows.tolist() == sorted(rows.tolist())
    assert all(0 <= r < 10 for r in rows[:5]) and all(20 <= r < 30 for r in rows[5:])
    assert {1, 23, 24} <= set(rows.tolist())
    assert data.labels.tolist() == labels[rows].tolist()


@pytest.mark.parametrize("objective", ["rank_xendcg", "lambdarank"])
def test_ranker_learns_which_feature_marks_the_positive(objective):
    rng = np.random.default_rng(0)
    n_users, per_user = 60, 20
    c = _cands(n_users, per_user)
    truth = {u: set(rng.choice(per_user, 3, replace=False).tolist()) for u in range(n_users)}
    labels = label_candidates(c, truth)
    noise = rng.random((len(labels), 2)).astype(np.float32)
    informative = labels + 0.1 * rng.random(len(labels)).astype(np.float32)
    feats = np.column_stack([noise[:, 0], informative, noise[:, 1]])
    data = training_set(c, feats, labels)
    ranker = LambdaRanker(
        objective=objective, n_estimators=30, num_leaves=4, min_child_samples=5
    ).fit(data, ["noise_a", "signal", "noise_b"])
    scores = ranker.predict(feats)
    for u in range(n_users):
        block = scores[u * per_user : (u + 1) * per_user]
        assert set(np.argsort(-block)[:3].tolist()) == truth[u]
    assert next(iter(ranker.importances())) == "signal"


def test_bagged_ranker_averages_rankers_that_differ_only_in_their_seed():
    rng = np.random.default_rng(1)
    c = _cands(40, 15)
    labels = label_candidates(c, {u: {int(rng.integers(15))} for u in range(40)})
    feats = rng.random((len(labels), 3)).astype(np.float32) + labels[:, None]
    data = training_set(c, feats, labels)
    settings = dict(n_estimators=20, num_leaves=4, min_child_samples=5)
    names = ["a", "b", "c"]
    bagged = LambdaRanker(seed=7, bags=3, **settings).fit(data, names)
    singles = [LambdaRanker(seed=7 + b, **settings).fit(data, names) for b in range(3)]
    expected = np.mean([m.predict(feats) for m in singles], axis=0)
    np.testing.assert_allclose(bagged.predict(feats), expected, rtol=1e-6)
    # The seeds matter (row and feature subsampling), or bagging would average copies.
    assert not np.allclose(singles[0].predict(feats), singles[1].predict(feats))
    assert abs(sum(bagged.importances().values()) - 1.0) < 1e-3
    with pytest.raises(ValueError, match="bags"):
        LambdaRanker(bags=0)


def test_unknown_objective_is_rejected():
    with pytest.raises(ValueError, match="objective"):
        LambdaRanker(objective="pointwise")


def test_monotone_constraints_follow_the_feature_names():
    names = ["ease_rank", "ease_score_vs_best", "item_log_count", "als_rank"]
    assert monotone_constraints(names) == [-1, 1, 0, -1]


def test_monotone_ranker_never_prefers_a_worse_rank():
    # Relevance peaks at rank 5 of 0..19: an unconstrained ranker learns that bump; the
    # constrained one may only flatten it, so its score never rises as the rank gets worse.
    rng = np.random.default_rng(1)
    n_users, per_user = 80, 20
    c = _cands(n_users, per_user)
    truth = {u: {4, 5, 6} for u in range(n_users)}
    labels = label_candidates(c, truth)
    rank = np.tile(np.arange(per_user, dtype=np.float32), n_users)
    feats = np.column_stack([rank, rng.random(len(labels)).astype(np.float32)])
    data = training_set(c, feats, labels)
    grid = np.column_stack([np.arange(per_user, dtype=np.float32), np.full(per_user, 0.5)])
    slopes = {}
    for monotone in (False, True):
        ranker = LambdaRanker(
            n_estimators=30, num_leaves=4, min_child_samples=5, monotone=monotone
        ).fit(data, ["ease_rank", "noise"])
        slopes[monotone] = np.diff(ranker.predict(grid.astype(np.float32)))
    assert slopes[False].max() > 0  # the bump: a worse rank scored higher
    assert slopes[True].max() <= 1e-6
