"""New items: the last places of a list given to items no training interaction reached.

The data is the checkerboard of conftest.py, made symmetric so the answer is known: each block's
users rate its items 1..9 (or 11..19) in a cycle, so both genres are equally popular and only
content separates the two new items, 10 (Action, the 1990s) and 20 (Drama, the 1970s). An
Action fan's new-item slot must hold 10, a Drama fan's 20.
"""

from __future__ import annotations

import copy
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


def evaluated_new_item_split(catalog):
    """Users 1-3 and 21-23 rated their block's new item after training: the split and the
    evaluation of a model fitted on its training part."""
    train = symmetric_ratings()
    test = pd.DataFrame(
        [(u, NEW_ACTION if block_of_user(u) == 0 else NEW_DRAMA, 5, 10**7) for u in RATED_NEW],
        columns=train.columns,
    )
    split = Split(train, test, "stratified", "new items held out")
    return split, evaluate_split(split, catalog, RecsysConfig(seed=0, **TINY), latency_users=1)


def test_films_added_after_training_are_found_as_the_catalogue_new_items_are(catalog, frames):
    """The same users and new films, but the films arrive through add_items after a fit on a
    catalogue without them: every user who rated one is shown it in the slot."""
    from recsys.eval import added_item_slots

    split, result = evaluated_new_item_split(catalog)
    _, items, users = frames
    means, per_user = added_item_slots(result, catalog, split, items, users, slots=(0, 1))
    assert means["two_stage+0_added"]["new_item_hit_rate"] < 0.5  # chance, as in the next test
    assert means["two_stage+1_added"]["new_item_hit_rate"] == 1.0
    assert means["two_stage+1_added"]["users_with_new_items"] == len(RATED_NEW)
    assert len(per_user["two_stage+1_added"]["ndcg@10"]) == len(RATED_NEW)


def test_the_evaluation_counts_new_item_hits_against_random(catalog):
    """Users 1-3 and 21-23 rated their block's new item after training: one slot finds it for
    every one of them; one random new item of two would, on average, for half."""
    split, result = evaluated_new_item_split(catalog)
    means, per_user = new_item_slots(result, catalog, split, slots=(1,))
    # Unseen items no source scores above 0 fill a tiny catalogue's lists by chance (1 of 6)
    assert means["two_stage"]["new_item_hit_rate"] < 0.5
    assert means["two_stage+1_new"]["new_item_hit_rate"] == 1.0
    assert means["two_stage+1_new"]["new_item_hit_rate_random"] == pytest.approx(0.5)
    assert means["two_stage+1_new"]["users_with_new_items"] == len(RATED_NEW)
    assert means["two_stage+1_new"]["ndcg@10"] > means["two_stage"]["ndcg@10"]
    assert len(per_user["two_stage+1_new"]["ndcg@10"]) == len(RATED_NEW)


# -- films added after training (add_items) ---------------------------------------------------
def added(model, rows):
    """A copy of ``model`` with ``rows`` (item_id, title, genres, release_date) added."""
    model = copy.deepcopy(model)
    frame = pd.DataFrame(rows, columns=["item_id", "title", "genres", "release_date"])
    assert model.add_items(frame) == len(rows)
    return model


def test_an_added_film_scores_as_a_catalogue_film_with_the_same_content(fitted):
    # 101 has new item 10's content (Action, 1995), 102 has 20's (Drama, 1975): on one scale,
    # each ties with its twin, and the twins keep their scores (adding changes no other score)
    model, _ = fitted
    before = model.recommend(1, k=5, new_item_slots=2)
    grown = added(
        model, [(101, "Twin of 10", "Action", "1995-06-01"), (102, "Twin of 20", ["Drama"], "1975")]
    )
    rec = grown.recommend(1, k=5, new_item_slots=4)
    assert rec.items[1:] == [NEW_ACTION, 101, NEW_DRAMA, 102]  # ties keep the catalogue first
    assert rec.scores[1] == pytest.approx(rec.scores[2]) and rec.scores[3] == pytest.approx(
        rec.scores[4]
    )
    assert rec.sources[1:] == [NEW_ITEM_SOURCE] * 4
    scores = dict(zip(rec.items, rec.scores, strict=True))
    assert before.items[3:] == [NEW_ACTION, NEW_DRAMA]
    assert [scores[NEW_ACTION], scores[NEW_DRAMA]] == before.scores[3:]


