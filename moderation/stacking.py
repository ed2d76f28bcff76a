"""Stacking the TF-IDF heads with a fine-tuned MiniLM: one log-odds average per label.

The two models make different mistakes: word and character n-grams see the exact slur, the
fine-tuned encoder sees how the words around it are used. Per label, their scores are averaged in
log-odds space with one weight ``w`` chosen on the **validation** split, then recalibrated there::

    z_label = (1 - w) · logit(p_tfidf) + w · logit(p_finetuned)
    p_label = isotonic(sigmoid(z_label))                 fitted on validation, as for every head
    w       = argmax over {0, 0.1, ..., 1} of the validation 3-class weighted F1
              (each candidate calibrated and its hate cut tuned on validation, as served)

``p_tfidf`` is the raw (uncalibrated) head output, ``p_finetuned`` the fine-tuned model's
``p(hate)`` or ``p(hate) + p(offensive)``. The criterion is the paper's headline metric; an
earlier version chose a weight per label by validation PR-AUC, which preferred a 0.6 blend whose
3-class F1 was lower on validation than the fine-tuned model alone (seed 0: 0.906 vs 0.913). A
logistic stacker over both scores would need out-of-fold predictions on the training split, i.e.
fine-tuning k more times; one weight on validation costs nothing and cannot overfit much (11
candidates, ~2,500 items). ``w = 1`` is the fine-tuned model alone, ``w = 0`` the TF-IDF heads.

**Judging a blend on items it never saw.** The weight, the calibrators and the hate cut are all
chosen on validation, so validation F1 flatters whichever blend had more freedom.
:func:`cross_fitted_f1` predicts each validation fold with a blend re-chosen on the other folds
(:func:`fit_blend` over any number of models and a :func:`weight_grid`). Measured with it
(session 17, EXPERIMENTS.md): one weight per model (TF-IDF, MiniLM, SmolLM2) against the served one
weight over the fine-tunes' average: 0.9129 against 0.9120 out-of-fold weighted F1, higher on
one split seed of three, so not adopted.

:class:`StackedModel` has the surface :class:`~moderation.pipeline.Moderator` and ``eval`` use
(``labels``, ``config``, ``raw_scores``, ``calibrate``, ``predict_proba``, ``hate_threshold``,
``thresholds``, ``serving_options``, ``train_prior``), so the same policy, routing, batch path and
measurements apply to it unchanged. A base with a deployment prior (``config.deployment_prior``)
gets its blend shifted to that prior, as the base's own probabilities are (:mod:`moderation.prior`;
the shares are the validation split's, which the blend's calibrators were fitted on).
``serving_options`` (identity guard, parent rule) say how the stack's *own* thresholds were
chosen, so they are set with those thresholds (``eval.train_stacked``), never copied from the
base: the base's thresholds, chosen under its options, do not fit the blend's scores.
It is a **batch-path** model: the encoder costs tens of milliseconds per tweet on this CPU, well
past the synchronous path's 10 ms budget (measured in the benchmark's ``speed`` table).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from evals.classification import classification_report
from moderation import calibration, prior
from moderation.classifier import ModerationModel, text_list, three_class, tune_hate_threshold
from moderation.errors import ConfigError
from moderation.finetune import (
    CachedPredictions,
    FineTunedClassifier,
    FineTunedEnsemble,
    uncached,
)
from moderation.labels import LABELS, LabelledData

__all__ = [
    "PAIR_GRID",
    "WEIGHT_GRID",
    "BlendFit",
    "StackedModel",
    "cross_fitted_f1",
    "finetune_scores",
    "fit_blend",
    "soft_three_class",
    "stack_weight",
    "weight_grid",
]

_EPS = 1e-6
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)
PAIR_GRID = np.stack([1 - WEIGHT_GRID, WEIGHT_GRID], axis=1)  # (tfidf, fine-tuned) weight rows


def soft_three_class(data: LabelledData) -> np.ndarray:
    """``(n, 3)`` vote shares (hate, offensive-not-hate, neither) from the multi-label soft view."""
    hate, offensive = data.soft["hate"], data.soft["offensive"]
    return np.stack([hate, offensive - hate, 1.0 - offensive], axis=1)


def finetune_scores(probs3: np.ndarray) -> dict[str, np.ndarray]:
    """The multi-label view of 3-class probabilities: ``p(hate)``, ``p(hate) + p(offensive)``."""
    return {"hate": probs3[:, 0], "offensive": probs3[:, 0] + probs3[:, 1]}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _blend(p_tfidf: np.ndarray, p_ft: np.ndarray, w: float) -> np.ndarray:
    return _blend_many([p_tfidf, p_ft], (1 - w, w))


def _blend_many(parts: list[np.ndarray], weights) -> np.ndarray:
    """``sigmoid(sum_i w_i · logit(p_i))``: the log-odds average of several models' scores."""
    z = sum(float(w) * _logit(p) for w, p in zip(weights, parts, strict=True))
    return 1.0 / (1.0 + np.exp(-z))


