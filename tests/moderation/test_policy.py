import math

import numpy as np
import pytest

from moderation.config import ModerationConfig
from moderation.policy import (
    ALLOW,
    AUTO,
    REVIEW,
    LabelThresholds,
    choose_thresholds,
    path_errors,
    route,
)

SEVERITY = {"hate": 1.0, "offensive": 0.3}


def test_auto_threshold_is_the_lowest_cut_meeting_the_precision_target():
    # scores 1.0..0.1; labels: the top 4 all positive, then alternating
    p = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0])
    cfg = ModerationConfig(target_precision=0.8, target_recall=1.0, max_review_share=1.0,
                           min_auto_support=1, auto_confidence_z=0.0)  # fmt: skip
    t = choose_thresholds({"hate": p}, {"hate": y}, cfg)["hate"]
    # precision at cut 0.5 is 5/6 = 0.83 >= 0.8; at 0.4 it is 5/7 = 0.71
    assert t.auto == 0.5
    # recall 1.0 needs the last positive (0.2) inside auto+review
    assert t.review == 0.2


def test_unreachable_precision_means_never_auto():
    p = np.linspace(0, 1, 50)
    y = np.tile([0, 1], 25)  # no cut reaches 0.95
    cfg = ModerationConfig(min_auto_support=5)
    t = choose_thresholds({"hate": p}, {"hate": y}, cfg)["hate"]
    assert math.isinf(t.auto)


def test_min_support_blocks_a_threshold_backed_by_too_few_items():
    p = np.array([0.99, 0.98] + [0.5] * 98)
    y = np.array([1, 1] + [0, 1] * 49)
    cfg = ModerationConfig(min_auto_support=20)
    assert math.isinf(choose_thresholds({"hate": p}, {"hate": y}, cfg)["hate"].auto)


def test_review_budget_is_respected_on_validation():
    rng = np.random.default_rng(0)
    p = {"hate": rng.random(2000), "offensive": rng.random(2000)}
    y = {k: (rng.random(2000) < v).astype(int) for k, v in p.items()}
    cfg = ModerationConfig(max_review_share=0.10, target_recall=0.99)
    thresholds = choose_thresholds(p, y, cfg)
    shares = route(p, thresholds, SEVERITY).shares()
    assert shares[REVIEW] <= 0.10 + 1e-9
    assert sum(shares.values()) == pytest.approx(1.0)


def test_routing_takes_the_most_severe_path_and_label():
    thresholds = {
        "hate": LabelThresholds("hate", auto=0.9, review=0.3),
        "offensive": LabelThresholds("offensive", auto=0.8, review=0.5),
    }
    probs = {
        "hate": np.array([0.95, 0.5, 0.1, 0.1, 0.5]),
        "offensive": np.array([0.9, 0.9, 0.6, 0.1, 0.6]),
    }
    routing = route(probs, thresholds, SEVERITY)
    assert routing.path.tolist() == [AUTO, AUTO, REVIEW, ALLOW, REVIEW]
    # item 0: both auto -> hate (more severe); item 4: both review -> hate
    assert routing.label.tolist() == ["hate", "offensive", "offensive", "", "hate"]


def test_path_errors_by_hand():
    thresholds = {"hate": LabelThresholds("hate", auto=0.9, review=0.5)}
    probs = {"hate": np.array([0.95, 0.95, 0.6, 0.6, 0.1, 0.1])}
    truth = {"hate": np.array([1, 0, 1, 0, 1, 0])}
    errors = path_errors(route(probs, thresholds, SEVERITY), truth)
    assert errors.shares == pytest.approx({AUTO: 2 / 6, REVIEW: 2 / 6, ALLOW: 2 / 6})
    assert errors.auto_precision == 0.5
    assert errors.review_positive_rate == 0.5
    assert errors.allow_miss_rate == 0.5
    assert errors.missed == {"hate": 1}
    assert errors.recall_caught == {"hate": pytest.approx(2 / 3)}


def test_wilson_lower_bound_matches_statsmodels_values():
    from moderation.policy import wilson_lower

    # statsmodels proportion_confint(95, 100, alpha=0.10, method="wilson")[0] = 0.900839
    assert wilson_lower(np.array([95]), np.array([100]), 1.6448536)[0] == pytest.approx(
        0.9008389, abs=1e-6
    )
    assert wilson_lower(np.array([0]), np.array([10]), 1.96)[0] == pytest.approx(0.0, abs=1e-12)


def test_confidence_makes_the_auto_threshold_stricter():
    rng = np.random.default_rng(1)
    p = rng.random(3000)
    y = (rng.random(3000) < p).astype(int)
    plain = ModerationConfig(target_precision=0.9, auto_confidence_z=0.0)
    careful = ModerationConfig(target_precision=0.9)
    t_plain = choose_thresholds({"hate": p}, {"hate": y}, plain)["hate"].auto
    t_careful = choose_thresholds({"hate": p}, {"hate": y}, careful)["hate"].auto
    assert t_careful > t_plain


def test_auto_threshold_never_cuts_inside_a_group_of_tied_scores():
    # at 0.5 the tie is all or nothing: {p >= 0.5} is all three items, precision 2/3 < 0.8,
    # even though the positive 0.5 sorts first and "the top two" would have precision 1
    p = np.array([0.9, 0.5, 0.5])
    y = np.array([1, 1, 0])
    cfg = ModerationConfig(target_precision=0.8, target_recall=1.0, max_review_share=1.0,
                           min_auto_support=1, auto_confidence_z=0.0)  # fmt: skip
    t = choose_thresholds({"hate": p}, {"hate": y}, cfg)["hate"]
    assert y[p >= t.auto].mean() >= cfg.target_precision
    assert t.auto == 0.9
