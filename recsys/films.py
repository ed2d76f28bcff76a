"""Films added to a trained model: the catalogue of items that arrived after training.

A trained model can take films no retrain has seen (``TwoStageRecommender.add_items``): only
their genres and release date are needed, since new-item slots score them by content
(``cold_start.ContentScorer``). This module holds what that takes, apart from the recommender
because none of it is the two-stage algorithm, only the bookkeeping of a growing catalogue:

* ``read_films`` checks an ``add_items`` frame at the boundary (ids, titles, genres, dates)
  and reads each film's genre flags and release year, or names the bad rows of the first
  check that fails (up to five);
* ``AddedItems`` holds the added films with their content vectors, as the model serves them;
* ``FilmRows`` keeps each film's row as given, so that a retrain can keep it:
  ``catalog_with_films`` gives it a catalogue row of its own (``python -m recsys train`` does
  so for the model it replaces; ``store.saved_films`` reads them from that model's folder).

``FilmRows`` and ``AddedItems`` are pickled inside every saved model. Models saved before this
module was split out of ``recommender.py`` name them ``recsys.recommender.FilmRows`` (and
``.AddedItems``); that name still resolves, as ``recommender.py`` imports both, and
``store.SAFE_GLOBALS`` allows it, so those models load unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.catalog import Catalog
from recsys.errors import InvalidArgumentError


@dataclass(frozen=True)
class FilmRows:
    """Films as ``add_items`` was given them: what a retrain needs to give them catalogue rows.

    ``frame()`` is the ``add_items`` frame that adds them again. ``python -m recsys train``
    carries a saved model's films into the new catalogue from these rows (the content vectors
    alone could not rebuild a film's genres or date).
    """

    ids: np.ndarray  # (n,) raw ids, the catalogue's id type
    titles: np.ndarray  # (n,) str
    genres: np.ndarray  # (n,) str, the catalogue's genre names joined by "|"
    release_dates: np.ndarray  # (n,) str, the release_date as given ("" when unknown)

    def __len__(self) -> int:
        return len(self.ids)

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.ids, self.titles, self.genres, self.release_dates)

    def plus(self, more: FilmRows) -> FilmRows:
        if not len(self):
            return more
        if not len(more):
            return self
        pairs = zip(self.columns(), more.columns(), strict=True)
        return FilmRows(*(np.concatenate(pair) for pair in pairs))

    def without(self, ids: np.ndarray) -> FilmRows:
        """These rows, less the films whose id is in ``ids``."""
        keep = ~np.isin(self.ids, ids)
        return FilmRows(*(column[keep] for column in self.columns()))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "item_id": self.ids,
                "title": self.titles,
                "genres": self.genres,
                "release_date": self.release_dates,
            }
        )


NO_FILMS = FilmRows(
    np.zeros(0, dtype=np.int64),
    np.zeros(0, dtype=str),
    np.zeros(0, dtype=str),
    np.zeros(0, dtype=str),
)


@dataclass(frozen=True)
class AddedItems:
    """Films added after training (:meth:`~recsys.recommender.TwoStageRecommender.add_items`), in
    the order added.

    Serving gives film ``j`` the item index ``n_items + j``. ``add_items`` replaces the whole
    object, never changes one in place, and only appends: a thread serving while another adds
    reads one consistent set, and an index it took stays valid in every later set.
    """

    rows: FilmRows  # the films as given, for a retrain
    vectors: np.ndarray  # (n, content dims) ContentScorer.content_of's vectors
    prior: np.ndarray  # (n,) its standardised genre-popularity prior

    @property
    def ids(self) -> np.ndarray:
        """(n,) raw ids, the catalogue's id type."""
        return self.rows.ids

    @property
    def titles(self) -> np.ndarray:
        """(n,) str."""
        return self.rows.titles

    def __len__(self) -> int:
        return len(self.rows)

    def plus(self, more: AddedItems) -> AddedItems:
        if not len(self):
            return more
        return AddedItems(
            self.rows.plus(more.rows),
            np.vstack([self.vectors, more.vectors]),
            np.concatenate([self.prior, more.prior]),
        )


NO_ADDED_ITEMS = AddedItems(
    NO_FILMS, np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32)
)


