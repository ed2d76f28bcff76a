"""The two-stage recommender: candidate generation, then learning-to-rank, then serving.

``TwoStageRecommender.fit(train)`` runs the whole training recipe, top to bottom:

1. carve a validation split out of ``train`` with the same protocol as the test split
   (``splits.validation_split``): fit-part ``train'`` and held-out part ``val``;
2. fit every candidate source on ``train'``, generate candidates for the users of ``val``,
   compute features from ``train'`` only, label candidates found in ``val`` (``ranker.py``);
3. train the ranker on those labelled candidates;
4. refit the sources and the feature statistics on all of ``train``: serving uses the
   full-data sources with the ranker learned in step 3 (features are ranks and ratios, so they
   mean the same thing in both fits; see ``features.py``);
5. at serving time the ranker's score is averaged (per-user z-scores) with a plain blend of the
   EASE, ALS, item-kNN and RP3beta scores (``config.blend_weight``; 0 serves the ranker alone).

``recommend(user_id, k)`` then does per user what ``fit`` did per batch: every source scores
the user's history, the union of their top-N unseen items is featurised and ranked, and the
top ``k`` come back as a ``Recommendation`` naming the source that proposed each item. A user
with no history (known demographics or not) is served by the cold-start path.

New items have no collaborative signal, so no source proposes them: catalogue items no training
interaction reached, and films added to a trained model with :meth:`~TwoStageRecommender.add_items`
(no retrain: only their genres and release date are needed). ``new_item_slots`` (off by
default) gives them the last places of each list, chosen by their content
(``cold_start.ContentScorer``: genres and release year against the user's history, plus genre
popularity) until interactions arrive and a retrain makes them warm. Each added film keeps its
row as given (``films.FilmRows``), so a retrain can keep it: ``films.catalog_with_films``
gives it a catalogue row of its own, and ``python -m recsys train`` does so for the model it
replaces.

Two parts live in modules of their own, as neither is the algorithm: ``films.py`` (the films
added after training: their rows, and the checks of an ``add_items`` frame) and ``store.py``
(the model folder ``save`` writes and ``load`` reads: the file format, the lock, the safe
unpickler's allow-list).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import store
from recsys.candidates import (
    CandidateSet,
    blend_scores,
    build_sources,
    generate,
    per_user_z,
)
from recsys.catalog import Catalog
from recsys.cold_start import (
    NEW_ITEM_PRIOR_WEIGHT,
    ContentScorer,
    SegmentPopularity,
    choose_shrinkage,
)
from recsys.config import RecsysConfig
from recsys.errors import InvalidArgumentError, NotFittedError
from recsys.features import FeatureBuilder

# Models saved before films.py was split out name FilmRows and AddedItems here, as
# recsys.recommender.FilmRows: store.SAFE_GLOBALS lets those names resolve, to these imports.
from recsys.films import NO_ADDED_ITEMS, NO_FILMS, AddedItems, FilmRows, read_films
from recsys.ranker import LambdaRanker, RankerTrainingSet, label_candidates, training_set
from recsys.splits import check_unix_seconds, validation_split

logger = logging.getLogger(__name__)

COLD_START_SOURCE = "cold_start"
NEW_ITEM_SOURCE = "new_item"
NEW_ITEM = -1  # the proposer index top_k_indices gives an item placed in a new-item slot


@dataclass(frozen=True)
class Recommendation:
    """Top-k for one user: ``items[j]`` scored ``scores[j]`` was proposed by ``sources[j]``.

    ``sources[j]`` is a candidate source's name, ``"cold_start"`` (a user without history) or
    ``"new_item"`` (a new-item slot). Scores are comparable within one kind only: the ranker's
    per-user z-scores, segment popularity, or the content scorer's.
    """

    user_id: object
    items: list
    scores: list[float]
    sources: list[str]


def ratings_by_user(catalog: Catalog, frame: pd.DataFrame) -> dict[int, dict[int, float]]:
    """{user row index: {item column index: rating}} of a ratings frame."""
    out: dict[int, dict[int, float]] = {}
    users = catalog.user_index(frame["user_id"].to_numpy())
    items = catalog.item_index(frame["item_id"].to_numpy())
    ratings = frame["rating"].to_numpy(dtype=np.float64)
    for u, i, r in zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True):
        out.setdefault(u, {})[i] = r
    return out


def truth_by_user(catalog: Catalog, frame: pd.DataFrame) -> dict[int, set[int]]:
    """{user row index: set of item column indices} of a ratings frame."""
    return {u: set(held) for u, held in ratings_by_user(catalog, frame).items()}


# add_items' read-modify-write of ``added_``, one for all models: a model is pickled, a lock is not
_ADDING = threading.Lock()


class TwoStageRecommender:
    """Candidate sources + LightGBM ranker + cold-start fallback, fitted on one training frame."""

    added_: AddedItems = NO_ADDED_ITEMS  # films added after training (add_items)
    # films added to the model this one retrained (or to its predecessors), carried into this
    # catalogue by `python -m recsys train` (films.catalog_with_films): a retrain keeps them again
    kept_: FilmRows = NO_FILMS

    def __init__(
        self, catalog: Catalog, config: RecsysConfig | None = None, *, kept: FilmRows = NO_FILMS
    ) -> None:
        """``kept``: films added to an earlier model and carried into ``catalog`` with
        :func:`~recsys.films.catalog_with_films`, so that this model's next retrain keeps them
        too."""
        self.catalog = catalog
        self.config = config or RecsysConfig()
        self.kept_ = kept
        self.timings_: dict[str, float] = {}

    # -- training ---------------------------------------------------------------------------
    def _fit_stage1(self, train: pd.DataFrame) -> tuple[list, sp.csr_matrix, FeatureBuilder]:
        x = self.catalog.matrix(train)
        sources = []
        for source in build_sources(self.config):
            start = time.perf_counter()
            sources.append(source.fit(x))
            key = f"fit_{source.name}_s"
            self.timings_[key] = self.timings_.get(key, 0.0) + time.perf_counter() - start
        blend = self.config.blend_sources if self.config.ranker_blend_features else ()
        return sources, x, FeatureBuilder(self.catalog, blend).fit(train)

    def fit(self, train: pd.DataFrame, *, keep_ranker_data: bool = False) -> TwoStageRecommender:
        """Run the training recipe (module docstring) on ``train``.

        ``train`` has the columns ``splits.REQUIRED_COLUMNS``: user_id, item_id, rating and
        timestamp, in Unix seconds; other units are refused before anything trains.

        ``keep_ranker_data`` keeps the ranker's labelled candidates in memory (about 200,000
        rows here, never saved), so that :meth:`with_ranker` can train other rankers on them.
        """
        check_unix_seconds(train)  # the time features need seconds: refuse ms before training
        cfg = self.config
        self.timings_ = {}
        start = time.perf_counter()
        parts = []
        # The temporal carve is one time cut, the same for every seed: one fold, not copies.
        folds = cfg.validation_folds if cfg.protocol == "stratified" else 1
        for fold in range(folds):
            # Each fold is an independent validation carve of train (seed offset by the fold);
            # more folds = more (noisy) labelled candidates for the ranker.
            val = validation_split(
                train, cfg.protocol, seed=cfg.seed + 1000 * fold, ratio=cfg.train_ratio
            )
            sources, x_fit, features = self._fit_stage1(val.train)
            truth = ratings_by_user(self.catalog, val.test)  # the graded labels read ratings
            users = np.array(
                sorted(u for u in truth if x_fit.indptr[u + 1] > x_fit.indptr[u]), dtype=np.int64
            )
            if len(users) == 0:
                raise InvalidArgumentError(
                    f"too few ratings to train the ranker: the validation carve of {len(train)} "
                    "ratings left no user with ratings on both sides; fit needs users with "
                    "several ratings each"
                )
            cands = generate(sources, users, x_fit[users], cfg.candidates_per_source)
            parts.append(
                training_set(
                    cands,
                    features.transform(cands),
                    label_candidates(cands, truth, cfg.ranker_labels),
                    negatives_per_user=cfg.negatives_per_user,
                    seed=cfg.seed + fold,
                )
            )
        data = RankerTrainingSet(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.groups for p in parts]),
        )
        names = features.feature_names(cands.source_names)
        self.timings_["validation_stage1_s"] = time.perf_counter() - start
        self._fit_ranker(data, names)
        self.ranker_data_ = (data, names) if keep_ranker_data else None

        start = time.perf_counter()
        self.sources_, self.interactions_, self.features_ = self._fit_stage1(train)
        shrinkage = cfg.cold_shrinkage
        if shrinkage is None:  # chosen on a carve of training users (inf = global popularity)
            shrinkage, self.cold_validation_ = choose_shrinkage(
                self.catalog, self.interactions_, seed=cfg.seed
            )
            logger.info("cold start: segment shrinkage %s chosen on training users", shrinkage)
        self.cold_users_ = SegmentPopularity(self.catalog, shrinkage).fit(self.interactions_)
        # New items: catalogue columns no training interaction reached. Only their content can
        # score them (for new_item_slots); a retrain after their first interactions makes them warm.
        self.new_items_ = np.flatnonzero(np.diff(self.interactions_.tocsc().indptr) == 0)
        self.content_ = ContentScorer(self.catalog, NEW_ITEM_PRIOR_WEIGHT).fit(self.interactions_)
        self.timings_["final_stage1_s"] = time.perf_counter() - start
        return self

    def _fit_ranker(self, data: RankerTrainingSet, names: list[str]) -> None:
        """Step 3: train the ranker the config describes on the labelled candidates."""
        cfg = self.config
        start = time.perf_counter()
        self.ranker_ = LambdaRanker(
            objective=cfg.ranker_objective,
            n_estimators=cfg.ranker_estimators,
            learning_rate=cfg.ranker_learning_rate,
            num_leaves=cfg.ranker_leaves,
            min_child_samples=cfg.ranker_min_child_samples,
            truncation=cfg.ranker_truncation,
            monotone=cfg.ranker_monotone,
            seed=cfg.seed,
            bags=cfg.ranker_bags,
        ).fit(data, names)
        self.timings_["fit_ranker_s"] = time.perf_counter() - start
        self.ranker_stats_ = {
            "train_users": len(data.groups),
            "train_pairs": len(data.labels),
            "positive_share": float((data.labels > 0).mean()) if len(data.labels) else 0.0,
        }

    def with_ranker(self, **settings: object) -> TwoStageRecommender:
        """A copy of this model whose ranker is trained with other ``ranker_*`` settings on the
        same labelled candidates: a comparison in which only the ranker differs (stage 1, the
        features and the blend are shared, not refitted). Needs ``fit(keep_ranker_data=True)``;
        the copy does not keep the data itself (``__getstate__`` leaves it out of copies too).

        >>> lambdarank = model.with_ranker(ranker_objective="lambdarank")  # doctest: +SKIP
        """
        self._check_fitted()
        if getattr(self, "ranker_data_", None) is None:
            raise NotFittedError(
                "this model did not keep its ranker's training data; fit it with "
                "fit(train, keep_ranker_data=True) (a loaded model never has it)"
            )
        other = [name for name in settings if not name.startswith("ranker_")]
        if other:
            raise InvalidArgumentError(
                f"with_ranker changes only ranker_* settings, got {other}; fit a new model "
                "for those"
            )
        twin = copy.copy(self)
        twin.config = replace(self.config, **settings)  # RecsysConfig checks the values
        twin.timings_ = dict(self.timings_)
        twin._fit_ranker(*self.ranker_data_)
        return twin

    def __getstate__(self) -> dict:
        # The ranker's training data is for with_ranker in this process, not for a saved model.
        return {**self.__dict__, "ranker_data_": None}

    # -- batch scoring ----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "ranker_"):
            raise NotFittedError("call fit(train) or TwoStageRecommender.load(path) first")

    def candidates(self, users: np.ndarray, exclude_seen: bool = True) -> CandidateSet:
        """Merged stage-1 candidates for user row indices ``users``."""
        self._check_fitted()
        history = self.interactions_[users]
        mask = history if exclude_seen else sp.csr_matrix(history.shape, dtype=np.float32)
        return generate(
            self.sources_, users, history, self.config.candidates_per_source, exclude=mask
        )

    def ranker_scores(self, cands: CandidateSet) -> np.ndarray:
        """(n_pairs,) the LightGBM ranker's scores alone."""
        return self.ranker_.predict(self.features_.transform(cands))

    def blend(self, cands: CandidateSet) -> np.ndarray:
        """(n_pairs,) the plain score blend of ``config.blend_sources`` (no training)."""
        return blend_scores(cands, self.config.blend_sources)

    def rank(self, cands: CandidateSet) -> np.ndarray:
        """(n_pairs,) final scores: z(ranker) + blend_weight · z(blend), z-scored per user.

        Averaging the ranker with the plain score blend is a two-model ensemble: the ranker is
        trained on noisy validation labels, the blend has no training at all, and their errors
        differ. With equal weights (not tuned) it beat both parts on every benchmark seed.
        """
        ranked = self.ranker_scores(cands)
        if not self.config.blend_weight:
            return ranked
        final = per_user_z(ranked, cands.offsets)
        final += self.config.blend_weight * per_user_z(self.blend(cands), cands.offsets)
        return final.astype(np.float32)

    def top_k_indices(
        self,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        new_item_slots: int | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per user: (item indices, scores, proposing source index), best first.

        With ``new_item_slots`` s > 0 (None: ``config.new_item_slots``) the last s places go to
        the new items whose content best matches the user: proposer ``NEW_ITEM``, score the
        content scorer's. Fewer if the catalogue has fewer new items.
        """
        _check_k(k)
        slots = self._slots(new_item_slots, k)
        cands = self.candidates(users, exclude_seen)
        scores = self.rank(cands) if len(cands) else np.zeros(0, dtype=np.float32)
        out = []
        for b in range(len(users)):
            lo, hi = int(cands.offsets[b]), int(cands.offsets[b + 1])
            # s spare places, in case a new item the ranker placed there is moved to a slot
            order = np.argsort(-scores[lo:hi], kind="stable")[: k + slots]
            out.append(
                (cands.items[lo:hi][order], scores[lo:hi][order], cands.proposed_by[lo:hi][order])
            )
        if not slots:
            return out
        new_items, new_scores = self._new_item_ranking(self.interactions_[users])
        return [
            self._place(pick, (new_items[b], new_scores[b]), k, slots) for b, pick in enumerate(out)
        ]

    def _slots(self, new_item_slots: int | None, k: int) -> int:
        """The number of new-item places in a top-``k`` list (0 when there are no new items)."""
        if new_item_slots is None:  # the config's default, at most the whole list
            slots = min(self.config.new_item_slots, k)
        elif (
            isinstance(new_item_slots, bool)
            or not isinstance(new_item_slots, int | np.integer)
            or not 0 <= new_item_slots <= k
        ):
            raise InvalidArgumentError(
                f"new_item_slots must be a whole number from 0 to k={k}, got {new_item_slots!r}"
            )
        else:
            slots = int(new_item_slots)
        return slots if len(self.new_items_) + len(self.added_) else 0

    def _new_item_ranking(self, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(n_users, n_new_items) each user's new items, best content match first, and scores.

        The new items are the catalogue's cold columns, then the added films (indices from
        ``n_items`` on), all scored on the catalogue's scale.
        """
        added = self.added_  # one snapshot: add_items may replace it meanwhile
        extra = (added.vectors, added.prior) if len(added) else None
        scores = self.content_.score(history, self.new_items_, extra=extra)
        candidates = np.concatenate([self.new_items_, self.catalog.n_items + np.arange(len(added))])
        order = np.argsort(-scores, axis=1, kind="stable")
        return candidates[order], np.take_along_axis(scores, order, axis=1)

    def ids_of(self, indices: np.ndarray) -> list:
        """Raw item ids of item indices, the added films' included."""
        added = self.added_  # a later snapshot than the ranking's is a superset: still valid
        if not len(added):
            return self.catalog.item_ids[indices].tolist()
        return np.concatenate([self.catalog.item_ids, added.ids])[indices].tolist()

    def item_titles(self) -> dict:
        """{item id: title} of every item the model can serve, the added films included."""
        added = self.added_
        ids = [*self.catalog.item_ids.tolist(), *added.ids.tolist()]
        titles = [*self.catalog.titles.tolist(), *added.titles.tolist()]
        return dict(zip(ids, titles, strict=True))

    @staticmethod
    def _place(
        pick: tuple[np.ndarray, np.ndarray, np.ndarray],
        new: tuple[np.ndarray, np.ndarray],
        k: int,
        slots: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One user's (items, scores, proposers) with its last ``slots`` places given to ``new``."""
        items, scores, proposers = pick
        keep, take = slot_new_items(items, new[0], k, slots)
        return (
            np.concatenate([items[keep], new[0][take]]),
            np.concatenate([scores[keep], new[1][take]]).astype(np.float32),
            np.concatenate([proposers[keep], np.full(len(take), NEW_ITEM)]),
        )

    # -- serving ----------------------------------------------------------------------------
    def recommend(
        self,
        user_id: object,
        k: int = 10,
        exclude_seen: bool = True,
        new_item_slots: int | None = None,
    ) -> Recommendation:
        """Top-``k`` for one user; a user unknown or without history gets the cold-start list.

        The id must have the catalogue's type (a whole number for MovieLens): an id of another
        type, ``"196"`` or ``True`` say, is an error rather than a new user. Only stage 1's
        candidates are ranked, so a ``k`` beyond the merged candidate set (about 200 items a
        user here) returns that many items, not ``k``. ``new_item_slots`` (0 to ``k``; None:
        ``config.new_item_slots``) places at the end of the list go to new items.
        """
        self._check_fitted()
        _check_k(k)
        self._check_user_id(user_id)
        return self._recommend(user_id, k, exclude_seen, self._slots(new_item_slots, k))

    def _recommend(self, user_id: object, k: int, exclude_seen: bool, slots: int) -> Recommendation:
        """:meth:`recommend` after its argument checks (the batch checks once, up front)."""
        if not self.catalog.has_user(user_id):
            logger.info("user %r unknown: serving global cold-start popularity", user_id)
            return self._cold(user_id, self.cold_users_.global_share_, k, slots)
        u = int(self.catalog.user_index([user_id])[0])
        if self.interactions_.indptr[u + 1] == self.interactions_.indptr[u]:
            logger.info("user %r has no history: serving segment popularity", user_id)
            return self._cold(user_id, self.cold_users_.score_users(np.array([u]))[0], k, slots)
        items, scores, proposer = self.top_k_indices(np.array([u]), k, exclude_seen, slots)[0]
        names = [s.name for s in self.sources_]
        return Recommendation(
            user_id=user_id,
            items=self.ids_of(items),
            scores=[float(s) for s in scores],
            sources=[NEW_ITEM_SOURCE if p == NEW_ITEM else names[p] for p in proposer],
        )

    def recommend_batch(
        self,
        user_ids: Sequence[object],
        k: int = 10,
        exclude_seen: bool = True,
        new_item_slots: int | None = None,
    ) -> list[Recommendation]:
        """Top-``k`` for many users; all ids must be known (``UnknownUserError`` lists the rest)."""
        if user_ids is None or isinstance(user_ids, str | bytes):
            raise InvalidArgumentError(f"user_ids must be a sequence of ids, got {user_ids!r}")
        user_ids = list(user_ids)  # any iterable, a generator included
        if len(user_ids) == 0:
            raise InvalidArgumentError("user_ids is empty; pass at least one user id")
        self._check_fitted()
        _check_k(k)
        slots = self._slots(new_item_slots, k)
        for user_id in user_ids:
            self._check_user_id(user_id)
        self.catalog.user_index(user_ids)  # raises naming every unknown id
        return [self._recommend(u, k, exclude_seen, slots) for u in user_ids]

    def _check_user_id(self, user_id: object) -> None:
        """The id must have the catalogue's type: a whole number, or text for text ids.

        Checked per id because a batch's ids go through one numpy array, where ``[5, "5"]``
        becomes two strings: both would pass the text catalogue's lookup, and ``5`` would then
        be served the cold-start list as an unknown user.
        """
        if self.catalog.integer_user_ids:
            if isinstance(user_id, bool) or not isinstance(user_id, int | np.integer):
                raise InvalidArgumentError(
                    f"user ids are whole numbers in this catalogue, got {user_id!r}"
                )
        elif not isinstance(user_id, str):
            raise InvalidArgumentError(f"user ids are text in this catalogue, got {user_id!r}")

    def recommend_new_user(
        self,
        k: int = 10,
        *,
        age: int,
        gender: str,
        occupation: str | None = None,
        genres: list[str] | None = None,
        new_item_slots: int | None = None,
    ) -> Recommendation:
        """Cold start from sign-up information: popularity in the user's demographic segments,
        tilted towards what fans of the named genres rate (``SegmentPopularity.score_new_user``).
        """
        self._check_fitted()
        _check_k(k)
        slots = self._slots(new_item_slots, k)
        scores = self.cold_users_.score_new_user(age, gender, occupation, genres)
        return self._cold(None, scores, k, slots)

    def _cold(self, user_id: object, scores: np.ndarray, k: int, slots: int) -> Recommendation:
        """The cold-start list of ``scores`` (over all items); new-item slots ranked by genre
        popularity alone, since the user has no history for their content to match."""
        top = np.argsort(-scores, kind="stable")[: k + slots]
        pick = (top, scores[top], np.zeros(len(top), dtype=np.int64))
        if slots:
            empty = sp.csr_matrix((1, self.catalog.n_items), dtype=np.float32)
            new_items, new_scores = self._new_item_ranking(empty)
            pick = self._place(pick, (new_items[0], new_scores[0]), k, slots)
        items, scores, proposer = pick
        return Recommendation(
            user_id=user_id,
            items=self.ids_of(items),
            scores=[float(s) for s in scores],
            sources=[NEW_ITEM_SOURCE if p == NEW_ITEM else COLD_START_SOURCE for p in proposer],
        )

    # -- films added after training ----------------------------------------------------------
    def add_items(self, items: pd.DataFrame) -> int:
        """Add films that arrived after training, so new-item slots can serve them now.

        ``items`` has one row per film: ``item_id`` (an id neither the catalogue nor an earlier
        call has), ``title``, ``genres`` (names from the catalogue's genres, as a list or as
        ``"Action|Comedy"``) and, optionally, ``release_date`` (empty: unknown). Only content
        can score such a film, so it is served through ``new_item_slots``, never by a source,
        until a retrain on its first interactions makes it warm. The whole frame is checked
        before anything is added (``InvalidArgumentError`` naming the rows of the first check that
        fails, up to five); returns the number of films added. Save the model afterwards to keep
        them.
        """
        self._check_fitted()
        with _ADDING:  # two threads adding at once: the second checks and extends the first's set
            known = [*self.catalog.item_ids.tolist(), *self.added_.ids.tolist()]
            rows, genres, years = read_films(items, self.catalog, known)
            vectors, prior = self.content_.content_of(genres, years)
            self.added_ = self.added_.plus(AddedItems(rows, vectors, prior))  # one swap
        logger.info("added films %s; %d since training", rows.ids.tolist(), len(self.added_))
        return len(rows)

    def films_added(self) -> FilmRows:
        """Every film ``add_items`` gave this model, or a model it retrained and kept them from
        (``kept_``, now catalogue items): what the next ``python -m recsys train`` keeps."""
        return self.kept_.plus(self.added_.rows)

    # -- persistence (the model folder: store.py) ---------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``model.pkl`` and a human-readable ``manifest.json`` into directory ``path``
        (:func:`recsys.store.save_model`, under the folder's lock)."""
        self._check_fitted()
        return store.save_model(self, path)

    @classmethod
    def load(cls, path: str | Path) -> TwoStageRecommender:
        """Load a model written by ``save`` (:func:`recsys.store.load_model`).

        ``model.pkl`` is read by an unpickler that resolves only
        :data:`~recsys.store.SAFE_GLOBALS`: a file naming anything else (``os.system``,
        ``builtins.eval``), or setting attributes on an allowed class itself, is refused with
        :class:`~recsys.errors.UnsafeModelError` before that name is looked up or that attribute
        set.
        """
        return store.load_model(path, cls)


def slot_new_items(
    warm: np.ndarray, new: np.ndarray, k: int, slots: int
) -> tuple[np.ndarray, np.ndarray]:
    """A top-``k`` list whose last ``slots`` places go to new items, as positions to take.

    ``warm`` and ``new`` are item lists, best first. Returns (positions in ``warm``, positions
    in ``new``), in list order: the warm head, then the new items. A new item the warm list
    already places above the slots keeps its place and is not repeated; with fewer new items
    than slots, the next warm items fill the rest (so ``warm`` should hold ``k + slots``).

    >>> slot_new_items(np.array([5, 6, 7, 8, 9]), np.array([6, 1, 2]), k=4, slots=2)
    (array([0, 1]), array([1, 2]))
    >>> slot_new_items(np.array([5, 6, 7, 8, 9]), np.array([1]), k=4, slots=2)
    (array([0, 1, 2]), array([0]))
    """
    head = warm[: k - slots]
    placed = set(head.tolist())
    fresh = [j for j, item in enumerate(new.tolist()) if item not in placed][:slots]
    taken = set(new[fresh].tolist())
    fill = [j for j in range(len(head), len(warm)) if warm[j] not in taken][: slots - len(fresh)]
    keep = np.concatenate([np.arange(len(head)), np.array(fill, dtype=np.int64)])
    return keep.astype(np.int64), np.array(fresh, dtype=np.int64)


def _check_k(k: int) -> None:
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k <= 0:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
