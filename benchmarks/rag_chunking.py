"""The rag benchmark's chunking ablation, and the sub-corpora it and the quick mode run on.

Embedding the full SciFact corpus once per chunker does not fit the CPU budget of a benchmark
run, so the ablation uses a 500-document sub-corpus: the relevant documents of 150 sampled test
queries plus random others (about two distractors per relevant document). Absolute figures are
therefore higher than on the full corpus; compare the rows with each other. The embedding cache
and the text memo make a second run (and identical chunks across chunkers) free.
"""

from __future__ import annotations

import random
import time

from benchmarks.record import Row
from rag.config import RagConfig
from rag.documents import documents_from_beir
from rag.eval import run_queries
from rag.index import HybridIndex, build_chunker
from rag.retrieval import HybridRetriever

CHUNKERS = ("document", "tokens", "sentences", "recursive")
# the ablation's four indexes took ~50 s to build afresh on two cores (results/rag.json, the
# chunking rows' index_build_s: 0.1 + 18.3 + 20.8 + 10.3 s)
ABLATION_DOCS, ABLATION_QUERIES = 500, 150


def subset(test, train, n_test: int, n_train: int, n_docs: int, seed: int):
    """A small corpus holding the relevant documents of sampled test and train queries.

    Returns ``(corpus, test_query_ids, train_query_ids)``; the rest of the corpus is filled with
    random documents up to ``n_docs``.
    """
    rng = random.Random(seed)
    tq = sorted(rng.sample(sorted(test.qrels), min(n_test, len(test.qrels))))
    trq = sorted(rng.sample(sorted(train.qrels), min(n_train, len(train.qrels)))) if train else []
    keep = {d for q in tq for d in test.qrels[q]} | {d for q in trq for d in train.qrels[q]}
    keep &= set(test.corpus)
    rest = sorted(set(test.corpus) - keep)
    keep |= set(rng.sample(rest, max(0, min(len(rest), n_docs - len(keep)))))
    corpus = {d: test.corpus[d] for d in sorted(keep)}
    return corpus, tq, trq


def chunking_rows(test, queries, qrels, embedder, cache, base: RagConfig, ctx, notes) -> list[Row]:
    """BM25, dense and hybrid quality of every chunker on the ablation sub-corpus."""
    corpus, sampled, _ = subset(test, None, ABLATION_QUERIES, 0, ABLATION_DOCS, ctx.seed)
    docs = documents_from_beir(corpus)
    queries = {q: queries[q] for q in sampled}
    qrels = {q: qrels[q] for q in sampled}
    notes.append(
        f"Chunking ablation on a {len(docs)}-doc sub-corpus (the relevant docs of "
        f"{len(queries)} sampled test queries + random others), those queries only; absolute "
        "figures are higher than on the full corpus, compare rows with each other."
    )
    out = []
    for kind in CHUNKERS:
        config = base.replace(chunker=kind)
        index = HybridIndex(embedder, build_chunker(config), config)
        t0 = time.perf_counter()
        index.upsert(docs, cache=cache, progress=ctx.progress)
        build = time.perf_counter() - t0
        r = HybridRetriever(index)
        r.embed(list(queries.values()))
        row_metrics = {"chunks": float(len(index.chunks))}
        for mode in ("bm25", "dense", "hybrid"):
            res = run_queries(lambda q, m=mode, r=r: r.search(q, 100, mode=m), queries, qrels)
            row_metrics[f"{mode}_ndcg@10"] = round(res.metrics["ndcg@10"], 4)
            row_metrics[f"{mode}_recall@100"] = round(res.metrics["recall@100"], 4)
        out.append(
            Row(
                index.chunker.name,
                row_metrics,
                timings={"index_build_s": round(build, 1)},
                table="chunking",
            )
        )
    return out
