"""Choosing a blend of several models' scores, and judging that choice on items it never saw.

Synthetic scores with a known answer: a ``perfect`` model separates the classes, ``noise`` is
uniform. The cross-fitting checks are the point: F1 on the items a blend was chosen on rewards
a larger weight grid for fitting noise; out-of-fold F1 must not.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from evals.classification import classification_report
from moderation import eval as ev
from moderation.errors import ConfigError
from moderation.finetune import FineTunedEnsemble
from moderation.labels import LABELS, LabelledData
from moderation.stacking import (
    PAIR_GRID,
    WEIGHT_GRID,
    StackedModel,
    cross_fitted_f1,
    fit_blend,
    stack_weight,
    weight_grid,
)

from .conftest import make_corpus


def _labels(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    y3 = np.random.default_rng(seed).choice([0, 1, 2], size=n, p=[0.2, 0.5, 0.3])
    return {"hate": (y3 == 0).astype(int), "offensive": (y3 <= 1).astype(int)}, y3


def _perfect(y: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.where(v == 1, 0.9, 0.1) for k, v in y.items()}


def _noise(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"hate": rng.random(n), "offensive": rng.random(n)}


def test_weight_grid_is_the_simplex_and_two_parts_match_the_served_grid():
    two = weight_grid(2, 0.1)
    np.testing.assert_allclose(two, PAIR_GRID)  # the served grid (to float rounding)
    np.testing.assert_allclose(PAIR_GRID[:, 1], WEIGHT_GRID)
    three = weight_grid(3, 0.05)
    assert three.shape == (231, 3)  # C(20 + 2, 2) ways to split 20 steps over 3 parts
    np.testing.assert_allclose(three.sum(axis=1), 1.0)
    assert (three >= 0).all() and len({tuple(row) for row in three.round(6)}) == 231
    with pytest.raises(ConfigError, match="step that divides 1"):
        weight_grid(3, 0.3)
    with pytest.raises(ConfigError, match="part"):
        weight_grid(0, 0.1)


def test_fit_blend_weights_the_informative_model_and_stack_weight_agrees():
    y, y3 = _labels(600, seed=0)
    parts = [_noise(600, 1), _perfect(y), _noise(600, 2)]
    fit = fit_blend(parts, y, y3, weight_grid(3, 0.1))
    assert fit.weights[1] == fit.weights.max() and fit.weights[1] >= 0.5
    assert (fit.predict(parts) == y3).mean() > 0.98
    # the two-model case is the served one: stack_weight is fit_blend on WEIGHT_GRID
    assert stack_weight(parts[0], parts[1], y, y3) > 0.5
    assert stack_weight(parts[1], parts[0], y, y3) < 0.5


def test_cross_fitting_scores_each_item_with_a_blend_fitted_without_it():
    y, y3 = _labels(600, seed=3)
    noise = [_noise(600, 4), _noise(600, 5), _noise(600, 6)]
    grid = weight_grid(3, 0.05)
    in_sample = classification_report(y3, fit_blend(noise, y, y3, grid).predict(noise))
    out_of_fold = cross_fitted_f1(noise, y, y3, grid, repeats=2)
    # chosen (231 weights, isotonic calibrators, a hate cut) and scored on the same items, noise
    # looks better than it is; a blend fitted on all items would score exactly in_sample here
    assert out_of_fold["weighted_f1"] < in_sample["weighted"]["f1"] - 0.01
    informative = cross_fitted_f1([noise[0], _perfect(y)], y, y3, weight_grid(2, 0.1), repeats=2)
    assert informative["weighted_f1"] > 0.98 and informative["hate_f1"] > 0.95


class _Oracle:
    """A stand-in fine-tune that knows the marker words ("zorg" hate, "blarg" offensive)."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        hate = np.array([0.9 if "zorg" in t else 0.02 for t in texts])
        off = np.clip(np.array([0.9 if "blarg" in t else 0.05 for t in texts]) - hate, 0, 1)
        return np.stack([hate, off, 1 - hate - off], axis=1)


