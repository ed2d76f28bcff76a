"""check_interactions: the ratings a retrain adds to the dataset's, refused row by row when bad."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import InvalidArgumentError
from recsys.interactions import check_interactions
from recsys.recommender import TwoStageRecommender
from tests.recsys.test_leakage import TINY

GOOD = {"user_id": [1, 2], "item_id": [15, 16], "rating": [4, 5], "timestamp": [900, 950]}


def _frame(**changes) -> pd.DataFrame:
    return pd.DataFrame({**GOOD, **changes})


def test_good_rows_come_back_with_the_known_ratings_types(frames, catalog):
    ratings, _, _ = frames
    extra = _frame(rating=[4.0, 5.0], timestamp=[900.0, 950.0]).assign(note="kept out")
    before = extra.copy()
    checked = check_interactions(extra, catalog, ratings)
    assert list(checked.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert checked.dtypes.to_dict() == ratings.dtypes.to_dict()
    assert checked.to_dict("list") == GOOD
    pd.testing.assert_frame_equal(extra, before)  # the caller's frame is not modified


@pytest.mark.parametrize(
    "extra, message",
    [
        (_frame().drop(columns="timestamp"), "lack the column(s) ['timestamp']"),
        (_frame().iloc[:0], "hold no rows"),
        (_frame(user_id=[1, "x"]), "user ids are whole numbers in this catalogue, got 'x'"),
        (_frame(user_id=[1.0, 2.0]), "user ids are whole numbers"),
        (_frame(item_id=[True, 16]), "item ids are whole numbers"),
        (_frame(user_id=[1, 999]), "users not in the catalogue: 999; it has 40 users"),
        (_frame(item_id=[15, 501]), "items not in the catalogue: 501; it has 20 items. Add"),
        (_frame(rating=[4, 6]), "1 rating(s) off the known ratings' scale (whole numbers from"),
        (_frame(rating=[4, 4.5]), "such as 4.5"),
        (_frame(rating=[4, np.nan]), "such as nan"),
        (_frame(rating=[4, "good"]), "off the known ratings' scale"),
        (_frame(timestamp=[900, 1.7e12]), "looks like milliseconds"),
        (_frame(user_id=[1, 1], item_id=[15, 15]), "repeated in the interactions: (1, 15)"),
    ],
)
def test_bad_rows_are_refused_naming_them(frames, catalog, extra, message):
    ratings, _, _ = frames
    with pytest.raises(InvalidArgumentError) as info:
        check_interactions(extra, catalog, ratings)
    assert message in str(info.value)


def test_a_pair_the_known_ratings_hold_is_refused(frames, catalog):
    ratings, _, _ = frames
    user, item = ratings.iloc[0][["user_id", "item_id"]]
    with pytest.raises(InvalidArgumentError, match=rf"already rated .*\({user}, {item}\)"):
        check_interactions(_frame(user_id=[user, 2], item_id=[item, 16]), catalog, ratings)


def test_not_a_frame_is_refused(frames, catalog):
    with pytest.raises(InvalidArgumentError, match="must be a pandas DataFrame, got dict"):
        check_interactions(GOOD, catalog, frames[0])


def test_a_catalogue_item_without_ratings_is_warm_after_a_fit_on_its_new_ones(frames, catalog):
    # the checkerboard's users 1-20 see items 1-10; item 10 loses every rating (a new item),
    # then users 1-10 rate it in new interactions: warm again, it is proposed by the sources to
    # users 11-20 and ranked among their unseen block items, not placed in a new-item slot
    from recsys.config import RecsysConfig

    ratings, _, _ = frames
    without = ratings[ratings["item_id"] != 10]
    config = RecsysConfig(seed=0, **TINY)
    cold = TwoStageRecommender(catalog, config).fit(without)
    assert 10 in catalog.item_ids[cold.new_items_]
    extra = pd.DataFrame(
        {"user_id": range(1, 11), "item_id": 10, "rating": 4, "timestamp": 10**6 + np.arange(10)}
    )
    both = pd.concat([without, check_interactions(extra, catalog, without)], ignore_index=True)
    warm = TwoStageRecommender(catalog, config).fit(both)
    assert 10 not in catalog.item_ids[warm.new_items_]
    for user in range(11, 21):
        unseen = set(range(1, 11)) - set(without.loc[without["user_id"] == user, "item_id"])
        rec = warm.recommend(user, k=len(unseen))
        assert set(rec.items) == unseen  # item 10 among them: every unseen item of the block
        assert rec.sources[rec.items.index(10)] != "new_item"
