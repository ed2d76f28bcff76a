"""Retrieval evaluation on BEIR-format data, and tuning of the fusion weight on *train* queries.

Metrics come from the shared :mod:`evals.metrics` (trec_eval semantics, parity-tested against
pytrec_eval); runs are built with :func:`rag.hits.as_run` so that ties cannot reorder our ranking.

The one rule this module enforces by construction: anything tuned (the fusion weight here, the
reranker in :mod:`rag.rerank`, the abstention threshold in :mod:`rag.answer`) is tuned on the
``train`` split; the ``test`` split is only ever evaluated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evals.metrics import evaluate, evaluate_per_query
from rag.errors import RerankerError
from rag.fusion import fuse
from rag.hits import Hit, as_run

METRICS = ("ndcg@10", "recall@100", "mrr@10")


@dataclass
class RunResult:
    """Hits per query, their metrics, and per-query latency in seconds."""

    hits: dict[str, list[Hit]]
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    latencies: list[float]


def run_queries(
    search: Callable[[str], list[Hit]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    metrics: Sequence[str] = METRICS,
    progress: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> RunResult:
    """Run ``search`` on every query, timing each call, and score the run against ``qrels``."""
    items = list(queries.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="queries", leave=False)
    hits, lat = {}, []
    for qid, text in items:
        t0 = clock()
        hits[qid] = search(text)
        lat.append(clock() - t0)
    run = as_run(hits)
    return RunResult(
        hits, evaluate(qrels, run, metrics), evaluate_per_query(qrels, run, metrics), lat
    )


def first_stage(
    retriever, queries: Mapping[str, str], depth: int, *, progress: bool = False
) -> dict[str, tuple[list[Hit], list[Hit]]]:
    """BM25 and dense top-``depth`` lists per query, computed once for fusion experiments."""
    retriever.embed(list(queries.values()), progress=progress)  # one batch for all queries
    return {
        qid: (retriever.bm25(q, depth), retriever.dense(q, depth)) for qid, q in queries.items()
    }


def tune_dense_weight(
    lists: Mapping[str, tuple[list[Hit], list[Hit]]],
    qrels: Mapping[str, Mapping[str, int]],
    method: str,
    *,
    grid: Sequence[float] = tuple(np.round(np.linspace(0.0, 1.0, 21), 2)),
    rrf_k: int = 60,
    metric: str = "ndcg@10",
) -> tuple[float, dict[float, float]]:
    """Grid-search the dense weight ``w`` (BM25 gets ``1 - w``) on the given (train!) queries.

    Returns the best weight and the whole curve ``{w: metric}``; ties go to the weight nearest
    0.5 (the untuned default), so a flat curve does not move the default.
    """
    curve = {}
    for w in grid:
        run = {
            qid: fuse([b, d], method, [1.0 - w, w], rrf_k=rrf_k, limit=100)
            for qid, (b, d) in lists.items()
        }
        curve[float(w)] = evaluate(qrels, as_run(run), [metric])[metric]
    best = max(curve, key=lambda w: (round(curve[w], 6), -abs(w - 0.5)))
    return best, curve


@dataclass
class Tuned:
    """Everything chosen on train queries: the fusion weight, the reranker, the threshold."""

    dense_weight: float
    weight_curve: dict[float, float]
    reranker: object  # rag.rerank.LTRReranker
    threshold: float
    train_seconds: float


def fit_on_train(
    retriever,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    settings=None,
    answer_rate: float = 0.95,
    progress: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> Tuned:
    """Tune the convex-fusion weight, train the LambdaRank reranker and calibrate abstention,
    all on ``queries``/``qrels`` (pass the *train* split). Sets ``retriever.config`` to the
    tuned weight so the reranker is trained on exactly the candidates it will see at test time.
    """
    from rag.answer import calibrate_threshold
    from rag.rerank import LTRSettings, train_ltr

    settings = settings or LTRSettings()
    # A cheap early exit before the costly first stage; train_ltr keeps its own check for qrels
    # that match only some queries' candidates.
    relevant = {d for q in queries for d, grade in qrels.get(q, {}).items() if grade > 0}
    if not relevant & retriever.index.documents.keys():
        raise RerankerError(
            f"none of the {len(relevant)} documents the train qrels mark relevant is in this "
            "index: it was built from another corpus"
        )
    t0 = clock()
    cfg = retriever.config
    lists = first_stage(retriever, queries, cfg.candidates, progress=progress)
    weight, curve = tune_dense_weight(lists, qrels, cfg.fusion, rrf_k=cfg.rrf_k)
    retriever.config = cfg.replace(dense_weight=weight)
    items = list(queries.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="train candidates", leave=False)
    cands = {qid: retriever.candidates(q, settings.depth) for qid, q in items}
    reranker = train_ltr(cands, qrels, settings)
    top = [d[0].score for _, d in lists.values() if d]
    threshold = calibrate_threshold(top, answer_rate)
    reranker.meta |= {
        "dense_weight": weight,
        "fusion": cfg.fusion,
        "threshold": threshold,
        "answer_rate": answer_rate,
    }
    return Tuned(weight, curve, reranker, threshold, clock() - t0)
