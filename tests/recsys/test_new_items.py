"""New items: the last places of a list given to items no training interaction reached.

The data is the checkerboard of conftest.py, made symmetric so the answer is known: each block's
users rate its items 1..9 (or 11..19) in a cycle, so both genres are equally popular and only
content separates the two new items, 10 (Action, the 1990s) and 20 (Drama, the 1970s). An
Action fan's new-item slot must hold 10, a Drama fan's 20.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recsys import InvalidArgumentError, Recommender, RecsysConfig
from recsys.eval import evaluate_split, new_item_slots
from recsys.recommender import COLD_START_SOURCE, NEW_ITEM_SOURCE, slot_new_items
from recsys.splits import Split
from tests.recsys.conftest import N_USERS, block_of_item, block_of_user
from tests.recsys.test_leakage import TINY

NEW_ACTION, NEW_DRAMA = 10, 20
RATED_NEW = (1, 2, 3, 21, 22, 23)  # the users whose test ratings are their block's new item


def symmetric_ratings() -> pd.DataFrame:
    """19 users a block rate 6 of its 9 warm items in a cycle; users 20 and 40 rate nothing."""
    rows = []
    for user in (u for u in range(1, N_USERS + 1) if u not in (N_USERS // 2, N_USERS)):
        first = 1 if block_of_user(user) == 0 else 11
        for t in range(6):
            rows.append((user, first + (user + t) % 9, 4, 1_000 * user + t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture(scope="module")
def fitted(catalog):
    train = symmetric_ratings()
    return Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(train), train


def test_the_new_items_are_the_catalogue_items_training_never_reached(fitted, catalog):
    model, _ = fitted
    assert catalog.item_ids[model.new_items_].tolist() == [NEW_ACTION, NEW_DRAMA]


@pytest.mark.parametrize(("user", "expected"), [(1, NEW_ACTION), (25, NEW_DRAMA)])
def test_a_slot_holds_the_new_item_whose_content_matches_the_user(fitted, user, expected):
    model, _ = fitted
    plain = model.recommend(user, k=4)
    slotted = model.recommend(user, k=4, new_item_slots=1)
    assert NEW_ITEM_SOURCE not in plain.sources  # off by default: the served list is unchanged
    assert slotted.items[:3] == plain.items[:3]
    assert slotted.items[3] == expected
    assert slotted.sources[3] == NEW_ITEM_SOURCE
    assert NEW_ITEM_SOURCE not in slotted.sources[:3]


def test_two_slots_hold_both_new_items_best_match_first(fitted):
    model, _ = fitted
    rec = model.recommend(1, k=5, new_item_slots=2)
    assert rec.items[3:] == [NEW_ACTION, NEW_DRAMA]
    assert rec.sources[3:] == [NEW_ITEM_SOURCE] * 2
    assert all(block_of_item(i) == 0 for i in rec.items[:3])


def test_more_slots_than_new_items_fills_the_rest_with_ranked_items(fitted):
    model, _ = fitted
    plain = model.recommend(1, k=6)
    rec = model.recommend(1, k=6, new_item_slots=4)
    assert len(rec.items) == 6
    assert rec.items[:4] == plain.items[:4]  # two slots stay with the ranked list
    assert sorted(rec.items[4:]) == [NEW_ACTION, NEW_DRAMA]


def test_the_config_default_is_served_and_a_call_overrides_it(fitted, catalog):
    model, train = fitted
    config = replace(model.config, new_item_slots=1)
    slotted = Recommender(catalog, config).fit(train)
    assert slotted.recommend(1, k=4).sources[3] == NEW_ITEM_SOURCE
    assert NEW_ITEM_SOURCE not in slotted.recommend(1, k=4, new_item_slots=0).sources
    assert slotted.recommend(1, k=1).items == [NEW_ACTION]  # the default is capped at k


def test_cold_start_lists_get_new_item_slots_too(fitted):
    model, _ = fitted
    for rec in (
        model.recommend(40, k=3, new_item_slots=1),  # known demographics, no history
        model.recommend(99_999, k=3, new_item_slots=1),  # unknown
        model.recommend_new_user(3, age=52, gender="F", new_item_slots=1),
    ):
        assert rec.sources == [COLD_START_SOURCE] * 2 + [NEW_ITEM_SOURCE]
        assert rec.items[2] in (NEW_ACTION, NEW_DRAMA)
    batch = model.recommend_batch([1, 40], k=3, new_item_slots=1)
    assert [r.sources[2] for r in batch] == [NEW_ITEM_SOURCE] * 2


@pytest.mark.parametrize("slots", [-1, 5, 1.5, True, "1"])
def test_bad_slot_counts_are_clear_errors(fitted, slots):
    model, _ = fitted
    with pytest.raises(InvalidArgumentError, match="new_item_slots must be a whole number"):
        model.recommend(1, k=4, new_item_slots=slots)
    with pytest.raises(InvalidArgumentError, match="new_item_slots"):
        model.recommend_batch([1], k=4, new_item_slots=slots)
    with pytest.raises(InvalidArgumentError, match="new_item_slots"):
        model.recommend_new_user(4, age=30, gender="M", new_item_slots=slots)


@pytest.mark.parametrize("slots", [-1, 0.5, float("nan")])
def test_the_config_refuses_a_bad_default(slots):
    with pytest.raises(InvalidArgumentError, match="new_item_slots"):
        RecsysConfig(new_item_slots=slots)


def test_a_catalogue_without_new_items_serves_the_plain_list(catalog, frames):
    ratings = frames[0]
    model = Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(ratings)
    assert len(model.new_items_) == 0
    assert model.recommend(1, k=4, new_item_slots=2) == model.recommend(1, k=4)


def test_slots_survive_save_and_load(fitted, tmp_path):
    model, _ = fitted
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert loaded.recommend(25, k=4, new_item_slots=1) == model.recommend(25, k=4, new_item_slots=1)


@pytest.mark.parametrize(
    ("warm", "new", "k", "slots", "expected"),
    [
        ([5, 6, 7, 8, 9], [1, 2], 4, 2, [5, 6, 1, 2]),
        ([5, 6, 7, 8, 9], [6, 1, 2], 4, 2, [5, 6, 1, 2]),  # 6 is placed already: not repeated
        ([5, 6, 7, 8, 9], [1], 4, 2, [5, 6, 7, 1]),  # one new item: the ranked list fills in
        ([5, 6, 7, 8, 9], [8, 1], 4, 2, [5, 6, 8, 1]),  # 8 moves to a slot, 7 is not doubled
        ([5, 6], [1, 2, 3], 4, 2, [5, 6, 1, 2]),  # a short ranked list
        ([5, 6, 7], [], 3, 1, [5, 6, 7]),
        ([5, 6, 7], [1, 2], 2, 2, [1, 2]),  # every place a slot
    ],
)
def test_slot_placement(warm, new, k, slots, expected):
    warm, new = np.array(warm), np.array(new, dtype=np.int64)
    keep, take = slot_new_items(warm, new, k, slots)
    assert [*warm[keep].tolist(), *new[take].tolist()] == expected


def test_the_evaluation_counts_new_item_hits_against_random(catalog):
    """Users 1-3 and 21-23 rated their block's new item after training: one slot finds it for
    every one of them; one random new item of two would, on average, for half."""
    train = symmetric_ratings()
    test = pd.DataFrame(
        [(u, NEW_ACTION if block_of_user(u) == 0 else NEW_DRAMA, 5, 10**7) for u in RATED_NEW],
        columns=train.columns,
    )
    split = Split(train, test, "stratified", "new items held out")
    result = evaluate_split(split, catalog, RecsysConfig(seed=0, **TINY), latency_users=1)
    means, per_user = new_item_slots(result, catalog, split, slots=(1,))
    # Unseen items no source scores above 0 fill a tiny catalogue's lists by chance (1 of 6)
    assert means["two_stage"]["new_item_hit_rate"] < 0.5
    assert means["two_stage+1_new"]["new_item_hit_rate"] == 1.0
    assert means["two_stage+1_new"]["new_item_hit_rate_random"] == pytest.approx(0.5)
    assert means["two_stage+1_new"]["users_with_new_items"] == len(RATED_NEW)
    assert means["two_stage+1_new"]["ndcg@10"] > means["two_stage"]["ndcg@10"]
    assert len(per_user["two_stage+1_new"]["ndcg@10"]) == len(RATED_NEW)
