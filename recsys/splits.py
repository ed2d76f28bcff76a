"""Train/test splits for offline evaluation, each leakage-safe and seeded.

Two protocols, because they answer different questions:

1. ``stratified_split`` reproduces Microsoft Recommenders' ``python_stratified_split`` (the
   splitter of their MovieLens benchmark notebook, ``examples/06_benchmarks/movielens.ipynb``).
   The function's signature defaults to ``filter_by="user"``, but the notebook calls it with
   ``ratio=0.75, min_rating=1, filter_by="item"``: for every *item*, a random 75% of its ratings
   go to train and the rest to test. We default to ``"item"`` so our figures sit beside their
   published table. The algorithm is theirs, step for step (same numpy calls, same seed
   semantics, checked row for row against ``recommenders==1.2.1`` in the tests): draw one
   uniform number per row with ``np.random.seed(seed)``, sort by (group, random), and send a
   row to train while its 1-based within-group rank <= round(ratio * group size) (numpy's
   round-half-to-even; releases before 1.2 compared rank / size <= ratio instead, which puts
   ~700 more ratings in the test set of ML-100K).
   A random split lets the model see a user's "future" and so flatters every model; it is the
   protocol of the published table, not of production.

2. ``temporal_split`` is what production looks like: one global cut-off time; everything before
   it is train, everything after it is test, for users who have some history before the cut.
   A per-user chronological split (each user's last 25%) would still leak the future: user A's
   test week can come after user B's training interactions, so item-item statistics learn from
   a time the model is never meant to have seen. The global cut has no such leak.

``validation_split`` carves the ranker's training data out of the *training* split only, by
applying the same protocol again, so the ranker learns on a split that mimics the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from recsys.errors import InvalidArgumentError

# A ratings frame: one row per interaction. ``timestamp`` is in Unix seconds (MovieLens' unit):
# the recommender's time features count days of 86,400 and read the last one as a date.
REQUIRED_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
# Timestamps the recommender accepts: Unix seconds from 1900 to 2200. Milliseconds (1.6e12 for
# 2020) or microseconds fall far outside, and ``check_unix_seconds`` says which unit it wants.
SECONDS_RANGE = (-2_208_988_800, 7_258_118_400)
Protocol = Literal["stratified", "temporal"]


@dataclass(frozen=True)
class Split:
    """A train/test pair of rating frames (columns user_id, item_id, rating, timestamp)."""

    train: pd.DataFrame
    test: pd.DataFrame
    protocol: str
    description: str


def _check_frame(ratings: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in ratings.columns]
    if missing:
        raise InvalidArgumentError(
            f"ratings frame is missing column(s) {missing}; expected {list(REQUIRED_COLUMNS)}"
        )
    if ratings.empty:
        raise InvalidArgumentError("ratings frame is empty; nothing to split")
    for column in ("rating", "timestamp"):  # NaN would silently drop rows from a time cut
        values = pd.to_numeric(ratings[column], errors="coerce")
        bad = int((~np.isfinite(values.to_numpy(dtype=np.float64))).sum())
        if bad:
            raise InvalidArgumentError(
                f"ratings frame has {bad} {column} value(s) that are not finite numbers"
            )
        kind = ratings[column].dtype
        if not pd.api.types.is_numeric_dtype(kind) or pd.api.types.is_bool_dtype(kind):
            # the splits order and cut the column itself: text or datetimes fail deep in pandas
            raise InvalidArgumentError(
                f"ratings frame's {column} column holds {kind} values; it needs a column of "
                "numbers (timestamps in Unix seconds, as in MovieLens' u.data). Convert text "
                "with pd.to_numeric, datetimes with .astype('int64') // 10**9"
            )


def check_unix_seconds(ratings: pd.DataFrame) -> None:
    """Refuse a ratings frame whose timestamps are not plausible Unix seconds (1900 to 2200).

    The splits only order timestamps, so they take any unit; the recommender does not. Its
    14-day window features would be 1,000 times too narrow on milliseconds, and reading the
    latest as a date failed inside pandas after every source had trained (found by a review).
    """
    _check_frame(ratings)
    ts = pd.to_numeric(ratings["timestamp"]).to_numpy(dtype=np.float64)
    low, high = SECONDS_RANGE
    outside = (ts < low) | (ts > high)
    if outside.any():
        example = ts[outside][0]
        unit = (
            " (it looks like milliseconds: divide by 1,000)" if 1e11 < abs(example) < 1e14 else ""
        )
        raise InvalidArgumentError(
            f"ratings frame has {int(outside.sum())} timestamp(s) outside Unix seconds from 1900 "
            f"to 2200, such as {example:.0f}{unit}; timestamps must be seconds since 1970-01-01"
        )


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio < 1.0:
        raise InvalidArgumentError(f"ratio must be in (0, 1), got {ratio}")


def stratified_split(
    ratings: pd.DataFrame,
    ratio: float = 0.75,
    filter_by: Literal["user", "item"] = "item",
    seed: int = 42,
) -> Split:
    """Microsoft Recommenders' ``python_stratified_split`` (``min_rating=1``), reproduced.

    >>> df = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [7, 7, 7, 7],
    ...                    "rating": [5, 4, 3, 2], "timestamp": [1, 2, 3, 4]})
    >>> s = stratified_split(df, ratio=0.75, seed=0)
    >>> len(s.train), len(s.test)
    (3, 1)
    """
    _check_frame(ratings)
    _check_ratio(ratio)
    # numpy's legacy generator takes 0 <= seed < 2**32 (a bool would pass as 0 or 1)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise InvalidArgumentError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}")
    if filter_by not in ("user", "item"):
        raise InvalidArgumentError(f"filter_by must be 'user' or 'item', got {filter_by!r}")
    column = "user_id" if filter_by == "user" else "item_id"
    data = ratings.loc[:, list(REQUIRED_COLUMNS)].copy()  # never mutate the caller's frame
    # Their exact sequence: one uniform draw per row in the frame's order, from the legacy
    # Mersenne Twister seeded with ``seed``. They seed numpy's global generator; a RandomState
    # of our own draws the same numbers without resetting the caller's.
    data["random"] = np.random.RandomState(seed).rand(data.shape[0])
    data = data.sort_values([column, "random"])
    groups = data.groupby(column)
    rank = groups.cumcount() + 1
    in_train = (rank <= (ratio * groups[column].transform("count")).round()).to_numpy()
    data = data.drop(columns="random")
    return Split(
        train=data[in_train],
        test=data[~in_train],
        protocol="stratified",
        description=f"python_stratified_split(ratio={ratio}, filter_by={filter_by!r}, seed={seed})",
    )


def temporal_split(ratings: pd.DataFrame, test_fraction: float = 0.25) -> Split:
    """Global time cut-off: the last ``test_fraction`` of interactions (by time) are the test set.

    Test rows of users with no training history are dropped (they are cold users, evaluated on
    their own slice); test rows of items never seen before the cut are kept: a real system must
    rank them, and only content features can.
    """
    _check_frame(ratings)
    _check_ratio(test_fraction)
    data = ratings.loc[:, list(REQUIRED_COLUMNS)]
    cut = float(np.quantile(data["timestamp"].to_numpy(), 1.0 - test_fraction))
    train = data[data["timestamp"] < cut]
    test = data[data["timestamp"] >= cut]
    test = test[test["user_id"].isin(train["user_id"].unique())]
    return Split(
        train=train.copy(),
        test=test.copy(),
        protocol="temporal",
        description=f"global time cut at the {1 - test_fraction:.2f} quantile (ts < {cut:.0f})",
    )


def make_split(
    ratings: pd.DataFrame, protocol: Protocol, *, seed: int = 42, ratio: float = 0.75
) -> Split:
    """Dispatch to one of the two protocols by name."""
    if protocol == "stratified":
        return stratified_split(ratings, ratio=ratio, filter_by="item", seed=seed)
    if protocol == "temporal":
        return temporal_split(ratings, test_fraction=1.0 - ratio)
    raise InvalidArgumentError(f"protocol must be 'stratified' or 'temporal', got {protocol!r}")


def validation_split(train: pd.DataFrame, protocol: str, *, seed: int, ratio: float) -> Split:
    """Carve a validation split from ``train`` alone, with the same protocol as the test split.

    The seed is offset so the validation draw is independent of the test draw.
    """
    return make_split(train, protocol, seed=seed + 1, ratio=ratio)  # type: ignore[arg-type]
