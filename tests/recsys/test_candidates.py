"""Merged candidate sets and candidate recall, with hand-checked answers."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.autoencoders import EASE
from recsys.candidates import candidate_recall, generate
from recsys.sources import Popularity


class Fixed:
    """A source with fixed scores, to make the merge checkable by hand."""

    def __init__(self, name: str, scores: list[float]) -> None:
        self.name = name
        self.scores = np.array(scores, dtype=np.float32)

    def fit(self, interactions):
        return self

    def score(self, history):
        return np.tile(self.scores, (history.shape[0], 1))


def test_union_of_top_n_with_ranks_and_proposer():
    history = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]], dtype=np.float32))
    a = Fixed("a", [9, 5, 4, 3, 0])  # unseen best: 1, 2
    b = Fixed("b", [9, 0, 1, 2, 8])  # unseen best: 4, 3
    c = generate([a, b], np.array([7]), history, per_source=2)
    assert sorted(c.items.tolist()) == [1, 2, 3, 4]
    assert set(c.users.tolist()) == {7}
    by_item = {int(i): p for p, i in enumerate(c.items)}
    assert c.source_names == ("a", "b")
    assert c.ranks[by_item[1]].tolist() == [0, 3]
    assert c.ranks[by_item[4]].tolist() == [3, 0]
    assert c.source_names[c.proposed_by[by_item[4]]] == "b"
    assert c.source_names[c.proposed_by[by_item[2]]] == "a"
    assert 0 not in c.items  # seen


def test_candidate_recall_per_source_and_merged():
    history = sp.csr_matrix(np.zeros((1, 5), dtype=np.float32))
    a = Fixed("a", [5, 4, 3, 2, 1])
    b = Fixed("b", [1, 2, 3, 4, 5])
    c = generate([a, b], np.array([0]), history, per_source=2)
    recall = candidate_recall(c, {0: {0, 4, 2, 3}}, per_source=2)
    assert recall == {"a": 0.25, "b": 0.5, "merged": 0.75}


def test_generate_batches_users_and_groups_pairs(frames, catalog):
    x = catalog.matrix(frames[0])
    users = np.array([0, 5, 30])
    c = generate([Popularity().fit(x), EASE(10.0).fit(x)], users, x[users], per_source=3)
    assert len(c.offsets) == 4
    for b, u in enumerate(users):
        lo, hi = c.offsets[b], c.offsets[b + 1]
        assert (c.users[lo:hi] == u).all()
        assert not set(c.items[lo:hi].tolist()) & set(x[u].indices.tolist())


def test_per_user_z_and_blend_scores_by_hand():
    from recsys.candidates import blend_scores, per_user_z

    offsets = np.array([0, 3, 4, 6])
    values = np.array([1.0, 2.0, 3.0, 5.0, 4.0, 4.0])
    z = per_user_z(values, offsets)
    np.testing.assert_allclose(z[:3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    np.testing.assert_allclose(z[3:], 0.0)  # one candidate, or all equal: no information

    history = sp.csr_matrix(np.zeros((1, 3), dtype=np.float32))
    cands = generate(
        [Fixed("ease", [2, 1, 0]), Fixed("als", [1, 4, 2]), Fixed("popularity", [9, 9, 9])],
        np.array([0]),
        history,
        per_source=3,
    )
    # ease / 2 + als / 4 per item; popularity is not named, item_knn is absent: both skipped
    blend = blend_scores(cands, ("ease", "als", "item_knn"))
    np.testing.assert_allclose(blend, [1.0 + 0.25, 0.5 + 1.0, 0.0 + 0.5])


def test_an_item_both_sources_propose_is_credited_to_the_one_that_ranked_it_better():
    history = sp.csr_matrix(np.zeros((1, 4), dtype=np.float32))
    a = Fixed("a", [4, 3, 2, 1])  # ranks items 0, 1, 2, 3 as 0, 1, 2, 3
    b = Fixed("b", [1, 4, 3, 2])  # ranks items 0, 1, 2, 3 as 3, 0, 1, 2
    c = generate([a, b], np.array([0]), history, per_source=3)
    assert c.items.tolist() == [0, 1, 2, 3]
    # items 1 and 2 are in both top-3s, ranked better by b (the later source): b proposed them
    assert [c.source_names[p] for p in c.proposed_by] == ["a", "b", "b", "b"]
