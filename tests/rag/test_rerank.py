import json

import numpy as np
import pytest

from rag.errors import RerankerError
from rag.features import FEATURE_NAMES
from rag.hits import Candidate
from rag.rerank import LTRReranker, LTRSettings, train_ltr


def synthetic(n_queries=120, per_query=20, seed=0):
    """Relevance is decided by ``coverage`` (plus noise in the rest): a learnable signal that the
    first-stage order (``fused_rank``) does not follow."""
    rng = np.random.default_rng(seed)
    cands, qrels = {}, {}
    for q in range(n_queries):
        qid, rel = f"q{q}", int(rng.integers(per_query))
        rows = []
        for i in range(per_query):
            f = {name: float(rng.normal()) for name in FEATURE_NAMES}
            f["fused_rank"] = float(i + 1)
            f["coverage"] = 1.0 if i == rel else float(rng.uniform(0, 0.6))
            rows.append(Candidate(f"{qid}d{i}", f"{qid}d{i}#0", "text", features=f))
        cands[qid], qrels[qid] = rows, {f"{qid}d{rel}": 1}
    return cands, qrels


def test_lambdarank_learns_a_planted_signal(tmp_path):
    cands, qrels = synthetic()
    model = train_ltr(cands, qrels, LTRSettings(n_estimators=100, early_stopping_rounds=20))
    test_cands, test_qrels = synthetic(30, seed=1)
    top1 = [model.rerank("", c)[0].doc_id in test_qrels[q] for q, c in test_cands.items()]
    assert np.mean(top1) > 0.9
    assert model.meta["train_queries"] == 120 and model.meta["n_trees"] >= 1
    path = model.save(tmp_path / "ltr.json")
    again = LTRReranker.load(path)
    c = test_cands["q0"]
    assert [h.doc_id for h in again.rerank("", c)] == [h.doc_id for h in model.rerank("", c)]


def test_qrels_that_match_no_candidate_are_a_clear_error():
    cands, _ = synthetic(20)
    elsewhere = {q: {"another-corpus-doc": 1} for q in cands}
    with pytest.raises(RerankerError, match="relevant document among their candidates"):
        train_ltr(cands, elsewhere, LTRSettings(n_estimators=10))


def test_reranker_file_errors(tmp_path):
    with pytest.raises(RerankerError, match="train-reranker"):
        LTRReranker.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(RerankerError):
        LTRReranker.load(tmp_path / "bad.json")


HEADER = '"format": "rag-ltr", "format_version": 1'


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"format": "rag-ltr", "mod', id="truncated"),
        pytest.param(b"[]", id="a-list"),
        pytest.param(b'"rag-ltr"', id="a-string"),
        pytest.param(b"\x89PNG\r\n\x1a\n\xff\xfe", id="binary"),
        pytest.param(f'{{{HEADER}, "features": [], "model": null}}'.encode(), id="model-null"),
        pytest.param(f'{{{HEADER}, "features": [], "model": 7}}'.encode(), id="model-number"),
        pytest.param(
            f'{{{HEADER}, "features": [], "model": "trees"}}'.encode(), id="model-garbage"
        ),
        pytest.param(b"{}", id="no-format"),
    ],
)
def test_every_unreadable_reranker_file_is_a_reranker_error(tmp_path, content):
    # a list, a string, binary bytes or a null model escaped as a TypeError or UnicodeDecodeError,
    # which the CLI prints as a traceback instead of "error: ... run train-reranker"
    (tmp_path / "reranker.json").write_bytes(content)
    with pytest.raises(RerankerError, match=r"reranker\.json"):
        LTRReranker.load(tmp_path / "reranker.json")


