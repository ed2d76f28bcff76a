"""Per-protocol settings: each protocol runs with what its own validation carve chose."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from recsys.config import PROTOCOL_SETTINGS, RecsysConfig
from recsys.errors import InvalidArgumentError


def test_the_dataclass_defaults_are_the_stratified_settings():
    config = RecsysConfig()
    assert config.protocol == "stratified"
    assert config.with_protocol("stratified") == config
    for name, value in PROTOCOL_SETTINGS["stratified"].items():
        assert getattr(config, name) == value


def test_switching_protocol_applies_and_restores_its_settings():
    base = replace(RecsysConfig(), seed=7, k=5)
    temporal = base.with_protocol("temporal")
    assert temporal.protocol == "temporal"
    als = {
        name: getattr(temporal, name) for name in ("als_factors", "als_regularization", "als_alpha")
    }
    assert als == {"als_factors": 16, "als_regularization": 0.01, "als_alpha": 1.0}
    assert "multvae" in base.sources and "multvae" not in temporal.sources
    assert (base.ranker_bags, temporal.ranker_bags) == (3, 1)  # round 15: bagging is stratified
    assert (temporal.seed, temporal.k, temporal.ease_l2) == (7, 5, base.ease_l2)  # the rest kept
    assert temporal.with_protocol("stratified") == base


def test_an_unknown_protocol_is_still_rejected():
    with pytest.raises(InvalidArgumentError, match="protocol must be"):
        RecsysConfig().with_protocol("random")


def test_ranker_labels_are_validated_and_default_to_binary():
    assert RecsysConfig().ranker_labels == "binary"  # round 19: graded labels were not adopted
    assert RecsysConfig(ranker_labels="rating").ranker_labels == "rating"
    with pytest.raises(InvalidArgumentError, match=r"ranker_labels must be one of \['binary'"):
        RecsysConfig(ranker_labels="stars")


def test_a_config_pickled_before_ranker_labels_reads_binary():
    # A model saved before the field existed unpickles a config without it in its __dict__;
    # the dataclass default on the class answers for it.
    config = RecsysConfig()
    state = pickle.loads(pickle.dumps(config)).__dict__
    del state["ranker_labels"]
    old = RecsysConfig.__new__(RecsysConfig)
    old.__dict__.update(state)
    assert old.ranker_labels == "binary"
    assert old.to_dict()["ranker_labels"] == "binary"


NAN, INF = float("nan"), float("inf")

# Every count: 0 (or its floor minus one), a fraction and a bool are refused. A fraction or True
# used to pass `v >= 1` and fail minutes later in numpy, faiss or LightGBM (found by a review).
COUNTS = {
    "seed": 0,
    "candidates_per_source": 1,
    "k": 1,
    "ranker_bags": 1,
    "validation_folds": 1,
    "knn_neighbours": 1,
    "rp3_neighbours": 1,
    "user_knn_neighbours": 1,
    "als_factors": 1,
    "als_iterations": 1,
    "vae_hidden": 1,
    "vae_latent": 1,
    "vae_epochs": 1,
    "bpr_factors": 1,
    "bpr_epochs": 1,
    "embedding_dim": 1,
    "ranker_estimators": 1,
    "ranker_leaves": 2,
    "ranker_min_child_samples": 0,
    "ranker_truncation": 1,
    "negatives_per_user": 1,
    "new_item_slots": 0,
}
# Each real setting with values outside its range (NaN is outside every range).
REALS = {
    "train_ratio": (0.0, 1.0, NAN),
    "blend_weight": (-1.0, INF, NAN),
    "cold_shrinkage": (-5.0, NAN),
    "ease_l2": (0.0, -10.0, INF, NAN),
    "dlae_dropout": (1.0, -0.1, NAN),
    "dlae_l2": (-1.0, NAN),
    "rp3_alpha": (0.0, -0.5, INF, NAN),
    "rp3_beta": (-0.1, INF, NAN),
    "user_knn_shrink": (-1.0, NAN),
    "knn_shrink": (-50.0, INF, NAN),
    "als_regularization": (-1.0, INF, NAN),
    "als_alpha": (0.0, -1.0, INF, NAN),
    "vae_beta": (-0.5, NAN),
    "bpr_l2": (-1e-3, NAN),
    "ranker_learning_rate": (0.0, -0.05, INF, NAN),
    "mmr_lambda": (-0.1, 1.5, NAN),
}
BAD = [
    *((field, bad) for field, low in COUNTS.items() for bad in (low - 1, low + 1.5, True, "3")),
    *((field, bad) for field, values in REALS.items() for bad in (*values, True, "0.5")),
    ("seed", 2**31),  # fit adds carve offsets; 2**32 - 1 failed after 55 s of fit (review)
    ("seed", 2**32),
    ("ranker_objective", "lambdaMART"),
    ("ranker_objective", "lambda_rank"),
    ("ranker_monotone", 1),
    ("ranker_blend_features", "no"),
]


@pytest.mark.parametrize("field, bad", BAD)
def test_out_of_range_settings_are_refused_naming_the_field_and_range(field, bad):
    # Each of these used to train silently on nonsense, or fail minutes later inside numpy,
    # faiss or LightGBM once stage 1 had trained, as a ValueError or TypeError.
    with pytest.raises(InvalidArgumentError, match=rf"^{field} must be .+, got {bad!r}"):
        RecsysConfig(**{field: bad})


def test_the_lowest_value_of_every_count_is_valid():
    RecsysConfig(**COUNTS)
    RecsysConfig(seed=2**31 - 1)  # and the highest seed
    RecsysConfig(**{field: np.int64(low) for field, low in COUNTS.items()})


def test_every_default_and_every_meaningful_none_is_valid():
    for protocol in PROTOCOL_SETTINGS:
        RecsysConfig().with_protocol(protocol)
    RecsysConfig(cold_shrinkage=None, rp3_neighbours=None, negatives_per_user=None)
    # The edges of each range: no blend (ranker alone), plain global popularity, one of each.
    RecsysConfig(blend_weight=0.0, cold_shrinkage=float("inf"), seed=0, validation_folds=1)
    RecsysConfig(knn_neighbours=1, rp3_neighbours=1, negatives_per_user=1, ranker_leaves=2)
    RecsysConfig(dlae_dropout=0.0, dlae_l2=0.0, candidates_per_source=1, k=1, ranker_bags=1)
    RecsysConfig(knn_shrink=0.0, rp3_beta=0.0, als_regularization=0.0, vae_beta=0.0, bpr_l2=0.0)
    RecsysConfig(ranker_objective="lambdarank", mmr_lambda=1.0, ranker_min_child_samples=0)
