"""ModerationConfig refuses settings out of range, NaN included (every comparison with NaN is
false, so a check written as ``x <= 0`` lets it through)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from moderation.config import ModerationConfig
from moderation.errors import ConfigError
from moderation.labels import stratified_split

NAN = math.nan


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_chars", NAN),
        ("max_chars", 0),
        ("max_chars", 2.5),
        ("max_chars", True),
        ("lease_seconds", NAN),
        ("lease_seconds", 0),
        ("lease_seconds", math.inf),  # found by a review: it locked a claimed item forever
        ("lease_seconds", 86_401.0),
        ("C", NAN),
        ("C", 0),
        ("child_C", NAN),
        ("auto_confidence_z", NAN),
        ("auto_confidence_z", -1.0),
        ("auto_confidence_z", math.inf),
        ("min_auto_support", -5),
        ("min_auto_support", 2.5),
        ("target_precision", NAN),
        # found by a review: each of these was accepted and failed only at fit, inside
        # scikit-learn, or (target_precision="0.9") as a bare TypeError at construction
        ("word_ngrams", (2, 1)),
        ("word_ngrams", (0, 2)),
        ("word_ngrams", (1, 2, 3)),
        ("word_ngrams", [1, 2]),  # scikit-learn's ngram_range takes only a tuple
        ("char_ngrams", (2.0, 5)),
        ("char_ngrams", "2-5"),
        ("min_df", 0),
        ("min_df", 0.5),
        ("max_features", 0),
        ("max_features", None),
        ("C", math.inf),  # no regularisation: liblinear refuses it
        ("child_C", math.inf),
        ("child_C", 0),
        ("C", "4"),
        ("embedding_weight", NAN),
        ("embedding_weight", -1.0),
        ("embedding_weight", math.inf),
        ("severity", {"hate": NAN}),
        ("severity", {"hate": -1.0}),
        ("severity", {"hate": "high"}),
        ("severity", [("hate", 1.0)]),
        ("normalise", "yes"),
        ("normalise", 1),
        ("soft_labels", None),
        ("target_precision", "0.9"),
        ("target_recall", True),
        ("auto_confidence_z", "1.645"),
        ("lease_seconds", "300"),
        ("deployment_prior", {"hate": "0.01"}),
        # numpy and scikit-learn take seeds in [0, 2**32 - 1]; the split failed with a traceback
        ("seed", -1),
        ("seed", 2**32),
        ("seed", 1.5),
        ("seed", True),
        ("seed", "0"),
    ],
)
def test_a_setting_out_of_range_is_refused_and_named(setting, value):
    with pytest.raises(ConfigError, match=re.escape(setting)):
        ModerationConfig(**{setting: value})


def test_a_bad_seed_is_refused_with_the_valid_range():
    with pytest.raises(ConfigError, match=r"seed must be a whole number from 0 to 4294967295"):
        ModerationConfig(seed=-1)
    with pytest.raises(ConfigError, match="seed must be"):  # train() takes a seed on its own
        stratified_split(np.array([0, 1] * 10), seed=2**32)


def test_the_defaults_and_the_edges_of_each_range_are_accepted():
    ModerationConfig()
    ModerationConfig(max_chars=1, lease_seconds=0.5, C=1e-3, auto_confidence_z=0.0)
    ModerationConfig(min_auto_support=0)  # no minimum: any one item may back an auto cut
    ModerationConfig(word_ngrams=(1, 1), char_ngrams=(3, 3), min_df=1, max_features=1)
    ModerationConfig(embedding_weight=0.0, severity={"hate": 0.0}, seed=2**32 - 1)
    ModerationConfig(C=np.float64(2.0), seed=np.int64(7), normalise=False, soft_labels=False)