@pytest.fixture(scope="module")
def saved_payload(tmp_path_factory):
    """What a trained reranker's file holds (trained once for the module)."""
    cands, qrels = synthetic(40)
    path = tmp_path_factory.mktemp("ltr") / "reranker.json"
    train_ltr(cands, qrels, LTRSettings(n_estimators=5)).save(path)
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "change",
    [
        {"features": "bm25"},
        {"features": [1, 2]},
        {"features": ["bm25"]},  # fewer names than the model reads
        {"meta": ["threshold", 0.2]},
    ],
)
def test_a_reranker_file_with_damaged_fields_is_a_reranker_error(tmp_path, saved_payload, change):
    path = tmp_path / "reranker.json"
    path.write_text(json.dumps(saved_payload | change))
    with pytest.raises(RerankerError, match="not a readable rag-ltr model"):
        LTRReranker.load(path)


def test_a_folder_named_like_the_reranker_file_is_a_reranker_error(tmp_path):
    (tmp_path / "reranker.json").mkdir()
    with pytest.raises(RerankerError, match="not a readable rag-ltr model"):
        LTRReranker.load(tmp_path / "reranker.json")


def test_missing_feature_is_a_clear_error():
    cands, qrels = synthetic(40)
    model = train_ltr(cands, qrels, LTRSettings(n_estimators=10))
    with pytest.raises(RerankerError, match="lacks feature"):
        model.rerank("q", [Candidate("d", "d#0", "t", features={"bm25": 1.0})])


def test_candidates_carry_every_feature(docs, embedder):
    from rag.chunking import DocumentChunker
    from rag.config import RagConfig
    from rag.index import HybridIndex
    from rag.retrieval import HybridRetriever

    index = HybridIndex(embedder, DocumentChunker(), RagConfig())
    index.upsert(docs)
    cands = HybridRetriever(index).candidates("vitamin D cancer risk", 5)
    assert cands[0].doc_id == "vitd"
    assert set(cands[0].features) == set(FEATURE_NAMES)
    assert cands[0].features["coverage"] == 1.0 and cands[0].features["bm25_rank"] == 1.0
    assert cands[0].features["title_coverage"] > 0


