"""Benchmark of the rag system on a BEIR dataset (default SciFact; ``--dataset PATH`` for any).

Tables in the record:

* ``main``      every retrieval variant on the test queries: nDCG@10, Recall@100, MRR@10 with
                bootstrap 95% CIs, plus a paired permutation test of the best variant vs BM25.
* ``bm25_speed`` queries per second of our scipy BM25 vs rank-bm25 (and bm25s) on the same tokens.
* ``latency``   p50/p95 per query of each pipeline stage (cold query-embedding cache).
* ``hnsw``      recall of the HNSW index against exact search, and build times.
* ``chunking``  the chunker ablation (on a sub-corpus: see notes).
* ``answers``   the answer-level check with the local SmolLM2 server.

Everything tuned (fusion weight, LambdaRank reranker, abstention threshold) is tuned on the
dataset's *train* split; the test split is only evaluated. Embeddings, query vectors and the
trained reranker are cached in ``ctx.cache_dir/rag``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time

import numpy as np

from benchmarks.record import Anchor, BenchContext, BenchResult, Row
from evals.datasets import DATASETS, dataset_summary, load_beir
from evals.errors import DatasetError
from evals.metrics import evaluate
from evals.stats import bootstrap_ci, paired_test
from evals.timing import latency_summary
from rag.bm25 import BM25Index, RankBM25Index, Tokenizer
from rag.config import RagConfig
from rag.dense import DenseIndex, EmbeddingCache, MemoEmbedder, SentenceTransformerEmbedder
from rag.documents import documents_from_beir
from rag.eval import METRICS, first_stage, fit_on_train, run_queries, tune_dense_weight
from rag.fusion import fuse
from rag.hits import as_run, best_per_document
from rag.index import HybridIndex, build_chunker
from rag.rerank import LTRReranker, LTRSettings
from rag.retrieval import HybridRetriever

DESCRIPTION = (
    "Hybrid BM25 + MiniLM dense retrieval, z-score/min-max/RRF fusion and a LambdaRank reranker "
    "trained on train qrels; BEIR SciFact test nDCG@10 / Recall@100 / MRR@10 with CIs"
)
RERANK_DEPTHS = (20, 50, 100)

ANCHORS = [
    ("BM25 (BEIR paper, Elasticsearch)", 0.665, "bm25", "BEIR, Thakur et al. 2021, Table 2"),
    ("BM25 multifield (Pyserini)", 0.679, "bm25", "Pyserini BEIR regressions, bm25-multifield"),
    ("BM25 (bm25s, Lucene, stemmed)", 0.687, "bm25", "bm25s, Lù 2024, arXiv:2407.03618 Table 1"),
    ("all-MiniLM-L6-v2 (MTEB)", 0.645, "dense", "MTEB leaderboard, SciFact nDCG@10"),
    (
        "BM25 + ms-marco-MiniLM-L-6 cross-encoder",
        0.688,
        "hybrid-zscore+ltr@100",
        "BEIR, Thakur et al. 2021 (BM25+CE 0.682-0.688)",
    ),
    ("bm25s + MiniLM RRF", 0.714, "hybrid-rrf", "public hybrid-search repo (issue 7)"),
    ("bm25s + MiniLM min-max blend", 0.734, "hybrid-minmax", "public hybrid-search repo (issue 7)"),
    (
        "BM25 + BGE-base RRF (6x larger embedder)",
        0.742,
        "hybrid-zscore+ltr@100",
        "Pyserini BEIR hybrid regressions",
    ),
]


def _subset(test, train, n_test: int, n_train: int, n_docs: int, seed: int):
    """A small corpus holding the relevant documents of sampled test and train queries."""
    rng = random.Random(seed)
    tq = sorted(rng.sample(sorted(test.qrels), min(n_test, len(test.qrels))))
    trq = sorted(rng.sample(sorted(train.qrels), min(n_train, len(train.qrels)))) if train else []
    keep = {d for q in tq for d in test.qrels[q]} | {d for q in trq for d in train.qrels[q]}
    keep &= set(test.corpus)
    rest = sorted(set(test.corpus) - keep)
    keep |= set(rng.sample(rest, max(0, min(len(rest), n_docs - len(keep)))))
    corpus = {d: test.corpus[d] for d in sorted(keep)}
    return corpus, tq, trq


def _queries_cache(cache: EmbeddingCache, embedder, texts: list[str], progress: bool):
    key = EmbeddingCache.key(
        embedder.model_id, "queries", hashlib.sha256("\n".join(texts).encode()).hexdigest()
    )
    return cache.get_or_compute(key, texts, embedder, progress=progress)


def _row(variant, res, table="main", timings=None, extra=None) -> Row:
    ci = {}
    for m in METRICS:
        values = [res.per_query.get(q, {}).get(m, 0.0) for q in sorted(res.per_query)]
        c = bootstrap_ci(values, seed=0)
        ci[m] = [round(c.low, 4), round(c.high, 4)]
    lat = latency_summary(res.latencies)
    return Row(
        variant,
        {m: round(v, 4) for m, v in res.metrics.items()},
        timings=timings
        or {"query_p50_ms": round(lat["p50_ms"], 3), "query_p95_ms": round(lat["p95_ms"], 3)},
        table=table,
        ci=ci,
        extra=extra or {},
    )


def _ltr(ctx, retriever, train, corpus_sum, config, progress):
    """Train (or load the cached) fusion weight + LambdaRank reranker + threshold on train."""
    settings = LTRSettings(seed=ctx.seed)
    key_src = json.dumps(
        [
            config.model,
            config.chunker,
            config.fusion,
            corpus_sum,
            sorted(train.queries),
            str(settings),
        ]
    )
    path = ctx.cache_dir / "rag" / f"ltr-{hashlib.sha256(key_src.encode()).hexdigest()[:16]}.json"
    if path.exists():
        model = LTRReranker.load(path)
        retriever.config = retriever.config.replace(dense_weight=model.meta["dense_weight"])
        return model, True
    tuned = fit_on_train(
        retriever, train.queries, train.qrels, settings=settings, progress=progress
    )
    tuned.reranker.meta |= {
        "train_seconds": round(tuned.train_seconds, 1),
        "weight_curve": tuned.weight_curve,
    }
    tuned.reranker.save(path)
    return tuned.reranker, False


def run(ctx: BenchContext) -> BenchResult:
    config = RagConfig()
    name = ctx.dataset or "scifact"
    test = load_beir(name, split="test", data_dir=ctx.data_dir)
    try:
        train = load_beir(name, split="train", data_dir=ctx.data_dir)
    except DatasetError:  # no train split: no tuning and no trained reranker (noted below)
        train = None
    notes: list[str] = []
    corpus, queries, qrels = test.corpus, test.queries, test.qrels
    if ctx.quick:
        corpus, tq, trq = _subset(test, train, 50, 150, 500, ctx.seed)
        queries = {q: test.queries[q] for q in tq}
        qrels = {q: test.qrels[q] for q in tq}
        if train:
            train = dataclasses.replace(
                train,
                queries={q: train.queries[q] for q in trq},
                qrels={q: train.qrels[q] for q in trq},
            )
        notes.append(
            f"QUICK: {len(corpus)}-doc sub-corpus holding the relevant docs of "
            f"{len(queries)} test and {len(trq)} train queries; no chunking ablation."
        )
    docs = documents_from_beir(corpus)
    cache = EmbeddingCache(ctx.cache_dir / "rag")
    embedder = MemoEmbedder(SentenceTransformerEmbedder(config.model, batch_size=config.batch_size))
    timings: dict[str, float] = {}

    # ---- index ----------------------------------------------------------------------------------
    index = HybridIndex(embedder, build_chunker(config), config)
    from rag.documents import corpus_checksum

    corpus_sum = corpus_checksum(docs)
    key = EmbeddingCache.key(config.model, index.chunker.name, corpus_sum)
    was_cached = cache.get(key, len(docs)) is not None
    t0 = time.perf_counter()
    index.upsert(docs, cache=cache, progress=ctx.progress)
    timings["index_build_s"] = round(time.perf_counter() - t0, 2)
    timings["embeddings_cached"] = float(was_cached)
    embedder.remember([index.chunks[c].text for c in index.dense.ids], index.dense.vectors)
    t0 = time.perf_counter()
    probe = BM25Index(Tokenizer())
    probe.add(list(index.chunks), [c.text for c in index.chunks.values()])
    probe.search("warm up", 1)  # builds the weight matrix
    timings["bm25_build_s"] = round(time.perf_counter() - t0, 2)
    sample = [d.content for d in docs[:64]]
    t0 = time.perf_counter()
    embedder.inner.encode(sample)
    timings["embed_docs_per_s"] = round(len(sample) / (time.perf_counter() - t0), 1)

    retriever = HybridRetriever(index)
    all_q = list(queries.values()) + (list(train.queries.values()) if train else [])
    qvecs = _queries_cache(cache, embedder.inner, all_q, ctx.progress)
    retriever._qvecs.update(zip(all_q, qvecs, strict=True))

    # ---- tuning on train -------------------------------------------------------------------------
    reranker = None
    if train:
        reranker, cached = _ltr(ctx, retriever, train, corpus_sum, config, ctx.progress)
        retriever.reranker = reranker
        notes.append(
            f"Tuned on {len(train.queries)} train queries: z-score dense weight "
            f"{reranker.meta['dense_weight']}, LambdaRank {reranker.meta['n_trees']} "
            f"trees on {reranker.meta['train_pairs']} pairs in "
            f"{reranker.meta.get('train_seconds')} s{' (cached)' if cached else ''}; "
            f"abstention threshold {reranker.meta['threshold']:.4f}."
        )
        lists_train = first_stage(retriever, train.queries, config.candidates)
        w_minmax, _ = tune_dense_weight(lists_train, train.qrels, "minmax")
        w_rrf, _ = tune_dense_weight(lists_train, train.qrels, "rrf")
    else:
        w_minmax = w_rrf = config.dense_weight
        notes.append("No train split: fusion weights stay at 0.5 and there is no trained reranker.")
    w_z = retriever.config.dense_weight

    # ---- main table --------------------------------------------------------------------------
    rank_ref = RankBM25Index(Tokenizer())
    rank_ref.add(list(index.chunks), [c.text for c in index.chunks.values()])
    okapi = BM25Index(Tokenizer(), method="okapi")
    okapi.add(list(index.chunks), [c.text for c in index.chunks.values()])
    c2d = index.chunk_to_doc

    def via(idx):
        return lambda q: best_per_document(*_ids_scores(idx.search(q, 300)), c2d, 100)

    lists = first_stage(retriever, queries, config.candidates)
    q_of = {v: k for k, v in queries.items()}
    variants = {
        "bm25": lambda q: retriever.bm25(q, 100),
        "bm25-okapi": via(okapi),
        "bm25-rank_bm25": via(rank_ref),
        "dense": lambda q: retriever.dense(q, 100),
        "hybrid-rrf": lambda q: fuse(lists[q_of[q]], "rrf", [1 - w_rrf, w_rrf], limit=100),
        "hybrid-minmax": lambda q: fuse(
            lists[q_of[q]], "minmax", [1 - w_minmax, w_minmax], limit=100
        ),
        "hybrid-zscore": lambda q: fuse(lists[q_of[q]], "zscore", [1 - w_z, w_z], limit=100),
    }
    if reranker:
        for d in RERANK_DEPTHS:
            variants[f"hybrid-zscore+ltr@{d}"] = lambda q, d=d: retriever.rerank(q, 100, depth=d)
    results, rows = {}, []
    for variant, fn in variants.items():
        results[variant] = res = run_queries(fn, queries, qrels, progress=False)
        extra = {
            "dense_weight": {
                "hybrid-rrf": w_rrf,
                "hybrid-minmax": w_minmax,
                "hybrid-zscore": w_z,
            }.get(variant)
        }
        row_timings = None
        if variant.startswith("hybrid-") and "+" not in variant:  # fusion of precomputed lists
            lat = latency_summary(res.latencies)
            row_timings = {
                "fusion_only_p50_ms": round(lat["p50_ms"], 3),
                "fusion_only_p95_ms": round(lat["p95_ms"], 3),
            }
        extra = {k: v for k, v in extra.items() if v is not None}
        rows.append(_row(variant, res, timings=row_timings, extra=extra))
    best = max(results, key=lambda v: results[v].metrics["ndcg@10"])
    qids = sorted(qrels)
    pt = paired_test(
        [results[best].per_query[q]["ndcg@10"] for q in qids],
        [results["bm25"].per_query[q]["ndcg@10"] for q in qids],
        seed=0,
    )
    notes.append(
        f"Paired test, {best} vs bm25 on nDCG@10 over {len(qids)} queries: "
        f"diff {pt.mean_diff:+.4f} [{pt.low:+.4f}, {pt.high:+.4f}], p={pt.p_value:.4g}."
    )

    # ---- BM25 speed ----------------------------------------------------------------------------
    import bm25s

    tok = Tokenizer()
    bs = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    bs.index([tok(c.text) for c in index.chunks.values()], show_progress=False)
    speed = {
        "ours-scipy (lucene)": (lambda q: index.bm25.search(q, 100), "bm25"),
        "ours-scipy (okapi)": (lambda q: okapi.search(q, 100), "bm25-okapi"),
        "rank_bm25 (okapi)": (lambda q: rank_ref.search(q, 100), "bm25-rank_bm25"),
        "bm25s (lucene)": (lambda q: bs.get_scores(tok(q)), None),
    }
    qps = {}
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

    rows += _latency(retriever, list(queries.values())[: 20 if ctx.quick else 100], reranker)
    rows += _hnsw(index, retriever, queries, qrels, config)
    if not ctx.quick:
        rows += _chunking(test, queries, qrels, embedder, cache, w_z, ctx, notes)
    rows += _answers(retriever, reranker, queries, qrels, ctx, notes)

    anchors = [
        Anchor(n, "ndcg@10", v, "BEIR SciFact test, nDCG@10", s, variant=var)
        for n, v, var, s in ANCHORS
    ]
    anchors.append(
        Anchor(
            "bm25s speed vs rank-bm25 (953 vs 47.6 q/s)",
            "queries_per_s",
            953.0,
            "SciFact, one thread",
            "bm25s, Lù 2024, Table 2",
            variant="ours-scipy (lucene)",
            table="bm25_speed",
        )
    )
    dataset = {
        "name": test.name,
        "path": str(test.path),
        "split": "test",
        "documents": len(docs),
        "chunks": len(index.chunks),
        "queries": len(queries),
        "train_queries": len(train.queries) if train else 0,
        "corpus_checksum": corpus_sum,  # sha256 over (id, version, title, text) of each doc
    }
    if test.name in DATASETS:  # a registered dataset: its verified files and their sha256
        dataset |= dataset_summary(test.name, ctx.data_dir)
    cfg = {k: getattr(config, k) for k in RagConfig.__dataclass_fields__} | {
        "dense_weight": w_z,
        "rerank_depths": list(RERANK_DEPTHS),
    }
    if reranker:
        cfg["reranker"] = {
            k: reranker.meta[k]
            for k in ("settings", "n_trees", "train_queries", "train_pairs", "feature_importance")
        }
    rows.append(Row("index", metrics=timings, table="build"))
    return BenchResult(dataset=dataset, config=cfg, rows=rows, anchors=anchors, notes=notes)


def _ids_scores(found):
    return found.ids, found.scores


def _latency(retriever, texts, reranker) -> list[Row]:
    """Per-stage latency as a query arrives: nothing memoised, every query embedded afresh."""
    index = retriever.index
    memo = index.embedder
    index.embedder = getattr(memo, "inner", memo)  # bypass the benchmark's text memo
    cold = HybridRetriever(index, retriever.config, reranker=reranker, query_cache_size=0)
    w = cold.config.dense_weight
    stages = {"bm25": [], "embed_query": [], "faiss search": [], "fusion": [], "hybrid total": []}
    if reranker:
        stages["hybrid + ltr@100 total"] = []
    try:
        for q in texts:
            t0 = time.perf_counter()
            b = cold.bm25(q, 100)
            t1 = time.perf_counter()
            vec = index.embedder.encode([q])
            t2 = time.perf_counter()
            found = index.dense.search(vec, 200)[0]
            t3 = time.perf_counter()
            d = best_per_document(found.ids, found.scores, index.chunk_to_doc, 100)
            fuse([b, d], cold.config.fusion, [1 - w, w])
            t4 = time.perf_counter()
            cold.hybrid(q, 10)
            t5 = time.perf_counter()
            for stage, secs in zip(
                stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=False
            ):
                stages[stage].append(secs)
            if reranker:
                cold.rerank(q, 10, depth=100)
                stages["hybrid + ltr@100 total"].append(time.perf_counter() - t5)
    finally:
        index.embedder = memo
    out = []
    for stage, secs in stages.items():
        lat = latency_summary(secs)
        out.append(
            Row(
                stage,
                {"p50_ms": round(lat["p50_ms"], 2), "p95_ms": round(lat["p95_ms"], 2)},
                table="latency",
                extra={"queries": len(secs)},
            )
        )
    return out


def _hnsw(index, retriever, queries, qrels, config) -> list[Row]:
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


def _chunking(test, queries, qrels, embedder, cache, w, ctx, notes) -> list[Row]:
    """Chunker ablation on a 1,000-document sub-corpus (all test queries' relevant documents
    plus random others): embedding the full corpus once per chunker does not fit our CPU budget."""
    corpus, _, _ = _subset(test, None, len(test.qrels), 0, 1000, ctx.seed)
    docs = [d for d in documents_from_beir(corpus)]
    notes.append(
        f"Chunking ablation on a {len(docs)}-doc sub-corpus (every test query's relevant "
        "docs + random others), all test queries; absolute figures are higher than on "
        "the full corpus, compare rows with each other."
    )
    out = []
    for kind in ("document", "tokens", "sentences", "recursive"):
        config = RagConfig(chunker=kind, dense_weight=w)
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


def _answers(retriever, reranker, queries, qrels, ctx, notes) -> list[Row]:
    """Answer-level check: cited-relevant share, abstention, latency with the local SmolLM2."""
    from rag.answer import LLMClientGenerator, RagPipeline
    from rag.errors import GenerationError

    n = 3 if ctx.quick else 20
    rng = random.Random(ctx.seed)
    sample = sorted(rng.sample(sorted(queries), min(n, len(queries))))
    off_topic = _off_topic(ctx, 3 if ctx.quick else 20)
    try:
        from llm_client.local_server import LocalLLMServer

        server = LocalLLMServer().start()
    except Exception as exc:
        notes.append(f"Answer-level check skipped: local LLM server unavailable ({exc}).")
        return []
    try:
        threshold = reranker.meta["threshold"] if reranker else None
        from llm_client import Client
        from rag.prompt import PromptBuilder

        # A 135M model on two shared cores can need a minute per answer: long read timeout and
        # no retries (a retried timeout only doubles the wait).
        client = Client(
            server.base_url,
            model=server.model,
            read_timeout=300.0,
            total_timeout=600.0,
            max_retries=0,
        )
        pipe = RagPipeline(
            retriever,
            LLMClientGenerator(client=client),
            threshold=threshold,
            mode="rerank" if reranker else "hybrid",
            top_chunks=3,
            builder=PromptBuilder(2048, 96),
        )
        # Wall-clock budget: on a shared CPU one answer can take minutes. Questions not reached
        # in time are reported as not attempted, never silently averaged.
        deadline = time.monotonic() + (150 if ctx.quick else 900)
        answers, failed = [], 0

        def ask(question):
            nonlocal failed
            try:
                return pipe.ask(question)
            except GenerationError as exc:
                failed += 1
                notes.append(f"LLM call failed for {question[:60]!r}: {exc}")
                return None

        # Off-topic questions first: they should abstain, which costs no model call.
        off = [ask(q) for q in off_topic if time.monotonic() < deadline]
        off = [a for a in off if a is not None]
        for q in sample:
            if time.monotonic() > deadline:
                break
            answers.append((q, ask(queries[q])))
    finally:
        server.stop()
    attempted = len(answers)
    sample = [q for q, a in answers if a is not None]
    answers = [a for _, a in answers if a is not None]
    if not answers:
        notes.append("Answer-level check: no answer finished within the time budget.")
        return []
    answered = [(q, a) for q, a in zip(sample, answers, strict=True) if not a.abstained]
    judged = [(q, a) for q, a in answered if a.cited]
    hit = [any(s.doc_id in qrels[q] for s in a.cited) for q, a in judged]
    prec = [np.mean([s.doc_id in qrels[q] for s in a.cited]) for q, a in judged]
    in_prompt = [any(s.doc_id in qrels[q] for s in a.sources) for q, a in answered]
    lat = latency_summary([a.latency_s for a in answers if not a.abstained] or [0.0])
    metrics = {
        "questions": float(len(sample)),
        "not_attempted_time_budget": float(n - attempted),
        "llm_failures": float(failed),
        "abstention_rate": round(1 - len(answered) / len(sample), 4),
        "judged": float(len(judged)),
        "unjudged_no_citation": float(len(answered) - len(judged)),
        "invalid_citation_answers": float(sum(bool(a.invalid_citations) for _, a in answered)),
        "cites_relevant_share": round(float(np.mean(hit)), 4) if hit else float("nan"),
        "citation_precision": round(float(np.mean(prec)), 4) if prec else float("nan"),
        "relevant_in_prompt_share": round(float(np.mean(in_prompt)), 4) if in_prompt else 0.0,
        "off_topic_questions": float(len(off)),
        "off_topic_abstention_rate": round(float(np.mean([a.abstained for a in off])), 4)
        if off
        else float("nan"),
    }
    return [
        Row(
            "smollm2-135m, 3 chunks",
            metrics,
            timings={
                "answer_p50_s": round(lat["p50_ms"] / 1e3, 2),
                "answer_p95_s": round(lat["p95_ms"] / 1e3, 2),
            },
            table="answers",
            extra={
                "example": {"question": answers[0].question, "answer": answers[0].text[:500]}
                if answers
                else {}
            },
        )
    ]


def _off_topic(ctx, n: int) -> list[str]:
    """Questions the scientific corpus cannot answer: about films in MovieLens-100k."""
    from evals.datasets import load_movielens_100k

    items = load_movielens_100k(data_dir=ctx.data_dir).items
    titles = items["title"].head(n).tolist()
    return [f"Who directed the film {t} and what is its plot?" for t in titles]
