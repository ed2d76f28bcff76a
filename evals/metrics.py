"""Ranking metrics on BEIR-shaped ``qrels`` and ``run`` dicts, with trec_eval semantics.

Shapes (the same as BEIR, pytrec_eval and ranx)::

    qrels = {"q1": {"d1": 2, "d7": 1}}             # graded judgments; grade > 0 is relevant
    run   = {"q1": {"d7": 12.3, "d2": 11.0, ...}}  # retrieval scores, higher is better
    run   = {"q1": ["d7", "d2", ...]}              # or a ranked list, best first

>>> qrels = {"q1": {"a": 1, "b": 1}}
>>> evaluate(qrels, {"q1": ["a", "x", "b"]}, ["precision@2", "recall@2", "mrr@10"])
{'precision@2': 0.5, 'recall@2': 0.5, 'mrr@10': 1.0}

The details where libraries disagree, and what we do (each matches ``trec_eval`` 9.x, and
``tests/evals/test_metrics.py`` checks every metric against ``pytrec_eval`` on random runs):

* **Ties.** A run dict is sorted by score descending, then by doc id *descending* (trec_eval's
  order), so equal scores never make a result depend on dict insertion order. One difference
  remains: pytrec_eval hands trec_eval its scores in single precision, so two scores equal to
  float32 precision (``0.1 + 0.2`` and ``0.3``) tie there and go by doc id, while we compare
  them as the doubles they are. It needs scores within ~1e-7 of each other; on random float64
  runs of 1,000 documents it changed no query in 300.
* **Scores** must be finite numbers: a NaN or infinite score is a :class:`MetricError`. NaN
  compares false with everything, so one NaN would silently scramble the sort (and disagree
  with trec_eval).
* **Duplicates.** A ranked list that repeats a doc keeps its first position only, so a run can
  never collect the same relevant document twice (a bug several libraries have shipped).
* **Unjudged documents** count as non-relevant (grade 0); negative grades count as 0 as well.
  Grades must be integers, as trec_eval reads them: 0.5 or "1" is a :class:`MetricError`.
* **Queries.** The mean is over the queries of ``qrels`` that have at least one relevant
  document. A query missing from the run (or with an empty ranking) scores 0 on every metric
  rather than being dropped: dropping it would reward a system for failing silently. Queries with
  no relevant document are skipped (their metrics are undefined) and reported by
  :func:`evaluate_per_query` as absent. Run queries that have no judgments are ignored.

The formulas, for a ranking ``d_1, d_2, ...`` cut at depth ``k`` and ``R`` relevant documents:

* ``precision@k = |rel in top k| / k``            (always divided by k, as trec_eval ``P_k``)
* ``recall@k    = |rel in top k| / R``
* ``hit@k       = 1 if any rel in top k else 0``   (trec_eval ``success_k``)
* ``mrr@k       = 1 / rank of the first rel in top k`` (0 if none)
* ``map@k       = sum_{i <= k, d_i rel} precision@i / R``   (trec_eval ``map_cut_k``)
* ``ndcg@k      = DCG@k / IDCG@k`` with ``DCG@k = sum_{i <= k} grade(d_i) / log2(i + 1)``
  (linear gain, as trec_eval ``ndcg_cut_k`` and BEIR), and IDCG@k the DCG of the judged grades
  sorted best first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from operator import itemgetter

from evals.errors import MetricError

__all__ = ["METRICS", "evaluate", "evaluate_per_query", "parse_metric", "ranking"]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float] | Sequence[str]]

METRICS = ("ndcg", "precision", "recall", "hit", "mrr", "map")
_METRIC_RE = re.compile(r"^(ndcg|precision|recall|hit|mrr|map)@([1-9][0-9]*)$")


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; a clear error for anything else."""
    match = _METRIC_RE.match(metric)
    if match is None:
        raise MetricError(
            f"unknown metric {metric!r}: expected NAME@K with NAME one of {', '.join(METRICS)} "
            "and K a positive integer, e.g. 'ndcg@10'"
        )
    return match.group(1), int(match.group(2))


def ranking(results: Mapping[str, float] | Sequence[str]) -> list[str]:
    """Doc ids best first: scores descending, ties by doc id descending; duplicates dropped."""
    if isinstance(results, Mapping):
        _check_ids(results)
        _check_scores(results)
        # Two stable sorts (both in C): doc id descending, then score descending, so that equal
        # scores stay in doc-id-descending order. Faster than one sort with a Python comparator.
        items = sorted(results.items(), key=itemgetter(0), reverse=True)
        items.sort(key=lambda kv: -kv[1])
        return [doc for doc, _ in items]
    if isinstance(results, str) or not isinstance(results, Iterable):
        raise MetricError(
            "a ranking must be a list of doc ids or a {doc_id: score} dict, "
            f"not {type(results).__name__}"
        )
    ranked = list(dict.fromkeys(results))  # keeps the first occurrence of each id, in order
    _check_ids(ranked)
    return ranked


def _check_ids(ids: Iterable[object]) -> None:
    """Refuse a doc id that is not a string. Judgments are keyed by string ids (as in BEIR and
    trec_eval), so a ``Hit``, a ``(doc_id, score)`` pair or an int id would match nothing and
    score 0 without any sign; a pandas Series would be read by its scores."""
    for doc in ids:
        if not isinstance(doc, str):
            raise MetricError(
                f"doc ids must be strings, got {type(doc).__name__} {doc!r}: pass a list of doc "
                "ids (e.g. [hit.doc_id for hit in hits]) or a {doc_id: score} dict"
            )


