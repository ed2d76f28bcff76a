"""Stage 2 features for (user, candidate item) pairs.

What the ranker sees, and why each feature can add something a score blend cannot:

* **source ranks and relative scores**: every stage-1 source's opinion, as its rank among the
  user's unseen items and its score divided by the user's best candidate score. Raw scores were
  measured to *hurt* (NDCG@10 0.474 with them vs 0.481 without, seed 42): they grow with the
  amount of training data, so a ranker fitted on the smaller validation fit misreads them at
  test time. Ranks and relative scores mean the same thing in both fits;
* **item popularity and age**: training interaction count (log), mean rating, years between
  release and the end of training;
* **time**: how far the item's typical rating time is from the user's (MovieLens users rate
  in sessions, and a film rated by many people *during this user's active weeks* is a much
  better bet than its all-time count suggests) and the item's count inside the user's window;
* **user-genre affinity**: the share of the user's history in each of the item's genres;
* **user demographics and activity**: age band, gender, occupation, history length, mean
  rating, and the item's popularity within the user's (age band, gender) segment.

Everything is computed from the training frame passed to ``fit``: a test interaction can never
reach a feature (``tests/recsys/test_leakage.py`` checks this).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.candidates import CandidateSet, blend_scores, per_user_z
from recsys.catalog import Catalog

DAY = 86_400.0
WINDOW_DAYS = 14.0  # half-width of the "active window" around a user's first/last rating


class FeatureBuilder:
    """Fit statistics on a training frame, then turn candidate sets into feature matrices.

    ``blend_sources`` non-empty adds the score blend of those sources as two features (its
    per-user z-score and its rank among the user's candidates): the served score's other half,
    handed to the trees as one column instead of a sum they would have to learn.
    """

    blend_sources: tuple[str, ...] = ()  # models saved before the option read as without it

    def __init__(self, catalog: Catalog, blend_sources: tuple[str, ...] = ()) -> None:
        self.catalog = catalog
        self.blend_sources = tuple(blend_sources)

    def fit(self, train: pd.DataFrame) -> FeatureBuilder:
        cat = self.catalog
        u = cat.user_index(train["user_id"].to_numpy())
        i = cat.item_index(train["item_id"].to_numpy())
        ts = train["timestamp"].to_numpy(dtype=np.float64)
        rating = train["rating"].to_numpy(dtype=np.float64)
        n_u, n_i = cat.n_users, cat.n_items

        self.item_count_ = np.bincount(i, minlength=n_i).astype(np.float64)
        self.item_mean_rating_ = _mean(np.bincount(i, rating, n_i), self.item_count_, 3.5)
        self.item_mean_ts_ = _mean(np.bincount(i, ts, n_i), self.item_count_, np.nan)
        self.user_count_ = np.bincount(u, minlength=n_u).astype(np.float64)
        self.user_mean_rating_ = _mean(np.bincount(u, rating, n_u), self.user_count_, 3.5)
        self.user_mean_ts_ = _mean(np.bincount(u, ts, n_u), self.user_count_, np.nan)
        first = np.full(n_u, np.inf)
        last = np.full(n_u, -np.inf)
        np.minimum.at(first, u, ts)
        np.maximum.at(last, u, ts)
        self.user_first_ts_, self.user_last_ts_ = first, last
        self.end_ts_ = float(ts.max())
        # Counts are rescaled to a 100k-interaction volume so that a ranker trained on the
        # (smaller) validation fit sees the same feature scale as at test time.
        self.volume_scale_ = 100_000.0 / max(len(train), 1)
        end_year = pd.Timestamp(self.end_ts_, unit="s").year
        self.item_age_years_ = end_year - cat.release_year  # NaN when the date is unknown

        # Item timeline for window counts: (item, ts) keys sorted once, searched per pair.
        order = np.lexsort((ts, i))
        self._timeline = _Timeline(i[order], ts[order])

        # User-genre affinity: share of the user's history in each genre.
        hist = np.zeros((n_u, cat.genres.shape[1]))
        np.add.at(hist, u, cat.genres[i])
        self.user_genre_ = hist / np.maximum(self.user_count_[:, None], 1.0)

        # Popularity within the user's (age band, gender) segment, as a share of the segment.
        segment = cat.user_age_band * 2 + cat.user_gender
        self._segment = segment
        seg_items = np.zeros((segment.max() + 1, n_i))
        np.add.at(seg_items, (segment[u], i), 1.0)
        seg_users = np.bincount(segment, minlength=segment.max() + 1).astype(np.float64)
        self.segment_popularity_ = seg_items / np.maximum(seg_users[:, None], 1.0)
        return self

    def feature_names(self, source_names: tuple[str, ...]) -> list[str]:
        per_source = [f"{s}_{kind}" for s in source_names for kind in ("rank", "score_vs_best")]
        return [
            *per_source,
            "item_log_count", "item_mean_rating", "item_age_years",
            "days_from_user_mean", "item_count_in_user_window", "item_share_in_user_window",
            "genre_affinity_mean", "genre_affinity_max",
            "user_log_count", "user_mean_rating", "user_active_days",
            "user_age_band", "user_gender", "user_occupation", "segment_popularity",
            *(("blend_z", "blend_rank_in_candidates") if self.blend_sources else ()),
        ]  # fmt: skip

    def transform(self, cands: CandidateSet) -> np.ndarray:
        """(n_pairs, n_features) float32, columns as ``feature_names(cands.source_names)``."""
        cat, u, i = self.catalog, cands.users, cands.items
        n_src = len(cands.source_names)
        per_source = np.empty((len(i), 2 * n_src), dtype=np.float64)
        per_source[:, 0::2] = cands.ranks
        # Score relative to the user's best candidate score: comparable across users and across
        # the validation fit and the final fit (raw scores grow with the amount of data).
        counts = np.diff(cands.offsets)
        best = np.maximum.reduceat(cands.scores, cands.offsets[:-1][counts > 0], axis=0)
        best = np.repeat(best, counts[counts > 0], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_source[:, 1::2] = np.where(best != 0, cands.scores / np.abs(best), 0.0)

        lo = self.user_first_ts_[u] - WINDOW_DAYS * DAY
        hi = self.user_last_ts_[u] + WINDOW_DAYS * DAY
        in_window = self._timeline.count_between(i, lo, hi)
        genres = cat.genres[i]
        n_genres = np.maximum(genres.sum(axis=1), 1.0)
        affinity = self.user_genre_[u] * genres
        columns = [
            np.log1p(self.item_count_[i] * self.volume_scale_),
            self.item_mean_rating_[i],
            self.item_age_years_[i],
            (self.item_mean_ts_[i] - self.user_mean_ts_[u]) / DAY,
            in_window * self.volume_scale_,
            in_window / np.maximum(self.item_count_[i], 1.0),
            affinity.sum(axis=1) / n_genres,
            affinity.max(axis=1),
            np.log1p(self.user_count_[u] * self.volume_scale_),
            self.user_mean_rating_[u],
            (self.user_last_ts_[u] - self.user_first_ts_[u]) / DAY,
            cat.user_age_band[u],
            cat.user_gender[u],
            cat.user_occupation[u],
            self.segment_popularity_[self._segment[u], i],
        ]
        if self.blend_sources:
            blend = blend_scores(cands, self.blend_sources)
            columns += [per_user_z(blend, cands.offsets), _rank_within(blend, cands.offsets)]
        return np.column_stack([per_source, *columns]).astype(np.float32)


def _rank_within(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """0 for each user's highest value, 1 for the next, ... (ties broken by position)."""
    ranks = np.empty(len(values), dtype=np.float64)
    for lo, hi in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        ranks[lo + np.argsort(-values[lo:hi], kind="stable")] = np.arange(hi - lo)
    return ranks


def _mean(total: np.ndarray, count: np.ndarray, empty: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1.0), empty)


class _Timeline:
    """Sorted (item, timestamp) keys; counts an item's interactions inside a time window."""

    def __init__(self, items: np.ndarray, ts: np.ndarray) -> None:
        # One composite float key item * scale + (ts - base), sorted, so that every pair's
        # count is two searchsorted calls in one vectorised pass. scale = 4 x the time range,
        # and queries are clipped to [-range, 2 x range], so an item's keys never overlap the
        # next item's.
        self.base = float(ts.min()) if len(ts) else 0.0
        self.range = float(ts.max() - self.base + 1.0) if len(ts) else 1.0
        self.scale = 4.0 * self.range
        self.keys = items * self.scale + (ts - self.base)

    def count_between(self, items: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """For each pair p: training interactions of ``items[p]`` with lo[p] <= ts <= hi[p]."""
        lo = np.clip(np.where(np.isfinite(lo), lo - self.base, 0.0), -self.range, 2 * self.range)
        hi = np.clip(np.where(np.isfinite(hi), hi - self.base, -1.0), -self.range, 2 * self.range)
        left = np.searchsorted(self.keys, items * self.scale + lo)
        right = np.searchsorted(self.keys, items * self.scale + hi, side="right")
        return np.maximum(right - left, 0).astype(np.float64)
