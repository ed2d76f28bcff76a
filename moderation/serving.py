"""A compiled scorer for the synchronous path: one text in, calibrated probabilities out, fast.

Profiling ``moderate()`` showed that almost all of a single-text call went to scikit-learn's
per-call input validation (``check_array``, dataframe detection) around work that is tiny for one
tweet: a few dozen n-gram look-ups and two dot products. :class:`CompiledScorer` reads the fitted
parameters out of a :class:`~moderation.classifier.ModerationModel` once and then computes, for
one text, exactly what scikit-learn computes::

    tf-idf block b:  w_j = (1 + log(count_j)) * idf_j,   w = w / ||w||_2   (per vectoriser)
    head h:          p_h = sigmoid(w . coef_h + intercept_h)
    child c < p:     p_c = p_p * p_c|p                    (the label hierarchy)
    calibrated:      isotonic = linear interpolation between the fitted steps, clipped;
                     sigmoid  = sigmoid(a * logit(p) + b)

The parity test (``tests/moderation/test_serving.py``) checks it against the scikit-learn path to
1e-9. It covers TF-IDF features only; a model with an embedding block falls back to the model's
own ``predict_proba`` (the encoder dominates that latency anyway).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from moderation.calibration import IdentityCalibrator, IsotonicCalibrator, SigmoidCalibrator
from moderation.classifier import ModerationModel
from moderation.normalise import normalise

__all__ = ["CompiledScorer"]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class CompiledScorer:
    """Single-text scoring with the fitted parameters of ``model`` (no scikit-learn calls)."""

    def __init__(self, model: ModerationModel) -> None:
        self.model = model
        self.compiled = (
            isinstance(model, ModerationModel)  # not a StackedModel (its encoder is the cost)
            and model.features.uses_tfidf
            and "embedding" not in model.config.features
        )
        if not self.compiled:
            return
        feats = model.features
        self.blocks = []
        offset = 0
        for vectoriser in (feats.word, feats.char):
            self.blocks.append(
                (vectoriser.build_analyzer(), vectoriser.vocabulary_, vectoriser.idf_, offset)
            )
            offset += len(vectoriser.vocabulary_)
        self.coef = {k: (h.coef_.ravel(), float(h.intercept_[0])) for k, h in model.heads.items()}
        self.parents = {c: p for c, p in model.config.parents.items() if c in self.coef}
        self.calibrators = {k: self._calibrator(c) for k, c in model.calibrators.items()}

    @staticmethod
    def _calibrator(cal: object):
        if isinstance(cal, IsotonicCalibrator):
            iso = cal._model
            xs, ys = iso.X_thresholds_, iso.y_thresholds_
            return lambda p: float(np.interp(p, xs, ys))
        if isinstance(cal, SigmoidCalibrator):
            a, b = float(cal._model.coef_[0, 0]), float(cal._model.intercept_[0])

            def platt(p: float) -> float:
                p = min(max(p, 1e-6), 1 - 1e-6)
                return _sigmoid(a * math.log(p / (1 - p)) + b)

            return platt
        if isinstance(cal, IdentityCalibrator):
            return lambda p: min(max(p, 0.0), 1.0)
        return lambda p: float(cal.transform(np.array([p]))[0])

    def scores(self, text: str, *, normalised: bool = False) -> dict[str, float]:
        """Calibrated probability per label for one text (``normalised``: already canonical)."""
        if not self.compiled:  # pass the flag on: normalising twice changes text (h.4.t.e)
            probs = self.model.predict_proba([text], prepared=normalised)
            return {k: float(v[0]) for k, v in probs.items()}
        if self.model.config.normalise and not normalised:
            text = normalise(text)
        columns, values = [], []
        for analyzer, vocabulary, idf, offset in self.blocks:
            counts = Counter(j for tok in analyzer(text) if (j := vocabulary.get(tok)) is not None)
            if not counts:
                continue
            j = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=float, count=len(counts))
            w = (1.0 + np.log(tf)) * idf[j]  # sublinear tf times idf
            columns.append(j + offset)
            values.append(w / np.sqrt(w @ w))
        if columns:
            cols, vals = np.concatenate(columns), np.concatenate(values)
        else:
            cols, vals = np.zeros(0, dtype=np.int64), np.zeros(0)
        raw = {k: _sigmoid(float(vals @ coef[cols]) + b) for k, (coef, b) in self.coef.items()}
        for child, parent in self.parents.items():
            raw[child] *= raw[parent]
        calibrated = {k: self.calibrators[k](p) for k, p in raw.items()}
        shift = self.model.shift_prior
        return {k: float(shift(k, np.array([p]))[0]) for k, p in calibrated.items()}
