import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.bm25 import BM25Index, RankBM25Index, Tokenizer, top_k
from rag.errors import ConfigError


class Split:
    """Whitespace tokenizer so the parity tests compare formulas, not tokenizers."""

    def __call__(self, text):
        return text.split()


words = st.sampled_from(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"])
corpora = st.lists(st.lists(words, min_size=1, max_size=12), min_size=1, max_size=15)


@settings(max_examples=60, deadline=None)
@given(corpus=corpora, query=st.lists(words, min_size=1, max_size=5))
def test_okapi_matches_rank_bm25_exactly(corpus, query):
    from rank_bm25 import BM25Okapi

    ours = BM25Index(Split(), method="okapi")
    ours.add([str(i) for i in range(len(corpus))], [" ".join(d) for d in corpus])
    reference = BM25Okapi(corpus)
    np.testing.assert_allclose(
        ours.score_all(" ".join(query))[1], reference.get_scores(query), rtol=1e-9, atol=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(corpus=corpora, query=st.lists(words, min_size=1, max_size=5, unique=True))
def test_lucene_matches_bm25s(corpus, query):
    import bm25s

    ours = BM25Index(Split(), method="lucene")
    ours.add([str(i) for i in range(len(corpus))], [" ".join(d) for d in corpus])
    ref = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    ref.index(corpus, show_progress=False)
    # bm25s skips query words it has never seen and scores in float32.
    known = [w for w in query if w in ours.vocab]
    np.testing.assert_allclose(
        ours.score_all(" ".join(query))[1],
        ref.get_scores(known) if known else 0.0,
        rtol=1e-5,
        atol=1e-6,
    )


def test_lucene_score_by_hand():
    idx = BM25Index(Split(), k1=1.2, b=0.75)
    idx.add(["a", "b"], ["x x y", "y"])
    n, df, tf, dl, avgdl = 2, 1, 2, 3, 2.0
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    expected = idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))
    assert idx.score_all("x")[1][0] == pytest.approx(expected)
    assert idx.score_all("x")[1][1] == 0.0


def test_tokenizer_stems_lowercases_and_drops_stopwords():
    tok = Tokenizer()
    assert tok("The Cats are running to a Studies") == ["cat", "run", "studi"]
    assert tok("a I x") == []  # stop word and one-letter words are dropped


def test_incremental_updates_equal_a_fresh_build():
    texts = {"1": "red apple", "2": "green apple pie", "3": "red wine", "4": "apple juice"}
    inc = BM25Index()
    inc.add(["1", "2"], [texts["1"], texts["2"]])
    inc.search("apple")  # builds weights, which the next change must invalidate
    inc.add(["3", "4"], [texts["3"], texts["4"]])
    inc.remove(["2"])
    fresh = BM25Index()
    fresh.add(["1", "3", "4"], [texts["1"], texts["3"], texts["4"]])
    a, b = inc.search("red apple", 10), fresh.search("red apple", 10)
    assert a.ids == b.ids
    np.testing.assert_allclose(a.scores, b.scores)
    assert "2" not in inc.search("pie", 10).ids


def test_replacing_an_id_forgets_the_old_text():
    idx = BM25Index()
    idx.add(["d"], ["old words"])
    idx.add(["d"], ["new text"])
    assert idx.search("old", 5).ids == []
    assert idx.search("new", 5).ids == ["d"]


def test_search_edge_cases():
    idx = BM25Index()
    assert idx.search("anything", 3).ids == []
    idx.add(["a"], ["hello world"])
    assert idx.search("unknown words", 3).ids == []
    with pytest.raises(ConfigError):
        idx.search("hello", 0)
    with pytest.raises(ConfigError):
        BM25Index(method="bm42")


@pytest.mark.parametrize(
    ("k1", "b"), [(math.nan, 0.75), (1.2, math.nan), (math.inf, 0.75), (-1.0, 0.75), (1.2, 2.0)]
)
def test_bm25_parameters_out_of_range_or_nan_are_refused(k1, b):
    # a NaN k1 passed the old `k1 < 0` check and every document then scored NaN: no hits
    with pytest.raises(ConfigError, match="need finite k1 >= 0 and 0 <= b <= 1"):
        BM25Index(k1=k1, b=b)


def test_top_k_is_stable_for_ties():
    res = top_k(["a", "b", "c", "d"], np.array([1.0, 2.0, 2.0, 0.0]), 3)
    assert res.ids == ["b", "c", "a"]


def test_top_k_is_the_head_of_a_stable_sort_when_a_tie_falls_at_the_kth_place():
    # a review found the partition dropped arbitrary tied entries once more than k scored > 0:
    # the top 3 was not the start of the top 5, and a document could vanish at some k
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        scores = rng.integers(0, 4, size=n).astype(float)  # few distinct values: many ties
        ids = [f"d{i:02d}" for i in range(n)]
        ranked = [i for i in np.argsort(-scores, kind="stable") if scores[i] > 0]
        for k in (1, 2, 3, 5, 12, 70):
            assert top_k(ids, scores, k).ids == [ids[i] for i in ranked[:k]]