class _Guess:
    """A stand-in fine-tune that guesses at random (seeded)."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.random.default_rng(0).dirichlet([1.0, 1.0, 1.0], size=len(texts))


def test_cross_fitted_validation_f1_of_a_stacked_model(small_config):
    texts, labels, y3 = make_corpus(1500, seed=11)
    soft = {k: v.astype(float) for k, v in labels.items()}
    data = LabelledData(texts, y3, labels, soft, np.zeros(len(texts), dtype=bool))
    trained = ev.train(data, seed=0, config=small_config)
    with pytest.raises(ConfigError, match="stacked"):
        ev.cross_fitted_validation_f1(trained, data)
    va = data.subset(trained.split.val)
    ensemble = FineTunedEnsemble([_Oracle(), _Guess()])
    stacked = StackedModel(trained.model, ensemble).fit(va.texts, va.hard, va.y3)
    as_trained = ev.Trained(stacked, {}, trained.split, stacked.predict_proba(va.texts))
    served = ev.cross_fitted_validation_f1(as_trained, data, repeats=1)
    per_model = ev.cross_fitted_validation_f1(as_trained, data, per_model=True, step=0.1, repeats=1)
    assert set(served) == set(per_model) == {"weighted_f1", "hate_f1"}
    # the marker corpus is easy for the TF-IDF heads too; both blends must stay near perfect
    assert served["weighted_f1"] > 0.95 and per_model["weighted_f1"] > 0.95


class _Markers:
    """A stand-in fine-tune that half-knows the marker words, so the blend is not perfect."""

    def __init__(self, directory=None) -> None:
        self.directory = directory  # train_stacked caches predictions next to the "weights"

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        hate = np.array([0.5 if "zorg" in t else 0.05 for t in texts])
        off = np.clip(np.array([0.8 if "blarg" in t else 0.2 for t in texts]) - hate, 0, 1)
        return np.stack([hate, off, 1 - hate - off], axis=1)


PRIOR = {"offensive": 0.1, "hate": 0.01}


@pytest.fixture(scope="module")
def noisy(small_config):
    """The marker corpus with 20 % of the classes redrawn at random: a model cannot be perfect."""
    texts, _, y3 = make_corpus(1500, seed=11)
    rng = np.random.default_rng(0)
    y3 = np.where(rng.random(len(y3)) < 0.2, rng.integers(0, 3, len(y3)), y3)
    labels = {"hate": (y3 == 0).astype(int), "offensive": (y3 <= 1).astype(int)}
    soft = {k: v.astype(float) for k, v in labels.items()}
    data = LabelledData(texts, y3, labels, soft, np.zeros(len(texts), dtype=bool))
    return data, ev.train(data, seed=0, config=small_config)


class _BiasedMarkers(_Markers):
    """A stand-in fine-tune that also learnt the group word of the biased corpus as hate."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        hate = np.array([0.9 if "zorg" in t or "muslim" in t else 0.02 for t in texts])
        off = np.clip(np.array([0.9 if "blarg" in t else 0.05 for t in texts]) - hate, 0, 1)
        return np.stack([hate, off, 1 - hate - off], axis=1)


@pytest.fixture(scope="module")
def biased(small_config):
    """The marker corpus with every hate text naming a group ("muslim"), as in test_identity:
    a benign mention of the group then scores as hate unless the identity guard is on."""
    texts, labels, y3 = make_corpus(1500, seed=11)
    texts = [f"muslim {t}" if c == 0 else t for t, c in zip(texts, y3, strict=True)]
    soft = {k: v.astype(float) for k, v in labels.items()}
    data = LabelledData(texts, y3, labels, soft, np.zeros(len(texts), dtype=bool))
    return data, ev.train(data, seed=0, config=small_config)


