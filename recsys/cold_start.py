"""Cold start: users with no history and items with no interactions.

Collaborative sources need interactions, so both cold cases fall back to side information:

* **New users** get ``SegmentPopularity``: item popularity inside the user's demographic segments
  (age band x gender, and occupation, summed), each shrunk towards global popularity with a
  pseudo-count ``m`` so a small segment does not produce noisy lists:
  score = (c_seg,i + m·p_i) / (n_seg + m), p_i = the global share of users who interacted with i.
  ``m`` is chosen on a carve of *training* users (``choose_shrinkage``): each fold of users is
  made cold in turn and judged on a third of its own ratings; ``m = inf`` is plain global
  popularity, so segments are used only where they beat popularity on that validation.
  A user who names genres at sign-up (``genres=``) gets them as one more segmentation: the
  items popular among training users whose top genres include them (``add_genres``). Putting
  the named genres' items first instead, the obvious rule, measured *worse* than ignoring the
  genres (``compare_genre_rules``, training users only: 0.1419 vs 0.1423 NDCG@10; the taste
  segments 0.1448; ten draws).
* **New items** get ``ContentScorer``: a content vector per item (genre flags plus a one-hot
  release-year bucket), a user profile = the mean content vector of the user's history, and
  score = cosine(profile, item). The baseline for cold items is genre popularity: the mean
  popularity of the warm items that share the cold item's genres. Content alone *loses* to that
  baseline (NDCG@10 0.19 vs 0.22 on the cold-item slice): genres say what a user likes, not
  what is good. ``ContentScorer(prior_weight=2)`` adds the genre-popularity prior:
  score = z(cosine) + w·z(log(1 + genre popularity)), each z-scored over the whole catalogue
  (the cosine per user), with w = 3 (``NEW_ITEM_PRIOR_WEIGHT``) chosen on a different held-out
  item draw than the benchmark's (``eval.cold_item_slice(seed=7)``: w = 0.5, 1, 2, 3, 5, 10 gave
  NDCG@10 0.194, 0.239, 0.309, 0.322, 0.305, 0.282; genre popularity alone 0.266).

Both are evaluated on cold slices in ``eval.py`` (users held out of training; items held out of
training) against popularity, and both are served: ``TwoStageRecommender`` serves
``SegmentPopularity`` to users without history, and gives new items the last
``new_item_slots`` places of a list, chosen by ``ContentScorer`` (off by default; see
``recommender.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from recsys.catalog import AGE_BINS, Catalog
from recsys.errors import InvalidArgumentError

# Candidate pseudo-counts for SegmentPopularity; inf = global popularity (segments ignored).
SHRINKAGE_GRID = (5.0, 20.0, 100.0, 500.0, math.inf)
YEAR_BUCKETS = (1930, 1960, 1980, 1990, 1994, 1996, 1997)  # release-year edges (ML-100K skew)
# Genres named at sign-up: a training user's taste is their TASTE_GENRES most-rated genres; a
# taste segment's popularity is shrunk with a fixed pseudo-count (segments hold hundreds of
# users; fixed in advance, not tuned).
TASTE_GENRES = 3
TASTE_SHRINKAGE = 20.0
# ContentScorer's weight on the genre-popularity prior for new items (chosen on the held-out
# item draw of seed 7; the module docstring has the figures).
NEW_ITEM_PRIOR_WEIGHT = 3.0


def top_genres(catalog: Catalog, items: Iterable[int], n: int) -> list[str]:
    """The ``n`` genres holding most of ``items`` (ties in catalogue order), "unknown" excluded.

    A training user's taste, and in the evaluation the stand-in for what a new user names at
    sign-up (``eval.cold_user_draws``).
    """
    counts = catalog.genres[np.fromiter(items, dtype=np.int64)].sum(axis=0)
    chosen = _top_genre_mask(catalog, counts, n)
    return [catalog.genre_names[j] for j in np.argsort(-counts, kind="stable") if chosen[j]]


def _top_genre_mask(catalog: Catalog, counts: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask over the last axis of ``counts`` (..., n_genres): each row's ``n`` genres
    with the highest counts, ties in catalogue order; never "unknown", never a zero count."""
    counts = np.where(np.asarray(catalog.genre_names) == "unknown", 0, counts)
    top = np.argsort(-counts, axis=-1, kind="stable")[..., :n]
    mask = np.zeros(counts.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=-1)
    return mask & (counts > 0)


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
        # Every possible segment gets a row, so a new user in a segment no catalogue user is in
        # (say a woman over 56 on a small catalogue) is served global popularity, not an error.
        self.n_segments = {
            "age_gender": (len(AGE_BINS) - 1) * 2,
            "occupation": int(catalog.user_occupation.max()) + 1,
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
                shape=(self.n_segments[name], n_users),
            )
            self.segment_counts_[name] = np.asarray((indicator @ interactions).todense())
            self.segment_sizes_[name] = np.asarray(indicator.sum(axis=1)).ravel()
        # Taste segments (not a partition): genre g holds every user with g in their top genres.
        per_user = np.asarray(interactions @ self.catalog.genres)  # users without history: 0s
        taste = _top_genre_mask(self.catalog, per_user, TASTE_GENRES).T.astype(np.float64)
        self.taste_counts_ = np.asarray((interactions.T @ taste.T).T)
        self.taste_sizes_ = taste.sum(axis=1)
        return self

    def _shrunk(self, name: str, segment: np.ndarray | int) -> np.ndarray:
        m = self.shrinkage
        if math.isinf(m):  # the limit m -> inf: every segment gets the global distribution
            shape = np.shape(segment) + self.global_share_.shape
            return np.broadcast_to(self.global_share_, shape).astype(np.float64)
        sizes = np.asarray(self.segment_sizes_[name][segment], dtype=np.float64)
        with np.errstate(invalid="ignore"):  # 0/0 for an empty segment when m = 0
            shrunk = (self.segment_counts_[name][segment] + m * self.global_share_) / (
                sizes[..., None] + m
            )
        # An empty segment has nothing to learn from; with m > 0 the formula gives it the global
        # distribution, and with m = 0 (no shrinkage) it would be 0/0, so it gets that directly.
        return np.where((sizes + m)[..., None] > 0, shrunk, self.global_share_)

    def segment_of(self, age: int, gender: str) -> int:
        """The (age band x gender) segment of a new user."""
        if gender not in ("M", "F"):
            raise InvalidArgumentError(f"gender must be 'M' or 'F', got {gender!r}")
        if isinstance(age, bool) or not isinstance(age, int | float | np.integer | np.floating):
            raise InvalidArgumentError(f"age must be a number of years, got {age!r}")
        if not 0 < age < 120:  # also refuses nan
            raise InvalidArgumentError(f"age must be in (0, 120), got {age}")
        band = int(np.digitize([age], AGE_BINS[1:-1])[0])
        return band * 2 + int(gender == "F")

    def occupation_of(self, occupation: str) -> int:
        """The occupation segment of a new user (the catalogue's occupation names)."""
        names = self.catalog.occupation_names
        if occupation not in names:
            raise InvalidArgumentError(f"unknown occupation {occupation!r}; valid: {list(names)}")
        return names.index(occupation)

    def score_new_user(
        self,
        age: int,
        gender: str,
        occupation: str | None = None,
        genres: list[str] | None = None,
    ) -> np.ndarray:
        """(n_items,) scores for a user known only from sign-up: the rule ``score_users`` serves a
        catalogue user without history, which the benchmark measures, so both kinds of cold user
        get the same list for the same answers.

        Both demographic segments are summed; an occupation not given counts as its prior,
        global popularity (what any segment's score shrinks to), so the genre tilt keeps the
        weight it was measured with. Named ``genres`` add their taste segments (``add_genres``).
        """
        scores = self._shrunk("age_gender", self.segment_of(age, gender))
        if occupation is None:
            scores = scores + self.global_share_
        else:
            scores = scores + self._shrunk("occupation", self.occupation_of(occupation))
        return self.add_genres(scores, genres) if genres else scores

    def add_genres(self, scores: np.ndarray, genres: list[str], rule: str = "taste") -> np.ndarray:
        """A new user's ``scores`` with the genres they named at sign-up taken into account.

        ``rule="taste"`` (the default): the genres act as one more segmentation, summed with the
        demographic ones: the mean over the named genres of the share of that genre's taste
        segment who interacted with the item, shrunk towards global popularity
        (``TASTE_SHRINKAGE``). ``rule="first"``: items of any named genre come first, by score:
        the obvious rule, which measured *worse* than ignoring the genres (see the README).
        """
        names = self.catalog.genre_names
        unknown = [g for g in genres if g not in names]
        if unknown:
            raise InvalidArgumentError(f"unknown genres {unknown}; valid: {list(names)}")
        if rule not in ("taste", "first"):
            raise InvalidArgumentError(f"rule must be 'taste' or 'first', got {rule!r}")
        cols = [names.index(g) for g in genres]
        if not cols:
            return scores
        if rule == "taste":
            m = TASTE_SHRINKAGE
            shares = (self.taste_counts_[cols] + m * self.global_share_) / (
                self.taste_sizes_[cols, None] + m
            )
            return scores + shares.mean(axis=0)
        liked = self.catalog.genres[:, cols].sum(axis=1) > 0
        finite = scores[np.isfinite(scores)]
        lift = float(np.ptp(finite)) + 1.0 if finite.size else 1.0  # above every other item
        return np.where(liked, scores + lift, scores)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items): both segmentations of catalogue users, summed."""
        return sum(self._shrunk(name, seg[users]) for name, seg in self.segmentations.items())


def choose_shrinkage(
    catalog: Catalog,
    interactions: sp.csr_matrix,
    grid: tuple[float, ...] = SHRINKAGE_GRID,
    *,
    folds: int = 5,
    min_history: int = 5,
    truth_share: float = 1 / 3,
    k: int = 10,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """Pick ``SegmentPopularity``'s pseudo-count on a carve of the training users.

    Users with >= ``min_history`` interactions are dealt into ``folds`` groups. Each group in
    turn is made cold: its rows leave the matrix, ``SegmentPopularity(m)`` is fitted on the
    rest, and each held-out user is judged by NDCG@k (binary relevance) against a random
    ``truth_share`` of their own interactions (a test split holds 1/3 as many ratings as the
    75% train). Returns (best m, {m: mean NDCG@k}); ties go to the larger m, the simpler model.
    Only training interactions are read, so choosing m never touches a test split.
    """
    carved = list(_cold_user_folds(interactions, folds, min_history, truth_share, seed))
    if not carved:
        return math.inf, {}
    totals = dict.fromkeys(grid, 0.0)
    for held, rest, truth in carved:
        for m in grid:
            scores = SegmentPopularity(catalog, shrinkage=m).fit(rest).score_users(held)
            totals[m] += sum(_ndcg_at_k(s, t, k) for s, t in zip(scores, truth, strict=True))
    n_users = sum(len(held) for held, _, _ in carved)
    means = {m: total / n_users for m, total in totals.items()}
    best = max(means, key=lambda m: (round(means[m], 6), m))
    return best, means


def compare_genre_rules(
    catalog: Catalog,
    interactions: sp.csr_matrix,
    shrinkage: float,
    *,
    n_genres: int = TASTE_GENRES,
    folds: int = 5,
    min_history: int = 5,
    truth_share: float = 1 / 3,
    k: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Mean NDCG@k on training users made cold, for each way of using genres named at sign-up.

    The carve of ``choose_shrinkage``; each held-out user "names" the ``n_genres`` top genres
    of the part of their history that is *not* their truth. Returns {"none": no genres,
    "first": ``add_genres(rule="first")``, "taste": ``rule="taste"``}. Reads training
    interactions only, so choosing a rule never touches a test split.
    """
    totals = {"none": 0.0, "first": 0.0, "taste": 0.0}
    n_users = 0
    x = interactions.tocsr()
    for held, rest, truth in _cold_user_folds(x, folds, min_history, truth_share, seed):
        model = SegmentPopularity(catalog, shrinkage=shrinkage).fit(rest)
        for scores, u, t in zip(model.score_users(held), held.tolist(), truth, strict=True):
            named = top_genres(catalog, set(x.indices[x.indptr[u] : x.indptr[u + 1]]) - t, n_genres)
            totals["none"] += _ndcg_at_k(scores, t, k)
            for rule in ("first", "taste"):
                totals[rule] += _ndcg_at_k(model.add_genres(scores, named, rule), t, k)
        n_users += len(held)
    return {rule: total / max(n_users, 1) for rule, total in totals.items()}


