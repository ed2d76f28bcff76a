"""Interactions that arrived after the dataset, checked before a retrain trains on them.

A production recommender retrains on its own event log: the dataset it started from plus every
interaction since. ``python -m recsys train --interactions new_ratings.csv`` does that here: it
trains on MovieLens' ratings plus the file's. It is also how a film added with ``add-items``
becomes warm: once the training ratings hold some of its interactions, every source can propose
it and the ranker ranks it, where before only the new-item slots could show it.

The file is the caller's log, not part of the model (a model never stores its training data),
so every retrain names it again: a retrain without it trains without those interactions.

``check_interactions`` reads the new rows against the catalogue and the ratings they join. Each
rule below is an ``InvalidArgumentError`` that names the bad rows, raised before anything trains:

* the columns of a ratings frame (``splits.REQUIRED_COLUMNS``), at least one row;
* ids of the catalogue's type (whole numbers on MovieLens), of users and items it has: a user
  needs the demographics in ``u.user``, a film is in ``u.item`` or was added with ``add-items``;
* ratings on the known ratings' scale (whole numbers from 1 to 5 on MovieLens), timestamps in
  Unix seconds (``splits.check_unix_seconds``);
* each (user, item) pair once: not repeated in the file, not already rated in the known ratings.
  A rating is an interaction here, and two of one pair would still count as one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.catalog import Catalog
from recsys.errors import InvalidArgumentError
from recsys.splits import REQUIRED_COLUMNS, check_unix_seconds


def _shown(values: list) -> str:
    more = f" (and {len(values) - 5} more)" if len(values) > 5 else ""
    return ", ".join(str(v) for v in values[:5]) + more


def _check_ids(column: pd.Series, known: np.ndarray, kind: str, where: str) -> None:
    """Every id of ``column`` has the type of ``known`` and is one of ``known``."""
    integer = known.dtype.kind in "iu"
    values = column.to_list()
    if integer:
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer)]
    else:
        wrong = [v for v in values if not isinstance(v, str)]
    if wrong:
        expected = "whole numbers" if integer else "text"
        raise InvalidArgumentError(
            f"{kind} ids are {expected} in this catalogue, got {_shown([repr(v) for v in wrong])}"
        )
    unknown = sorted(set(values) - set(known.tolist()))
    if unknown:
        raise InvalidArgumentError(
            f"{kind}s not in the catalogue: {_shown(unknown)}; it has {len(known):,} {kind}s. "
            f"{where}"
        )


def check_interactions(extra: pd.DataFrame, catalog: Catalog, known: pd.DataFrame) -> pd.DataFrame:
    """``extra``'s rows, checked to join ``known`` in a fit on ``catalog`` (module docstring).

    Returns the four ratings columns of ``extra`` with ``known``'s column types and a fresh
    index, ready for ``pd.concat([known, checked])``. ``extra`` is not modified.
    """
    if not isinstance(extra, pd.DataFrame):
        raise InvalidArgumentError(
            f"interactions must be a pandas DataFrame, got {type(extra).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in extra.columns]
    if missing:
        raise InvalidArgumentError(
            f"interactions lack the column(s) {missing}; they need {list(REQUIRED_COLUMNS)}, "
            "like MovieLens' u.data"
        )
    if extra.empty:
        raise InvalidArgumentError("interactions hold no rows; pass at least one")
    extra = extra[list(REQUIRED_COLUMNS)].reset_index(drop=True)
    _check_ids(
        extra["user_id"],
        catalog.user_ids,
        "user",
        "A user needs the demographics of the users table (u.user on MovieLens); a new user "
        "without them is served by the cold-start path instead",
    )
    _check_ids(
        extra["item_id"],
        catalog.item_ids,
        "item",
        "Add a new film with `python -m recsys add-items` before training on its ratings",
    )

    ratings = pd.to_numeric(extra["rating"], errors="coerce").to_numpy(dtype=np.float64)
    scale = known["rating"].to_numpy(dtype=np.float64)
    low, high = float(scale.min()), float(scale.max())
    whole = bool(np.all(scale == np.round(scale)))
    bad = ~np.isfinite(ratings) | (ratings < low) | (ratings > high)
    if whole:
        bad |= ratings != np.round(ratings)
    if bad.any():
        rule = f"whole numbers from {low:g} to {high:g}" if whole else f"from {low:g} to {high:g}"
        rows = extra.loc[bad, "rating"].to_list()
        raise InvalidArgumentError(
            f"{int(bad.sum())} rating(s) off the known ratings' scale ({rule}), such as "
            f"{_shown([repr(r) for r in rows])}"
        )
    check_unix_seconds(extra)

    pairs = pd.MultiIndex.from_frame(extra[["user_id", "item_id"]])
    repeated = sorted(set(pairs[pairs.duplicated()].tolist()))
    rated = sorted(set(pairs.tolist()) & set(zip(known["user_id"], known["item_id"], strict=True)))
    if repeated or rated:
        raise InvalidArgumentError(
            f"(user, item) pairs repeated in the interactions: {_shown(repeated) or 'none'}; "
            f"already rated in the known ratings: {_shown(rated) or 'none'}. Each pair is one "
            "interaction: keep one row of each, and leave out those already rated"
        )
    timestamps = pd.to_numeric(extra["timestamp"])
    checked = extra.assign(rating=ratings, timestamp=timestamps)
    return checked.astype(known[list(REQUIRED_COLUMNS)].dtypes.to_dict())
