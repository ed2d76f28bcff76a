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


def test_mismatched_lengths_get_a_clear_error():
    with pytest.raises(MetricError, match="same length"):
        classification_report([0, 1], [0])