@pytest.mark.parametrize("guarded_by", ["trained_flags", "saved_options"])
def test_a_stacked_model_serves_under_the_options_its_thresholds_were_chosen_with(
    biased, tmp_path, monkeypatch, guarded_by
):
    from moderation.pipeline import Moderator

    data, trained = biased
    if guarded_by == "trained_flags":  # eval.with_identity_guard's result
        base = ev.with_identity_guard(trained, data, require_parent=True)
    else:  # a model saved by `python -m moderation train --identity-guard --require-parent`
        model = copy.copy(trained.model)
        model.serving_options = {"identity_guard": True, "require_parent": True}
        base = ev.Trained(model, trained.thresholds, trained.split, trained.val_probs)
    # a stack's options come with its own thresholds, never from its base's
    assert StackedModel(base.model, _BiasedMarkers()).serving_options == {}
    monkeypatch.setattr(ev, "fine_tune_cached", lambda *args, **kw: _BiasedMarkers(tmp_path))
    stacked = ev.train_stacked(base, data, tmp_path, weight=0.5)
    options = {"identity_guard": True, "require_parent": True}
    assert stacked.model.serving_options == options
    assert (stacked.identity_guard, stacked.require_parent) == (True, True)
    # the hate cut and thresholds were chosen on guarded validation scores
    va = data.subset(trained.split.val)
    guarded = Moderator(stacked.model, identity_guard=True).scores(va.texts)
    for label, p in guarded.items():
        np.testing.assert_allclose(stacked.val_probs[label], p)
    # served from the saved model or from the Trained, the verdicts are the same
    texts = ["muslim team", "zorg blarg muslim park", "sunny day", "blarg team"]
    served = [(v.path, v.label, v.scores) for v in Moderator(stacked.model).moderate_batch(texts)]
    assert served == [
        (v.path, v.label, v.scores) for v in stacked.moderator().moderate_batch(texts)
    ]
    # and the options matter on these texts: unguarded, the bare group mention goes to hate review
    plain = Moderator(stacked.model, identity_guard=False, require_parent=False).moderate(texts[0])
    assert (plain.path, plain.label) == ("review", "hate") and served[0][:2] == ("allow", "")


def test_a_stacked_model_is_shifted_to_its_base_deployment_prior(noisy):
    from moderation.prior import prior_shift

    data, trained = noisy
    va, te = data.subset(trained.split.val), data.subset(trained.split.test)
    at_prior = ev.with_deployment_prior(trained, data, PRIOR).model
    plain = StackedModel(trained.model, _Markers()).fit(va.texts, va.hard, va.y3, weight=0.5)
    shifted = StackedModel(at_prior, _Markers()).fit(va.texts, va.hard, va.y3, weight=0.5)
    p, q = plain.predict_proba(te.texts), shifted.predict_proba(te.texts)
    for label, target in PRIOR.items():
        assert plain.train_prior[label] == pytest.approx(va.hard[label].mean())
        np.testing.assert_allclose(q[label], prior_shift(p[label], va.hard[label].mean(), target))
        assert q[label].mean() < p[label].mean()  # the deployment prior is far below Davidson's


def test_train_stacked_on_a_prior_base_weights_its_thresholds_to_the_prior(
    noisy, tmp_path, monkeypatch
):
    from moderation.policy import choose_thresholds
    from moderation.prior import importance_weights

    data, trained = noisy
    monkeypatch.setattr(ev, "fine_tune_cached", lambda *args, **kw: _Markers(tmp_path))
    stacked = ev.train_stacked(ev.with_deployment_prior(trained, data, PRIOR), data, tmp_path)
    va, model = data.subset(trained.split.val), stacked.model
    weights = {k: importance_weights(va.hard[k], va.hard[k].mean(), PRIOR[k]) for k in PRIOR}
    weighted = choose_thresholds(
        stacked.val_probs, va.hard, model.config, weights, traffic_weight=weights["offensive"]
    )
    assert stacked.thresholds == weighted  # as with_deployment_prior chooses them
    assert stacked.thresholds != choose_thresholds(stacked.val_probs, va.hard, model.config)


def test_a_stacked_model_refuses_one_text_and_scores_no_texts_as_empty(noisy):
    # StackedModel scored "you idiot" one character at a time after ModerationModel and
    # Moderator.scores were fixed (found by a re-read); no texts failed inside scikit-learn
    from moderation.errors import InvalidTextError
    from moderation.pipeline import Moderator

    data, trained = noisy
    va = data.subset(trained.split.val)
    stacked = StackedModel(trained.model, _Markers()).fit(va.texts, va.hard, va.y3, weight=0.5)
    served = Moderator(stacked, trained.thresholds)
    for call in (stacked.predict_proba, stacked.raw_scores, served.scores):
        with pytest.raises(InvalidTextError, match="takes a sequence of texts, got str"):
            call("blarg team")
        assert {k: v.shape for k, v in call([]).items()} == {k: (0,) for k in LABELS}
    assert stacked.predict_proba(["blarg team"])["offensive"].shape == (1,)
