"""Statistics for comparing systems: bootstrap confidence intervals and a paired significance test.

A benchmark figure such as "nDCG@10 = 0.734" is a mean over a few hundred queries (or users); the
interval around it is often wider than the differences people argue about. So every headline
figure gets a confidence interval, and every "A beats B" claim gets a paired test on the *same*
queries.

* :func:`bootstrap_ci` is the percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the
  per-query values with replacement, take the mean of each resample, report the
  ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles.
* :func:`paired_test` compares two systems query by query. Its p-value comes from the paired
  randomisation (sign-flip) test that Smucker, Allan & Carterette (CIKM 2007) recommend for IR:
  under the null hypothesis "A and B are exchangeable", each per-query difference is equally likely
  to have either sign, so we flip signs at random and count how often the mean difference is at
  least as extreme as the observed one. Its interval is a paired bootstrap of the mean difference.

Both take ``seed=`` so that the same inputs always give the same interval.

>>> ci = bootstrap_ci([0.0, 1.0] * 50, seed=0)
>>> round(ci.mean, 2), ci.low < 0.5 < ci.high
(0.5, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from evals.errors import MetricError

__all__ = ["ConfidenceInterval", "PairedTest", "bootstrap_ci", "paired_test"]


@dataclass(frozen=True)
class ConfidenceInterval:
    mean: float
    low: float
    high: float
    confidence: float
    n: int  # number of units (queries, users) the mean is over


@dataclass(frozen=True)
class PairedTest:
    mean_diff: float  # mean of a - b
    low: float  # bootstrap interval of mean_diff
    high: float
    p_value: float  # two-sided, sign-flip randomisation test
    n: int
    wins: int  # units where a > b
    losses: int  # units where a < b


def _as_array(values: Iterable[float], what: str) -> np.ndarray:
    try:  # numpy reads a list or an array, not dict.values() or a generator: list those first
        listed = values if isinstance(values, Sequence | np.ndarray) else list(values)
        array = np.asarray(listed, dtype=float)
    except (TypeError, ValueError):
        raise MetricError(f"{what} must be a 1-D sequence of numbers") from None
    if array.ndim != 1 or len(array) == 0:
        raise MetricError(f"{what} must be a non-empty 1-D sequence of numbers")
    if not np.isfinite(array).all():
        raise MetricError(f"{what} contains NaN or infinite values")
    return array


def _check_settings(n_resamples: int, confidence: float) -> None:
    # a clear error here, not numpy's "need at least one array to concatenate" or a quantile error
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise MetricError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if n_resamples < 1:
        raise MetricError(f"n_resamples must be an integer >= 1, got {n_resamples}")
    if not 0 < confidence < 1:  # NaN fails this too
        raise MetricError(f"confidence must be in (0, 1), got {confidence}")


def _chunks(n_resamples: int, n: int, max_cells: int = 4_000_000) -> list[int]:
    """Split ``n_resamples`` so that no (chunk, n) matrix exceeds ``max_cells`` (~32 MB)."""
    step = max(1, max_cells // max(n, 1))
    return [min(step, n_resamples - start) for start in range(0, n_resamples, step)]


def _resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples, computed in bounded-memory chunks."""
    return np.concatenate(
        [
            values[rng.integers(0, len(values), size=(size, len(values)))].mean(axis=1)
            for size in _chunks(n_resamples, len(values))
        ]
    )


def bootstrap_ci(
    values: Iterable[float],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile-bootstrap interval of the mean of ``values``."""
    array = _as_array(values, "values")
    _check_settings(n_resamples, confidence)
    rng = np.random.default_rng(seed)
    means = _resampled_means(array, n_resamples, rng)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return ConfidenceInterval(float(array.mean()), float(low), float(high), confidence, len(array))


def paired_test(
    a: Iterable[float],
    b: Iterable[float],
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Is system ``a`` different from system ``b`` on the same units? ``a[i]``, ``b[i]`` pair up."""
    x, y = _as_array(a, "a"), _as_array(b, "b")
    _check_settings(n_resamples, confidence)
    if len(x) != len(y):
        raise MetricError(f"a and b must be paired (same length), got {len(x)} and {len(y)}")
    diff = x - y
    observed = diff.mean()
    rng = np.random.default_rng(seed)
    null_means = np.concatenate(
        [
            (rng.choice(np.array([-1.0, 1.0]), size=(size, len(diff))) * diff).mean(axis=1)
            for size in _chunks(n_resamples, len(diff))
        ]
    )
    # +1 in numerator and denominator: the observed assignment is one of the permutations, so the
    # p-value is never exactly 0 (Phipson & Smyth 2010).
    extreme = np.sum(np.abs(null_means) >= abs(observed) - 1e-12)
    p_value = (extreme + 1) / (n_resamples + 1)
    boot = _resampled_means(diff, n_resamples, rng)
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return PairedTest(
        mean_diff=float(observed),
        low=float(low),
        high=float(high),
        p_value=float(p_value),
        n=len(diff),
        wins=int((diff > 0).sum()),
        losses=int((diff < 0).sum()),
    )
