"""Ranking metrics: hand-computed values, parity with pytrec_eval (trec_eval), and properties."""

from __future__ import annotations

import copy
import math
import random

import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from evals.errors import MetricError
from evals.metrics import evaluate, evaluate_per_query, parse_metric, ranking

CUTOFFS = (1, 3, 5, 10, 20)
# our name -> pytrec_eval measure family and its output key prefix
TREC = {
    "ndcg": "ndcg_cut",
    "precision": "P",
    "recall": "recall",
    "map": "map_cut",
    "hit": "success",
}


# --- hand-computed values ------------------------------------------------------------------


def test_hand_computed_graded_example():
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = ["x", "b", "a", "c"]
    got = evaluate(qrels, {"q": run}, ["ndcg@3", "precision@3", "recall@1", "mrr@10", "map@3"])
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert got["ndcg@3"] == pytest.approx(dcg / idcg)
    assert got["precision@3"] == pytest.approx(2 / 3)
    assert got["recall@1"] == 0.0
    assert got["mrr@10"] == pytest.approx(0.5)
    assert got["map@3"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_precision_divides_by_k_even_when_fewer_results():
    assert evaluate({"q": {"a": 1}}, {"q": ["a"]}, ["precision@5"]) == {"precision@5": 0.2}


def test_ties_broken_by_doc_id_descending_like_trec_eval():
    assert ranking({"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5}) == ["c", "b", "a", "z"]


def test_duplicates_in_a_ranked_list_never_inflate_a_score():
    qrels = {"q": {"a": 1, "b": 1}}
    assert evaluate(qrels, {"q": ["a", "a", "a"]}, ["recall@3"]) == {"recall@3": 0.5}
    assert evaluate(qrels, {"q": ["a", "a", "b"]}, ["ndcg@3"])["ndcg@3"] < 1.0 + 1e-12


def test_missing_query_scores_zero_and_unjudged_queries_are_ignored():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": ["a"], "other": ["b"]}
    assert evaluate(qrels, run, ["ndcg@10"]) == {"ndcg@10": 0.5}


def test_query_without_relevant_documents_is_excluded_explicitly():
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}
    assert set(evaluate_per_query(qrels, {"q1": ["a"], "q2": ["b"]}, ["ndcg@10"])) == {"q1"}
    with pytest.raises(MetricError, match="no query in qrels has a relevant document"):
        evaluate({"q": {"b": 0}}, {"q": ["b"]})


@pytest.mark.parametrize("bad", ["ndcg", "ndcg@0", "ndcg@-1", "bleu@10", "NDCG@10", "ndcg@1.5"])
def test_bad_metric_names_get_a_clear_error(bad):
    with pytest.raises(MetricError, match="expected NAME@K"):
        parse_metric(bad)


def test_bad_shapes_get_a_clear_error():
    with pytest.raises(MetricError, match="must be dicts"):
        evaluate([("q", "a")], {"q": ["a"]})  # type: ignore[arg-type]
    with pytest.raises(MetricError, match="not str"):
        evaluate({"q": {"a": 1}}, {"q": "a"})


class _Hit:  # the shape of a retriever's hit: a doc id and a score, not a doc id
    def __init__(self, doc_id: str, score: float) -> None:
        self.doc_id, self.score = doc_id, score


@pytest.mark.parametrize(
    "ranked",
    [
        [_Hit("a", 2.0), _Hit("x", 1.0)],  # hits passed where their ids belong
        [("a", 2.0), ("x", 1.0)],  # (doc_id, score) pairs
        [1, 2],  # int ids against string judgments
        {1: 2.0},
    ],
    ids=["hits", "pairs", "int-list", "int-dict"],
)
def test_a_doc_id_that_is_not_a_string_is_refused_not_scored_zero(ranked):
    # each of these used to match no judgment and score 0.0 without a sign
    with pytest.raises(MetricError, match=r"run\['q'\]: doc ids must be strings"):
        evaluate({"q": {"a": 1}}, {"q": ranked}, ["ndcg@10"])
    with pytest.raises(MetricError, match="doc ids must be strings"):
        evaluate({"q": {1: 1}}, {"q": ["a"]}, ["ndcg@10"])


def test_a_query_id_that_is_not_a_string_is_refused():
    with pytest.raises(MetricError, match="query ids must be strings, got run key 1"):
        evaluate({"1": {"a": 1}}, {1: ["a"]}, ["ndcg@10"])
    with pytest.raises(MetricError, match="query ids must be strings, got qrels key 1"):
        evaluate({1: {"a": 1}}, {"1": ["a"]}, ["ndcg@10"])


def test_a_ranking_that_is_not_a_list_or_dict_is_refused():
    # a pandas Series iterates over its scores; None has no items at all
    with pytest.raises(MetricError, match=r"run\['q'\]: .*not NoneType"):
        evaluate({"q": {"a": 1}}, {"q": None}, ["ndcg@10"])  # type: ignore[dict-item]
    with pytest.raises(MetricError, match="doc ids must be strings, got float"):
        ranking(iter([2.0, 1.0]))  # type: ignore[arg-type]


def test_one_metric_may_be_passed_as_a_string():
    qrels, run = {"q": {"a": 1}}, {"q": ["x", "a"]}
    assert evaluate(qrels, run, "ndcg@10") == evaluate(qrels, run, ["ndcg@10"])
    assert evaluate_per_query(qrels, run, "hit@1") == {"q": {"hit@1": 0.0}}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_score_that_is_not_a_finite_number_is_refused(bad):
    # NaN compares false with everything: sorting left "b" between "c" and "a", and nDCG 0.5
    # where trec_eval says 1.0
    run = {"q": {"c": 1.0, "b": bad, "a": 2.0}}
    with pytest.raises(MetricError, match=r"run\['q'\]: the score of doc 'b' is .*finite"):
        evaluate({"q": {"a": 1}}, run, ["ndcg@10"])
    with pytest.raises(MetricError, match="must be numbers"):
        ranking({"a": 1.0, "b": "2"})


@pytest.mark.parametrize("grade", [0.5, 1.5, "1", None, math.nan])
def test_a_grade_that_is_not_an_integer_is_refused(grade):
    # trec_eval reads grades as integers; 0.5 was counted relevant by one rule and not by the
    # other, and divided by zero relevant documents
    with pytest.raises(MetricError, match=r"qrels\['q'\]\['a'\] is .*: grades must be integers"):
        evaluate({"q": {"a": grade}}, {"q": ["a"]}, ["ndcg@10", "recall@10"])


def test_integer_grades_of_any_integer_type_are_accepted():
    assert evaluate({"q": {"a": 2.0, "b": True}}, {"q": ["a", "b"]}, ["recall@2"]) == {
        "recall@2": 1.0
    }


# --- parity with pytrec_eval ----------------------------------------------------------------


def _random_case(rng: random.Random) -> tuple[dict, dict]:
    n_docs = rng.randint(5, 60)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(rng.randint(1, 8)):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, min(15, n_docs)))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if rng.random() < 0.9:  # sometimes the run misses a query entirely
            retrieved = rng.sample(docs, rng.randint(0, n_docs))
            # coarse scores create many ties, which is where implementations disagree
            run[qid] = {d: float(rng.randint(0, 6)) for d in retrieved}
    return qrels, run


