import pytest

from rag.errors import ConfigError
from rag.fusion import convex_fusion, fuse, normalize, reciprocal_rank_fusion
from rag.hits import Hit


def hits(*pairs):
    return [Hit(d, s, f"{d}#0") for d, s in pairs]


BM25 = hits(("a", 9.0), ("b", 5.0), ("c", 1.0))
DENSE = hits(("c", 0.9), ("d", 0.8), ("a", 0.1))


def test_rrf_matches_the_formula():
    fused = {h.doc_id: h.score for h in reciprocal_rank_fusion([BM25, DENSE], k=60)}
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["d"] == pytest.approx(1 / 62)


def test_rrf_weights_really_apply():
    assert reciprocal_rank_fusion([BM25, DENSE], [1, 1])[0].doc_id == "a"  # tie a/c -> best rank
    assert reciprocal_rank_fusion([BM25, DENSE], [0.2, 1.0])[0].doc_id == "c"
    assert reciprocal_rank_fusion([BM25, DENSE], [1.0, 0.2])[0].doc_id == "a"
    only_dense = reciprocal_rank_fusion([BM25, DENSE], [0.0, 1.0])
    assert [h.doc_id for h in only_dense[:2]] == ["c", "d"]


def test_ties_are_broken_by_best_rank_then_id():
    fused = reciprocal_rank_fusion([hits(("x", 1.0)), hits(("y", 1.0))])
    assert [h.doc_id for h in fused] == ["x", "y"]  # equal score, equal best rank -> id order
    fused = reciprocal_rank_fusion([BM25, DENSE])
    assert [h.doc_id for h in fused] == ["a", "c", "b", "d"]


def test_one_empty_list_leaves_the_other_ranking_intact():
    for method in ("rrf", "minmax", "zscore"):
        fused = fuse([BM25, []], method)
        assert [h.doc_id for h in fused] == ["a", "b", "c"]
    assert fuse([[], []], "zscore") == []


def test_convex_minmax_values_and_missing_documents():
    fused = {h.doc_id: h.score for h in convex_fusion([BM25, DENSE], [0.5, 0.5], method="minmax")}
    # a: bm25 1.0, dense (0.1-0.1)/0.8 = 0 -> 0.5; d: bm25 missing -> floor 0, dense 0.875
    assert fused["a"] == pytest.approx(0.5)
    assert fused["d"] == pytest.approx(0.5 * 0.875)
    assert fused["c"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)


def test_convex_zscore_gives_a_missing_document_that_lists_lowest_zscore():
    # Each list is 1, 0, -1 standard deviations wide: z = +r, 0, -r with r = sqrt(3/2). Under
    # z-scores the floor is negative (under min-max it is always 0, so only z-scores show it).
    r = (3 / 2) ** 0.5
    first = hits(("a", 3.0), ("b", 2.0), ("c", 1.0))  # a +r, b 0, c -r
    second = hits(("c", 4.0), ("d", 2.0), ("a", 0.0))  # c +r, d 0, a -r
    fused = {h.doc_id: h.score for h in convex_fusion([first, second], [0.75, 0.25])}
    assert fused["a"] == pytest.approx(0.75 * r + 0.25 * -r)
    assert fused["c"] == pytest.approx(0.75 * -r + 0.25 * r)
    assert fused["d"] == pytest.approx(0.75 * -r + 0.25 * 0.0)  # missing from first: its -r
    assert fused["b"] == pytest.approx(0.75 * 0.0 + 0.25 * -r)  # missing from second: its -r


def test_convex_weights_really_apply():
    assert convex_fusion([BM25, DENSE], [1.0, 0.0])[0].doc_id == "a"
    assert convex_fusion([BM25, DENSE], [0.0, 1.0])[0].doc_id == "c"


@pytest.mark.parametrize("method", ["minmax", "zscore"])
def test_a_list_with_one_hit_or_equal_scores_still_counts(method):
    # "b" and "c" tie in the full list; the short list found only "c", so "c" must come first.
    full = hits(("a", 3.0), ("b", 2.0), ("c", 2.0), ("d", 1.0))
    for short in (hits(("c", 7.0)), hits(("c", 7.0), ("e", 7.0))):
        fused = convex_fusion([full, short], method=method)
        order = [h.doc_id for h in fused]
        assert order.index("c") < order.index("b"), (method, order)
    fused = {h.doc_id: h.score for h in convex_fusion([full, hits(("c", 7.0))], method=method)}
    assert fused["c"] - fused["b"] == pytest.approx(1.0)  # one unit for being found


def test_normalize():
    assert list(normalize([2.0, 4.0, 6.0], "minmax")) == [0.0, 0.5, 1.0]
    assert list(normalize([3.0, 3.0], "minmax")) == [1.0, 1.0]
    assert list(normalize([3.0, 3.0], "zscore")) == [0.0, 0.0]
    z = normalize([1.0, 2.0, 3.0], "zscore")
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)


@pytest.mark.parametrize("weights", [[1.0], [-1.0, 1.0], [0.0, 0.0]])
def test_bad_weights_are_rejected(weights):
    with pytest.raises(ConfigError):
        reciprocal_rank_fusion([BM25, DENSE], weights)


def test_limit_and_chunk_ids_are_kept():
    fused = reciprocal_rank_fusion([BM25, DENSE], limit=2)
    assert len(fused) == 2 and fused[0].chunk_id == "a#0"


@pytest.mark.parametrize("method", ["rrf", "minmax", "zscore"])
def test_a_fused_document_keeps_the_chunk_of_the_list_that_ranked_it_best(method):
    # BM25 ranks doc "a" 3rd by its chunk a#0, dense ranks it 1st by a#2: the fused hit carries
    # the chunk of the list that ranked the document higher (BM25's on a tie)
    bm25 = [Hit("b", 9.0, "b#0"), Hit("c", 5.0, "c#0"), Hit("a", 1.0, "a#0")]
    dense = [Hit("a", 0.9, "a#2"), Hit("c", 0.8, "c#1"), Hit("b", 0.2, "b#1")]
    chunks = {h.doc_id: h.chunk_id for h in fuse([bm25, dense], method)}
    assert chunks == {"a": "a#2", "b": "b#0", "c": "c#0"}  # c ranks 2nd in both: BM25's chunk