def weight_grid(n_parts: int, step: float) -> np.ndarray:
    """Every weight vector of ``n_parts`` non-negative multiples of ``step`` summing to 1.

    Ordered so the first weight falls fastest: for two parts that is ``(1 - w, w)`` with ``w``
    rising, so a tie goes to the smaller ``w`` as :data:`WEIGHT_GRID` does. ``(n, n_parts)``.
    """
    k = round(1 / step)
    if n_parts < 1 or not np.isclose(k * step, 1.0):
        raise ConfigError(f"need >= 1 part and a step that divides 1; got {n_parts}, {step}")
    rows = [c for c in np.ndindex(*(k + 1,) * (n_parts - 1)) if sum(c) <= k]
    rows.sort(key=lambda c: [sum(c), *reversed(c)])
    return np.array([[k - sum(c), *reversed(c)] for c in rows], dtype=float) / k


@dataclass
class BlendFit:
    """A blend chosen on some items: weights ``(n_parts,)``, per-label calibrators, hate cut."""

    weights: np.ndarray
    calibrators: dict[str, calibration.Calibrator]
    hate_threshold: float

    def predict(self, parts: list[dict[str, np.ndarray]]) -> np.ndarray:
        """3-class predictions (0 hate, 1 offensive, 2 neither) for the parts' items."""
        p = {
            k: self.calibrators[k].transform(_blend_many([q[k] for q in parts], self.weights))
            for k in LABELS
        }
        return three_class(p["hate"], p["offensive"], self.hate_threshold)


def fit_blend(
    parts: list[dict[str, np.ndarray]],
    y: dict[str, np.ndarray],
    y3: np.ndarray,
    grid: np.ndarray,
    calibration_kind: str = "isotonic",
) -> BlendFit:
    """The grid row with the best 3-class weighted F1 on these items, as served.

    Each candidate is calibrated per label and its hate cut tuned for hate F1 on the same
    items, then scored; ties go to the earlier row. ``parts`` are raw per-label scores in
    [0, 1], one dict per model, all over the same items.
    """
    best_f1, best = -1.0, None
    for weights in grid:
        blended = {k: _blend_many([q[k] for q in parts], weights) for k in LABELS}
        cals = {k: calibration.make(calibration_kind).fit(blended[k], y[k]) for k in LABELS}
        p = {k: cals[k].transform(blended[k]) for k in LABELS}
        cut = tune_hate_threshold(p["hate"], p["offensive"], y3)
        pred = three_class(p["hate"], p["offensive"], cut)
        f1 = classification_report(y3, pred, labels=[0, 1, 2])["weighted"]["f1"]
        if f1 > best_f1:
            best_f1, best = f1, BlendFit(np.asarray(weights), cals, cut)
    return best


def stack_weight(
    raw_tfidf: dict[str, np.ndarray],
    raw_ft: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    y3: np.ndarray,
    calibration_kind: str = "isotonic",
) -> float:
    """The grid weight with the best validation 3-class weighted F1 (ties: the smaller weight)."""
    return float(fit_blend([raw_tfidf, raw_ft], y, y3, PAIR_GRID, calibration_kind).weights[1])


