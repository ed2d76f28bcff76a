"""Tiny synthetic MovieLens-shaped data with a known answer: a checkerboard.

Users 0..19 (group A: 25-year-old men) interact only with items 1..10 (genre Action, 1990s);
users 20..39 (group B: 52-year-old women) only with items 11..20 (genre Drama, 1970s). Each user
sees a random 6 of their block's 10 items, so every unseen item of the user's own block must
outrank every item of the other block, for any sensible collaborative model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.catalog import Catalog

GENRES = ("unknown", "Action", "Drama")
N_USERS, N_ITEMS, PER_USER = 40, 20, 6


def block_of_user(user_id: int) -> int:
    return 0 if user_id <= N_USERS // 2 else 1


def block_of_item(item_id: int) -> int:
    return 0 if item_id <= N_ITEMS // 2 else 1


def make_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, N_USERS + 1):
        block = block_of_user(user)
        pool = np.arange(1, N_ITEMS // 2 + 1) + block * (N_ITEMS // 2)
        for item in rng.choice(pool, PER_USER, replace=False):
            rows.append((user, int(item), int(rng.integers(3, 6)), int(rng.integers(0, 10**6))))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    item_ids = np.arange(1, N_ITEMS + 1)
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "title": [f"Movie {i}" for i in item_ids],
            "release_date": pd.to_datetime(
                ["1995-01-01" if block_of_item(i) == 0 else "1975-01-01" for i in item_ids]
            ),
            "unknown": 0,
            "Action": [int(block_of_item(i) == 0) for i in item_ids],
            "Drama": [int(block_of_item(i) == 1) for i in item_ids],
        }
    )
    user_ids = np.arange(1, N_USERS + 1)
    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "age": [25 if block_of_user(u) == 0 else 52 for u in user_ids],
            "gender": ["M" if block_of_user(u) == 0 else "F" for u in user_ids],
            "occupation": ["engineer" if block_of_user(u) == 0 else "writer" for u in user_ids],
            "zip_code": "00000",
        }
    )
    return ratings, items, users


@pytest.fixture(scope="session")
def frames():
    return make_frames()


@pytest.fixture(scope="session")
def catalog(frames) -> Catalog:
    _, items, users = frames
    return Catalog.from_frames(items, users, GENRES)