def _trec_eval(qrels: dict, run: dict) -> dict[str, dict[str, float]]:
    cut = ",".join(map(str, CUTOFFS))
    measures = {f"{family}.{cut}" for family in TREC.values()} | {"recip_rank"}
    judged_run = {q: r for q, r in run.items() if q in qrels and r}
    result = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(judged_run)
    # trec_eval skips queries with no results; our harness scores them 0 (tested above), so
    # parity is checked on the queries trec_eval scores.
    return result


@pytest.mark.parametrize("seed", range(300))
def test_parity_with_pytrec_eval_on_random_runs(seed):
    rng = random.Random(seed)
    qrels, run = _random_case(rng)
    ours = evaluate_per_query(qrels, run, [f"{m}@{k}" for m in (*TREC, "mrr") for k in CUTOFFS])
    theirs = _trec_eval(qrels, run)
    compared = 0
    for qid, scores in theirs.items():
        if not any(g > 0 for g in qrels[qid].values()):
            continue
        for name, family in TREC.items():
            for k in CUTOFFS:
                assert ours[qid][f"{name}@{k}"] == pytest.approx(
                    scores[f"{family}_{k}"], abs=1e-9
                ), (qid, name, k)
                compared += 1
        # trec_eval's recip_rank has no cutoff: it equals our mrr@k for k >= the run length
        assert ours[qid]["mrr@20"] == pytest.approx(
            scores["recip_rank"] if _first_rel_rank(qrels[qid], run[qid]) <= 20 else 0.0,
            abs=1e-9,
        )
    assert compared or not theirs


