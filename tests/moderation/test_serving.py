from dataclasses import replace

import numpy as np
import pytest

from moderation.classifier import ModerationModel
from moderation.serving import CompiledScorer

from .conftest import make_corpus

TEXTS = [
    "zorg blarg walk park",
    "sunny day walk park",
    "Z0RG  b l a r g!!! coffee",
    "never seen words only",
    "",
    "blarg blarg blarg zorg",
]


@pytest.mark.parametrize("calibration", ["isotonic", "sigmoid", "none"])
def test_compiled_scorer_matches_scikit_learn(small_config, calibration):
    config = replace(small_config, calibration=calibration)
    texts, labels, _ = make_corpus(300, seed=4)
    val_texts, val_labels, _ = make_corpus(150, seed=5)
    model = ModerationModel(config).fit(
        texts, {k: v.astype(float) for k, v in labels.items()}, val_texts, val_labels
    )
    scorer = CompiledScorer(model)
    reference = model.predict_proba(TEXTS)
    for i, text in enumerate(TEXTS):
        fast = scorer.scores(text)
        for label in ("hate", "offensive"):
            assert fast[label] == pytest.approx(reference[label][i], abs=1e-9)


def test_flat_model_without_normaliser_also_matches(small_config):
    config = replace(small_config, parents={}, normalise=False)
    texts, labels, _ = make_corpus(300, seed=6)
    model = ModerationModel(config).fit(
        texts, {k: v.astype(float) for k, v in labels.items()}, texts[:100],
        {k: v[:100] for k, v in labels.items()},
    )  # fmt: skip
    scorer = CompiledScorer(model)
    reference = model.predict_proba(TEXTS)
    got = np.array([scorer.scores(t)["hate"] for t in TEXTS])
    np.testing.assert_allclose(got, reference["hate"], atol=1e-9)
