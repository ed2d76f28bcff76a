"""The rag benchmark's speed tables: BM25 backends, per-stage query latency, encoders, HNSW.

* ``bm25_speed`` queries per second of our scipy BM25 vs rank-bm25 (and bm25s) on the same tokens.
* ``latency``    p50/p95 per query of each stage, as a query arrives: nothing memoised, every
                 query embedded afresh. The onnxruntime and PyTorch encoders are timed back to
                 back in the same process (their absolute figures depend on the machine's load;
                 their ratio much less).
* ``encoder``    parity of the two encoders on every test query: max |difference| of the
                 vectors and the dense nDCG@10 each one's query vectors give.
* ``hnsw``       recall of the HNSW index against exact search, and build times.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.record import Row
from evals.metrics import evaluate
from evals.timing import latency_summary
from rag.bm25 import Tokenizer
from rag.dense import DenseIndex
from rag.fusion import fuse
from rag.hits import as_run, best_per_document
from rag.retrieval import HybridRetriever


def bm25_speed_rows(index, okapi, rank_ref, queries, results, notes) -> list[Row]:
    """Queries per second of each BM25 backend on the same tokens and queries."""
    import bm25s

    tok = Tokenizer()
    bs = bm25s.BM25(method="lucene", k1=index.bm25.k1, b=index.bm25.b)
    bs.index([tok(c.text) for c in index.chunks.values()], show_progress=False)
    speed = {
        "ours-scipy (lucene)": (lambda q: index.bm25.search(q, 100), "bm25"),
        "ours-scipy (okapi)": (lambda q: okapi.search(q, 100), "bm25-okapi"),
        "rank_bm25 (okapi)": (lambda q: rank_ref.search(q, 100), "bm25-rank_bm25"),
        "bm25s (lucene)": (lambda q: bs.get_scores(tok(q)), None),
    }
    qps, rows = {}, []
    for label, (fn, variant) in speed.items():
        t0 = time.perf_counter()
        for q in queries.values():
            fn(q)
        qps[label] = len(queries) / (time.perf_counter() - t0)
        metrics = {"queries_per_s": round(qps[label], 1)}
        if variant:
            metrics["ndcg@10"] = results[variant].metrics["ndcg@10"]
        rows.append(Row(label, metrics, table="bm25_speed"))
    notes.append(
        f"BM25 speed-up, ours (okapi) vs rank_bm25 (same formula and tokens): "
        f"{qps['ours-scipy (okapi)'] / qps['rank_bm25 (okapi)']:.0f}x."
    )
    return rows


def _stage_rows(stages: dict[str, list[float]], encoder: str) -> list[Row]:
    out = []
    for stage, secs in stages.items():
        lat = latency_summary(secs)
        out.append(
            Row(
                stage,
                {"p50_ms": round(lat["p50_ms"], 2), "p95_ms": round(lat["p95_ms"], 2)},
                table="latency",
                extra={"queries": len(secs), "encoder": encoder},
            )
        )
    return out


def latency_rows(retriever, texts, reranker, encoders: dict) -> list[Row]:
    """Per-stage latency with the serving encoder, then the hybrid total with each other encoder.

    ``encoders`` maps a label to an embedder; the first one is the one the index serves with.
    """
    index = retriever.index
    memo = index.embedder
    (label, serving), *others = encoders.items()
    index.embedder = serving  # bypass the benchmark's text memo: every query embedded afresh
    cold = HybridRetriever(index, retriever.config, reranker=reranker, query_cache_size=0)
    w = cold.config.dense_weight
    names = ("bm25", f"embed_query ({label})", "faiss search", "fusion", f"hybrid total ({label})")
    stages: dict[str, list[float]] = {n: [] for n in names}
    if reranker:
        stages[f"hybrid + ltr@100 total ({label})"] = []
    out = []
    try:
        for q in texts:
            t0 = time.perf_counter()
            b = cold.bm25(q, 100)
            t1 = time.perf_counter()
            vec = serving.encode([q])
            t2 = time.perf_counter()
            found = index.dense.search(vec, 200)[0]
            t3 = time.perf_counter()
            d = best_per_document(found.ids, found.scores, index.chunk_to_doc, 100)
            fuse([b, d], cold.config.fusion, [1 - w, w])
            t4 = time.perf_counter()
            cold.hybrid(q, 10)
            t5 = time.perf_counter()
            for stage, secs in zip(
                names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True
            ):
                stages[stage].append(secs)
            if reranker:
                cold.rerank(q, 10, depth=100)
                stages[f"hybrid + ltr@100 total ({label})"].append(time.perf_counter() - t5)
        out += _stage_rows(stages, label)
        for other_label, other in others:  # same queries, same process, right after
            index.embedder = other
            other.encode(["warm up"])
            stages = {f"embed_query ({other_label})": [], f"hybrid total ({other_label})": []}
            for q in texts:
                t0 = time.perf_counter()
                other.encode([q])
                t1 = time.perf_counter()
                cold.hybrid(q, 10)
                t2 = time.perf_counter()
                stages[f"embed_query ({other_label})"].append(t1 - t0)
                stages[f"hybrid total ({other_label})"].append(t2 - t1)
            out += _stage_rows(stages, other_label)
    finally:
        index.embedder = memo
    return out


def encoder_rows(index, queries, qrels, encoders: dict) -> list[Row]:
    """Every encoder's query vectors against the same document vectors: same vectors, same nDCG?"""
    texts = list(queries.values())
    # batches of 32: the size a query service sees, and below OnnxEmbedder's bulk hand-off
    vecs = {
        label: np.vstack([e.encode(texts[i : i + 32]) for i in range(0, len(texts), 32)])
        for label, e in encoders.items()
    }
    ref_label, ref = next(iter(vecs.items()))
    c2d, rows = index.chunk_to_doc, []
    for label, v in vecs.items():
        found = index.dense.search(v, 200)
        run = {
            qid: best_per_document(f.ids, f.scores, c2d, 100)
            for qid, f in zip(queries, found, strict=True)
        }
        metrics = {
            "dense_ndcg@10": round(evaluate(qrels, as_run(run), ["ndcg@10"])["ndcg@10"], 4),
            f"max_abs_diff_vs_{ref_label}": float(np.abs(v - ref).max()),
            f"min_cosine_vs_{ref_label}": round(float((v * ref).sum(axis=1).min()), 7),
        }
        rows.append(Row(label, metrics, table="encoder", extra={"queries": len(texts)}))
    return rows


