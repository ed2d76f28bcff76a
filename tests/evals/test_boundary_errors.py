"""Plausible bad input to evals' entry points is a MetricError saying what is wrong, not numpy's.

Found by a review (session 34): each case below escaped as a bare ValueError or TypeError.
"""

from __future__ import annotations

import pytest

from evals.classification import (
    confusion_matrix,
    expected_calibration_error,
    pr_auc,
    reliability_curve,
    roc_auc,
)
from evals.errors import MetricError
from evals.metrics import evaluate
from evals.timing import latency_summary

QRELS = {"q1": {"d1": 1}}
RUN = {"q1": {"d1": 2.0, "d2": 1.0}}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: roc_auc([], []), "empty"),
        (lambda: pr_auc([], []), "empty"),
        (lambda: roc_auc([0, 1], ["0.2", "high"]), "scores must be numbers"),
        (lambda: expected_calibration_error(["no", "yes"], [0.2, 0.8]), "must be numbers"),
        (lambda: reliability_curve([0, 1], ["x", 0.8]), "probabilities must be numbers"),
        (lambda: confusion_matrix(["a", None], ["a", "b"]), "mixed types cannot be ordered"),
        (lambda: evaluate(QRELS, RUN, metrics=None), "a metric name or a list of them"),
        (lambda: evaluate(QRELS, RUN, metrics=[10]), "metric names are text"),
        (lambda: latency_summary(["fast"]), "numbers of seconds"),
    ],
)
def test_bad_input_is_a_metric_error(call, message):
    with pytest.raises(MetricError, match=message):
        call()


def test_latency_summary_takes_any_iterable_of_durations():
    durations = {"q1": 0.001, "q2": 0.002, "q3": 0.003}
    expected = latency_summary([0.001, 0.002, 0.003])
    assert latency_summary(durations.values()) == expected
    assert latency_summary(d for d in durations.values()) == expected


def test_labels_of_one_type_still_order_as_before():
    # true "b", "a" predicted "a", "a": the rows are a then b
    assert confusion_matrix(["b", "a"], ["a", "a"]).tolist() == [[1, 0], [1, 0]]
