"""Cold start: users with no history and items with no interactions.

Collaborative sources need interactions, so both cold cases fall back to side information:

* **New users** get ``SegmentPopularity``: item popularity inside the user's demographic segments
  (age band x gender, and occupation, summed), each shrunk towards global popularity with a
  pseudo-count ``m`` so a small segment does not produce noisy lists:
  score = (c_seg,i + m·p_i) / (n_seg + m), p_i = the global share of users who interacted with i.
  A user who names genres at sign-up gets those genres' items first (``genres=``).
* **New items** get ``ContentScorer``: a content vector per item (genre flags plus a one-hot
  release-year bucket), a user profile = the mean content vector of the user's history, and
  score = cosine(profile, item). The baseline for cold items is genre popularity: the mean
  popularity of the warm items that share the cold item's genres. Content alone *loses* to that
  baseline (NDCG@10 0.19 vs 0.22 on the cold-item slice): genres say what a user likes, not
  what is good. ``ContentScorer(prior_weight=2)`` adds the genre-popularity prior:
  score = z(cosine) + w·z(log(1 + genre popularity)), z-scored over the scored items, with w = 2
  chosen on a different held-out item draw (seed 7: w = 1, 2, 3, 5, 10 gave 0.258, 0.322,
  0.320, 0.299, 0.282).

Both are evaluated on cold slices in ``eval.py`` (users held out of training; items held out of
training) against popularity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.catalog import Catalog
from recsys.errors import InvalidArgumentError

YEAR_BUCKETS = (1930, 1960, 1980, 1990, 1994, 1996, 1997)  # release-year edges (ML-100K skew)


class SegmentPopularity:
    """Popularity within the user's demographic segments, shrunk towards global popularity.

    Two segmentations are summed: (age band x gender) and occupation. Measured on three draws of
    held-out users (stratified split, seed 42), NDCG@10 vs global popularity: age x gender alone
    +0.011 / +0.001 / +0.001, both summed +0.013 / +0.004 / +0.006 (small, but every draw).
    """

    def __init__(self, catalog: Catalog, shrinkage: float = 20.0) -> None:
        self.catalog = catalog
        self.shrinkage = shrinkage
        self.segmentations = {
            "age_gender": catalog.user_age_band * 2 + catalog.user_gender,
            "occupation": catalog.user_occupation,
        }

    def fit(self, interactions: sp.csr_matrix) -> SegmentPopularity:
        active = np.diff(interactions.indptr) > 0
        n_users = self.catalog.n_users
        counts = np.asarray(interactions.sum(axis=0)).ravel()
        self.global_share_ = counts / max(int(active.sum()), 1)
        self.segment_counts_, self.segment_sizes_ = {}, {}
        for name, segment in self.segmentations.items():
            indicator = sp.csr_matrix(
                (active.astype(np.float64), (segment, np.arange(n_users))),
                shape=(segment.max() + 1, n_users),
            )
            self.segment_counts_[name] = np.asarray((indicator @ interactions).todense())
            self.segment_sizes_[name] = np.asarray(indicator.sum(axis=1)).ravel()
        return self

    def _shrunk(self, name: str, segment: np.ndarray | int) -> np.ndarray:
        m = self.shrinkage
        sizes = np.asarray(self.segment_sizes_[name][segment], dtype=np.float64)
        return (self.segment_counts_[name][segment] + m * self.global_share_) / (
            sizes[..., None] + m
        )

    def segment_of(self, age: int, gender: str) -> int:
        """The (age band x gender) segment of a new user."""
        if gender not in ("M", "F"):
            raise InvalidArgumentError(f"gender must be 'M' or 'F', got {gender!r}")
        if not 0 < age < 120:
            raise InvalidArgumentError(f"age must be in (0, 120), got {age}")
        from recsys.catalog import AGE_BINS

        band = int(np.digitize([age], AGE_BINS[1:-1])[0])
        return band * 2 + int(gender == "F")

    def score_segment(self, segment: int, genres: list[str] | None = None) -> np.ndarray:
        """(n_items,) scores for a new user of ``segment``; ``genres`` first if given."""
        scores = self._shrunk("age_gender", segment)
        if genres:
            names = self.catalog.genre_names
            unknown = [g for g in genres if g not in names]
            if unknown:
                raise InvalidArgumentError(f"unknown genres {unknown}; valid: {list(names)}")
            cols = [names.index(g) for g in genres]
            liked = self.catalog.genres[:, cols].sum(axis=1) > 0
            scores = np.where(liked, scores + 1.0, scores)  # chosen genres first, by popularity
        return scores

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items): both segmentations of catalogue users, summed."""
        return sum(self._shrunk(name, seg[users]) for name, seg in self.segmentations.items())


def content_vectors(catalog: Catalog) -> np.ndarray:
    """(n_items, n_genres + n_year_buckets) L2-normalised content vectors."""
    year = np.nan_to_num(catalog.release_year, nan=1995.0)
    bucket = np.digitize(year, YEAR_BUCKETS)
    onehot = np.eye(len(YEAR_BUCKETS) + 1, dtype=np.float32)[bucket]
    vectors = np.hstack([catalog.genres, 0.5 * onehot]).astype(np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


class ContentScorer:
    """Cold items: cosine(user's mean content vector, item's), plus an optional popularity prior.

    ``score(history, items)`` scores only ``items`` (e.g. the cold ones); with ``prior_weight``
    > 0, ``fit(interactions)`` must be called first to compute genre popularity.
    """

    def __init__(self, catalog: Catalog, prior_weight: float = 0.0) -> None:
        self.catalog = catalog
        self.prior_weight = prior_weight
        self.vectors = content_vectors(catalog)

    def fit(self, interactions: sp.csr_matrix) -> ContentScorer:
        self.prior_ = np.log1p(genre_popularity(self.catalog, interactions))
        return self

    def score(self, history: sp.csr_matrix, items: np.ndarray | None = None) -> np.ndarray:
        items = np.arange(self.catalog.n_items) if items is None else np.asarray(items)
        profile = np.asarray(history @ self.vectors)
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
        cosine = profile @ self.vectors[items].T
        if not self.prior_weight:
            return cosine.astype(np.float32)
        return (_z(cosine) + self.prior_weight * _z(self.prior_[items])[None, :]).astype(np.float32)


def _z(values: np.ndarray) -> np.ndarray:
    """Standardise along the last axis (items); constant rows become 0."""
    mean = values.mean(axis=-1, keepdims=True)
    std = values.std(axis=-1, keepdims=True)
    return (values - mean) / np.where(std > 0, std, 1.0)


def genre_popularity(catalog: Catalog, interactions: sp.csr_matrix) -> np.ndarray:
    """(n_items,) popularity baseline for cold items: mean count of warm items sharing a genre."""
    counts = np.asarray(interactions.sum(axis=0)).ravel()
    warm = counts > 0
    g = catalog.genres
    per_genre = (g[warm].T @ counts[warm]) / np.maximum(g[warm].sum(axis=0), 1.0)
    return (g @ per_genre) / np.maximum(g.sum(axis=1), 1.0)
