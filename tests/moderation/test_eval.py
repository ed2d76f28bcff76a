"""The evaluation harness end to end on synthetic data with a known answer (no tweets)."""

from dataclasses import replace

import numpy as np
import pytest

from moderation import eval as ev
from moderation.errors import ConfigError
from moderation.labels import LabelledData

from .conftest import make_corpus


@pytest.fixture(scope="module")
def synthetic(small_config):
    texts, labels, y3 = make_corpus(1500, seed=11)
    data = LabelledData(
        texts=texts,
        y3=y3,
        hard=labels,
        soft={k: v.astype(float) for k, v in labels.items()},
        ambiguous=np.zeros(len(texts), dtype=bool),
    )
    return data, ev.train(data, seed=0, config=small_config)


def test_evaluate_seed_reports_every_figure(synthetic):
    data, trained = synthetic
    report = ev.evaluate_seed(trained, data)
    assert report.three_class["weighted"]["f1"] > 0.95
    assert report.labels["hate"]["pr_auc"] > 0.95
    assert 0 <= report.labels["hate"]["ece_calibrated"] <= 1
    assert sum(report.routing.shares.values()) == pytest.approx(1.0)
    assert len(report.tradeoff) == 16
    assert [b["count"] for b in report.reliability["hate"]].count(0) < 10


def test_agreement_with_unanimous_votes_is_plain_f1(synthetic):
    """With every annotator agreeing, the leave-one-out majority is the label itself, so the
    model's agreement F1 must equal its ordinary 3-class F1; without votes it is left empty."""
    data, trained = synthetic
    assert ev.evaluate_seed(trained, data, with_tradeoff=False).agreement == {}
    voted = replace(data, votes=3 * np.eye(3, dtype=int)[data.y3])
    report = ev.evaluate_seed(trained, voted, with_tradeoff=False)
    assert report.agreement["weighted_f1"] == pytest.approx(report.three_class["weighted"]["f1"])
    assert report.agreement["hate_f1"] == pytest.approx(report.three_class["per_class"][0]["f1"])
    assert ev.agreement_f1(voted.votes)["weighted_f1"] == 1.0  # annotators agree with themselves
    assert ev.agreement_f1(voted.votes, released=voted.y3)["hate_f1"] == 1.0
    with pytest.raises(ConfigError, match="not both"):
        ev.agreement_f1(voted.votes, voted.y3, released=voted.y3)


def test_validation_f1_scores_the_stored_validation_probabilities(synthetic):
    data, trained = synthetic
    va = data.subset(trained.split.val)
    scores = ev.validation_f1(trained, data)
    # the stored val_probs are the model's own validation predictions: rescoring gives the same
    assert scores == ev._f1s(trained.model, va.texts, va.y3)
    assert scores["weighted_f1"] > 0.95 and 0.0 <= scores["hate_f1"] <= 1.0


def test_robustness_identity_and_new_category(synthetic, small_config):
    data, trained = synthetic
    undefended = ev.train(data, 0, ev.with_normaliser(small_config, False), split=trained.split)
    robust = ev.robustness(data, trained, undefended, seed=0, word_rate=1.0)
    # marker words attacked on every occurrence: the normaliser must recover more than no defence
    assert (
        robust["normaliser"]["perturbed_weighted_f1"]
        > robust["no_defence"]["perturbed_weighted_f1"]
    )
    identity = ev.identity_false_positives(trained.moderator())
    assert identity["n"] == 240 and 0 <= identity["hate_fpr"] <= identity["fpr"] <= 1
    rows = ev.new_category_curve(data, trained, sizes=(8, 32))
    assert all(r["others_unchanged"] for r in rows)
    assert rows[-1]["pr_auc"] > 0.9


def test_the_benchmark_robustness_table_averages_every_split_seed(synthetic, small_config):
    """The issue judges targets over split seeds: each row is the mean of the per-seed figures
    (each seed attacked with its own perturbation seed), with their [min, max]."""
    from benchmarks.moderation import _robustness_rows

    data, trained0 = synthetic
    by_seed = {0: trained0, 1: ev.train(data, seed=1, config=small_config)}
    rows = {row.variant: row for row in _robustness_rows(data, by_seed)}
    assert set(rows) == {"no_defence", "normaliser"} and {r.table for r in rows.values()} == {
        "robustness"
    }
    per_seed = []
    for seed, trained in by_seed.items():
        config = ev.with_normaliser(small_config, False)
        undefended = ev.train(data, seed, config, split=trained.split)
        per_seed.append(ev.robustness(data, trained, undefended, seed=seed))
    for name, row in rows.items():
        for metric, value in row.metrics.items():
            figures = [s[name][metric] for s in per_seed]
            assert value == pytest.approx(np.mean(figures))
            assert row.ci[metric] == [min(figures), max(figures)]
    drops = [s["no_defence"]["drop_weighted_f1"] for s in per_seed]
    assert drops[0] != drops[1]  # two seeds, two attacks: not one seed's figure twice


def test_speed_helpers_return_plain_figures(synthetic):
    data, trained = synthetic
    latency = ev.sync_latency(trained.moderator(), data.texts[:30], warmup=5)
    assert set(latency) >= {"p50_ms", "p99_ms"}
    assert ev.batch_throughput(trained.moderator(), data.texts[:100]) > 0
    queue = ev.queue_throughput(n_items=20)
    assert queue["n_items"] == 20 and queue["claim_decide_per_s"] > 0


def test_train_with_a_configured_deployment_prior_chooses_thresholds_at_that_prior(small_config):
    # Found by a review: train() shifted the probabilities to config.deployment_prior but chose
    # the thresholds unweighted; the shift is monotone, so it auto-actioned the same items as at
    # the training prior, now at p = 0.01-0.03. It must choose them as with_deployment_prior does.
    from moderation.policy import choose_thresholds

    prior = {"offensive": 0.1, "hate": 0.01}
    texts, _, y3 = make_corpus(1500, seed=11)
    rng = np.random.default_rng(0)  # 20 % of the classes redrawn: the model cannot be perfect
    y3 = np.where(rng.random(len(y3)) < 0.2, rng.integers(0, 3, len(y3)), y3)
    labels = {"hate": (y3 == 0).astype(int), "offensive": (y3 <= 1).astype(int)}
    soft = {k: v.astype(float) for k, v in labels.items()}
    data = LabelledData(texts, y3, labels, soft, np.zeros(len(texts), dtype=bool))

    configured = ev.train(data, seed=0, config=replace(small_config, deployment_prior=prior))
    served = ev.with_deployment_prior(ev.train(data, seed=0, config=small_config), data, prior)
    assert configured.thresholds == served.thresholds
    assert configured.model.thresholds == served.thresholds
    assert configured.model.hate_threshold == served.model.hate_threshold
    va = data.subset(configured.split.val)
    unweighted = choose_thresholds(configured.val_probs, va.hard, configured.model.config)
    assert configured.thresholds != unweighted
