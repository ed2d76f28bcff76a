"""Serving: named results, cold-start fallbacks, clear errors, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from recsys import (
    InvalidArgumentError,
    ModelFileError,
    NotFittedError,
    Recommendation,
    Recommender,
    RecsysConfig,
    UnknownUserError,
    UnsafeModelError,
)
from recsys.catalog import Catalog
from recsys.recommender import COLD_START_SOURCE
from tests.recsys.conftest import GENRES, N_ITEMS, block_of_item
from tests.recsys.test_leakage import TINY


@pytest.fixture(scope="module")
def fitted(frames, catalog):
    ratings = frames[0]
    # user 40 keeps no history: a known user (demographics) who is cold
    train = ratings[ratings["user_id"] != 40]
    return Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(train), train


def test_recommend_returns_named_unseen_own_block_items(fitted):
    model, train = fitted
    rec = model.recommend(1, k=4)
    assert isinstance(rec, Recommendation)
    assert len(rec.items) == len(rec.scores) == len(rec.sources) == 4
    seen = set(train.loc[train["user_id"] == 1, "item_id"])
    assert not set(rec.items) & seen
    assert all(block_of_item(i) == 0 for i in rec.items)
    assert rec.scores == sorted(rec.scores, reverse=True)
    assert set(rec.sources) <= {s.name for s in model.sources_}


def test_exclude_seen_false_may_return_seen_items(fitted):
    model, train = fitted
    rec = model.recommend(1, k=N_ITEMS // 2, exclude_seen=False)
    seen = set(train.loc[train["user_id"] == 1, "item_id"])
    assert seen & set(rec.items)


def test_unknown_and_history_less_users_fall_back_to_cold_start(fitted):
    model, _ = fitted
    unknown = model.recommend(99_999, k=3)
    assert unknown.sources == [COLD_START_SOURCE] * 3
    cold = model.recommend(40, k=3)  # known demographics (52, F): the Drama segment's favourites
    assert cold.sources == [COLD_START_SOURCE] * 3
    assert all(block_of_item(i) == 1 for i in cold.items)


@pytest.mark.parametrize("user_id", ["1", "not-a-number", None, [1], 1.5, True])
def test_an_id_of_the_wrong_type_is_an_error_not_a_new_user(fitted, user_id):
    model, _ = fitted
    with pytest.raises(InvalidArgumentError, match="whole numbers"):
        model.recommend(user_id, k=2)  # True would otherwise be served as user 1
    with pytest.raises(InvalidArgumentError, match="whole numbers"):
        model.recommend_batch([1, user_id], k=2)  # names the bad id, not the valid user 1
    assert model.recommend(np.int64(1), k=2).items == model.recommend(1, k=2).items


def test_new_user_with_chosen_genres(fitted):
    model, _ = fitted
    # No training user shares this segment (70, F): it scores as global popularity, which the
    # named genre's fans tilt: their genre comes first.
    for genre, block in (("Drama", 1), ("Action", 0)):
        rec = model.recommend_new_user(k=3, age=70, gender="F", genres=[genre])
        assert all(block_of_item(i) == block for i in rec.items)
    # A segment full of Action fans (30, M) naming Drama: the genres and the segment are summed.
    plain = model.recommend_new_user(k=10, age=30, gender="M")
    named = model.recommend_new_user(k=10, age=30, gender="M", genres=["Drama"])
    drama = sum(block_of_item(i) == 1 for i in named.items)
    assert sum(block_of_item(i) == 1 for i in plain.items) < drama
    with pytest.raises(InvalidArgumentError, match="unknown genres"):
        model.recommend_new_user(k=5, age=30, gender="M", genres=["Western"])
    with pytest.raises(InvalidArgumentError, match="gender"):
        model.recommend_new_user(k=5, age=30, gender="X")
    for age in ("30", True, float("nan")):
        with pytest.raises(InvalidArgumentError, match="age"):
            model.recommend_new_user(k=5, age=age, gender="F")


def test_sign_up_answers_get_the_list_a_known_user_without_history_gets(fitted, frames):
    model, _ = fitted
    user = frames[2].set_index("user_id").loc[40]  # 40 is in the catalogue, with no history
    answers = {"age": int(user["age"]), "gender": user["gender"]}
    served = model.recommend(40, k=10)
    signed_up = model.recommend_new_user(k=10, **answers, occupation=user["occupation"])
    assert signed_up.items == served.items  # the rule the benchmark measures, both ways in
    np.testing.assert_allclose(signed_up.scores, served.scores)
    # An occupation not given counts as global popularity, its prior: the list stays defined.
    assert len(model.recommend_new_user(k=10, **answers).items) == 10
    with pytest.raises(InvalidArgumentError, match="unknown occupation 'pilot'; valid: "):
        model.recommend_new_user(k=5, **answers, occupation="pilot")


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_rejected(fitted, k):
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        fitted[0].recommend(1, k=k)
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        fitted[0].recommend_batch([40], k=k)  # a cold user: only the batch checks k


def test_an_unfitted_model_refuses_a_batch(catalog):
    with pytest.raises(NotFittedError):
        Recommender(catalog).recommend_batch([1])


def test_batch_with_unknown_ids_names_them(fitted):
    model, _ = fitted
    with pytest.raises(UnknownUserError) as info:
        model.recommend_batch([1, 777, 2, 888], k=3)
    assert info.value.ids == [777, 888]
    assert "777" in str(info.value)
    with pytest.raises(InvalidArgumentError):
        model.recommend_batch([], k=3)
    assert [r.user_id for r in model.recommend_batch([1, 2], k=3)] == [1, 2]
    assert [r.user_id for r in model.recommend_batch((u for u in (1, 2)), k=3)] == [1, 2]
    for bad in (None, "12"):
        with pytest.raises(InvalidArgumentError, match="sequence of ids"):
            model.recommend_batch(bad, k=3)


def test_a_text_id_catalogue_refuses_a_number_even_when_its_text_is_known(frames):
    ratings, items, users = (frame.copy() for frame in frames)
    for frame in (ratings, users):
        frame["user_id"] = frame["user_id"].map(str)  # "5", not 5
    catalog = Catalog.from_frames(items, users, GENRES)
    model = Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(ratings)
    # one numpy array makes [5, "5"] two strings: 5 passed the lookup and got the cold-start list
    with pytest.raises(InvalidArgumentError, match="text in this catalogue, got 5"):
        model.recommend_batch(["5", 5], k=3)
    with pytest.raises(InvalidArgumentError, match="text in this catalogue"):
        model.recommend(5, k=3)
    [served] = model.recommend_batch(["5"], k=3)
    assert COLD_START_SOURCE not in served.sources


def test_too_little_data_to_train_is_a_clear_error(frames, catalog):
    ratings = frames[0]
    one_each = ratings.drop_duplicates("user_id")  # nobody has ratings on both sides of a carve
    with pytest.raises(InvalidArgumentError, match="too few ratings"):
        Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(one_each)


@pytest.mark.parametrize("scale, offset", [(1000, 1.6e12), (1, 1e11), (1, -1e10)])
def test_timestamps_that_are_not_unix_seconds_are_refused_before_training(
    frames, catalog, monkeypatch, scale, offset
):
    # Milliseconds used to crash inside pandas after every source had trained (found by a
    # review); had they not, the 14-day window features would have been silently wrong.
    import recsys.recommender as recommender

    def no_training(config):
        raise AssertionError("a source was built before the timestamps were checked")

    monkeypatch.setattr(recommender, "build_sources", no_training)
    ratings = frames[0].assign(timestamp=frames[0]["timestamp"] * scale + offset)
    with pytest.raises(InvalidArgumentError, match="timestamps must be seconds since 1970"):
        Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(ratings)


def test_the_milliseconds_error_names_the_unit(frames, catalog):
    ratings = frames[0].assign(timestamp=frames[0]["timestamp"] * 1000 + 1.6e12)
    with pytest.raises(InvalidArgumentError, match=r"240 timestamp.+milliseconds: divide by 1,000"):
        Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(ratings)


def test_save_into_a_file_is_a_model_file_error(fitted, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ModelFileError, match="is a file"):
        fitted[0].save(tmp_path / "taken")


def test_a_folder_that_cannot_be_created_is_a_model_file_error(fitted, tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ModelFileError, match="cannot create or write in the model folder"):
        fitted[0].save(tmp_path / "taken" / "model")  # a file as parent: NotADirectoryError


def test_a_failed_save_leaves_the_previous_model_whole(fitted, tmp_path, monkeypatch):
    model, _ = fitted
    folder = model.save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}  # the model and its lock file
    assert sorted(before) == ["manifest.json", "model.lock", "model.pkl"]

    def disk_full(obj, fh, protocol=None):
        fh.write(b"half a pickle")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("recsys.store.pickle.dump", disk_full)
    with pytest.raises(ModelFileError, match="cannot write the model"):
        model.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary left
    monkeypatch.undo()
    assert Recommender.load(folder).recommend(1, k=5).items == model.recommend(1, k=5).items


def test_unfitted_model_says_so(catalog):
    with pytest.raises(NotFittedError):
        Recommender(catalog).recommend(1)


def test_save_load_round_trip(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    for user in (1, 25, 40):
        a, b = model.recommend(user, k=5), loaded.recommend(user, k=5)
        assert a.items == b.items
        np.testing.assert_allclose(a.scores, b.scores)


def test_load_errors_are_clear(fitted, tmp_path):
    with pytest.raises(ModelFileError, match="missing"):
        Recommender.load(tmp_path / "nothing-here")
    folder = fitted[0].save(tmp_path / "m")
    (folder / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelFileError, match="corrupt"):
        Recommender.load(folder)
    with pytest.raises(ModelFileError, match="is a file"):
        Recommender.load(folder / "manifest.json")


@pytest.mark.parametrize(
    ("manifest", "pickled", "message"),
    [
        (b"\xff\xfe\x00binary", None, "corrupt"),  # not UTF-8
        (b"[1, 2]", None, "holds format None"),  # JSON, but not a manifest
        (None, {"format_version": 3}, "holds a dict, not a recommender"),  # a pickle, not a model
    ],
)
def test_a_damaged_model_folder_is_a_clear_error(fitted, tmp_path, manifest, pickled, message):
    import pickle

    folder = fitted[0].save(tmp_path / "m")
    if manifest is not None:
        (folder / "manifest.json").write_bytes(manifest)
    if pickled is not None:
        (folder / "model.pkl").write_bytes(pickle.dumps(pickled))
    with pytest.raises(ModelFileError, match=message):
        Recommender.load(folder)


def test_a_model_saved_in_an_older_format_is_refused(fitted, tmp_path):
    import json

    folder = fitted[0].save(tmp_path / "m")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 1  # one LightGBM model, before bagging
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"holds format 1.*Retrain"):
        Recommender.load(folder)


def test_an_older_model_whose_classes_moved_is_refused_by_its_format_not_unpickled(
    fitted, tmp_path
):
    import json

    folder = fitted[0].save(tmp_path / "m")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 2  # EASE and the other sources lived in recsys.sources
    (folder / "manifest.json").write_text(json.dumps(manifest))
    # A pickle naming a class that is no longer where format 2 put it (GLOBAL, then STOP).
    (folder / "model.pkl").write_bytes(b"crecsys.sources\nEASE\n.")
    from recsys.store import FORMAT_VERSION

    reads = rf"holds format 2; this code reads format {FORMAT_VERSION}\."
    with pytest.raises(ModelFileError, match=reads):
        Recommender.load(folder)


class _RunsCodeOnLoad:
    """A malicious model.pkl: unpickling it calls Path.touch (os.system, in the wild)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (self.marker,))


