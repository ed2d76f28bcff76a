"""The rag benchmark's bookkeeping: which files a record says it measured."""

from __future__ import annotations

import hashlib

from benchmarks import rag as rag_bench
from evals.datasets import load_beir
from rag.eval import run_queries
from rag.hits import Hit
from tests.beir_folder import write_beir_folder


def test_a_user_folder_named_like_a_registered_dataset_records_its_own_files(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(rag_bench, "dataset_summary", lambda name, d: asked.append(name) or {})
    folder = tmp_path / "scifact"  # the last path part is a registered name
    write_beir_folder(folder, {"d1": {"title": "", "text": "x"}}, {"q1": "x?"}, {"q1": {"d1": 1}})
    test = load_beir(str(folder))
    summary = rag_bench.dataset_provenance(test, str(folder), None)
    assert asked == []  # the registry's SciFact (URL, checksums, a download) is not involved
    assert summary["source"] == "user folder"
    assert set(summary["files"]) == {"corpus.jsonl", "queries.jsonl", "qrels/test.tsv"}
    for name, recorded in summary["files"].items():  # each file's own hash (they all differ)
        assert recorded == {"sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
    rag_bench.dataset_provenance(test, None, None)  # the default run: the registered SciFact
    rag_bench.dataset_provenance(test, "scifact", None)
    assert asked == ["scifact", "scifact"]


def test_the_paired_test_skips_a_query_whose_judgments_are_all_grade_zero():
    queries = {"q1": "one", "q2": "two", "q3": "three"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 0}}  # q3 has no nDCG
    ranked = {"one": ["d1", "d9"], "two": ["d9", "d2"], "three": ["d3"]}
    results = {
        "bm25": run_queries(lambda q: [Hit("d9", 1.0)], queries, qrels),
        "hybrid": run_queries(lambda q: [Hit(d, 1.0) for d in ranked[q]], queries, qrels),
    }
    note = rag_bench.paired_note(results, "hybrid")
    assert note.startswith("Paired test, hybrid vs bm25 on nDCG@10 over 2 queries: diff +0.")


def test_a_reranker_cache_that_cannot_be_written_keeps_the_trained_reranker(tmp_path, caplog):
    # the cached LambdaRank model is saved after training: an unusable cache folder raised
    # NotADirectoryError there and threw the training away with the whole benchmark run
    from types import SimpleNamespace

    from rag.chunking import DocumentChunker
    from rag.config import RagConfig
    from rag.documents import Document
    from rag.index import HybridIndex
    from rag.retrieval import HybridRetriever
    from tests.rag.conftest import HashingEmbedder

    words = ["cats", "dogs", "fish", "birds", "trees", "rivers", "stars", "clouds", "stones"]
    docs = [
        Document(f"d{i}", f"{w} and {words[(i + 1) % len(words)]}, {w} again", title=w)
        for i, w in enumerate(words)
    ]
    index = HybridIndex(HashingEmbedder(), DocumentChunker(), RagConfig())
    index.upsert(docs)
    train = SimpleNamespace(
        queries={f"q{i}": f"what about {w}" for i, w in enumerate(words)},
        qrels={f"q{i}": {f"d{i}": 1} for i in range(len(words))},
    )
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    ctx = SimpleNamespace(seed=0, cache_dir=not_a_folder)
    with caplog.at_level("WARNING", logger="benchmarks.rag"):
        model, cached = rag_bench._ltr(
            ctx, HybridRetriever(index), train, "sum", RagConfig(), False
        )
    assert cached is False and model.meta["train_queries"] > 0
    assert "reranker cache" in caplog.text and "not written" in caplog.text
