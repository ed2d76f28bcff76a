"""The catalogue: id <-> index maps, the interaction matrix, and side information.

Every model in this package works on integer indices (rows = users, columns = items) of one
``Catalog``, built from the *metadata* tables (all 943 users, all 1,682 items), not from the
ratings. So an item with no training interaction still has a column (a cold item that content
features can score), and the user/item index spaces never change between the validation fit and
the final fit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.errors import InvalidArgumentError, UnknownItemError, UnknownUserError

AGE_BINS = (0, 18, 25, 35, 45, 50, 56, 200)  # MovieLens-1M style age bands


@dataclass(frozen=True)
class Catalog:
    """Index maps plus side features, with documented shapes.

    user_ids: (n_users,) raw ids; row u of every user matrix is user ``user_ids[u]``.
    item_ids: (n_items,) raw ids; column i of every item matrix is item ``item_ids[i]``.
    genres: (n_items, n_genres) float32 0/1 genre flags; ``genre_names`` labels the columns.
    release_year: (n_items,) float32, NaN when unknown.
    user_age_band, user_gender, user_occupation: (n_users,) int codes (side features).
    titles: (n_items,) str.
    occupation_names: the occupation of each ``user_occupation`` code (code i is name i).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    genres: np.ndarray
    genre_names: tuple[str, ...]
    release_year: np.ndarray
    user_age_band: np.ndarray
    user_gender: np.ndarray
    user_occupation: np.ndarray
    titles: np.ndarray
    occupation_names: tuple[str, ...] = ()

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def integer_user_ids(self) -> bool:
        """True when user ids are whole numbers (MovieLens); else they are text."""
        return self.user_ids.dtype.kind in "iu"

    @classmethod
    def from_frames(
        cls, items: pd.DataFrame, users: pd.DataFrame, genre_names: Iterable[str]
    ) -> Catalog:
        """Build from the MovieLens ``items`` and ``users`` frames (see ``evals.datasets``)."""
        genre_names = tuple(genre_names)
        for name, frame, needed in (
            ("items", items, ("item_id", "title", "release_date")),
            ("users", users, ("user_id", "age", "gender", "occupation")),
        ):
            absent = [c for c in needed if c not in frame.columns]
            if absent:  # a bad column set is named here, not a KeyError from pandas below
                raise InvalidArgumentError(
                    f"{name} frame lacks the column(s) {absent}; it needs {list(needed)} "
                    "(MovieLens' u.item / u.user as evals.datasets loads them)"
                )
        missing = [g for g in genre_names if g not in items.columns]
        if missing:
            raise InvalidArgumentError(f"items frame lacks genre columns {missing}")
        # A repeated id would get a second column (or row) that no interaction reaches, since
        # the lookup finds only the first: the model would then recommend a seen item as unseen
        # and list the id twice.
        _check_unique(items, "items", "item_id")
        _check_unique(users, "users", "user_id")
        items = items.sort_values("item_id")
        users = users.sort_values("user_id")
        release = pd.to_datetime(items["release_date"], errors="coerce")
        occupations = users["occupation"].astype("category")
        return cls(
            user_ids=users["user_id"].to_numpy(),
            item_ids=items["item_id"].to_numpy(),
            genres=items[list(genre_names)].to_numpy(dtype=np.float32),
            genre_names=genre_names,
            release_year=release.dt.year.to_numpy(dtype=np.float32),
            user_age_band=np.digitize(users["age"].to_numpy(), AGE_BINS[1:-1]).astype(np.int32),
            user_gender=(users["gender"].to_numpy() == "F").astype(np.int32),
            user_occupation=occupations.cat.codes.to_numpy().astype(np.int32),
            titles=items["title"].astype(str).to_numpy(),
            occupation_names=tuple(str(o) for o in occupations.cat.categories),
        )

    def with_items(
        self, item_ids: np.ndarray, titles: np.ndarray, genres: np.ndarray, release_year: np.ndarray
    ) -> Catalog:
        """This catalogue plus items of its own, in id order like ``from_frames``.

        ``genres`` is (n, n_genres) flags over ``genre_names``, ``release_year`` (n,) (NaN when
        unknown). Used to keep films added to a trained model through a retrain
        (``films.catalog_with_films``); an id the catalogue has is an error.
        """
        ids = np.concatenate([self.item_ids, np.asarray(item_ids)])
        if len(pd.unique(ids)) < len(ids):
            raise InvalidArgumentError("with_items: the catalogue has these item ids already")
        order = np.argsort(ids, kind="stable")
        return replace(
            self,
            item_ids=ids[order],
            genres=np.vstack([self.genres, np.asarray(genres, dtype=np.float32)])[order],
            release_year=np.concatenate(
                [self.release_year, np.asarray(release_year, dtype=np.float32)]
            )[order],
            titles=np.concatenate([self.titles, np.asarray(titles, dtype=str)])[order],
        )

    # -- id maps ------------------------------------------------------------------------------
    def user_index(self, user_ids: Iterable[object]) -> np.ndarray:
        """Raw user ids -> row indices; raises ``UnknownUserError`` naming every unknown id."""
        return _lookup(self.user_ids, user_ids, UnknownUserError)

    def item_index(self, item_ids: Iterable[object]) -> np.ndarray:
        """Raw item ids -> column indices; raises ``UnknownItemError`` naming every unknown id."""
        return _lookup(self.item_ids, item_ids, UnknownItemError)

    def has_user(self, user_id: object) -> bool:
        try:
            pos = int(np.searchsorted(self.user_ids, user_id))
        except (TypeError, ValueError):  # an id of another type (e.g. "abc") is simply unknown
            return False
        return bool(pos < len(self.user_ids) and self.user_ids[pos] == user_id)

    # -- matrices -----------------------------------------------------------------------------
    def matrix(self, ratings: pd.DataFrame, values: str | None = None) -> sp.csr_matrix:
        """(n_users, n_items) CSR of interactions: 1.0 per (user, item), or ``ratings[values]``."""
        rows = self.user_index(ratings["user_id"].to_numpy())
        cols = self.item_index(ratings["item_id"].to_numpy())
        data = (
            np.ones(len(rows), dtype=np.float32)
            if values is None
            else ratings[values].to_numpy(dtype=np.float32)
        )
        m = sp.csr_matrix((data, (rows, cols)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        if values is None:
            m.data[:] = 1.0  # a repeated (user, item) pair is still one interaction
        return m


def _check_unique(frame: pd.DataFrame, name: str, column: str) -> None:
    repeated = pd.unique(frame.loc[frame[column].duplicated(), column])
    if len(repeated):
        shown = ", ".join(str(i) for i in sorted(repeated)[:5])
        more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
        raise InvalidArgumentError(
            f"{name} frame repeats {column} {shown}{more}; each {column} must have one row"
        )


def _lookup(known: np.ndarray, ids: Iterable[object], error: type) -> np.ndarray:
    ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    try:
        pos = np.searchsorted(known, ids)
    except TypeError as exc:  # e.g. a string id against integer ids
        raise error([i for i in ids.tolist()], len(known)) from exc
    pos = np.clip(pos, 0, len(known) - 1)
    bad = known[pos] != ids
    if bad.any():
        raise error(ids[bad].tolist(), len(known))
    return pos.astype(np.int64)