def test_a_model_file_that_would_run_code_is_refused_unread(fitted, tmp_path):
    import pickle

    folder = fitted[0].save(tmp_path / "m")  # a valid manifest: only model.pkl is malicious
    marker = tmp_path / "code-ran"
    (folder / "model.pkl").write_bytes(pickle.dumps(_RunsCodeOnLoad(marker)))
    with pytest.raises(UnsafeModelError, match="pathlib") as caught:
        Recommender.load(folder)
    assert not marker.exists()  # plain pickle.loads would have created it
    assert caught.value.name.endswith("touch") and str(folder) in str(caught.value)


def test_a_model_file_that_sets_attributes_on_an_allowed_class_is_refused(fitted, tmp_path):
    # A file can BUILD an allowed class itself: pickle's default __setstate__ then runs
    # setattr(TwoStageRecommender, ...), changing every recommender in this process, even when
    # the file is refused further on. The bytes: push the class, (None, {attr: True}), BUILD.
    import pickle

    from recsys.recommender import TwoStageRecommender

    attr = "set_by_a_model_file"
    folder = fitted[0].save(tmp_path / "m")  # a valid manifest: only model.pkl is malicious
    (folder / "model.pkl").write_bytes(
        pickle.GLOBAL
        + b"recsys.recommender\nTwoStageRecommender\n"
        + pickle.dumps((None, {attr: True}), protocol=2)[2:-1]  # without PROTO and STOP
        + pickle.BUILD
        + pickle.STOP
    )
    try:
        with pytest.raises(UnsafeModelError, match="TwoStageRecommender itself"):
            Recommender.load(folder)
        assert attr not in vars(TwoStageRecommender)
    finally:
        if attr in vars(TwoStageRecommender):  # the unpickler before the fix set it: undo
            delattr(TwoStageRecommender, attr)


