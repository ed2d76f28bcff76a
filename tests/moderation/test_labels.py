import numpy as np
import pandas as pd

from moderation.labels import from_davidson, stratified_split


def test_multilabel_rule_and_soft_labels_from_votes():
    frame = pd.DataFrame(
        {
            "count": [3, 3, 3, 6, 3],
            "hate_speech": [3, 2, 1, 2, 0],
            "offensive_language": [0, 1, 1, 2, 0],
            "neither": [0, 0, 1, 2, 3],
            "class": [0, 0, 1, 1, 2],
            "tweet": ["a", "b", "c", "d", "e"],
        }
    )
    data = from_davidson(frame)
    np.testing.assert_allclose(data.soft["hate"], [1, 2 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(data.soft["offensive"], [1, 1, 2 / 3, 2 / 3, 0])
    assert data.hard["hate"].tolist() == [1, 1, 0, 0, 0]
    assert data.hard["offensive"].tolist() == [1, 1, 1, 1, 0]
    assert data.ambiguous.tolist() == [False, True, True, True, False]
    assert data.y3.tolist() == [0, 0, 1, 1, 2]
    assert data.votes.tolist() == [[3, 0, 0], [2, 1, 0], [1, 1, 1], [2, 2, 2], [0, 0, 3]]
    assert data.subset(np.array([3, 1])).votes.tolist() == [[2, 2, 2], [2, 1, 0]]


def test_split_is_disjoint_complete_stratified_and_seeded():
    y = np.array([0] * 60 + [1] * 300 + [2] * 140)
    a, b = stratified_split(y, seed=1), stratified_split(y, seed=1)
    np.testing.assert_array_equal(a.test, b.test)
    everything = np.concatenate([a.train, a.val, a.test])
    assert sorted(everything.tolist()) == list(range(len(y)))
    assert len(a.test) == 50 and len(a.val) == 50
    assert (y[a.test] == 0).sum() == 6  # 12 % of 50
    assert not np.array_equal(a.test, stratified_split(y, seed=2).test)
