"""Thresholds and routing: which items are actioned automatically, which go to a human, which pass.

The policy, per label, with thresholds chosen on the **validation** split::

    p >= auto                  auto-action   (remove / hide without a human)
    review <= p < auto         human review  (the uncertain band)
    p < review                 allow

* ``auto`` is the lowest threshold whose validation precision is at least ``target_precision``
  (e.g. 0.95: at most 1 in 20 automatic actions is wrong) *with confidence*: the Wilson lower bound
  of the precision (``auto_confidence_z = 1.645``, one-sided 95 %) must clear the target, so the
  threshold still holds on new data; and at least ``min_auto_support`` items must reach it. If
  no threshold qualifies, the label is never auto-actioned (``auto = inf``) and everything above
  ``review`` goes to humans.
* ``review`` is the highest threshold at which auto + review together still catch
  ``target_recall`` of the positives; then, if the union of all labels' review bands exceeds
  ``max_review_share`` of validation traffic, the label with the largest band has its ``review``
  threshold raised (one validation quantile at a time) until the budget holds. The budget wins
  over recall: reviewers are the scarce resource, and the README shows the recall it costs.

An item takes the most severe path any of its labels asks for (auto > review > allow); its action
label is the most severe label on that path (``ModerationConfig.severity``). The benchmark reports,
on the test split, the share of traffic on each path and the errors each path lets through, plus
the trade-off curve (:func:`tradeoff_curve`) from which a policy owner picks the precision target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moderation.config import ModerationConfig

__all__ = [
    "ALLOW",
    "AUTO",
    "REVIEW",
    "LabelThresholds",
    "PathErrors",
    "Routing",
    "TradeoffPoint",
    "choose_thresholds",
    "path_errors",
    "route",
    "tradeoff_curve",
    "wilson_lower",
]

AUTO, REVIEW, ALLOW = "auto_action", "review", "allow"


@dataclass(frozen=True)
class LabelThresholds:
    """Per-label cuts; ``auto = inf`` means the label is never actioned without a human."""

    label: str
    auto: float
    review: float


def wilson_lower(positives: np.ndarray, n: np.ndarray, z: float) -> np.ndarray:
    """Wilson score lower bound of a binomial proportion (Wilson, JASA 1927)::

    (p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),   p = positives / n
    """
    n = np.asarray(n, dtype=float)
    p = np.asarray(positives, dtype=float) / n
    centre = p + z * z / (2 * n)
    margin = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def _auto_threshold(
    p: np.ndarray,
    y: np.ndarray,
    target: float,
    min_support: int,
    z: float,
    weight: np.ndarray | None = None,
) -> float:
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    w = np.ones(len(p)) if weight is None else np.asarray(weight, dtype=float)[order]
    n = np.arange(1, len(p) + 1)
    total = np.cumsum(w)
    precision = np.cumsum(w * y_sorted) / total
    # the precision of {p >= cut} must clear the target with confidence, not just on average;
    # with importance weights the binomial n is Kish's effective size (sum w)^2 / sum w^2
    n_eff = total**2 / np.cumsum(w * w)
    precision_low = wilson_lower(precision * n_eff, n_eff, z) if z > 0 else precision
    # only cut between distinct scores: the last index of each tied group
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p) - 1]
    ok = last[(precision_low[last] >= target) & (n[last] >= min_support)]
    return float(p_sorted[ok.max()]) if len(ok) else math.inf


def _review_threshold(p: np.ndarray, y: np.ndarray, auto: float, target_recall: float) -> float:
    positives = np.sort(p[y == 1])[::-1]
    if len(positives) == 0:
        return auto
    k = min(len(positives) - 1, max(0, math.ceil(target_recall * len(positives)) - 1))
    return float(min(positives[k], auto))


def choose_thresholds(
    probs: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    config: ModerationConfig,
    weights: dict[str, np.ndarray] | None = None,
    traffic_weight: np.ndarray | None = None,
) -> dict[str, LabelThresholds]:
    """Per-label thresholds on validation probabilities for the policy in ``config``.

    ``weights`` (per label, per item) re-weight each label's precision and ``traffic_weight`` (per
    item) the review share, to estimate them at a deployment prior (:mod:`moderation.prior`).
    Without them every validation item counts once.
    """
    weights = weights or {}
    auto, review = {}, {}
    for name, p in probs.items():
        p, y = np.asarray(p, dtype=float), np.asarray(labels[name]).astype(int)
        auto[name] = _auto_threshold(
            p,
            y,
            config.target_precision,
            config.min_auto_support,
            config.auto_confidence_z,
            weights.get(name),
        )
        review[name] = _review_threshold(p, y, auto[name], config.target_recall)

    def band(name: str) -> np.ndarray:
        return (probs[name] >= review[name]) & (probs[name] < auto[name])

    def review_share() -> float:
        in_auto = np.zeros(len(next(iter(probs.values()))), dtype=bool)
        in_band = in_auto.copy()
        for name in probs:
            in_auto |= probs[name] >= auto[name]
            in_band |= band(name)
        return float(np.average(in_band & ~in_auto, weights=traffic_weight))

    # Narrow the widest band (drop its lowest 5 %, at least one distinct score) until the budget
    # holds; a band with nothing left closes (review = auto).
    for _ in range(10_000):
        if review_share() <= config.max_review_share:
            break
        widest = max(probs, key=lambda n: band(n).sum())
        inside = np.sort(probs[widest][band(widest)])
        cut = inside[max(1, len(inside) // 20) - 1]
        above = inside[inside > cut]
        review[widest] = float(above.min()) if len(above) else auto[widest]
    return {n: LabelThresholds(n, auto[n], review[n]) for n in probs}


@dataclass(frozen=True)
class Routing:
    """Per item: ``path`` (n,) of AUTO / REVIEW / ALLOW and ``label`` (n,) (``""`` on allow)."""

    path: np.ndarray
    label: np.ndarray

    def shares(self) -> dict[str, float]:
        return {p: float((self.path == p).mean()) for p in (AUTO, REVIEW, ALLOW)}


def route(
    probs: dict[str, np.ndarray],
    thresholds: dict[str, LabelThresholds],
    severity: dict[str, float],
    requires: dict[str, str] | None = None,
) -> Routing:
    """Send each item down the most severe path any label asks for (see the module docstring).

    ``requires`` maps a label to a parent whose score must reach the parent's review cut before
    the label may flag anything (a minimum-evidence rule: no hate flag for a text the offensive
    head would allow; used by ``Moderator(identity_guard=True)``).
    """
    probs = dict(probs)
    for child, parent in (requires or {}).items():
        if child in probs and parent in probs:
            supported = probs[parent] >= thresholds[parent].review
            probs[child] = np.where(supported, probs[child], 0.0)
    names = sorted(probs, key=lambda n: -severity.get(n, 0.0))  # most severe first
    n = len(probs[names[0]])
    path = np.full(n, ALLOW, dtype=object)
    label = np.full(n, "", dtype=object)
    for rank in (REVIEW, AUTO):  # later (more severe) paths overwrite earlier ones
        hit_any = np.zeros(n, dtype=bool)
        for name in reversed(names):  # the most severe label is written last and wins
            t = thresholds[name]
            hit = probs[name] >= (t.auto if rank == AUTO else t.review)
            label[hit] = name
            hit_any |= hit
        path[hit_any] = rank
    return Routing(path=path.astype(str), label=label.astype(str))


@dataclass(frozen=True)
class PathErrors:
    """What each path lets through, measured against the true labels.

    ``auto_precision``: share of auto-actioned items whose action label is true;
    ``review_positive_rate``: share of reviewed items positive for any label (human work that
    was needed); ``allow_miss_rate``: share of allowed items positive for any label;
    ``missed``: {label: count of positives allowed}; ``recall_caught``: {label: share of positives
    sent to auto or review}.
    """

    shares: dict[str, float]
    auto_precision: float
    review_positive_rate: float
    allow_miss_rate: float
    missed: dict[str, int]
    recall_caught: dict[str, float]


def path_errors(routing: Routing, labels: dict[str, np.ndarray]) -> PathErrors:
    truth = {k: np.asarray(v).astype(bool) for k, v in labels.items()}
    any_pos = np.logical_or.reduce(list(truth.values()))
    auto = routing.path == AUTO
    correct = np.array(
        [truth[lab][i] if lab in truth else False for i, lab in enumerate(routing.label)]
    )
    review, allow = routing.path == REVIEW, routing.path == ALLOW

    def rate(mask: np.ndarray, hit: np.ndarray) -> float:
        return float(hit[mask].mean()) if mask.any() else math.nan

    return PathErrors(
        shares=routing.shares(),
        auto_precision=rate(auto, correct),
        review_positive_rate=rate(review, any_pos),
        allow_miss_rate=rate(allow, any_pos),
        missed={k: int((v & allow).sum()) for k, v in truth.items()},
        recall_caught={k: float((v & ~allow).sum() / max(v.sum(), 1)) for k, v in truth.items()},
    )


@dataclass(frozen=True)
class TradeoffPoint:
    """One policy option: the targets it was tuned for (on validation) and what it does on test."""

    target_precision: float
    target_recall: float
    max_review_share: float
    errors: PathErrors


def tradeoff_curve(
    val_probs: dict[str, np.ndarray],
    val_labels: dict[str, np.ndarray],
    test_probs: dict[str, np.ndarray],
    test_labels: dict[str, np.ndarray],
    config: ModerationConfig,
    targets: tuple[float, ...] = (0.80, 0.90, 0.95, 0.98),
    recalls: tuple[float, ...] = (0.80, 0.90, 0.95, 0.99),
) -> list[TradeoffPoint]:
    """Re-tune thresholds on validation for each (precision target, recall target); score test.

    The review budget stays ``config.max_review_share``; where it binds, the achieved recall
    falls short of the target and the row shows by how much.
    """
    from dataclasses import replace

    points = []
    for target in targets:
        for recall in recalls:
            cfg = replace(config, target_precision=target, target_recall=recall)
            thresholds = choose_thresholds(val_probs, val_labels, cfg)
            routing = route(test_probs, thresholds, config.severity)
            errors = path_errors(routing, test_labels)
            points.append(TradeoffPoint(target, recall, config.max_review_share, errors))
    return points