def test_blend_weight_zero_serves_the_ranker_alone(fitted):
    from dataclasses import replace

    model, _ = fitted
    users = np.array([0, 1, 2])
    cands = model.candidates(users)
    ranker_only = model.ranker_scores(cands)
    saved = model.config
    try:
        model.config = replace(saved, blend_weight=0.0)
        np.testing.assert_array_equal(model.rank(cands), ranker_only)
    finally:
        model.config = saved
    assert not np.array_equal(model.rank(cands), ranker_only)


def test_every_optional_source_runs_through_the_pipeline_and_reloads(frames, catalog, tmp_path):
    from dataclasses import replace

    from recsys.config import SOURCE_NAMES

    config = replace(
        RecsysConfig(seed=0, **TINY), sources=SOURCE_NAMES, vae_hidden=16, vae_latent=4
    )
    model = Recommender(catalog, config).fit(frames[0])
    assert [s.name for s in model.sources_] == list(SOURCE_NAMES)
    rec = model.recommend(1, k=4)
    assert all(block_of_item(i) == 0 for i in rec.items)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert loaded.recommend(1, k=4) == rec


def test_graded_ranker_labels_train_from_the_carved_ratings(frames, catalog):
    from dataclasses import replace

    from recsys.recommender import ratings_by_user

    ratings = frames[0]
    truth = ratings_by_user(catalog, ratings.head(3))
    first = ratings.iloc[0]
    u, i = catalog.user_index([first.user_id])[0], catalog.item_index([first.item_id])[0]
    assert truth[u][i] == first.rating
    config = replace(RecsysConfig(seed=0, **TINY), ranker_labels="graded2")
    model = Recommender(catalog, config).fit(ratings)
    assert 0.0 < model.ranker_stats_["positive_share"] < 1.0  # a share, not a mean grade
    assert all(block_of_item(i) == 0 for i in model.recommend(1, k=4).items)


