"""Command line: ``python -m recsys train | recommend USER_ID | add-items CSV | eval``.

    python -m recsys train                      # fit on all of MovieLens 100K, save the model
                                                # (keeping the films add-items put in it)
    python -m recsys train --interactions new.csv  # ... plus ratings since (added films warm up)
    python -m recsys recommend 196 -k 5         # top-5 for user 196 from the saved model
    python -m recsys add-items new_films.csv    # films that arrived since, for new-item slots
    python -m recsys eval --protocol temporal   # the issue's table for one split

Data comes from ``evals.datasets`` (``--data-dir``, else ``AIS_DATA_DIR``, the cache or a
download); the model is saved to ``--model-dir``, else ``$AIS_RECSYS_MODEL_DIR``, else
``~/.cache/ais/recsys/model``. Errors are one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from evals.cli import run, shown
from evals.errors import DatasetError
from recsys.catalog import Catalog
from recsys.config import RecsysConfig
from recsys.errors import InvalidArgumentError, RecsysError
from recsys.films import catalog_with_films
from recsys.interactions import check_interactions
from recsys.recommender import COLD_START_SOURCE, TwoStageRecommender
from recsys.store import make_model_folder, model_lock, saved_films


def _default_model_dir() -> Path:
    env = os.environ.get("AIS_RECSYS_MODEL_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ais" / "recsys" / "model"


def _load(data_dir):
    from evals.datasets import load_movielens_100k

    ml = load_movielens_100k(data_dir)
    return ml, Catalog.from_frames(ml.items, ml.users, ml.genres)


def cmd_train(args) -> int:
    folder = make_model_folder(args.model_dir)  # a bad --model-dir fails now, not after the fit
    # Films add-items put in the model this train replaces: carried into the new catalogue as
    # items of their own (new items until ratings of theirs are trained on), never dropped.
    # Read now, so a model that holds films this train cannot keep fails before the fit.
    films = saved_films(folder)
    ml, catalog = _load(args.data_dir)
    catalog = catalog_with_films(catalog, films)
    ratings = ml.ratings
    if args.interactions is not None:  # checked before the fit: a bad row costs no training
        extra = check_interactions(_read_interactions(args.interactions, catalog), catalog, ratings)
        ratings = pd.concat([ratings, extra], ignore_index=True)
    config = replace(RecsysConfig(), seed=args.seed).with_protocol(args.protocol)
    start = time.perf_counter()
    model = TwoStageRecommender(catalog, config, kept=films)  # kept=: the next retrain keeps them
    model.fit(ratings)
    # Save under the model's lock, like add-items: films it added during the fit (the lock is
    # not held that long) join this model as added films, so they are not lost either.
    with model_lock(folder):
        late = saved_films(folder).without(films.ids)
        if len(late):
            model.add_items(late.frame())
        model.save(folder)
    source = f" ({len(extra):,} from {args.interactions})" if args.interactions else ""
    print(
        f"trained on {len(ratings):,} interactions{source} in {time.perf_counter() - start:.1f} s"
    )
    for name, seconds in model.timings_.items():
        print(f"  {name:<24} {seconds:8.2f}")
    print("top ranker features (share of gain):")
    for name, gain in list(model.ranker_.importances().items())[:8]:
        print(f"  {name:<28} {gain:.3f}")
    if len(films) or len(late):
        # a kept film is warm once the training ratings (--interactions) hold some of its own
        new = set(model.catalog.item_ids[model.new_items_].tolist())
        cold = sum(item in new for item in films.ids.tolist())
        print(
            f"kept {len(films) + len(late)} films added with add-items to the model this "
            f"replaces: {len(films) - cold} with ratings to train on (warm: ranked like any "
            f"film), {cold} without (new items, served with --new-item-slots), {len(late)} "
            "added during the fit"
        )
    print(f"saved to {folder}")
    return 0


def _read_interactions(path: str, catalog: Catalog) -> pd.DataFrame:
    """The CSV of ``train --interactions``, ids read as the catalogue has them (numbers or text)."""
    text_ids = {
        "user_id": str if not catalog.integer_user_ids else None,
        "item_id": str if catalog.item_ids.dtype.kind not in "iu" else None,
    }
    try:
        return pd.read_csv(path, dtype={k: v for k, v in text_ids.items() if v is not None})
    except (OSError, ValueError) as exc:  # missing, unreadable, empty, not CSV, not UTF-8
        raise InvalidArgumentError(f"cannot read {path}: {exc}") from exc


def _user_id(text: str, catalog: Catalog) -> object:
    """The id as the catalogue stores it: a whole number if its ids are integers, else the text.

    Text that is not plain digits stays text (``int()`` would also read ``"1_96"`` as 196), and
    recommend() refuses it; a catalogue of text ids gets the text, so ``"007"`` stays ``"007"``.
    """
    text = text.strip()
    if catalog.integer_user_ids and re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    return text


def cmd_recommend(args) -> int:
    model = TwoStageRecommender.load(args.model_dir)
    user_id = _user_id(args.user_id, model.catalog)
    start = time.perf_counter()
    rec = model.recommend(user_id, k=args.k, new_item_slots=args.new_item_slots)
    if args.new_item_slots and not len(model.new_items_) + len(model.added_):
        print(
            "note: every catalogue item had a training interaction and no film was added "
            "since (`python -m recsys add-items`): no new items",
            file=sys.stderr,
        )
    ms = 1000 * (time.perf_counter() - start)
    # A user the catalogue lacks, or one it has without a training interaction, is served the
    # cold-start list: the sources say which happened.
    known = COLD_START_SOURCE not in rec.sources
    if not known:
        print(f"note: user {user_id} has no training history: cold-start list", file=sys.stderr)
    titles = model.item_titles()
    print(f"user {user_id}: top-{len(rec.items)} in {ms:.1f} ms")
    if len(rec.items) < args.k:
        everything = (
            "every candidate stage 1 proposed for this user"
            if known
            else "every item the cold-start list ranks"
        )
        print(
            f"note: {args.k} asked, {len(rec.items)} ranked: that is {everything}", file=sys.stderr
        )
    for rank, (item, score, source) in enumerate(
        zip(rec.items, rec.scores, rec.sources, strict=True), start=1
    ):
        title = shown(titles[item][:48])  # a film added with add-items: text from outside
        print(f"{rank:>3}. {title:<48} item {item:>5}  {score:8.3f}  {source}")
    return 0


def cmd_add_items(args) -> int:
    try:
        # ids as the catalogue reads them (whole numbers), everything else as text
        items = pd.read_csv(
            args.items_csv, dtype={"title": str, "genres": str, "release_date": str}
        )
    except (OSError, ValueError) as exc:  # missing, unreadable, not CSV
        raise InvalidArgumentError(f"cannot read {args.items_csv}: {exc}") from exc
    # load, add and save under the model's lock: an add-items running beside this one waits,
    # then adds to what this one saved (without the lock, the later save drops the other's films)
    with model_lock(args.model_dir):
        model = TwoStageRecommender.load(args.model_dir)
        added = model.add_items(items)
        model.save(args.model_dir)
    print(
        f"added {added} films to the model in {args.model_dir} "
        f"({len(model.added_)} added since training); serve them with "
        "`python -m recsys recommend USER --new-item-slots S`"
    )
    return 0


def cmd_eval(args) -> int:
    from recsys.eval import evaluate_protocol

    ml, catalog = _load(args.data_dir)
    config = replace(RecsysConfig(), seed=args.seed).with_protocol(args.protocol)
    if args.quick:
        config = replace(
            config, candidates_per_source=50, validation_folds=1, ranker_estimators=100
        )
    result = evaluate_protocol(ml.ratings, catalog, config)
    print(f"{result.protocol}: {result.split}; {len(result.users)} test users")
    metrics = list(next(iter(result.metrics.values())))
    print(f"{'variant':<12}" + "".join(f"{m:>14}" for m in metrics))
    for variant, values in result.metrics.items():
        print(f"{variant:<12}" + "".join(f"{values[m]:>14.4f}" for m in metrics))
    recall = ", ".join(f"{k} {v:.3f}" for k, v in result.candidate_recall.items())
    print(f"candidate recall@{config.candidates_per_source}: {recall}")
    print(
        f"recommend latency p50 {result.timings['p50_ms']:.1f} ms, "
        f"p99 {result.timings['p99_ms']:.1f} ms"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log decisions (INFO)")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data-dir", default=None, help="folder holding movielens-100k/")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model-dir", type=Path, default=_default_model_dir())
    parser = argparse.ArgumentParser(prog="python -m recsys", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train", parents=[common, data, model], help="fit on all ratings, save the model"
    )
    train.add_argument("--seed", type=int, default=42)
    train.add_argument(
        "--interactions",
        metavar="CSV",
        default=None,
        help="ratings since the dataset to train on too: user_id, item_id, rating, timestamp "
        "(Unix seconds), e.g. of films added with add-items, which then become warm",
    )
    train.add_argument(
        "--protocol",
        choices=["stratified", "temporal"],
        default="stratified",
        help="whose validated settings and validation carve to use (temporal: a deployment "
        "that predicts the future)",
    )
    rec = sub.add_parser(
        "recommend", parents=[common, model], help="top-k for one user (saved model)"
    )
    rec.add_argument("user_id")
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument(
        "--new-item-slots",
        type=int,
        default=None,
        metavar="S",
        help="give the last S places to new items, chosen by content (default: the model's "
        "config, 0)",
    )
    add = sub.add_parser(
        "add-items",
        parents=[common, model],
        help="add films that arrived after training (saved model), for new-item slots",
    )
    add.add_argument(
        "items_csv", help="CSV with columns item_id, title, genres (A|B), release_date (optional)"
    )
    ev = sub.add_parser(
        "eval", parents=[common, data], help="fit on a train split, print the table"
    )
    ev.add_argument("--protocol", choices=["stratified", "temporal"], default="stratified")
    ev.add_argument("--seed", type=int, default=42)
    ev.add_argument("--quick", action="store_true", help="fewer candidates, smaller ranker")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handlers = {
        "train": cmd_train,
        "recommend": cmd_recommend,
        "add-items": cmd_add_items,
        "eval": cmd_eval,
    }
    try:
        return handlers[args.command](args)
    except (RecsysError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run(main))  # Ctrl-C or a closed pipe: one line, no traceback
