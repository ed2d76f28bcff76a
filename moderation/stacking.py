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

:class:`StackedModel` has the surface :class:`~moderation.pipeline.Moderator` and ``eval`` use
(``labels``, ``config``, ``raw_scores``, ``calibrate``, ``predict_proba``, ``hate_threshold``,
``thresholds``), so the same policy, routing, batch path and measurements apply to it unchanged.
It is a **batch-path** model: the encoder costs tens of milliseconds per tweet on this CPU, well
past the synchronous path's 10 ms budget (measured in the benchmark's ``speed`` table).
"""

from __future__ import annotations

import copy

import numpy as np

from evals.classification import classification_report
from moderation import calibration
from moderation.classifier import ModerationModel, three_class, tune_hate_threshold
from moderation.finetune import (
    CachedPredictions,
    FineTunedClassifier,
    FineTunedEnsemble,
    uncached,
)
from moderation.labels import LABELS, LabelledData

__all__ = ["StackedModel", "finetune_scores", "soft_three_class", "stack_weight"]

_EPS = 1e-6
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)


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
    z = (1 - w) * _logit(p_tfidf) + w * _logit(p_ft)
    return 1.0 / (1.0 + np.exp(-z))


def _calibrated(
    raw: dict[str, np.ndarray],
    ft: dict[str, np.ndarray],
    w: float,
    y: dict[str, np.ndarray],
    kind: str,
) -> tuple[dict[str, np.ndarray], dict[str, calibration.Calibrator]]:
    cals = {k: calibration.make(kind).fit(_blend(raw[k], ft[k], w), y[k]) for k in LABELS}
    return {k: cals[k].transform(_blend(raw[k], ft[k], w)) for k in LABELS}, cals


def stack_weight(
    raw_tfidf: dict[str, np.ndarray],
    raw_ft: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    y3: np.ndarray,
    calibration_kind: str = "isotonic",
) -> float:
    """The grid weight with the best validation 3-class weighted F1 (ties: the smaller weight)."""
    scores = []
    for w in WEIGHT_GRID:
        p, _ = _calibrated(raw_tfidf, raw_ft, float(w), y, calibration_kind)
        cut = tune_hate_threshold(p["hate"], p["offensive"], y3)
        pred = three_class(p["hate"], p["offensive"], cut)
        scores.append(classification_report(y3, pred, labels=[0, 1, 2])["weighted"]["f1"])
    return float(WEIGHT_GRID[int(np.argmax(scores))])


class StackedModel:
    """A fitted :class:`ModerationModel` and a fine-tuned MiniLM or ensemble, blended per label."""

    def __init__(
        self,
        base: ModerationModel,
        transformer: FineTunedClassifier | FineTunedEnsemble | CachedPredictions,
    ) -> None:
        self.base = base
        self.transformer = transformer
        self.config = base.config
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
        kind = self.config.calibration
        w = stack_weight(raw, ft, labels, val_y3, kind) if weight is None else float(weight)
        self.weights = dict.fromkeys(LABELS, w)
        _, self.calibrators = _calibrated(raw, ft, w, labels, kind)
        return self

    def serving(self) -> StackedModel:
        """The same fitted model without the evaluation-only prediction cache."""
        model = copy.copy(self)
        model.transformer = uncached(self.transformer)
        return model

    def raw_scores(self, texts: list[str], *, prepared: bool = False) -> dict[str, np.ndarray]:
        raw, ft = self._parts(texts, prepared)
        return {k: _blend(raw[k], ft[k], self.weights[k]) for k in LABELS}

    def calibrate(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {label: self.calibrators[label].transform(s) for label, s in raw.items()}

    def predict_proba(self, texts: list[str], *, prepared: bool = False) -> dict[str, np.ndarray]:
        return self.calibrate(self.raw_scores(texts, prepared=prepared))