def test_with_ranker_retrains_only_the_ranker_and_matches_a_full_refit(frames, catalog, tmp_path):
    from dataclasses import replace

    train = frames[0]
    config = RecsysConfig(seed=0, **TINY)
    model = Recommender(catalog, config).fit(train, keep_ranker_data=True)
    twin = model.with_ranker(ranker_objective="lambdarank")
    assert twin.config == replace(config, ranker_objective="lambdarank")
    assert model.config.ranker_objective == "rank_xendcg"  # the original is untouched
    assert twin.sources_ is model.sources_ and twin.ranker_ is not model.ranker_
    refit = Recommender(catalog, replace(config, ranker_objective="lambdarank")).fit(train)
    for user in (1, 25):
        assert twin.recommend(user, k=5) == refit.recommend(user, k=5)
    # the training data stays in this process: a saved model does not carry it
    loaded = Recommender.load(model.save(tmp_path / "m"))
    with pytest.raises(NotFittedError, match="keep_ranker_data=True"):
        loaded.with_ranker(ranker_objective="lambdarank")
    assert model.ranker_data_ is not None


def test_with_ranker_needs_the_kept_data_and_only_ranker_settings(fitted, frames, catalog):
    model, _ = fitted
    with pytest.raises(NotFittedError, match="keep_ranker_data=True"):
        model.with_ranker(ranker_objective="lambdarank")
    kept = Recommender(catalog, RecsysConfig(seed=0, **TINY)).fit(frames[0], keep_ranker_data=True)
    with pytest.raises(InvalidArgumentError, match=r"only ranker_\* settings, got \['k'\]"):
        kept.with_ranker(k=5)
    with pytest.raises(InvalidArgumentError, match="ranker_leaves"):
        kept.with_ranker(ranker_leaves=1)
    # refused by RecsysConfig before the ranker trains, not as LightGBM's error after it started
    for bad in (
        {"ranker_objective": "lambda_rank"},
        {"ranker_estimators": 20.5},
        {"ranker_min_child_samples": -1},
        {"ranker_learning_rate": float("nan")},
    ):
        with pytest.raises(InvalidArgumentError, match=rf"^{next(iter(bad))} must be"):
            kept.with_ranker(**bad)
