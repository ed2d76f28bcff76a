"""Classification metrics against scikit-learn, and calibration against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from evals.classification import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    pr_auc,
    reliability_curve,
    roc_auc,
)
from evals.errors import MetricError


@pytest.mark.parametrize("seed", range(20))
def test_report_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 3, 200))
    if seed == 0:
        y_pred[y_pred == 2] = 1  # a class that is never predicted: precision 0, not NaN
    ours = classification_report(y_true, y_pred, labels=[0, 1, 2])
    p, r, f, s = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], zero_division=0
    )
    for i in range(3):
        assert ours["per_class"][i]["precision"] == pytest.approx(p[i])
        assert ours["per_class"][i]["recall"] == pytest.approx(r[i])
        assert ours["per_class"][i]["f1"] == pytest.approx(f[i])
        assert ours["per_class"][i]["support"] == s[i]
    for average in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(
            y_true, y_pred, labels=[0, 1, 2], average=average, zero_division=0
        )
        assert ours[average] == pytest.approx({"precision": p, "recall": r, "f1": f})
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, [0, 1, 2]), sk.confusion_matrix(y_true, y_pred)
    )


@pytest.mark.parametrize("labels", [[0], [2, 0], [1, 3]])
def test_a_subset_of_labels_still_counts_every_item_like_sklearn(labels):
    # an item of a listed class predicted as an unlisted one is a miss of that class (recall,
    # support), and an unlisted item predicted as a listed class a false positive (precision)
    y_true = [0, 0, 1, 2, 2, 3, 0, 1]
    y_pred = [0, 1, 1, 0, 3, 3, 2, 0]
    ours = classification_report(y_true, y_pred, labels=labels)
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        got = ours["per_class"][label]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert got["support"] == s[i]
    for average in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        assert ours[average] == pytest.approx({"precision": p, "recall": r, "f1": f})
    one = classification_report([0, 0], [0, 1], labels=[0])["per_class"][0]
    assert (one["recall"], one["support"]) == (0.5, 2)
    # accuracy is over every item, whatever labels lists (scikit-learn's accuracy_score)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert classification_report([0, 1, 2], [0, 1, 2], labels=[0, 1])["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("labels", "message"), [([], "labels is empty"), ([0, 0, 1], r"labels repeats \[0\]")]
)
def test_empty_or_repeated_labels_are_refused(labels, message):
    with pytest.raises(MetricError, match=message):
        classification_report([0, 1], [0, 1], labels=labels)


@pytest.mark.parametrize("seed", range(20))
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    y[:2] = [0, 1]
    score = np.round(rng.random(300) * 0.5 + y * 0.3, 1)  # rounding creates ties
    assert roc_auc(y, score) == pytest.approx(sk.roc_auc_score(y, score), abs=1e-12)
    assert pr_auc(y, score) == pytest.approx(sk.average_precision_score(y, score), abs=1e-12)


def test_auc_errors_are_clear():
    with pytest.raises(MetricError, match="single class"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MetricError, match="binary"):
        pr_auc([0, 2, 1], [0.1, 0.2, 0.3])


def test_ece_hand_computed():
    # two bins of width 0.5: bin 0 holds p=0.2,0.4 (mean 0.3) with 1 positive of 2 (0.5);
    # bin 1 holds p=0.9,0.9 (mean 0.9) with 2 of 2 positive (1.0)
    y = [0, 1, 1, 1]
    p = [0.2, 0.4, 0.9, 0.9]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.1)
    bins = reliability_curve(y, p, n_bins=2)
    assert [b.count for b in bins] == [2, 2]


def test_ece_is_zero_when_calibrated_and_probabilities_are_checked():
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    with pytest.raises(MetricError, match=r"\[0, 1\]"):
        expected_calibration_error([0, 1], [0.5, 1.5])


@pytest.mark.parametrize("labels", [[float("nan"), 1], [2, 2], [0, -1], [0.5, 1]])
def test_calibration_labels_outside_zero_and_one_are_refused(labels):
    # they gave ECE NaN and 1.5 instead of an error
    with pytest.raises(MetricError, match=r"y_true must hold 0/1 labels"):
        expected_calibration_error(labels, [0.5, 0.5])
    with pytest.raises(MetricError, match=r"y_true must hold 0/1 labels"):
        reliability_curve(labels, [0.5, 0.5])
    assert expected_calibration_error([True, False], [0.5, 0.5]) == 0.0  # "was the top class right"


def test_mismatched_lengths_get_a_clear_error():
    with pytest.raises(MetricError, match="same length"):
        classification_report([0, 1], [0])
