"""The deployment-prior correction (moderation.prior) and what it does to a served policy."""

from dataclasses import replace

import numpy as np
import pytest

from moderation.classifier import ModerationModel
from moderation.config import DEPLOYMENT_PRIOR, ModerationConfig
from moderation.errors import ConfigError
from moderation.pipeline import Moderator
from moderation.policy import ALLOW, AUTO, choose_thresholds
from moderation.prior import calibrate_at_prior, importance_weights, prior_shift, shift_label


def _bayes(p, source, target):
    """Saerens et al. 2002 eq. 2.4 written out: re-weight each class posterior, renormalise."""
    pos = p * target / source
    neg = (1 - p) * (1 - target) / (1 - source)
    return pos / (pos + neg)


def test_prior_shift_matches_the_closed_form():
    p = np.linspace(0.0, 1.0, 101)
    for source, target in ((0.83, 0.10), (0.06, 0.01), (0.2, 0.7)):
        np.testing.assert_allclose(prior_shift(p, source, target), _bayes(p, source, target))
    # a worked value: odds 1 times (0.1 / 0.9) / (0.8 / 0.2) = 1 / 36, so p' = 1 / 37
    assert prior_shift(np.array([0.5]), 0.8, 0.1)[0] == pytest.approx(1 / 37)


def test_prior_shift_is_identity_at_the_same_prior_and_inverts():
    p = np.random.default_rng(0).random(50)
    np.testing.assert_allclose(prior_shift(p, 0.3, 0.3), p)
    np.testing.assert_allclose(prior_shift(prior_shift(p, 0.83, 0.1), 0.1, 0.83), p)
    assert np.all(np.diff(prior_shift(np.sort(p), 0.83, 0.1)) >= 0)  # monotone: ranking kept


def test_prior_shift_recovers_the_posterior_of_a_shifted_population():
    # scores from known class-conditional densities: N(1, 1) positives, N(-1, 1) negatives
    x = np.linspace(-4, 4, 81)
    like_pos, like_neg = np.exp(-((x - 1) ** 2) / 2), np.exp(-((x + 1) ** 2) / 2)

    def posterior(prior):
        return prior * like_pos / (prior * like_pos + (1 - prior) * like_neg)

    np.testing.assert_allclose(prior_shift(posterior(0.83), 0.83, 0.10), posterior(0.10))


def test_importance_weights_move_the_positive_share_to_the_target():
    y = np.r_[np.ones(83), np.zeros(17)]
    w = importance_weights(y, 0.83, 0.10)
    assert np.average(y, weights=w) == pytest.approx(0.10)


def test_a_label_is_shifted_only_with_a_deployment_share_and_a_usable_training_share():
    p = np.array([0.1, 0.5, 0.9])
    shifted = shift_label("hate", p, {"hate": 0.06}, {"hate": 0.01})
    np.testing.assert_allclose(shifted, prior_shift(p, 0.06, 0.01))
    assert shift_label("hate", p, {"hate": 0.06}, None) is p  # no deployment prior
    assert shift_label("hate", p, {"hate": 0.06}, {"offensive": 0.1}) is p  # not for this label
    assert shift_label("spam", p, {}, {"spam": 0.01}) is p  # no training share recorded
    for one_class in (0.0, 1.0):  # a calibrator that saw one class: no odds to rescale
        assert shift_label("hate", p, {"hate": one_class}, {"hate": 0.01}) is p


def test_calibrate_at_prior_calibrates_each_label_then_shifts_it():
    class Halve:
        def transform(self, s):
            return np.asarray(s) / 2

    raw = {"offensive": np.array([0.4, 1.0]), "hate": np.array([0.2, 0.6])}
    out = calibrate_at_prior(
        {"offensive": Halve(), "hate": Halve()},
        raw,
        {"offensive": 0.8, "hate": 0.06},
        {"hate": 0.01},
    )
    np.testing.assert_allclose(out["offensive"], [0.2, 0.5])  # no deployment share: calibrated
    np.testing.assert_allclose(out["hate"], prior_shift(np.array([0.1, 0.3]), 0.06, 0.01))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_bad_priors_are_refused(bad):
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        prior_shift(np.array([0.5]), bad, 0.1)
    with pytest.raises(ConfigError, match="deployment_prior"):
        ModerationConfig(deployment_prior={"offensive": bad})


