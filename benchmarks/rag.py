"""Benchmark of the rag system on a BEIR dataset (default SciFact; ``--dataset PATH`` for any).

Tables in the record, and the module that measures each:

* ``main``       (here) every retrieval variant on the test queries: nDCG@10, Recall@100, MRR@10
                 with bootstrap 95% CIs, plus a paired permutation test of the best vs BM25.
* ``build``      (here) index build time, embedding throughput of each encoder.
* ``bm25_speed``, ``latency``, ``encoder``, ``hnsw``   :mod:`benchmarks.rag_speed`.
* ``chunking``   the chunker ablation on a sub-corpus, :mod:`benchmarks.rag_chunking`.
* ``answers``    the answer-level check with the local SmolLM2, :mod:`benchmarks.rag_answers`.

Everything tuned (fusion weight, LambdaRank reranker, abstention threshold) is tuned on the
dataset's *train* split; the test split is only evaluated. Embeddings, query vectors and the
trained reranker, the ONNX export and the generated answers are cached in ``ctx.cache_dir/rag``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.rag_answers import answer_rows
from benchmarks.rag_chunking import chunking_rows, subset
from benchmarks.rag_speed import bm25_speed_rows, encoder_rows, hnsw_rows, latency_rows
from benchmarks.record import Anchor, BenchContext, BenchResult, Row
from evals.datasets import DATASETS, BeirDataset, beir_corpus_file, dataset_summary, load_beir
from evals.errors import DatasetError
from evals.sources import sha256_file
from evals.stats import bootstrap_ci, paired_test
from evals.timing import latency_summary
from rag.bm25 import BM25Index, RankBM25Index, Tokenizer
from rag.config import RagConfig
from rag.dense import MemoEmbedder, SentenceTransformerEmbedder
from rag.documents import corpus_checksum, documents_from_beir
from rag.embedding_cache import EmbeddingCache, texts_checksum
from rag.eval import METRICS, first_stage, fit_on_train, run_queries, tune_dense_weight
from rag.fusion import fuse
from rag.hits import best_per_document
from rag.index import HybridIndex, build_bm25, build_chunker
from rag.onnx_embedder import OnnxEmbedder, make_embedder
from rag.rerank import LTRReranker, LTRSettings
from rag.retrieval import HybridRetriever

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Hybrid BM25 + MiniLM dense retrieval, z-score/min-max/RRF fusion and a LambdaRank reranker "
    "trained on train qrels; BEIR SciFact test nDCG@10 / Recall@100 / MRR@10 with CIs"
)
RERANK_DEPTHS = (20, 50, 100)

ANCHORS = [
    ("BM25 (BEIR paper, Elasticsearch)", 0.665, "bm25", "BEIR, Thakur et al. 2021, Table 2"),
    ("BM25 multifield (Pyserini)", 0.679, "bm25", "Pyserini BEIR regressions, bm25-multifield"),
    ("BM25 (bm25s, Lucene, stemmed)", 0.687, "bm25-k1.5", "bm25s, Lù 2024, arXiv:2407.03618 T1"),
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
    # every setting that shapes the candidates (BM25 k1/b, depth, fusion, ...) is in the key;
    # the encoder backend is not: both give the same vectors (the `encoder` table)
    shaping = {k: v for k, v in dataclasses.asdict(config).items() if not k.startswith("encoder")}
    key_src = json.dumps([shaping, corpus_sum, sorted(train.queries), str(settings)])
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
    try:
        tuned.reranker.save(path)
    except OSError as exc:  # a cache, like the embeddings': the next run trains again
        log.warning("reranker cache %s not written (%s); going on", path, exc)
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
    not_measured: list[str] = []
    corpus, queries, qrels = test.corpus, test.queries, test.qrels
    if ctx.quick:
        corpus, tq, trq = subset(test, train, 50, 150, 500, ctx.seed)
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
    # The serving encoder (onnxruntime unless it cannot be built) and PyTorch, for comparison.
    serving = make_embedder(
        config.model,
        backend=config.encoder,
        batch_size=config.batch_size,
        threads=config.encoder_threads or None,
        cache_dir=ctx.cache_dir / "rag",
    )
    encoders = {"onnx" if isinstance(serving, OnnxEmbedder) else "torch": serving}
    if "torch" not in encoders:
        encoders["torch"] = SentenceTransformerEmbedder(config.model, batch_size=config.batch_size)
    embedder = MemoEmbedder(serving)
    timings: dict[str, float] = {}

    # ---- index ----------------------------------------------------------------------------------
    index = HybridIndex(embedder, build_chunker(config), config)
    corpus_sum = corpus_checksum(docs)
    texts = [c.text for d in docs for c in index.chunker.chunk(d)]  # what upsert will embed
    key = EmbeddingCache.key(config.model, index.chunker.name, texts_checksum(texts))
    was_cached = cache.get(key, len(texts)) is not None
    t0 = time.perf_counter()
    index.upsert(docs, cache=cache, progress=ctx.progress)
    timings["index_build_s"] = round(time.perf_counter() - t0, 2)
    timings["embeddings_cached"] = float(was_cached)
    embedder.remember([index.chunks[c].text for c in index.dense.ids], index.dense.vectors)
    t0 = time.perf_counter()
    probe = build_bm25(config)
    probe.add(list(index.chunks), [c.text for c in index.chunks.values()])
    probe.search("warm up", 1)  # builds the weight matrix
    timings["bm25_build_s"] = round(time.perf_counter() - t0, 2)
    sample = [d.content for d in docs[:64]]
    doc_vecs = {}
    for label, enc in encoders.items():  # back to back, same documents
        t0 = time.perf_counter()
        doc_vecs[label] = enc.encode(sample)
        timings[f"embed_docs_per_s ({label})"] = round(len(sample) / (time.perf_counter() - t0), 1)
    first, *rest = doc_vecs.values()
    timings["embed_docs_max_abs_diff"] = max(
        (float(np.abs(v - first).max()) for v in rest), default=0.0
    )

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
        not_measured.append(
            "tuning and the trained reranker: the dataset has no train split (fusion weights "
            "stay at 0.5)"
        )
    w_z = retriever.config.dense_weight

    # ---- main table --------------------------------------------------------------------------
    bm25_params = {"k1": config.bm25_k1, "b": config.bm25_b}  # same formula params everywhere
    rank_ref = RankBM25Index(Tokenizer(), **bm25_params)
    rank_ref.add(list(index.chunks), [c.text for c in index.chunks.values()])
    okapi = BM25Index(Tokenizer(), method="okapi", **bm25_params)
    anchor_params = BM25Index(Tokenizer(), k1=1.5, b=0.75)  # bm25s' defaults, as its anchor
    anchor_params.add(list(index.chunks), [c.text for c in index.chunks.values()])
    okapi.add(list(index.chunks), [c.text for c in index.chunks.values()])
    c2d = index.chunk_to_doc

    def via(idx):
        return lambda q: best_per_document(*_ids_scores(idx.search(q, 300)), c2d, 100)

    lists = first_stage(retriever, queries, config.candidates)
    q_of = {v: k for k, v in queries.items()}
    variants = {
        "bm25": lambda q: retriever.bm25(q, 100),
        "bm25-k1.5": via(anchor_params),
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
    notes.append(paired_note(results, best))

    # ---- speed, encoders, HNSW, chunking, answers ------------------------------------------------
    rows += bm25_speed_rows(index, okapi, rank_ref, queries, results, notes)
    texts = list(queries.values())[: 20 if ctx.quick else 100]
    rows += latency_rows(retriever, texts, reranker, encoders)
    rows += encoder_rows(index, queries, qrels, encoders)
    rows += hnsw_rows(index, retriever, queries, qrels, config)
    if not ctx.quick:
        base = config.replace(dense_weight=w_z)
        rows += chunking_rows(test, queries, qrels, embedder, cache, base, ctx, notes)
    rows += answer_rows(retriever, reranker, queries, qrels, ctx, notes, not_measured)

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
    dataset |= dataset_provenance(test, ctx.dataset, ctx.data_dir)
    cfg = {k: getattr(config, k) for k in RagConfig.__dataclass_fields__} | {
        "dense_weight": w_z,
        "rerank_depths": list(RERANK_DEPTHS),
        "encoder_built": type(serving).__name__,  # the fallback shows here
        "onnxruntime": _version("onnxruntime"),
    }
    if reranker:
        cfg["reranker"] = {
            k: reranker.meta[k]
            for k in ("settings", "n_trees", "train_queries", "train_pairs", "feature_importance")
        }
    rows.append(Row("index", metrics=timings, table="build"))
    return BenchResult(
        dataset=dataset,
        config=cfg,
        rows=rows,
        anchors=anchors,
        notes=notes,
        not_measured=not_measured,
    )


def paired_note(results: dict, best: str) -> str:
    """The paired test of ``best`` vs bm25 on nDCG@10, as a note for the record.

    Over the queries the metrics scored: a judged query whose judgments are all grade 0 has no
    nDCG (``evaluate_per_query`` leaves it out), so it is not in the test either.
    """
    qids = sorted(results["bm25"].per_query)  # every variant is scored on the same queries
    pt = paired_test(
        [results[best].per_query[q]["ndcg@10"] for q in qids],
        [results["bm25"].per_query[q]["ndcg@10"] for q in qids],
        seed=0,
    )
    return (
        f"Paired test, {best} vs bm25 on nDCG@10 over {len(qids)} queries: "
        f"diff {pt.mean_diff:+.4f} [{pt.low:+.4f}, {pt.high:+.4f}], p={pt.p_value:.4g}."
    )


def dataset_provenance(
    test: BeirDataset, requested: str | None, data_dir: str | Path | None
) -> dict:
    """Where the evaluated files came from: the registry's entry, or the user folder's own files.

    ``requested`` is ``--dataset`` as given (None: the default, SciFact). A user folder is named
    after its last path part, so ``/x/scifact`` loads as "scifact": asking the registry about that
    name would record the canonical SciFact's URL and checksums for the user's files (and resolve,
    or even download, the canonical copy after the run). Only a registered name, as ``load_beir``
    reads it, gets the registry's provenance; a folder gets the sha256 of each file read from it.
    """
    if requested is None or requested in DATASETS:
        return dataset_summary(test.name, data_dir)
    corpus = beir_corpus_file(test.path).name  # the file load_beir read
    read = [corpus, "queries.jsonl", "qrels/test.tsv", "qrels/train.tsv"]
    files = {n: {"sha256": sha256_file(test.path / n)} for n in read if (test.path / n).is_file()}
    return {"source": "user folder", "files": files}


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _ids_scores(found):
    return found.ids, found.scores
