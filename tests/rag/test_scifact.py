"""Real-data checks on BEIR SciFact (read through the shared loader)."""

import pytest

from evals.datasets import load_beir
from evals.metrics import evaluate
from rag.bm25 import BM25Index
from rag.chunking import RecursiveChunker, SentenceChunker, WhitespaceSpans
from rag.documents import documents_from_beir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scifact():
    return load_beir("scifact", split="test")


def test_bm25_reproduces_the_published_scifact_figure(scifact):
    docs = documents_from_beir(scifact.corpus)
    index = BM25Index()
    index.add([d.doc_id for d in docs], [d.content for d in docs])
    run = {qid: index.search(q, 100).ids for qid, q in scifact.queries.items()}
    ndcg = evaluate(scifact.qrels, run, ["ndcg@10"])["ndcg@10"]
    assert ndcg == pytest.approx(0.686, abs=0.005)  # bm25s paper: 0.687 (Lucene, stemmed)


def test_chunk_offsets_hold_on_real_abstracts(scifact):
    docs = documents_from_beir(scifact.corpus)[:300]
    for chunker in (
        SentenceChunker(WhitespaceSpans(), 64),
        RecursiveChunker(WhitespaceSpans(), 64),
    ):
        for doc in docs:
            chunks = chunker.chunk(doc)
            assert chunks
            assert all(doc.content[c.start : c.end] == c.text for c in chunks)