def cross_fitted_f1(
    parts: list[dict[str, np.ndarray]],
    y: dict[str, np.ndarray],
    y3: np.ndarray,
    grid: np.ndarray,
    calibration_kind: str = "isotonic",
    folds: int = 5,
    repeats: int = 5,
) -> dict[str, float]:
    """Out-of-fold 3-class F1 of :func:`fit_blend` on one labelled set (e.g. validation).

    The items are cut into ``folds`` folds stratified by ``y3``; each fold is predicted by a blend
    (weights, calibrators and hate cut) fitted on the other folds; F1 is computed over the pooled
    out-of-fold predictions and averaged over ``repeats`` fold seeds (0, 1, ...). Unlike F1 on the
    items the blend was chosen on, this does not favour a larger ``grid``: a 231-row grid and an
    11-row one are compared on items neither saw. Returns ``weighted_f1`` and ``hate_f1``.
    """
    y3 = np.asarray(y3)
    scores = []
    for seed in range(repeats):
        pred = np.empty_like(y3)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for fit_idx, out_idx in splitter.split(y3, y3):
            fit = fit_blend(
                [{k: q[k][fit_idx] for k in LABELS} for q in parts],
                {k: np.asarray(y[k])[fit_idx] for k in LABELS},
                y3[fit_idx],
                grid,
                calibration_kind,
            )
            pred[out_idx] = fit.predict([{k: q[k][out_idx] for k in LABELS} for q in parts])
        report = classification_report(y3, pred, labels=[0, 1, 2])
        scores.append((report["weighted"]["f1"], report["per_class"][0]["f1"]))
    weighted, hate = np.mean(scores, axis=0)
    return {"weighted_f1": float(weighted), "hate_f1": float(hate)}


class StackedModel:
    """A fitted :class:`ModerationModel` and a fine-tuned MiniLM or ensemble, blended per label."""

    def __init__(
        self,
        base: ModerationModel,
        transformer: FineTunedClassifier | FineTunedEnsemble | CachedPredictions,
    ) -> None:
        self.base = base
        self.transformer = transformer
        self.config = base.config  # its deployment_prior included: calibrate() shifts to it
        # the guard and parent rule the thresholds below were chosen under, set with them (as on
        # ModerationModel); Moderator(model) serves with them
        self.serving_options: dict[str, bool] = {}
        self.train_prior: dict[str, float] = {}  # positive share the calibrators were fitted on
        self.weights: dict[str, float] = {}
        self.calibrators: dict[str, calibration.Calibrator] = {}
        self.hate_threshold = 0.5
        self.thresholds: dict = {}

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.base.labels if label in LABELS)

    def prepare(self, texts: list[str]) -> list[str]:
        return self.base.prepare(texts)

    def _parts(self, texts: list[str], prepared: bool) -> tuple[dict, dict]:
        canonical = list(texts) if prepared else self.base.prepare(list(texts))
        raw = self.base.raw_scores(canonical, prepared=True)
        raw = {k: raw[k] for k in LABELS}
        return raw, finetune_scores(self.transformer.predict_proba(canonical))

    def fit(
        self,
        val_texts: list[str],
        val_labels: dict[str, np.ndarray],
        val_y3: np.ndarray,
        weight: float | None = None,
    ) -> StackedModel:
        """Choose the blend weight (unless given) and fit the calibrators, both on validation.

        ``weight=1.0`` serves the fine-tuned model alone.
        """
        raw, ft = self._parts(val_texts, prepared=False)
        labels = {k: val_labels[k] for k in LABELS}
        grid = PAIR_GRID if weight is None else np.array([[1 - float(weight), float(weight)]])
        fit = fit_blend([raw, ft], labels, val_y3, grid, self.config.calibration)
        self.weights = dict.fromkeys(LABELS, float(fit.weights[1]))
        self.calibrators = fit.calibrators
        self.train_prior = {k: float(np.mean(np.asarray(labels[k], dtype=float))) for k in LABELS}
        return self

    def serving(self) -> StackedModel:
        """The same fitted model without the evaluation-only prediction cache."""
        model = copy.copy(self)
        model.transformer = uncached(self.transformer)
        return model

    def raw_scores(self, texts: list[str], *, prepared: bool = False) -> dict[str, np.ndarray]:
        """As :meth:`ModerationModel.raw_scores`: one ``str`` is refused, no texts give ``(0,)``."""
        texts = text_list(texts, "StackedModel.raw_scores")
        if not texts:  # the base model's heads and the fine-tune would each refuse 0 rows
            return {k: np.zeros(0) for k in LABELS}
        raw, ft = self._parts(texts, prepared)
        return {k: _blend(raw[k], ft[k], self.weights[k]) for k in LABELS}

    def calibrate(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calibrated probabilities, shifted to ``config.deployment_prior`` when one is set."""
        return prior.calibrate_at_prior(
            self.calibrators, raw, self.train_prior, self.config.deployment_prior
        )

    def predict_proba(self, texts: list[str], *, prepared: bool = False) -> dict[str, np.ndarray]:
        texts = text_list(texts, "StackedModel.predict_proba")
        if not texts:
            return {k: np.zeros(0) for k in LABELS}
        return self.calibrate(self.raw_scores(texts, prepared=prepared))
