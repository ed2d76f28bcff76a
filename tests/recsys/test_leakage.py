"""No test interaction ever reaches training, the sources, or the features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys import recommender
from recsys.config import RecsysConfig
from recsys.errors import InvalidArgumentError
from recsys.recommender import TwoStageRecommender
from recsys.splits import make_split
from tests.recsys.conftest import GENRES

TINY = dict(
    candidates_per_source=6,
    ranker_estimators=20,
    ranker_min_child_samples=3,
    negatives_per_user=None,
    als_factors=2,
    embedding_dim=2,
    knn_neighbours=10,
    ease_l2=10.0,
)


@pytest.mark.parametrize("protocol", ["stratified", "temporal"])
def test_model_and_features_only_see_training_rows(frames, catalog, protocol, monkeypatch):
    ratings = frames[0]
    split = make_split(ratings, protocol, seed=0)
    # Note what fit carves for the ranker and the labels it hands to label_candidates.
    carves: list = []
    labelled: list = []
    carve, label = recommender.validation_split, recommender.label_candidates

    def recording_carve(*args, **kwargs):
        carves.append(carve(*args, **kwargs))
        return carves[-1]

    def recording_label(cands, truth, *args, **kwargs):
        labelled.extend((u, i) for u, held in truth.items() for i in held)
        return label(cands, truth, *args, **kwargs)

    monkeypatch.setattr(recommender, "validation_split", recording_carve)
    monkeypatch.setattr(recommender, "label_candidates", recording_label)
    model = TwoStageRecommender(catalog, RecsysConfig(protocol=protocol, seed=0, **TINY))
    model.fit(split.train)
    x = model.interactions_
    test_u = catalog.user_index(split.test["user_id"])
    test_i = catalog.item_index(split.test["item_id"])
    assert np.asarray(x[test_u, test_i]).ravel().sum() == 0
    assert x.nnz == len(split.train)

    # Feature statistics are computed from the training rows alone.
    builder = model.features_
    np.testing.assert_array_equal(
        builder.item_count_, np.bincount(catalog.item_index(split.train["item_id"]), minlength=20)
    )
    assert builder.end_ts_ == split.train["timestamp"].max()
    if protocol == "temporal":  # nothing from after the cut, not even a timestamp
        assert builder.user_last_ts_[np.isfinite(builder.user_last_ts_)].max() < (
            split.test["timestamp"].min()
        )

    # The ranker's validation carves were taken inside train: the rows its candidates were
    # generated from and the labels it learnt never include a test interaction.
    def pairs(frame):
        users, items = catalog.user_index(frame["user_id"]), catalog.item_index(frame["item_id"])
        return set(zip(users.tolist(), items.tolist(), strict=True))

    test_pairs, train_pairs = pairs(split.test), pairs(split.train)
    assert carves and labelled and model.ranker_stats_["train_pairs"] > 0
    for part in carves:
        assert pairs(part.train) | pairs(part.test) <= train_pairs
    assert set(labelled) <= train_pairs and not set(labelled) & test_pairs


def test_feature_names_match_columns(frames, catalog):
    ratings = frames[0]
    model = TwoStageRecommender(catalog, RecsysConfig(seed=0, **TINY)).fit(ratings)
    cands = model.candidates(np.array([0, 1]))
    feats = model.features_.transform(cands)
    assert feats.shape[1] == len(model.features_.feature_names(cands.source_names))
    assert np.isfinite(feats[:, :10]).all()
    assert GENRES[1] in catalog.genre_names


def test_validation_comparison_never_sees_the_test_split(frames, catalog, monkeypatch):
    from recsys import eval as recsys_eval

    ratings = frames[0]
    seen: list = []
    real = recsys_eval.evaluate_split

    def recording(split, *args, **kwargs):  # the real evaluation, with its inputs noted
        seen.append(split)
        return real(split, *args, **kwargs)

    monkeypatch.setattr(recsys_eval, "evaluate_split", recording)
    configs = {"tiny": RecsysConfig(seed=0, **TINY), "no_ease": RecsysConfig(
        seed=0, **TINY, sources=("popularity", "item_knn"), blend_sources=("item_knn",)
    )}  # fmt: skip
    scores = recsys_eval.validation_comparison(ratings, catalog, configs, seeds=(3, 4), carves=2)
    assert {k: v.shape for k, v in scores.items()} == {"tiny": (2, 2), "no_ease": (2, 2)}
    assert all(0.0 <= x <= 1.0 for v in scores.values() for x in v.ravel())
    assert len(seen) == 8  # 2 seeds x 2 carves x 2 configs
    for i, seed in enumerate((3, 4)):
        test = make_split(ratings, "stratified", seed=seed).test
        held_out = set(zip(test["user_id"], test["item_id"], strict=True))
        for carve in seen[4 * i : 4 * i + 4]:
            rows = pd.concat([carve.train, carve.test])
            assert not held_out & set(zip(rows["user_id"], rows["item_id"], strict=True))
    with pytest.raises(InvalidArgumentError, match="one protocol"):
        recsys_eval.validation_comparison(
            ratings, catalog, {"a": configs["tiny"], "b": RecsysConfig(protocol="temporal")}
        )