@pytest.mark.parametrize(("user", "expected"), [(1, 101), (25, 102)])
def test_an_added_film_fills_the_slot_of_the_user_its_content_matches(
    fitted, catalog, user, expected
):
    # a model whose catalogue has no new items: only the added films can fill a slot
    train = symmetric_ratings()
    rated = pd.concat(
        [train, pd.DataFrame([(2, NEW_ACTION, 4, 1), (22, NEW_DRAMA, 4, 1)], columns=train.columns)]
    )
    model = Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(rated)
    assert len(model.new_items_) == 0
    assert model.recommend(user, k=4, new_item_slots=1) == model.recommend(user, k=4)
    grown = added(
        model,
        [(101, "Action film", "Action", "1996-01-01"), (102, "Drama film", "Drama", "")],
    )
    rec = grown.recommend(user, k=4, new_item_slots=1)
    assert rec.items[3] == expected and rec.sources[3] == NEW_ITEM_SOURCE
    assert grown.item_titles()[expected] in ("Action film", "Drama film")


def test_added_films_reach_every_serving_path_and_survive_save_and_load(fitted, tmp_path):
    model, _ = fitted
    grown = added(model, [(101, "Action film", "Action", "1995-01-01")])
    cold = grown.recommend_new_user(4, age=25, gender="M", new_item_slots=3)
    assert set(cold.items[1:]) == {NEW_ACTION, NEW_DRAMA, 101}
    assert 101 in grown.recommend_batch([1, 40], k=4, new_item_slots=3)[0].items
    loaded = Recommender.load(grown.save(tmp_path / "m"))
    assert loaded.recommend(1, k=5, new_item_slots=3) == grown.recommend(1, k=5, new_item_slots=3)
    loaded.add_items(
        pd.DataFrame({"item_id": [102], "title": ["Both"], "genres": ["Drama|Action"]})
    )
    assert loaded.added_.ids.tolist() == [101, 102]
    assert loaded.item_titles()[102] == "Both"


def test_a_model_saved_before_films_py_was_split_out_still_loads(fitted, tmp_path, monkeypatch):
    # FilmRows and AddedItems lived in recommender.py until films.py was split out, and a pickle
    # names each object's class by module: every model saved before the split says
    # recsys.recommender.FilmRows. Saved with those names (as the old code wrote them), it must
    # load unchanged, or the split would break every saved model.
    from recsys import films

    grown = added(fitted[0], [(101, "Action film", "Action", "1995-01-01")])
    for cls in (films.FilmRows, films.AddedItems):
        monkeypatch.setattr(cls, "__module__", "recsys.recommender")  # the old layout's names
    folder = grown.save(tmp_path / "m")
    monkeypatch.undo()
    pickled = (folder / "model.pkl").read_bytes()
    assert b"FilmRows" in pickled and b"AddedItems" in pickled and b"recsys.films" not in pickled
    loaded = Recommender.load(folder)
    assert type(loaded.added_) is films.AddedItems and type(loaded.kept_) is films.FilmRows
    assert loaded.films_added().ids.tolist() == [101]
    assert loaded.recommend(1, k=5, new_item_slots=3) == grown.recommend(1, k=5, new_item_slots=3)


def film(**columns):
    """A one-film add_items frame, with ``columns`` replacing the defaults."""
    return pd.DataFrame({"item_id": [101], "title": ["A"], "genres": ["Action"], **columns})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (film().drop(columns="genres"), "lacks the columns \\['genres'\\]"),
        (film().iloc[:0], "items is empty"),
        (film(item_id=[5]), "already in the model: \\[5\\]"),  # warm
        (film(item_id=[10]), "already in the model: \\[10\\]"),  # a catalogue new item
        (film(item_id=[101, 101], title=["A", "B"], genres=["Action"] * 2), "repeated in items"),
        (film(item_id=["x"]), "whole numbers"),
        (film(item_id=[101.0]), "whole numbers"),
        (film(item_id=[True]), "whole numbers"),
        (film(title=[" "]), "without a title: \\[101\\]"),
        (film(genres=["Western"]), "unknown genres \\['Western'\\]"),
        (film(genres=[""]), "unknown genres \\[''\\]"),
        (film(genres=[[]]), "name at least one"),
        (film(genres=[None]), "name at least one"),
        (film(release_date=["soon"]), "not a date: \\[101\\]"),
        (film(release_date=[19980101]), "not a date: \\[101\\]"),  # a number, not a year
        (film(release_date=["1066-10-14"]), "not a date: \\[101\\]"),
        (film(release_date=[True]), "not a date: \\[101\\]"),
        ([{"item_id": 101}], "must be a pandas DataFrame"),
    ],
)
def test_bad_added_films_are_refused_whole_and_nothing_is_added(fitted, frame, message):
    model = copy.deepcopy(fitted[0])
    ok = film(item_id=[201], title=["Fine"], genres=["Drama"])
    # a good row first, which must not be added either (where concat keeps the ids as they are)
    whole = isinstance(frame, pd.DataFrame) and set(ok.columns) <= set(frame.columns)
    if whole and len(frame) and frame["item_id"].dtype == ok["item_id"].dtype:
        frame = pd.concat([ok, frame], ignore_index=True)
    with pytest.raises(InvalidArgumentError, match=message):
        model.add_items(frame)
    assert len(model.added_) == 0
    assert model.recommend(1, k=5, new_item_slots=2) == fitted[0].recommend(
        1, k=5, new_item_slots=2
    )