def _skewed_corpus(n, seed):
    """85 % offensive, and only half of the offensive texts carry the marker "blarg": like
    Davidson, a text with no evidence at all is still probably offensive at the training prior."""
    rng = np.random.default_rng(seed)
    filler = ["the", "sunny", "day", "walk", "park", "coffee", "friend", "music", "river"]
    texts, y = [], []
    for _ in range(n):
        words = list(rng.choice(filler, size=5))
        offensive = rng.random() < 0.85
        if offensive and rng.random() < 0.5:
            words.append("blarg")
        rng.shuffle(words)
        texts.append(" ".join(words))
        y.append(int(offensive))
    return texts, {"offensive": np.array(y)}


@pytest.fixture(scope="module")
def skewed():
    config = ModerationConfig(
        min_df=1, max_features=2_000, min_auto_support=5, target_precision=0.7, parents={}
    )
    texts, y = _skewed_corpus(600, seed=3)
    val_texts, val_y = _skewed_corpus(800, seed=4)
    model = ModerationModel(config).fit(
        texts, {"offensive": y["offensive"].astype(float)}, val_texts, val_y
    )
    return model, val_texts, val_y


def _served(model, val_texts, val_y, prior):
    model.config = replace(model.config, deployment_prior=prior)
    probs = model.predict_proba(val_texts)
    w = None
    if prior:
        source = model.train_prior["offensive"]
        w = importance_weights(val_y["offensive"], source, prior["offensive"])
    weights = {"offensive": w} if w is not None else None
    return Moderator(model, choose_thresholds(probs, val_y, model.config, weights, w))


def test_a_benign_sentence_is_auto_actioned_at_the_training_prior_but_not_the_deployment_one(
    skewed,
):
    model, val_texts, val_y = skewed
    assert model.train_prior["offensive"] == pytest.approx(np.mean(val_y["offensive"]))
    benign = "walk the river with a friend"
    before = _served(model, val_texts, val_y, None).moderate(benign)
    assert before.path == AUTO  # the failure mode the correction exists for
    after_moderator = _served(model, val_texts, val_y, {"offensive": DEPLOYMENT_PRIOR["offensive"]})
    after = after_moderator.moderate(benign)
    assert after.path == ALLOW and after.scores["offensive"] < 0.2
    assert after_moderator.moderate("blarg walk the river").path == AUTO  # evidence still acts
    # the sync (compiled) path and the batch path apply the same correction
    batch = after_moderator.moderate_batch([benign, "blarg park"])
    assert batch[0].scores == after.scores
    assert batch[1].scores == after_moderator.moderate("blarg park").scores


def test_weighted_thresholds_with_unit_weights_equal_unweighted_and_shift_with_the_prior():
    rng = np.random.default_rng(5)
    y = (rng.random(2000) < 0.8).astype(int)
    p = np.clip(0.5 * y + 0.5 * rng.random(2000), 0, 1)
    probs, labels = {"offensive": p}, {"offensive": y}
    config = ModerationConfig(parents={})
    plain = choose_thresholds(probs, labels, config)
    ones = np.ones(len(y))
    assert choose_thresholds(probs, labels, config, {"offensive": ones}, ones) == plain
    w = importance_weights(y, 0.8, 0.1)
    shifted = choose_thresholds(probs, labels, config, {"offensive": w}, w)
    assert shifted["offensive"].auto > plain["offensive"].auto  # rarer positives: stricter cut