def hnsw_rows(index, retriever, queries, qrels, config) -> list[Row]:
    """Recall@100 of HNSW vs exact search on the real chunk vectors, and its nDCG@10."""
    vecs = retriever.embed(list(queries.values()))
    t0 = time.perf_counter()
    hnsw = DenseIndex(
        index.dense.dim, "hnsw", hnsw_m=config.hnsw_m, ef_search=config.hnsw_ef_search
    )
    hnsw.add(index.dense.ids, index.dense.vectors)
    hnsw.search(vecs[:1], 1)
    build = time.perf_counter() - t0
    exact = index.dense.search(vecs, 100)
    t0 = time.perf_counter()
    approx = hnsw.search(vecs, 100)
    per_q = (time.perf_counter() - t0) / len(vecs)
    recall = float(
        np.mean(
            [
                len(set(a.ids) & set(e.ids)) / max(1, len(e.ids))
                for a, e in zip(approx, exact, strict=True)
            ]
        )
    )
    c2d = index.chunk_to_doc
    run = {
        qid: best_per_document(a.ids, a.scores, c2d, 100)
        for qid, a in zip(queries, approx, strict=True)
    }
    m = evaluate(qrels, as_run(run), ["ndcg@10"])
    return [
        Row(
            f"hnsw M={config.hnsw_m} ef={config.hnsw_ef_search}",
            {"recall@100_vs_exact": round(recall, 4), "ndcg@10": round(m["ndcg@10"], 4)},
            timings={"build_s": round(build, 2), "search_ms_per_query": round(per_q * 1e3, 3)},
            table="hnsw",
        )
    ]