def _check_scores(results: Mapping[str, float]) -> None:
    """Refuse a NaN or infinite score: NaN compares false with everything, so one NaN leaves the
    sort order arbitrary and the metrics wrong without any sign (the same rule as evals.stats)."""
    try:
        total = sum(results.values())  # one pass in C; NaN and inf carry through to the sum
    except TypeError:
        raise MetricError("scores must be numbers: {doc_id: score}, or a list of doc ids") from None
    if math.isfinite(total):
        return
    for doc, score in results.items():  # find which (a huge but finite sum can overflow to inf)
        if not math.isfinite(score):
            raise MetricError(f"the score of doc {doc!r} is {score}; scores must be finite numbers")


def _metric_names(metrics: Iterable[str] | str) -> list[str]:
    """``"ndcg@10"`` alone means that one metric, not the characters n, d, c, g, ..."""
    if isinstance(metrics, str):
        return [metrics]
    try:
        names = list(metrics)
    except TypeError:
        raise MetricError(
            f"metrics must be a metric name or a list of them, such as ['ndcg@10'], got {metrics!r}"
        ) from None
    wrong = [m for m in names if not isinstance(m, str)]
    if wrong:
        raise MetricError(f"metric names are text such as 'ndcg@10', got {wrong[:5]}")
    return names


def _score_query(
    ranked: list[str], judgments: Mapping[str, int], metrics: list[tuple[str, str, int]]
) -> dict[str, float]:
    gains = {doc: max(int(grade), 0) for doc, grade in judgments.items()}
    n_relevant = sum(1 for g in gains.values() if g > 0)
    max_k = max(k for _, _, k in metrics)
    top = ranked[:max_k]
    rel_flags = [gains.get(doc, 0) > 0 for doc in top]

    # Prefix sums shared by every cutoff: relevant count, average-precision sum, DCG.
    hits_at, ap_at, dcg_at = [0], [0.0], [0.0]
    first_rel = 0
    for i, (doc, is_rel) in enumerate(zip(top, rel_flags, strict=True), start=1):
        hits_at.append(hits_at[-1] + is_rel)
        ap_at.append(ap_at[-1] + (hits_at[-1] / i if is_rel else 0.0))
        dcg_at.append(dcg_at[-1] + gains.get(doc, 0) / math.log2(i + 1))
        if is_rel and not first_rel:
            first_rel = i
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)

    out: dict[str, float] = {}
    for label, name, k in metrics:
        depth = min(k, len(top))
        hits = hits_at[depth]
        if name == "precision":
            value = hits / k
        elif name == "recall":
            value = hits / n_relevant
        elif name == "hit":
            value = float(hits > 0)
        elif name == "mrr":
            value = 1.0 / first_rel if first_rel and first_rel <= k else 0.0
        elif name == "map":
            value = ap_at[depth] / n_relevant
        else:  # ndcg
            idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal[:k], start=1))
            value = dcg_at[depth] / idcg
        out[label] = value
    return out


def _is_integer(grade: object) -> bool:
    """An int (any integer type), or a float that holds one (2.0); not 0.5, NaN or "1"."""
    return isinstance(grade, Integral) or (isinstance(grade, Real) and float(grade).is_integer())


def _validate(qrels: Qrels, run: Run) -> None:
    if not isinstance(qrels, Mapping) or not isinstance(run, Mapping):
        raise MetricError(
            "qrels and run must be dicts: qrels {qid: {doc_id: grade}}, "
            "run {qid: {doc_id: score}} or {qid: [doc_id, ...]}"
        )
    for where, queries in (("qrels", qrels), ("run", run)):
        for qid in queries:  # an int qid would never meet its string twin: every query scores 0
            if not isinstance(qid, str):
                raise MetricError(f"query ids must be strings, got {where} key {qid!r}")
    for qid, judgments in qrels.items():
        if not isinstance(judgments, Mapping):
            raise MetricError(f"qrels[{qid!r}] must be a {{doc_id: grade}} dict")
        _check_ids(judgments)
        for doc, grade in judgments.items():
            # trec_eval reads grades as integers (BEIR's are). A fractional grade would count as
            # relevant here (0.5 > 0) but as gain 0 in the formulas, and divide by R = 0.
            if not _is_integer(grade):
                raise MetricError(
                    f"qrels[{qid!r}][{doc!r}] is {grade!r}: grades must be integers "
                    "(as trec_eval reads them; 0 or less is not relevant)"
                )


def evaluate_per_query(
    qrels: Qrels, run: Run, metrics: Iterable[str] = ("ndcg@10",)
) -> dict[str, dict[str, float]]:
    """``{qid: {metric: value}}`` for every judged query with at least one relevant document.

    Neither input is modified. Use the per-query values for bootstrap intervals and paired tests.
    """
    _validate(qrels, run)
    parsed = [(m, *parse_metric(m)) for m in dict.fromkeys(_metric_names(metrics))]
    if not parsed:
        raise MetricError("no metrics requested")
    per_query: dict[str, dict[str, float]] = {}
    for qid, judgments in qrels.items():
        if not any(grade > 0 for grade in judgments.values()):
            continue  # undefined: no relevant document to find
        try:
            ranked = ranking(run.get(qid, ()))
        except MetricError as exc:
            raise MetricError(f"run[{qid!r}]: {exc}") from None
        per_query[qid] = _score_query(ranked, judgments, parsed)
    return per_query


def evaluate(qrels: Qrels, run: Run, metrics: Iterable[str] = ("ndcg@10",)) -> dict[str, float]:
    """Mean of each metric over the judged queries (see the module docstring for the rules)."""
    metrics = list(dict.fromkeys(_metric_names(metrics)))
    per_query = evaluate_per_query(qrels, run, metrics)
    if not per_query:
        raise MetricError("no query in qrels has a relevant document: every metric is undefined")
    n = len(per_query)
    return {m: sum(scores[m] for scores in per_query.values()) / n for m in metrics}