def test_add_items_needs_a_fitted_model(catalog):
    from recsys import NotFittedError

    with pytest.raises(NotFittedError):
        Recommender(catalog).add_items(
            pd.DataFrame({"item_id": [1], "title": ["A"], "genres": ["Action"]})
        )


def test_added_films_are_read_in_the_forms_users_write_them(fitted):
    # a numeric title, genres as an array or with spaces, a year as a number, dates with offsets
    model = copy.deepcopy(fitted[0])
    frame = pd.DataFrame(
        {
            "item_id": [301, 302, 303, 304],
            "title": [1917, "Two", "Three", "Four"],
            "genres": [np.array(["Action"]), "Action | Drama", ("Drama",), ["Drama"]],
            "release_date": [1998, "2026-11-01T00:00:00+01:00", "1998-01-01", "2026-11-01 -05:00"],
        }
    )
    assert model.add_items(frame) == 4
    assert model.item_titles()[301] == "1917"
    content, _ = model.content_.content_of(
        np.array([[0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 1]], dtype=np.float32),
        np.array([1998, 2026, 1998, 2026], dtype=np.float32),
    )
    np.testing.assert_array_equal(model.added_.vectors, content)  # 1998 is the year 1998


def test_added_films_keep_their_rows_as_given_and_a_retrain_makes_them_items(fitted, catalog):
    # The model kept only content vectors, so a retrain could not rebuild an added film (found
    # by a review). Its rows now stay with it: adding them again gives the same content, and
    # a catalogue built from them has the film as a new item, warm once ratings of it arrive.
    from recsys.films import catalog_with_films

    model = copy.deepcopy(fitted[0])
    frame = pd.DataFrame(
        {
            "item_id": [301, 302, 303],
            "title": [1917, "Two", "Three"],
            "genres": [np.array(["Action"]), "Action | Drama", ("Drama",)],
            "release_date": [1998, "2026-11-01T00:00:00+01:00", None],
        }
    )
    model.add_items(frame)
    rows = model.films_added()
    assert rows.frame().to_dict("list") == {
        "item_id": [301, 302, 303],
        "title": ["1917", "Two", "Three"],
        "genres": ["Action", "Action|Drama", "Drama"],
        "release_date": ["1998", "2026-11-01T00:00:00+01:00", ""],
    }
    again = copy.deepcopy(fitted[0])
    again.add_items(rows.frame())
    np.testing.assert_array_equal(again.added_.vectors, model.added_.vectors)

    grown = catalog_with_films(catalog, rows)
    assert grown.item_ids.tolist() == [*catalog.item_ids.tolist(), 301, 302, 303]
    np.testing.assert_array_equal(grown.release_year[-3:], [1998, 2026, np.nan])
    np.testing.assert_array_equal(grown.genres[-3:], [[0, 1, 0], [0, 1, 1], [0, 0, 1]])
    train = symmetric_ratings()
    action_fans = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": 301, "rating": 5,
                                "timestamp": 10**6})  # fmt: skip
    fast = replace(
        model.config, sources=("popularity", "item_knn", "ease"), blend_sources=("ease",)
    )
    retrained = Recommender(grown, fast, kept=rows).fit(pd.concat([train, action_fans]))
    assert grown.item_ids[retrained.new_items_].tolist() == [NEW_ACTION, NEW_DRAMA, 302, 303]
    assert retrained.films_added().ids.tolist() == [301, 302, 303]  # the next retrain keeps them
    ranked = retrained.recommend(5, k=20)  # every candidate stage 1 proposes for user 5
    assert 301 in ranked.items and "new_item" not in ranked.sources  # warm: a source proposes it
    with pytest.raises(InvalidArgumentError, match="training catalogue has too: \\[5\\]"):
        catalog_with_films(catalog, replace(rows, ids=np.array([5, 302, 303])))


def test_threads_adding_films_at_once_lose_none(fitted):
    import threading

    model = copy.deepcopy(fitted[0])
    start = threading.Barrier(4)

    def add(first):
        start.wait(timeout=10)
        for item in range(first, first + 25):
            model.add_items(film(item_id=[item]))

    threads = [threading.Thread(target=add, args=(1000 + 100 * t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(model.added_.ids.tolist()) == [
        1000 + 100 * t + i for t in range(4) for i in range(25)
    ]
    assert len(model.added_.vectors) == len(model.added_.prior) == len(model.added_.titles) == 100
