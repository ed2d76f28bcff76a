"""The CLI on a tiny saved model: output, and errors as exit code 2 with a clear message."""

from __future__ import annotations

import types
from pathlib import Path

import pandas as pd
import pytest

import recsys.__main__ as cli
from recsys.__main__ import main
from recsys.catalog import Catalog
from recsys.config import RecsysConfig
from recsys.recommender import TwoStageRecommender
from tests.recsys.conftest import GENRES
from tests.recsys.test_leakage import TINY


@pytest.fixture(scope="module")
def model_dir(frames, catalog, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    TwoStageRecommender(catalog, RecsysConfig(seed=0, **TINY)).fit(frames[0]).save(folder)
    return folder


def test_recommend_prints_titles_scores_and_sources(model_dir, capsys):
    assert main(["recommend", "3", "-k", "3", "--model-dir", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("user 3: top-3")
    assert out.count("Movie ") == 3


def test_errors_exit_2_with_a_message(model_dir, tmp_path, capsys):
    assert main(["recommend", "3", "-k", "0", "--model-dir", str(model_dir)]) == 2
    assert "k must be a positive integer" in capsys.readouterr().err
    assert main(["recommend", "3", "--model-dir", str(tmp_path / "none")]) == 2
    assert "no saved model" in capsys.readouterr().err


def test_a_malformed_user_id_is_an_error_not_a_cold_start(model_dir, capsys):
    for bad in ("abc", "19.6", "1_96"):  # int() reads "1_96" as user 196
        assert main(["recommend", bad, "--model-dir", str(model_dir)]) == 2
        assert "user ids are whole numbers" in capsys.readouterr().err
    assert main(["recommend", " 3 ", "-k", "2", "--model-dir", str(model_dir)]) == 0
    assert capsys.readouterr().out.startswith("user 3: top-2")  # spaces are not part of an id


def test_a_model_with_text_user_ids_gets_the_id_as_typed(frames, tmp_path, capsys):
    ratings, items, users = (frame.copy() for frame in frames)
    for frame in (ratings, users):
        frame["user_id"] = frame["user_id"].map(lambda u: f"{u:03d}")  # "005", not 5
    catalog = Catalog.from_frames(items, users, GENRES)
    TwoStageRecommender(catalog, RecsysConfig(seed=0, **TINY)).fit(ratings).save(tmp_path)
    assert main(["recommend", "005", "-k", "2", "--model-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("user 005: top-2")  # was user 5, a cold start
    assert "has no training history" not in captured.err and "cold_start" not in captured.out


def test_an_unknown_user_is_told_they_get_the_cold_start_list(model_dir, capsys):
    assert main(["recommend", "99999", "-k", "2", "--model-dir", str(model_dir)]) == 0
    captured = capsys.readouterr()
    assert "has no training history" in captured.err
    assert captured.out.startswith("user 99999: top-2")


def test_a_catalogue_user_without_history_is_told_they_get_the_cold_start_list(
    frames, catalog, tmp_path, capsys
):
    ratings = frames[0]
    fitted = TwoStageRecommender(catalog, RecsysConfig(seed=0, **TINY))
    fitted.fit(ratings[ratings["user_id"] != 40]).save(tmp_path)  # user 40: known, no history
    assert main(["recommend", "40", "-k", "100000", "--model-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "user 40 has no training history: cold-start list" in err
    assert "ranked: that is every item the cold-start list ranks" in err


def test_k_beyond_the_candidates_says_how_many_were_ranked(model_dir, capsys):
    assert main(["recommend", "3", "-k", "100000", "--model-dir", str(model_dir)]) == 0
    captured = capsys.readouterr()
    shown = int(captured.out.split("top-")[1].split()[0])
    assert shown < 100000 and captured.out.count("Movie ") == shown
    assert f"100000 asked, {shown} ranked: that is every candidate stage 1" in captured.err
    assert main(["recommend", "99999", "-k", "100000", "--model-dir", str(model_dir)]) == 0
    assert "ranked: that is every item the cold-start list ranks" in capsys.readouterr().err


def test_flags_belong_to_the_commands_that_use_them(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["recommend", "3", "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["eval", "--model-dir", str(model_dir)])
    assert main(["eval", "--data-dir", str(tmp_path / "typo"), "--quick"]) == 2
    assert "movielens-100k" in capsys.readouterr().err  # named folder, no silent fallback


@pytest.mark.parametrize("where", ["a file", "under a file", "a folder nobody may write in"])
def test_train_refuses_a_model_dir_it_cannot_write_before_fitting(
    frames, catalog, tmp_path, monkeypatch, capsys, where
):
    # The full fit takes minutes: a bad --model-dir must fail before it, not at save(). An
    # existing folder nobody may write in passed mkdir(exist_ok=True) and crashed at save after
    # the fit (found by a review); /sys/kernel refuses new files even to root.
    if where == "a folder nobody may write in" and not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux's /sys")
    ratings, items, users = frames
    data = types.SimpleNamespace(ratings=ratings, items=items, users=users, genres=GENRES)
    monkeypatch.setattr(cli, "_load", lambda data_dir: (data, catalog))

    def no_fit(self, train):
        raise AssertionError("fit ran before the model folder was checked")

    monkeypatch.setattr(TwoStageRecommender, "fit", no_fit)
    (tmp_path / "taken").write_text("x")
    folder = {
        "a file": tmp_path / "taken",
        "under a file": tmp_path / "taken" / "model",
        "a folder nobody may write in": Path("/sys/kernel"),
    }[where]
    assert main(["train", "--model-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(folder) in err


def test_new_item_slots_show_new_items_and_say_when_there_are_none(
    frames, catalog, model_dir, tmp_path, capsys
):
    ratings = frames[0]
    fitted = TwoStageRecommender(catalog, RecsysConfig(seed=0, **TINY))
    fitted.fit(ratings[ratings["item_id"] != 10]).save(tmp_path)  # item 10: new
    assert (
        main(["recommend", "3", "-k", "3", "--new-item-slots", "1", "--model-dir", str(tmp_path)])
        == 0
    )
    last = capsys.readouterr().out.splitlines()[-1]
    assert "Movie 10" in last and last.endswith("new_item")

    assert (
        main(["recommend", "3", "-k", "3", "--new-item-slots", "1", "--model-dir", str(model_dir)])
        == 0
    )
    assert "no new items" in capsys.readouterr().err
    assert (
        main(["recommend", "3", "-k", "3", "--new-item-slots", "4", "--model-dir", str(model_dir)])
        == 2
    )
    assert "new_item_slots must be a whole number from 0 to k=3" in capsys.readouterr().err


def test_add_items_serves_a_film_that_arrived_after_training(model_dir, tmp_path, capsys):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)  # the module's model has no new items
    films = tmp_path / "films.csv"
    films.write_text(
        "item_id,title,genres,release_date\n501,The New One\x1b[2J,Action|Drama,2026-11-01\n"
        "502,Untitled Sequel\x1b[2J,Action,\n"  # an escape sequence: printed escaped
    )
    assert main(["add-items", str(films), "--model-dir", str(folder)]) == 0
    assert "added 2 films" in capsys.readouterr().out
    args = ["recommend", "3", "-k", "3", "--new-item-slots", "1", "--model-dir", str(folder)]
    assert main(args) == 0
    captured = capsys.readouterr()
    last = captured.out.splitlines()[-1]
    assert ("The New One" in last or "Untitled Sequel" in last) and last.endswith("new_item")
    assert "\\x1b[2J" in last and "\x1b" not in captured.out
    assert "no new items" not in captured.err
    assert main(["add-items", str(films), "--model-dir", str(folder)]) == 2  # the ids are taken
    assert "already in the model: [501, 502]" in capsys.readouterr().err
    assert main(["add-items", str(tmp_path / "none.csv"), "--model-dir", str(folder)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_add_items_waits_for_another_writer_of_the_model(model_dir, tmp_path, capsys):
    # load, add and save run under the model's lock: with another add-items holding it (here
    # the test), this one waits and then adds to what that one saved; without the lock the
    # later save dropped the other's films
    import shutil
    import threading

    from recsys.store import model_lock

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    films = tmp_path / "films.csv"
    films.write_text("item_id,title,genres\n601,Waited,Action\n")
    codes = []
    second = threading.Thread(
        target=lambda: codes.append(main(["add-items", str(films), "--model-dir", str(folder)])),
        daemon=True,
    )
    with model_lock(folder):
        first = TwoStageRecommender.load(folder)
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive()  # waiting for the lock
        first.add_items(pd.DataFrame({"item_id": [600], "title": ["First"], "genres": ["Drama"]}))
        first.save(folder)  # re-entrant: the holder saves under its own lock
    second.join(timeout=60)
    assert codes == [0]
    assert TwoStageRecommender.load(folder).added_.ids.tolist() == [600, 601]


# -- train over a folder that holds added films --------------------------------------------------


@pytest.fixture
def tiny_train(frames, catalog, monkeypatch):
    """`python -m recsys train` on the checkerboard with the tests' small settings (seconds).

    Returns a function that swaps the catalogue the data loader gives (MovieLens' own u.item in
    real use), so a test can make it hold an id a saved film has.
    """
    import recsys.config

    ratings, items, users = frames
    data = types.SimpleNamespace(ratings=ratings, items=items, users=users, genres=GENRES)
    fast = dict(TINY, sources=("popularity", "item_knn", "ease"), blend_sources=("ease",))
    monkeypatch.setattr(cli, "RecsysConfig", lambda: RecsysConfig(**fast, validation_folds=1))
    monkeypatch.setattr(recsys.config, "PROTOCOL_SETTINGS", {})  # keep TINY's settings
    monkeypatch.setattr(cli, "_load", lambda data_dir: (data, catalog))

    def with_catalog(other: Catalog) -> None:
        monkeypatch.setattr(cli, "_load", lambda data_dir: (data, other))

    return with_catalog


def _films_csv(path, rows: str):
    path.write_text("item_id,title,genres,release_date\n" + rows)
    return str(path)


def test_train_keeps_the_films_add_items_added_as_new_items(
    tiny_train, model_dir, tmp_path, capsys
):
    # train used to save a fresh model over the folder, deleting every added film silently
    # (found by a review): it now carries them into its catalogue, and again at every retrain
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    films = _films_csv(
        tmp_path / "films.csv",
        "501,The New One,Action|Drama,2026-11-01\n502,Untitled Sequel,Action,\n",
    )
    assert main(["add-items", films, "--model-dir", str(folder)]) == 0
    capsys.readouterr()
    assert main(["train", "--model-dir", str(folder)]) == 0
    assert "kept 2 films added with add-items" in capsys.readouterr().out
    model = TwoStageRecommender.load(folder)
    assert model.catalog.item_ids[model.new_items_].tolist() == [501, 502]
    assert len(model.added_) == 0  # catalogue items now, no longer added on top
    assert model.catalog.release_year[model.new_items_][0] == 2026
    args = ["recommend", "3", "-k", "3", "--new-item-slots", "1", "--model-dir", str(folder)]
    assert main(args) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert ("The New One" in last or "Untitled Sequel" in last) and last.endswith("new_item")
    # the next retrain keeps them again, with a film added since
    assert main(["add-items", _films_csv(tmp_path / "more.csv", "503,Third,Drama,1999\n"),
                 "--model-dir", str(folder)]) == 0  # fmt: skip
    assert main(["train", "--model-dir", str(folder)]) == 0
    assert "kept 3 films" in capsys.readouterr().out
    model = TwoStageRecommender.load(folder)
    assert model.catalog.item_ids[model.new_items_].tolist() == [501, 502, 503]
    kept = model.films_added()
    assert kept.ids.tolist() == [501, 502, 503]
    assert kept.genres.tolist() == ["Action|Drama", "Action", "Drama"]  # the rows as given
    assert kept.release_dates.tolist() == ["2026-11-01", "", "1999"]


def test_train_keeps_a_film_added_while_it_was_fitting(tiny_train, model_dir, tmp_path, capsys):
    # train does not hold the model's lock through the fit (minutes); it saves under the lock,
    # adding what add-items saved meanwhile, so that film is not lost either
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    fit = TwoStageRecommender.fit
    late = _films_csv(tmp_path / "late.csv", "601,Arrived Mid-Fit,Drama,2001-02-03\n")

    def fit_then_add_items(self, train, **kwargs):
        fitted = fit(self, train, **kwargs)
        assert main(["add-items", late, "--model-dir", str(folder)]) == 0  # not blocked
        return fitted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TwoStageRecommender, "fit", fit_then_add_items)
        assert main(["train", "--model-dir", str(folder)]) == 0
    assert "kept 1 films" in capsys.readouterr().out
    model = TwoStageRecommender.load(folder)
    assert model.added_.ids.tolist() == [601]  # served at once, a catalogue item after a retrain
    assert model.films_added().release_dates.tolist() == ["2001-02-03"]


def test_train_reads_the_films_from_the_model_not_from_its_manifest(
    tiny_train, model_dir, tmp_path, capsys
):
    # the manifest is written after model.pkl: a failed second write (a full disk) left it
    # counting no films while recommend served the one in model.pkl, and train then dropped it
    import json
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    assert main(["add-items", _films_csv(tmp_path / "f.csv", "501,Film 501,Action,\n"),
                 "--model-dir", str(folder)]) == 0  # fmt: skip
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "n_added_items": 0}))
    capsys.readouterr()
    assert main(["train", "--model-dir", str(folder)]) == 0
    assert "kept 1 films added with add-items" in capsys.readouterr().out
    assert 501 in TwoStageRecommender.load(folder).catalog.item_ids
    # a manifest that cannot be read cannot say whether the model holds films: refused
    (folder / "manifest.json").write_text("{cut")
    saved = (folder / "model.pkl").read_bytes()
    assert main(["train", "--model-dir", str(folder)]) == 2
    assert "may hold an unknown number of films" in capsys.readouterr().err
    assert (folder / "model.pkl").read_bytes() == saved


def test_train_refuses_to_drop_a_film_it_cannot_keep(
    tiny_train, frames, model_dir, tmp_path, capsys
):
    import json
    import shutil

    _, items, users = frames
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    assert main(["add-items", _films_csv(tmp_path / "f.csv", "21,Film 21,Action,\n"),
                 "--model-dir", str(folder)]) == 0  # fmt: skip
    saved = (folder / "model.pkl").read_bytes()

    def no_fit(self, train, **kwargs):
        raise AssertionError("fit ran although the saved films cannot be kept")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TwoStageRecommender, "fit", no_fit)
        # the data now has a film 21 of its own: the added film 21 cannot join its catalogue
        bigger = pd.concat([items, items.tail(1).assign(item_id=21, title="Dataset's 21")])
        tiny_train(Catalog.from_frames(bigger, users, GENRES))
        assert main(["train", "--model-dir", str(folder)]) == 2
        err = capsys.readouterr().err
        assert "ids the training catalogue has too: [21]" in err and "--model-dir" in err
        # a model of the previous format kept no genres or dates to carry its films with
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 5}))
        assert main(["train", "--model-dir", str(folder)]) == 2
        assert "holds 1 films added with add-items, in format 5" in capsys.readouterr().err
    assert (folder / "model.pkl").read_bytes() == saved  # nothing was overwritten
    # a model whose manifest says it holds added films but cannot be read: refused too
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "model.pkl").write_bytes(b"not a pickle")
    assert main(["train", "--model-dir", str(folder)]) == 2
    assert "may hold 1 films added with add-items, but cannot be read" in capsys.readouterr().err
    # an old model without added films is simply replaced, as before
    (folder / "manifest.json").write_text(
        json.dumps({**manifest, "format_version": 5, "n_added_items": 0})
    )
    tiny_train(Catalog.from_frames(items, users, GENRES))
    assert main(["train", "--model-dir", str(folder)]) == 0
    assert "kept" not in capsys.readouterr().out


def test_train_with_interactions_makes_an_added_film_warm(tiny_train, model_dir, tmp_path, capsys):
    # an added film stayed a new item at every CLI retrain (MovieLens' ratings never hold it):
    # --interactions trains on its ratings too, and it is then ranked like any film
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    films = _films_csv(tmp_path / "f.csv", "501,The New One,Action,2026-11-01\n502,Other,Drama,\n")
    assert main(["add-items", films, "--model-dir", str(folder)]) == 0
    log = tmp_path / "since.csv"
    log.write_text(
        "user_id,item_id,rating,timestamp\n"
        + "".join(f"{u},501,5,{10**6 + u}\n" for u in range(1, 11))
    )
    capsys.readouterr()
    assert main(["train", "--interactions", str(log), "--model-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "(10 from " in out and "1 with ratings to train on (warm" in out and "1 without" in out
    model = TwoStageRecommender.load(folder)
    assert model.catalog.item_ids[model.new_items_].tolist() == [502]
    assert model.films_added().ids.tolist() == [501, 502]  # both kept for the next retrain
    ranked = [model.recommend(u, k=6) for u in range(11, 21)]
    assert sum(501 in rec.items for rec in ranked) >= 8  # block A's users now see it ranked
    assert all(
        rec.sources[rec.items.index(501)] != "new_item" for rec in ranked if 501 in rec.items
    )


def test_train_refuses_bad_interactions_before_fitting(tiny_train, model_dir, tmp_path, capsys):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    saved = (folder / "model.pkl").read_bytes()
    header = "user_id,item_id,rating,timestamp\n"
    cases = {
        "unknown.csv": (header + "1,777,4,1000\n", "items not in the catalogue: 777"),
        "ms.csv": (header + "1,15,4,1700000000000\n", "looks like milliseconds"),
        "empty.csv": ("", "cannot read"),
        "columns.csv": ("user,item\n1,2\n", "lack the column(s)"),
    }
    cases["nowhere.csv"] = (None, "cannot read")

    def no_fit(self, train, **kwargs):
        raise AssertionError("fit ran although the interactions are bad")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TwoStageRecommender, "fit", no_fit)
        for name, (text, message) in cases.items():
            if text is not None:
                (tmp_path / name).write_text(text)
            args = ["train", "--interactions", str(tmp_path / name), "--model-dir", str(folder)]
            assert main(args) == 2, name
            err = capsys.readouterr().err
            assert err.startswith("error: ") and message in err, (name, err)
    assert (folder / "model.pkl").read_bytes() == saved  # nothing was trained or overwritten
