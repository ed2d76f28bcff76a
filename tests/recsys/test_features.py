"""Feature statistics with hand-computed values."""

from __future__ import annotations

import numpy as np

from recsys.features import _Timeline


def test_timeline_counts_an_items_interactions_inside_each_window():
    items = np.array([0, 0, 0, 1, 1, 2])
    ts = np.array([10.0, 20.0, 30.0, 15.0, 40.0, 5.0])
    order = np.lexsort((ts, items))
    tl = _Timeline(items[order], ts[order])
    q_items = np.array([0, 0, 1, 1, 2, 0, 1])
    lo = np.array([10.0, 21.0, 0.0, 16.0, 6.0, np.inf, -1e9])
    hi = np.array([20.0, 29.0, 100.0, 40.0, 100.0, -np.inf, 1e9])
    # item 0 in [10, 20] -> 2; in [21, 29] -> 0; item 1 in [0, 100] -> 2; in [16, 40] -> 1;
    # item 2 in [6, 100] -> 0; a user with no history (inf, -inf) -> 0; huge bounds clip
    assert tl.count_between(q_items, lo, hi).tolist() == [2, 0, 2, 1, 0, 0, 2]


def test_builder_statistics_on_the_checkerboard(frames, catalog):
    from recsys.features import FeatureBuilder

    ratings = frames[0]
    fb = FeatureBuilder(catalog).fit(ratings)
    np.testing.assert_allclose(fb.user_count_, 6.0)
    assert fb.item_count_.sum() == len(ratings)
    # users of group A only watch Action: affinity 1 for Action, 0 for Drama
    action, drama = catalog.genre_names.index("Action"), catalog.genre_names.index("Drama")
    assert fb.user_genre_[0, action] == 1.0 and fb.user_genre_[0, drama] == 0.0


def test_blend_features_are_the_blends_z_score_and_rank_within_each_user(frames, catalog):
    from recsys.candidates import CandidateSet, blend_scores, per_user_z
    from recsys.features import FeatureBuilder

    # two users, 3 and 2 candidates; source "a" scores, source "b" is ignored by the blend
    cands = CandidateSet(
        users=np.array([0, 0, 0, 1, 1]),
        items=np.array([0, 1, 2, 3, 4]),
        scores=np.array([[1.0, 9.0], [4.0, 9.0], [2.0, 9.0], [5.0, 1.0], [5.0, 2.0]]),
        ranks=np.zeros((5, 2)),
        proposed_by=np.zeros(5, dtype=np.int64),
        offsets=np.array([0, 3, 5]),
        source_names=("a", "b"),
    )
    plain = FeatureBuilder(catalog).fit(frames[0])
    with_blend = FeatureBuilder(catalog, ("a",)).fit(frames[0])
    names = with_blend.feature_names(cands.source_names)
    assert names[-2:] == ["blend_z", "blend_rank_in_candidates"]
    assert plain.feature_names(cands.source_names) == names[:-2]
    x = with_blend.transform(cands)
    assert x.shape[1] == len(names)
    np.testing.assert_array_equal(x[:, :-2], plain.transform(cands))
    blend = blend_scores(cands, ("a",))
    np.testing.assert_allclose(x[:, -2], per_user_z(blend, cands.offsets), rtol=1e-6)
    # user 0: 4 > 2 > 1; user 1: a tie keeps candidate order
    assert x[:, -1].tolist() == [2, 0, 1, 0, 1]
