"""Real-data checks on MovieLens 100K (marked slow; seconds, not minutes)."""

from __future__ import annotations

import numpy as np
import pytest

from evals.metrics import evaluate
from recsys.autoencoders import EASE
from recsys.catalog import Catalog
from recsys.recommender import truth_by_user
from recsys.sources import top_n
from recsys.splits import stratified_split, temporal_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def movielens():
    from evals.datasets import load_movielens_100k

    return load_movielens_100k()


def test_split_matches_microsoft_recommenders_on_movielens(movielens):
    splitters = pytest.importorskip("recommenders.datasets.python_splitters")
    theirs = movielens.ratings.rename(columns={"user_id": "userID", "item_id": "itemID"})
    train, test = splitters.python_stratified_split(
        theirs, ratio=0.75, min_rating=1, filter_by="item", seed=42
    )
    ours = stratified_split(movielens.ratings, seed=42)
    assert (len(ours.train), len(ours.test)) == (len(train), len(test)) == (75_066, 24_934)
    assert set(ours.test.index) == set(test.index)


def test_ease_reaches_its_known_accuracy_on_the_microsoft_protocol(movielens):
    catalog = Catalog.from_frames(movielens.items, movielens.users, movielens.genres)
    split = stratified_split(movielens.ratings, seed=42)
    x = catalog.matrix(split.train)
    truth = truth_by_user(catalog, split.test)
    users = np.array(sorted(u for u in truth if x.indptr[u + 1] > x.indptr[u]))
    top = top_n(EASE(250.0).fit(x).score(x[users]), x[users], 10)
    qrels = {str(u): {str(i): 1 for i in truth[u]} for u in users}
    run = {str(u): [str(i) for i in row] for u, row in zip(users, top, strict=True)}
    ndcg = evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]
    assert 0.46 < ndcg < 0.52  # the issue measured 0.482 +/- 0.002 over 3 seeds


def test_temporal_split_on_movielens_is_leak_free(movielens):
    split = temporal_split(movielens.ratings)
    assert split.train["timestamp"].max() < split.test["timestamp"].min()
    assert len(split.test) > 1_000


def test_the_cli_trains_with_the_named_protocols_settings(tmp_path, capsys):
    """``train --protocol temporal`` fits with the temporal carve's settings, and they are saved."""
    from recsys.__main__ import main
    from recsys.config import PROTOCOL_SETTINGS
    from recsys.recommender import TwoStageRecommender

    assert main(["train", "--protocol", "temporal", "--model-dir", str(tmp_path)]) == 0
    assert "saved to" in capsys.readouterr().out
    config = TwoStageRecommender.load(tmp_path).config
    assert config.protocol == "temporal"
    for name, value in PROTOCOL_SETTINGS["temporal"].items():
        assert getattr(config, name) == value


def test_new_films_in_a_slot_are_chosen_better_than_at_random(movielens):
    """On the temporal split, films first rated after the cut are new items: the content
    scorer's first pick (what one new-item slot serves) is one the user went on to rate for
    several times more users than a random new film would be."""
    from math import comb

    from recsys.cold_start import NEW_ITEM_PRIOR_WEIGHT, ContentScorer

    catalog = Catalog.from_frames(movielens.items, movielens.users, movielens.genres)
    split = temporal_split(movielens.ratings)
    x = catalog.matrix(split.train)
    new_items = np.flatnonzero(np.diff(x.tocsc().indptr) == 0)
    truth = truth_by_user(catalog, split.test)
    users = [
        u for u in sorted(truth) if x.indptr[u + 1] > x.indptr[u] and truth[u] & set(new_items)
    ]
    scores = ContentScorer(catalog, NEW_ITEM_PRIOR_WEIGHT).fit(x).score(x[users], new_items)
    picks = new_items[np.argmax(scores, axis=1)]
    hit_rate = np.mean([pick in truth[u] for pick, u in zip(picks, users, strict=True)])
    n = len(new_items)
    random_rate = np.mean([1 - comb(n - len(truth[u] & set(new_items)), 1) / n for u in users])
    print(f"{len(users)} users, {n} new items: hit rate {hit_rate:.3f}, random {random_rate:.3f}")
    assert len(users) > 20
    assert hit_rate > 3 * random_rate