def _cold_user_folds(
    interactions: sp.csr_matrix, folds: int, min_history: int, truth_share: float, seed: int
) -> Iterator[tuple[np.ndarray, sp.csr_matrix, list[set[int]]]]:
    """Yield (held users, matrix without their rows, their truth sets), one fold at a time.

    Users with >= ``min_history`` interactions are dealt into ``folds`` groups; each user's
    truth is a random ``truth_share`` of their own interactions. Nothing if too few users.
    """
    x = interactions.tocsr()
    rng = np.random.default_rng(seed)
    eligible = rng.permutation(np.flatnonzero(np.diff(x.indptr) >= min_history))
    if len(eligible) < folds:
        return
    for fold in range(folds):
        held = np.sort(eligible[fold::folds])
        keep = np.ones(x.shape[0])
        keep[held] = 0.0
        truth = []
        for u in held:
            items = x.indices[x.indptr[u] : x.indptr[u + 1]]
            n = max(1, round(truth_share * len(items)))
            truth.append(set(rng.choice(items, size=n, replace=False).tolist()))
        yield held, (sp.diags(keep) @ x).tocsr(), truth


def _ndcg_at_k(scores: np.ndarray, relevant: set[int], k: int) -> float:
    """Binary-relevance NDCG@k of one ranked score vector (trec_eval's ndcg_cut, linear gain)."""
    top = np.argsort(-scores, kind="stable")[:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(sum(discounts[j] for j, i in enumerate(top.tolist()) if i in relevant))
    return dcg / float(discounts[: min(len(relevant), k)].sum())


def content_vectors(catalog: Catalog) -> np.ndarray:
    """(n_items, n_genres + n_year_buckets) L2-normalised content vectors."""
    return item_content(catalog.genres, catalog.release_year)


def item_content(genres: np.ndarray, release_year: np.ndarray) -> np.ndarray:
    """Content vectors of items given by (n, n_genres) genre flags and (n,) release years."""
    year = np.nan_to_num(release_year, nan=1995.0)
    bucket = np.digitize(year, YEAR_BUCKETS)
    onehot = np.eye(len(YEAR_BUCKETS) + 1, dtype=np.float32)[bucket]
    vectors = np.hstack([genres, 0.5 * onehot]).astype(np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


class ContentScorer:
    """Cold items: cosine(user's mean content vector, item's), plus an optional popularity prior.

    ``score(history, items)`` scores only ``items`` (e.g. the cold ones); with ``prior_weight``
    > 0, ``fit(interactions)`` must be called first to compute genre popularity. Both parts are
    standardised over the whole catalogue (the cosine per user, the prior once), never over the
    scored items: an item's score does not depend on which other items are scored with it, so
    two new films are ordered as they would be among a hundred.

    Items outside the catalogue (films added after training) are scored through
    :meth:`content_of` and ``score(..., extra=...)``, standardised with the catalogue's own
    statistics, so adding a film changes no other item's score and its score compares with
    theirs.
    """

    def __init__(self, catalog: Catalog, prior_weight: float = 0.0) -> None:
        self.catalog = catalog
        self.prior_weight = prior_weight
        self.vectors = content_vectors(catalog)

    def fit(self, interactions: sp.csr_matrix) -> ContentScorer:
        self.per_genre_ = genre_means(self.catalog.genres, interactions)
        raw = np.log1p(_genre_mean(self.catalog.genres, self.per_genre_))
        self.prior_ = _z(raw)
        self.prior_mean_, self.prior_std_ = float(raw.mean()), float(raw.std()) or 1.0
        return self

    def content_of(
        self, genres: np.ndarray, release_year: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, standardised prior) of items outside the catalogue, on its scale."""
        raw = np.log1p(_genre_mean(genres, self.per_genre_))
        prior = (raw - self.prior_mean_) / self.prior_std_
        return item_content(genres, release_year), prior.astype(np.float32)

    def score(
        self,
        history: sp.csr_matrix,
        items: np.ndarray | None = None,
        extra: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """(n_users, len(items) [+ len(extra items)]) scores; ``extra`` is :meth:`content_of`'s
        result for items outside the catalogue, scored after ``items``."""
        items = np.arange(self.catalog.n_items) if items is None else np.asarray(items)
        profile = np.asarray(history @ self.vectors)
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-9)
        cosine = profile @ self.vectors.T  # (n_users, n_items): every item, for the z-score
        scores, prior = cosine[:, items], self.prior_[items] if self.prior_weight else None
        if extra is not None:  # added films: after the catalogue's items, on its statistics
            scores = np.hstack([scores, profile @ extra[0].T])
            prior = None if prior is None else np.concatenate([prior, extra[1]])
        if prior is None:
            return scores.astype(np.float32)
        # z-scored with the whole catalogue's mean and spread per user (as _z takes them), never
        # the scored items' own
        mean = cosine.mean(axis=-1, keepdims=True)
        std = cosine.std(axis=-1, keepdims=True)
        z = (scores - mean) / np.where(std > 0, std, 1.0)
        return (z + self.prior_weight * prior).astype(np.float32)


def _z(values: np.ndarray) -> np.ndarray:
    """Standardise along the last axis (items); constant rows become 0."""
    mean = values.mean(axis=-1, keepdims=True)
    std = values.std(axis=-1, keepdims=True)
    return (values - mean) / np.where(std > 0, std, 1.0)


def genre_popularity(catalog: Catalog, interactions: sp.csr_matrix) -> np.ndarray:
    """(n_items,) popularity baseline for cold items: mean count of warm items sharing a genre."""
    return _genre_mean(catalog.genres, genre_means(catalog.genres, interactions))


def genre_means(genres: np.ndarray, interactions: sp.csr_matrix) -> np.ndarray:
    """(n_genres,) mean interaction count of the warm catalogue items in each genre."""
    counts = np.asarray(interactions.sum(axis=0)).ravel()
    warm = counts > 0
    return (genres[warm].T @ counts[warm]) / np.maximum(genres[warm].sum(axis=0), 1.0)


def _genre_mean(genres: np.ndarray, per_genre: np.ndarray) -> np.ndarray:
    """Each item's mean of ``per_genre`` over its genres (0 for an item with none)."""
    return (genres @ per_genre) / np.maximum(genres.sum(axis=1), 1.0)