def read_films(
    items: pd.DataFrame, catalog: Catalog, known: Iterable[object]
) -> tuple[FilmRows, np.ndarray, np.ndarray]:
    """(rows as given, (n, n_genres) genre flags, (n,) release years) of an ``add_items`` frame.

    Each film needs an id of the catalogue's type that ``known`` lacks, a title, genres from the
    catalogue's and a readable date (or none); otherwise an ``InvalidArgumentError`` names the
    bad rows, and nothing is read.
    """
    if not isinstance(items, pd.DataFrame):
        raise InvalidArgumentError(f"items must be a pandas DataFrame, got {type(items).__name__}")
    missing = [c for c in ("item_id", "title", "genres") if c not in items.columns]
    if missing:
        raise InvalidArgumentError(
            f"items lacks the columns {missing}; it needs item_id, title, genres "
            "(and optionally release_date)"
        )
    if items.empty:
        raise InvalidArgumentError("items is empty; pass at least one film")
    ids = items["item_id"].to_list()
    integer = catalog.item_ids.dtype.kind in "iu"
    wrong_type = [i for i in ids if not _is_id(i, integer)]
    if wrong_type:
        kind = "whole numbers" if integer else "text"
        raise InvalidArgumentError(f"item ids are {kind} in this catalogue, got {wrong_type[:5]}")
    known = set(known)
    taken = sorted({i for i in ids if i in known})
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if taken or repeated:
        raise InvalidArgumentError(
            f"item ids already in the model: {taken[:5]}; repeated in items: {repeated[:5]}. "
            "Each added film needs an id of its own (a known film is warm or already new)"
        )
    # a title may be a number (the film "1917"); a missing one is an error
    titles = ["" if _missing(t) else str(t).strip() for t in items["title"].to_list()]
    untitled = [i for i, t in zip(ids, titles, strict=True) if not t]
    if untitled:
        raise InvalidArgumentError(f"films without a title: {untitled[:5]}")
    names = catalog.genre_names
    flags = np.zeros((len(ids), len(names)), dtype=np.float32)
    genre_text = []
    for row, (item, value) in enumerate(zip(ids, items["genres"].to_list(), strict=True)):
        named = _genre_names(value)
        if not named:
            raise InvalidArgumentError(
                f"film {item}: genres must name at least one of {list(names)} "
                f'(a list, or "A|B"), got {value!r}'
            )
        unknown = [g for g in named if g not in names]
        if unknown:
            raise InvalidArgumentError(
                f"film {item}: unknown genres {unknown}; the catalogue's are {list(names)}"
            )
        flags[row, [names.index(g) for g in named]] = 1.0
        genre_text.append("|".join(named))
    dates = items["release_date"] if "release_date" in items.columns else [None] * len(ids)
    dates = list(dates)
    years = [_release_year(d) for d in dates]
    unreadable = [i for i, y in zip(ids, years, strict=True) if y is None]
    if unreadable:
        raise InvalidArgumentError(
            f"films with a release_date that is not a date: {unreadable[:5]} (a date such "
            "as 2026-11-30, a year from 1800 to 2200, or empty when unknown)"
        )
    rows = FilmRows(
        np.asarray(ids),
        np.asarray(titles, dtype=str),
        np.asarray(genre_text, dtype=str),
        np.asarray([_date_text(d) for d in dates], dtype=str),
    )
    return rows, flags, np.asarray(years, dtype=np.float32)


def catalog_with_films(catalog: Catalog, films: FilmRows) -> Catalog:
    """``catalog`` plus ``films`` (added to an earlier model) as catalogue items of their own.

    A retrain on this catalogue has them as items: new items (no interaction, served by the
    new-item slots) until the training ratings hold some of theirs, then warm. A film whose id
    the catalogue has now, or whose genres it lacks, is an ``InvalidArgumentError``: carrying
    it is impossible, and dropping it silently would lose it.
    """
    if not len(films):
        return catalog
    clash = sorted(set(films.ids.tolist()) & set(catalog.item_ids.tolist()))
    if clash:
        raise InvalidArgumentError(
            f"films added with add-items have ids the training catalogue has too: {clash[:5]}; "
            "a retrain cannot keep both. Train into another --model-dir, or give those films "
            "new ids there with add-items"
        )
    _, genres, years = read_films(films.frame(), catalog, catalog.item_ids.tolist())
    return catalog.with_items(films.ids, films.titles, genres, years)


def _missing(value: object) -> bool:
    """None, NaN or NaT: a cell left empty."""
    return value is None or (
        not isinstance(value, str | list | tuple | np.ndarray) and pd.isna(value)
    )


def _genre_names(value: object) -> list[str]:
    """The genre names of one added film: ``"A|B"`` or any sequence of names, each stripped."""
    if isinstance(value, str):
        value = value.split("|")
    elif not isinstance(value, list | tuple | np.ndarray | pd.Series):
        return []
    return [str(g).strip() for g in value]


def _release_year(value: object) -> float | None:
    """The release year of one added film: NaN when unknown, None when unreadable.

    A whole number from 1800 to 2200 is a year (pandas would read 1998 as nanoseconds after
    1970); text is a date in any format pandas reads, or a bare year; offsets are allowed.
    """
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        return float("nan")
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if float(value).is_integer() and 1800 <= value <= 2200 else None
    if isinstance(value, str) and value.strip().isdigit():
        return _release_year(int(value.strip()))
    try:
        year = pd.Timestamp(value).year
    except (ValueError, TypeError, OverflowError):
        return None
    return float(year) if 1800 <= year <= 2200 else None


def _date_text(value: object) -> str:
    """An added film's release_date as text that ``_release_year`` reads back the same."""
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float | np.integer | np.floating):
        return str(int(value))  # a bare year
    return pd.Timestamp(value).isoformat()


def _is_id(item_id: object, integer: bool) -> bool:
    """Does ``item_id`` have the catalogue's id type (a whole number, or text)?"""
    if integer:
        return isinstance(item_id, int | np.integer) and not isinstance(item_id, bool)
    return isinstance(item_id, str)