def test_rank_bm25_backend_ranks_like_okapi():
    docs = {"1": "solar power energy", "2": "wind power", "3": "coal energy plant", "4": "tea"}
    ours = BM25Index(method="okapi")
    ref = RankBM25Index()
    for idx in (ours, ref):
        idx.add(list(docs), list(docs.values()))
    assert ours.search("power energy", 4).ids == ref.search("power energy", 4).ids


def _churn(seed, n_steps, method):
    """Random adds, replacements and removals; yields (index, compacting index, live docs)."""
    rng = np.random.default_rng(seed)
    pool = [f"w{i}" for i in range(12)]  # common words, always somewhere in the corpus
    never, often = BM25Index(Split(), method=method), BM25Index(Split(), method=method)
    never.compact_min_dead, often.compact_min_dead = 10**9, 0
    live = {}  # same order as the indexes' rows: a replaced id keeps its place
    for step in range(n_steps):
        if live and rng.random() < 0.3:
            gone = [str(d) for d in rng.choice(list(live), size=min(2, len(live)), replace=False)]
            for idx in (never, often):
                idx.remove(gone)
            for d in gone:
                del live[d]
        else:
            doc_id = str(rng.integers(0, 8))
            words = [*rng.choice(pool, size=rng.integers(1, 6)), f"r{step}", f"s{step}"]
            live[doc_id] = " ".join(words)
            for idx in (never, often):
                idx.add([doc_id], [live[doc_id]])
        yield never, often, live


@pytest.mark.parametrize("method", ["lucene", "okapi"])
@pytest.mark.parametrize("seed", range(4))
def test_vocabulary_compaction_changes_no_score_bit_for_bit(method, seed):
    # a review found the vocabulary kept every term ever indexed; compaction renumbers the live
    # terms in their old order, so the scores of every query stay exactly as they were
    queries = ["w0 w1", "w3 w3 w7", "r5 w2", "s40 r41 w11", "r0 s1 r2 w4 w5", "w9 w10 w11 w0"]
    compacted_steps = 0
    for never, often, live in _churn(seed, 120, method):
        compacted_steps += len(often.vocab) < len(never.vocab)
        fresh = BM25Index(Split(), method=method)
        fresh.add(list(live), list(live.values()))
        for q in queries:
            a, b, c = never.search(q, 5), often.search(q, 5), fresh.search(q, 5)
            assert a.ids == b.ids == c.ids
            assert np.array_equal(a.scores, b.scores) and np.array_equal(b.scores, c.scores)
    assert compacted_steps > 0
    assert len(often.vocab) == often.weights.shape[1] < len(never.vocab)


def test_query_terms_leave_out_terms_no_live_document_holds():
    # the reranker's coverage and idf features read query_terms: a term whose documents were all
    # removed counted as a query term (with the idf of df = 0) until the index was reloaded
    def by_term(idx, query, ids):
        names = {i: t for t, i in idx.vocab.items()}
        terms = idx.query_terms(query)
        presence = idx.term_presence(ids, terms).T.tolist()
        return {names[i]: (w, p) for i, w, p in zip(terms, idx.idf(terms), presence, strict=True)}

    for never, _, live in _churn(0, 60, "okapi"):
        fresh = BM25Index(Split(), method="okapi")
        fresh.add(list(live), list(live.values()))
        for q in ("w1 r3 s17 w4 r30 s50 w11", "w0 w2 w5 w6 w8", "r58 r59 s59"):
            assert by_term(never, q, list(live)) == by_term(fresh, q, list(live))


def test_vocabulary_stays_bounded_under_many_replacements():
    # review repro: 5,000 replacements over 200 live documents left 156,000 terms (+35 MB)
    rng = np.random.default_rng(0)
    idx = BM25Index()
    for step in range(3000):  # each text brings 10 terms no other text has
        doc_id = f"d{rng.integers(50)}"
        idx.add(
            [doc_id], ["market price rose report " + " ".join(f"t{step}x{j}" for j in range(10))]
        )
    live_terms = 4 + 10 * len(idx)  # 3,000 x 10 + 4 terms were indexed
    assert len(idx) == 50
    assert len(idx.vocab) <= live_terms + 4096 + 10  # compact_min_dead, above 2 x live here
    assert idx.weights.shape == (50, len(idx.vocab))
    assert len(idx.search("market", 100).ids) == 50
    assert idx.search("t2999x3", 3).ids == [doc_id]
    assert idx.search("t0x3", 3).ids == []


def test_the_stem_memo_stays_bounded_and_stems_the_same():
    # after the vocabulary fix the review's repro still grew 23 MB: the memo kept every word seen
    tok, plain = Tokenizer(), Tokenizer()
    words = [f"running{i}x" for i in range(70_000)]  # more distinct words than the memo holds
    assert tok(" ".join(words)) == [f"running{i}x" for i in range(70_000)]
    assert len(tok._cache) <= 65_536
    assert tok("studies running cats") == plain("studies running cats") == ["studi", "run", "cat"]
