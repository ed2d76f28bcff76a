"""The drift statistics Evidently 0.7 uses, re-implemented in numpy so a window costs milliseconds.

Evidently picks a test per column from its type and the *reference* sample size
(``evidently/legacy/calculations/stattests/registry.py::_get_default_stattest``):

==============  ======================================  =======================================
reference rows  numerical (> 5 distinct values)         categorical / few values
==============  ======================================  =======================================
<= 1000         two-sample Kolmogorov-Smirnov p < 0.05  chi-squared p < 0.05 (z-test if binary)
> 1000          Wasserstein distance / std(ref) >= 0.1  Jensen-Shannon distance >= 0.1
==============  ======================================  =======================================

Each function below reproduces one of those tests exactly (same binning, same normalisation, same
one-sided conventions) and is parity-tested against scipy and against Evidently itself
(``tests/drift/test_stattests.py``). Two subtleties worth knowing in an interview:

- Evidently's chi-squared is a *goodness-of-fit* test of the current counts against the reference
  proportions, not a two-sample test: it ignores the reference's own sampling noise, so with equal
  sample sizes it rejects more often than its nominal level.
- p-value tests answer "is there *any* difference?", which on 10k rows is nearly always yes for real
  data (Evidently issue #50); distances answer "is the difference *large*?", which is what an
  on-call engineer cares about. That is why Evidently switches to distances for large samples.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "chisquare_pvalue",
    "chisquare_two_sample_pvalue",
    "jensenshannon_distance",
    "ks_pvalue",
    "wasserstein_normed",
    "z_pvalue",
]


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided two-sample KS p-value; scipy's ``ks_2samp`` (exact for small n, else asymptotic),
    exactly as Evidently calls it. Kolmogorov (1933), Smirnov (1948)."""
    return float(stats.ks_2samp(reference, current).pvalue)


def chisquare_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's chi-squared: current counts against reference proportions.

    With keys k over the union of observed values, o_k the current counts, and expected
    e_k = ref_count_k * n_cur / n_ref:  X^2 = sum_k (o_k - e_k)^2 / e_k,  p = P(chi2_{K-1} > X^2).
    A value never seen in the reference has e_k = 0, so X^2 is infinite and p = 0 (as in scipy).
    """
    keys, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
    ref_counts = np.bincount(inverse[: len(reference)], minlength=len(keys)).astype(float)
    cur_counts = np.bincount(inverse[len(reference) :], minlength=len(keys)).astype(float)
    if len(keys) < 2:
        return 1.0
    expected = ref_counts * len(current) / len(reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (cur_counts - expected) ** 2 / expected, np.inf)
    terms = np.where((expected == 0) & (cur_counts == 0), 0.0, terms)
    statistic = float(terms.sum())
    return float(stats.chi2.sf(statistic, len(keys) - 1))


def chisquare_two_sample_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Pearson's chi-squared test of homogeneity on the 2 x K table of counts (no Yates correction).

    With O_ik the count of value k in sample i, row totals R_i, column totals C_k and N = R_1 + R_2:
    E_ik = R_i C_k / N,  X^2 = sum_ik (O_ik - E_ik)^2 / E_ik,  p = P(chi2_{K-1} > X^2).
    Unlike :func:`chisquare_pvalue` it accounts for the noise in *both* samples, so it holds its
    nominal level; this is the test alibi-detect's ``ChiSquareDrift`` runs (Pearson 1900).
    """
    keys, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
    if len(keys) < 2:
        return 1.0
    table = np.vstack(
        [
            np.bincount(inverse[: len(reference)], minlength=len(keys)),
            np.bincount(inverse[len(reference) :], minlength=len(keys)),
        ]
    ).astype(float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(statistic, len(keys) - 1))


def z_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-proportion z-test for a binary column (pooled variance), two-sided.

    p1, p2 are the shares of the non-first value; P = pooled share;
    z = (p1 - p2) / sqrt(P (1 - P) (1/n1 + 1/n2)); p = 2 (1 - Phi(|z|)).
    Equals the chi-squared test of the 2x2 table without Yates' correction (z^2 = X^2).
    """
    keys = np.unique(np.concatenate([reference, current]))
    if len(keys) < 2:
        return 1.0
    first = keys[0]
    p1 = float(np.mean(reference != first))
    p2 = float(np.mean(current != first))
    n1, n2 = len(reference), len(current)
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    z = (p1 - p2) / np.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance divided by the reference standard deviation (floored at 0.001).

    W1 = integral |F_ref(x) - F_cur(x)| dx over the pooled support: the area between the two
    empirical CDFs (Vallender 1974). Normalised, a pure mean shift of d standard deviations gives d.
    """
    reference = np.sort(np.asarray(reference, dtype=float))
    current = np.sort(np.asarray(current, dtype=float))
    support = np.concatenate([reference, current])
    support.sort(kind="mergesort")
    widths = np.diff(support)
    cdf_ref = np.searchsorted(reference, support[:-1], side="right") / len(reference)
    cdf_cur = np.searchsorted(current, support[:-1], side="right") / len(current)
    distance = float(np.sum(np.abs(cdf_ref - cdf_cur) * widths))
    return distance / max(float(np.std(reference)), 0.001)


def jensenshannon_distance(reference: np.ndarray, current: np.ndarray, *, numerical: bool) -> float:
    """Jensen-Shannon distance (natural log) between binned distributions, binned as Evidently does.

    Numerical columns with more than 20 distinct reference values use Sturges' histogram edges over
    the pooled data; others use one bin per distinct value. With m = (p + q) / 2:
    JS = sqrt((KL(p || m) + KL(q || m)) / 2) (Lin 1991; Endres & Schindelin 2003).
    """
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    if numerical and len(np.unique(reference)) > 20:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        p = np.histogram(reference, edges)[0].astype(float)
        q = np.histogram(current, edges)[0].astype(float)
    else:
        _, inverse = np.unique(np.concatenate([reference, current]), return_inverse=True)
        size = int(inverse.max()) + 1 if len(inverse) else 0
        p = np.bincount(inverse[: len(reference)], minlength=size).astype(float)
        q = np.bincount(inverse[len(reference) :], minlength=size).astype(float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))