def test_mrr_at_k_ignores_a_first_relevant_document_below_k():
    assert evaluate({"q": {"b": 1}}, {"q": ["a", "b"]}, ["mrr@1", "mrr@2"]) == {
        "mrr@1": 0.0,
        "mrr@2": 0.5,
    }


@pytest.mark.parametrize("seed", range(100))
def test_mrr_at_k_matches_recip_rank_on_the_run_cut_at_k(seed):
    # trec_eval's recip_rank has no cutoff, so mrr@k is compared with it on each run cut to its
    # first k documents (in trec_eval's own order, which ``ranking`` reproduces). The cutoffs are
    # scored in one call, as a benchmark does: ranks are then read down to the largest k.
    qrels, run = _random_case(random.Random(seed))
    ours = evaluate_per_query(qrels, run, [f"mrr@{k}" for k in CUTOFFS])
    for k in CUTOFFS:
        cut = {q: {d: r[d] for d in ranking(r)[:k]} for q, r in run.items() if q in qrels and r}
        theirs = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        for qid, scores in theirs.items():
            if any(g > 0 for g in qrels[qid].values()):
                assert ours[qid][f"mrr@{k}"] == pytest.approx(scores["recip_rank"], abs=1e-9)


def _first_rel_rank(judgments: dict, results: dict) -> int:
    for i, doc in enumerate(ranking(results), start=1):
        if judgments.get(doc, 0) > 0:
            return i
    return 10**9


# --- properties -----------------------------------------------------------------------------

doc_ids = st.sampled_from([f"d{i}" for i in range(12)])
qrels_st = st.dictionaries(
    st.sampled_from(["q1", "q2", "q3"]),
    st.dictionaries(doc_ids, st.integers(0, 3), min_size=1, max_size=8),
    min_size=1,
)
run_st = st.dictionaries(
    st.sampled_from(["q1", "q2", "q3", "q4"]), st.lists(doc_ids, max_size=15), max_size=4
)
ALL = [f"{m}@{k}" for m in ("ndcg", "precision", "recall", "hit", "mrr", "map") for k in (1, 5)]


@settings(max_examples=200, deadline=None)
@given(qrels_st, run_st)
def test_every_metric_is_in_unit_interval_and_inputs_are_not_mutated(qrels, run):
    before = (copy.deepcopy(qrels), copy.deepcopy(run))
    per_query = evaluate_per_query(qrels, run, ALL)
    assert (qrels, run) == before
    for scores in per_query.values():
        for value in scores.values():
            assert 0.0 <= value <= 1.0 + 1e-12


@settings(max_examples=100, deadline=None)
@given(qrels_st)
def test_the_ideal_ranking_scores_one(qrels):
    ideal = {q: sorted(j, key=lambda d: -j[d]) for q, j in qrels.items()}
    ideal = {q: [d for d in docs if qrels[q][d] > 0] for q, docs in ideal.items()}
    if not any(ideal.values()):
        return
    scores = evaluate(qrels, ideal, ["ndcg@10", "map@10", "mrr@10", "hit@10", "recall@10"])
    assert all(v == pytest.approx(1.0) for v in scores.values())