@pytest.mark.slow
def test_cross_encoder_reranker_returns_a_permutation(minilm):
    from rag.rerank import CrossEncoderReranker

    # No trained cross-encoder ships offline; a MiniLM with a fresh head exercises the code path.
    ce = CrossEncoderReranker(minilm.path, max_length=64)
    cands = [Candidate(f"d{i}", f"d{i}#0", f"text {i}", title="T") for i in range(4)]
    hits = ce.rerank("query", cands)
    assert sorted(h.doc_id for h in hits) == ["d0", "d1", "d2", "d3"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_title_features_follow_an_upsert_that_retitles_a_document(docs, embedder):
    # the retriever's title-term cache follows the index's generation: after an upsert that
    # retitles a document, the reranker's title features use the new title
    from rag.chunking import DocumentChunker
    from rag.config import RagConfig
    from rag.documents import Document
    from rag.index import HybridIndex
    from rag.retrieval import HybridRetriever

    index = HybridIndex(embedder, DocumentChunker(), RagConfig())
    index.upsert(docs)
    retriever = HybridRetriever(index)

    def title_coverage(query):
        return {c.doc_id: c.features["title_coverage"] for c in retriever.candidates(query, 5)}

    assert title_coverage("domestic cats purr")["cats"] > 0
    index.upsert([Document("cats", docs[0].text, title="Household pets")])
    assert title_coverage("domestic cats purr")["cats"] == 0
    assert title_coverage("household pets purr")["cats"] > 0
    fresh = HybridRetriever(index).candidates("household pets purr", 5)
    assert {c.doc_id: c.features for c in fresh} == {
        c.doc_id: c.features for c in retriever.candidates("household pets purr", 5)
    }


def test_title_features_follow_a_new_index_that_reuses_an_old_ones_id(docs, embedder, monkeypatch):
    # the title-term cache is keyed on the index object and its generation, never on id(): a
    # new index may get the id() of a collected one. Here every object shares one id().
    from rag.chunking import DocumentChunker
    from rag.config import RagConfig
    from rag.documents import Document
    from rag.index import HybridIndex
    from rag.retrieval import HybridRetriever

    monkeypatch.setattr("rag.retrieval.id", lambda obj: 0, raising=False)
    old = HybridIndex(embedder, DocumentChunker(), RagConfig())
    old.upsert(docs)
    new = HybridIndex(embedder, DocumentChunker(), RagConfig())
    # cats last: its new title's term ids then differ from the old title's, so stale ids show
    new.upsert([*docs[1:], Document("cats", docs[0].text, title="Household pets")])
    assert old.generation == new.generation
    retriever = HybridRetriever(old)
    before = {c.doc_id: c.features for c in retriever.candidates("household pets purr", 5)}
    assert before["cats"]["title_coverage"] == 0
    retriever.index = new
    after = {c.doc_id: c.features for c in retriever.candidates("household pets purr", 5)}
    assert after["cats"]["title_coverage"] > 0


def test_bm25_and_dense_features_are_the_best_chunk_of_each_document(docs, embedder):
    # windows of 8 words overlapping by 2 cut every document into several chunks; a document's
    # score is that of its best chunk, here the last chunk of "vitd", not its first or its worst
    from rag.chunking import TokenWindowChunker, WhitespaceSpans
    from rag.config import RagConfig
    from rag.index import HybridIndex
    from rag.retrieval import HybridRetriever

    index = HybridIndex(embedder, TokenWindowChunker(WhitespaceSpans(), 8, 2), RagConfig())
    index.upsert(docs)
    retriever = HybridRetriever(index)
    query = "cancer risk in observational studies"
    query_vector = retriever.embed([query])[0]
    cands = {c.doc_id: c for c in retriever.candidates(query, 5)}
    chunk_ids = index.doc_chunks["vitd"]
    bm25_chunks = index.bm25.scores_for(query, chunk_ids)
    dense_chunks = index.dense.scores_for(query_vector, chunk_ids)
    assert len(chunk_ids) == 3 and bm25_chunks.argmax() == dense_chunks.argmax() == 2
    assert bm25_chunks.min() < bm25_chunks.max() and dense_chunks.min() < dense_chunks.max()
    assert cands["vitd"].features["bm25"] == pytest.approx(bm25_chunks.max())
    assert cands["vitd"].features["dense"] == pytest.approx(dense_chunks.max())
    for doc_id, cand in cands.items():
        ids = index.doc_chunks[doc_id]
        assert cand.features["bm25"] == pytest.approx(index.bm25.scores_for(query, ids).max())
        assert cand.features["dense"] == pytest.approx(
            index.dense.scores_for(query_vector, ids).max()
        )


def test_idf_coverage_weights_a_rare_term_above_a_common_one(embedder):
    # "gills" is in 2 of the 5 documents, "water" in 4. "frog" has only "gills": half the query
    # terms (coverage 0.5), but the rarer half. Lucene idf = ln(1 + (N - df + .5) / (df + .5)):
    # gills ln(1 + 3.5/2.5) = ln 2.4, water ln(1 + 1.5/4.5) = ln(4/3), so the idf-weighted share
    # is ln 2.4 / (ln 2.4 + ln(4/3)) = ln 2.4 / ln 3.2 ~ 0.753
    from rag.chunking import DocumentChunker
    from rag.config import RagConfig
    from rag.documents import Document
    from rag.index import HybridIndex
    from rag.retrieval import HybridRetriever

    corpus = [
        Document("fish", "Goldfish breathe with gills under water."),
        Document("rain", "Rain water fills the lake."),
        Document("river", "River water flows downhill."),
        Document("sea", "Sea water is salty."),
        Document("frog", "Tadpoles have gills too."),
    ]
    index = HybridIndex(embedder, DocumentChunker(), RagConfig(bm25_method="lucene"))
    index.upsert(corpus)
    cands = {c.doc_id: c for c in HybridRetriever(index).candidates("gills water", 5)}
    frog = cands["frog"].features
    assert frog["coverage"] == 0.5
    assert frog["idf_coverage"] == pytest.approx(np.log(2.4) / np.log(3.2))
    assert frog["idf_coverage"] > frog["coverage"]
    assert cands["fish"].features["idf_coverage"] == pytest.approx(1.0)
