"""Classification metrics: per-class and averaged precision/recall/F1, PR-AUC, ROC-AUC, calibration.

Plain functions over numpy arrays. Where scikit-learn computes the same quantity, the tests check
that we agree with it exactly; the calibration metrics (which scikit-learn lacks in this form) are
checked against hand-computed values.

Conventions:

* A class with no predicted item has precision 0 (scikit-learn's ``zero_division=0``); a class with
  no true item has recall 0. Both are reported with their ``support`` so a reader sees why.
* ``weighted`` averages weight each class by its support (true count), ``macro`` weights equally.
* Expected calibration error (Naeini et al., AAAI 2015; Guo et al., ICML 2017), for binary
  probabilities ``p_i`` of the positive class and labels ``y_i``, with equal-width bins ``B_m``::

      ECE = sum_m |B_m| / n * | mean_{i in B_m}(y_i) - mean_{i in B_m}(p_i) |

  For a multi-class model, pass the top-class confidence and whether the top class was right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evals.errors import MetricError

__all__ = [
    "ReliabilityBin",
    "classification_report",
    "confusion_matrix",
    "expected_calibration_error",
    "pr_auc",
    "reliability_curve",
    "roc_auc",
]


def _labels(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence | None) -> list:
    if labels is not None:
        labels = list(labels)
        if not labels:
            raise MetricError("labels is empty: pass the classes to report, or None for all")
        if len(set(labels)) != len(labels):
            repeated = sorted({label for label in labels if labels.count(label) > 1}, key=str)
            raise MetricError(f"labels repeats {repeated}: each class may be listed once")
        return labels
    found = set(y_true.tolist()) | set(y_pred.tolist())
    try:
        return sorted(found)
    except TypeError:  # labels of mixed types (a None among strings) do not order
        raise MetricError(
            f"labels of mixed types cannot be ordered: {sorted(found, key=repr)[:5]}; use one "
            "type (None is not a class), or pass labels= in the order to report"
        ) from None


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise MetricError(
            f"y_true and y_pred must be 1-D and the same length, got {y_true.shape} and "
            f"{y_pred.shape}"
        )
    if len(y_true) == 0:
        raise MetricError("no items to evaluate")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, labels: Sequence | None = None) -> np.ndarray:
    """``C[i, j]`` = number of items of true class ``labels[i]`` predicted as ``labels[j]``."""
    y_true, y_pred = _pair(y_true, y_pred)
    labels = _labels(y_true, y_pred, labels)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix


def classification_report(y_true, y_pred, labels: Sequence | None = None) -> dict:
    """Per-class and averaged precision, recall, F1 and support, plus accuracy.

    Returns ``{"per_class": {label: {"precision", "recall", "f1", "support"}},
    "macro": {...}, "weighted": {...}, "accuracy": float}``. With ``labels``, only those classes
    are reported (and averaged), each counted over every item, as scikit-learn does.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    labels = _labels(y_true, y_pred, labels)
    matrix = confusion_matrix(y_true, y_pred, labels)
    tp = np.diag(matrix).astype(float)
    # Counted over every item, not from the matrix, which holds only items whose true *and*
    # predicted labels are in ``labels``: a class-0 item predicted as an unlisted class is still
    # a miss of class 0 (as in scikit-learn with ``labels=``).
    true_counts, predicted_counts = Counter(y_true.tolist()), Counter(y_pred.tolist())
    predicted = np.array([predicted_counts[label] for label in labels], dtype=float)
    support = np.array([true_counts[label] for label in labels], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    weights = support / support.sum() if support.sum() > 0 else np.zeros_like(support)

    def averaged(w: np.ndarray) -> dict[str, float]:
        return {
            "precision": float(precision @ w),
            "recall": float(recall @ w),
            "f1": float(f1 @ w),
        }

    return {
        "per_class": per_class,
        "macro": averaged(np.full(len(labels), 1.0 / len(labels))),
        "weighted": averaged(weights),
        # Over every item, whatever ``labels`` lists (as scikit-learn's accuracy_score).
        "accuracy": float(np.mean(y_true == y_pred)),
    }


def _check_binary_labels(y_true: np.ndarray) -> None:
    """MetricError naming the first label that is not 0 or 1 (NaN included)."""
    bad = ~np.isin(y_true, (0, 1))
    if bad.any():
        raise MetricError(
            "y_true must hold 0/1 labels (binary: is the item positive / was the top class "
            f"right), got {y_true[bad][0]}"
        )


def _numbers(values, what: str) -> np.ndarray:
    """``values`` as floats, or a MetricError saying they must be numbers (not numpy's)."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise MetricError(
            f"{what} must be numbers, got {np.asarray(values).dtype} values"
        ) from None


def _binary(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y_true, score = np.asarray(y_true), _numbers(score, "scores")
    if y_true.shape != score.shape or y_true.ndim != 1:
        raise MetricError(f"y_true, score must be 1-D, same length: {y_true.shape}, {score.shape}")
    if len(y_true) == 0:  # an empty slice of an evaluation: min() below has no identity
        raise MetricError("y_true and score are empty: the metric needs items of both classes")
    _check_binary_labels(y_true)
    if y_true.min() == y_true.max():
        raise MetricError("y_true holds a single class: the metric is undefined")
    if not np.isfinite(score).all():
        raise MetricError("scores must be finite")
    return y_true.astype(int), score


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties 1/2.

    Computed from ranks (the Mann-Whitney U statistic), which handles ties exactly.
    """
    y_true, score = _binary(y_true, score)
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=float)
    sorted_scores = score[order]
    # average ranks over tied groups
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(score)]))
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # mean of 1-based ranks s+1..e
    n_pos = y_true.sum()
    n_neg = len(y_true) - n_pos
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(y_true, score) -> float:
    """Average precision: ``sum_n (R_n - R_{n-1}) P_n`` over score thresholds (no interpolation).

    This is scikit-learn's ``average_precision_score``: the step-wise area under the PR curve.
    """
    y_true, score = _binary(y_true, score)
    order = np.argsort(-score, kind="mergesort")
    y_sorted, s_sorted = y_true[order], score[order]
    # one threshold per distinct score: take the last index of each tied group
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[last_of_group]
    fp = (last_of_group + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / y_true.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: mean confidence vs observed frequency."""

    low: float
    high: float
    count: int
    mean_prob: float  # NaN for an empty bin
    frac_positive: float  # NaN for an empty bin


def reliability_curve(y_true, prob, n_bins: int = 15) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]; bin ``m`` holds ``prob`` in ``(m/n, (m+1)/n]`` (0 in bin 0)."""
    y_true, prob = _numbers(y_true, "y_true (0/1 labels)"), _numbers(prob, "probabilities")
    if y_true.shape != prob.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise MetricError("y_true and prob must be non-empty 1-D arrays of the same length")
    if ((prob < 0) | (prob > 1)).any() or not np.isfinite(prob).all():
        raise MetricError("probabilities must lie in [0, 1]")
    _check_binary_labels(y_true)
    if n_bins < 1:
        raise MetricError(f"n_bins must be >= 1, got {n_bins}")
    index = np.clip(np.ceil(prob * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins = []
    for m in range(n_bins):
        mask = index == m
        count = int(mask.sum())
        bins.append(
            ReliabilityBin(
                low=m / n_bins,
                high=(m + 1) / n_bins,
                count=count,
                mean_prob=float(prob[mask].mean()) if count else float("nan"),
                frac_positive=float(y_true[mask].mean()) if count else float("nan"),
            )
        )
    return bins


def expected_calibration_error(y_true, prob, n_bins: int = 15) -> float:
    """ECE with equal-width bins (formula in the module docstring); 0 is perfectly calibrated."""
    bins = reliability_curve(y_true, prob, n_bins)
    n = sum(b.count for b in bins)
    return float(sum(b.count / n * abs(b.frac_positive - b.mean_prob) for b in bins if b.count > 0))
