"""Benchmark of the shared evaluation harness: metric speed and agreement with trec_eval.

Every system's ranking figures go through :func:`evals.metrics.evaluate`, so it must be both right
and fast enough to sit inside a bootstrap loop. This benchmark scores a large random run (graded
qrels, tied scores, missing queries) with our implementation and with ``pytrec_eval`` (the C
trec_eval), reports the largest per-query disagreement (expected: 0 up to float rounding), and
times both, plus the bootstrap interval and the paired test on the per-query values.

Variants: ``evals.metrics`` (ours, pure Python), ``pytrec_eval`` (reference, C), and
``evals.stats`` (bootstrap CI + paired test on the per-query nDCG@10).
"""

from __future__ import annotations

import random
import time

import pytrec_eval

from benchmarks.record import Anchor, BenchContext, BenchResult, Row
from evals.metrics import evaluate_per_query
from evals.stats import bootstrap_ci, paired_test

DESCRIPTION = "Shared evaluation harness: ranking-metric speed and parity with trec_eval"

CUTOFFS = (1, 5, 10, 100)
FAMILIES = {"ndcg": "ndcg_cut", "precision": "P", "recall": "recall", "map": "map_cut"}


def _random_run(n_queries: int, n_docs: int, depth: int, seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 10))
        qrels[qid] = {d: rng.choice([1, 1, 2, 3]) for d in judged}
        # a plausible retriever: most judged docs are retrieved, and rank higher on average
        retrieved = {d: round(rng.random(), 3) for d in rng.sample(docs, depth)}
        for d in judged:
            if rng.random() < 0.8:
                retrieved[d] = round(rng.random() + 0.5, 3)
        run[qid] = retrieved
    return qrels, run


def run(ctx: BenchContext) -> BenchResult:
    n_queries, n_docs, depth = (500, 2_000, 100) if ctx.quick else (5_000, 20_000, 1_000)
    qrels, run_ = _random_run(n_queries, n_docs, depth, ctx.seed)
    metrics = [f"{m}@{k}" for m in FAMILIES for k in CUTOFFS]

    start = time.perf_counter()
    ours = evaluate_per_query(qrels, run_, metrics)
    ours_s = time.perf_counter() - start

    cut = ",".join(map(str, CUTOFFS))
    start = time.perf_counter()
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {f"{f}.{cut}" for f in FAMILIES.values()})
    theirs = evaluator.evaluate(run_)
    theirs_s = time.perf_counter() - start

    max_diff = max(
        abs(ours[q][f"{name}@{k}"] - theirs[q][f"{family}_{k}"])
        for q in ours
        for name, family in FAMILIES.items()
        for k in CUTOFFS
    )

    def mean(scores: dict, key: str) -> float:
        return sum(s[key] for s in scores.values()) / len(scores)

    ndcg = [ours[q]["ndcg@10"] for q in sorted(ours)]
    shuffled = ndcg[1:] + ndcg[:1]  # a second "system" on the same queries, for timing only
    start = time.perf_counter()
    ci = bootstrap_ci(ndcg, seed=ctx.seed)
    paired_test(ndcg, shuffled, seed=ctx.seed)
    stats_s = time.perf_counter() - start

    rows = [
        Row(
            variant="evals.metrics",
            metrics={
                "ndcg@10": mean(ours, "ndcg@10"),
                "map@100": mean(ours, "map@100"),
                "max_abs_diff_vs_trec_eval": max_diff,
            },
            timings={"total_s": ours_s, "queries_per_s": n_queries / ours_s},
            ci={"ndcg@10": [ci.low, ci.high]},
        ),
        Row(
            variant="pytrec_eval",
            metrics={
                "ndcg@10": mean(theirs, "ndcg_cut_10"),
                "map@100": mean(theirs, "map_cut_100"),
            },
            timings={"total_s": theirs_s, "queries_per_s": n_queries / theirs_s},
        ),
        Row(
            variant="evals.stats",
            metrics={"n_queries": float(len(ndcg))},
            timings={"bootstrap_plus_paired_test_s": stats_s},
        ),
    ]
    return BenchResult(
        dataset={
            "name": "synthetic-random-run",
            "queries": n_queries,
            "docs": n_docs,
            "depth": depth,
            "seed": ctx.seed,
        },
        config={"metrics": metrics, "bootstrap_resamples": 2000, "permutations": 10_000},
        rows=rows,
        anchors=[
            Anchor(
                name="trec_eval 9 (pytrec_eval), same run",
                metric="ndcg@10",
                value=mean(theirs, "ndcg_cut_10"),
                protocol="identical qrels and run; measured in this benchmark",
                source="github.com/cvangysel/pytrec_eval",
                variant="evals.metrics",
            )
        ],
        notes=[
            f"{len(metrics)} metrics per query; the parity target is a max |difference| of 1e-9.",
        ],
    )
