"""Offline evaluation: the issue's table under one protocol, plus cold slices.

``evaluate_protocol`` is the benchmark's core and the CLI's ``eval`` command: split, fit the
two-stage model (which carves its own validation split from train), then score on the test
split, for every user with test items and training history:

* each candidate source alone (its own top-10 of all unseen items),
* ``blend``: the merged candidates ordered by the sum of the EASE, ALS, item-kNN and RP3beta
  scores, each divided by the user's best score for that source (the "plain blend" of the issue),
* ``ranker_only``: the merged candidates ordered by the LightGBM ranker alone,
* ``two_stage``: the served model: per-user z-scores of the ranker plus the blend.

Metrics are trec_eval semantics from ``evals.metrics`` with binary relevance (every test
interaction is relevant, whatever its rating: the Microsoft Recommenders protocol), on ranked
lists with seen items removed. Per-user values are returned for bootstrap intervals and paired
tests (``evals.stats``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from evals.metrics import evaluate_per_query
from evals.timing import latency_summary
from recsys.candidates import CandidateSet, candidate_recall
from recsys.catalog import Catalog
from recsys.config import RecsysConfig
from recsys.errors import InvalidArgumentError
from recsys.recommender import TwoStageRecommender, truth_by_user
from recsys.splits import Split, make_split

METRICS = ("ndcg@10", "precision@10", "recall@10", "map@10", "hit@10")


@dataclass
class ProtocolResult:
    """Everything measured on one split. ``per_user[variant][metric]`` aligns with ``users``."""

    protocol: str
    split: str
    users: list[int]
    metrics: dict[str, dict[str, float]]
    per_user: dict[str, dict[str, np.ndarray]]
    candidate_recall: dict[str, float]
    candidates_per_user: float
    timings: dict[str, float]
    importances: dict[str, float]
    ranker_stats: dict
    runs: dict[str, dict[int, list[int]]] = field(repr=False, default_factory=dict)
    model: TwoStageRecommender | None = field(repr=False, default=None)


def score_runs(
    truth: dict[int, set[int]], runs: dict[str, dict[int, list[int]]], users: list[int]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """Mean and per-user metrics of several runs ({user: ranked item indices}) on ``users``."""
    qrels = {str(u): {str(i): 1 for i in truth[u]} for u in users}
    means, per_user = {}, {}
    for name, run in runs.items():
        str_run = {str(u): [str(i) for i in run.get(u, [])] for u in users}
        pq = evaluate_per_query(qrels, str_run, METRICS)
        per_user[name] = {m: np.array([pq[str(u)][m] for u in users]) for m in METRICS}
        means[name] = {m: float(per_user[name][m].mean()) for m in METRICS}
    return means, per_user


def runs_from_candidates(
    cands: CandidateSet, users: np.ndarray, order_by: dict[str, np.ndarray], k: int
) -> dict[str, dict[int, list[int]]]:
    """Top-k per user of the candidate set under each ordering (higher value = better)."""
    runs: dict[str, dict[int, list[int]]] = {name: {} for name in order_by}
    for b, u in enumerate(users.tolist()):
        lo, hi = int(cands.offsets[b]), int(cands.offsets[b + 1])
        for name, value in order_by.items():
            order = np.argsort(-value[lo:hi], kind="stable")[:k]
            runs[name][u] = cands.items[lo:hi][order].tolist()
    return runs


def evaluate_split(
    split: Split,
    catalog: Catalog,
    config: RecsysConfig,
    *,
    latency_users: int = 200,
    keep_ranker_data: bool = False,
) -> ProtocolResult:
    """Fit on ``split.train``, evaluate every variant on ``split.test``.

    ``keep_ranker_data``: the model keeps its ranker's training data, for ``with_ranker``.
    """
    start = time.perf_counter()
    model = TwoStageRecommender(catalog, config)
    model.fit(split.train, keep_ranker_data=keep_ranker_data)
    return evaluate_fitted(model, split, time.perf_counter() - start, latency_users=latency_users)


def evaluate_fitted(
    model: TwoStageRecommender, split: Split, train_s: float, *, latency_users: int = 200
) -> ProtocolResult:
    """Evaluate a model already fitted on ``split.train`` (in ``train_s`` seconds) on its test."""
    catalog, config = model.catalog, model.config
    truth = truth_by_user(catalog, split.test)
    x = model.interactions_
    users = np.array(sorted(u for u in truth if x.indptr[u + 1] > x.indptr[u]))
    start = time.perf_counter()
    cands = model.candidates(users)
    ranked = model.rank(cands)
    batch_s = time.perf_counter() - start

    order_by = {name: -cands.ranks[:, j] for j, name in enumerate(cands.source_names)}
    order_by["blend"] = model.blend(cands)
    order_by["ranker_only"] = model.ranker_scores(cands)
    order_by["two_stage"] = ranked
    runs = runs_from_candidates(cands, users, order_by, config.k)
    means, per_user = score_runs(truth, runs, users.tolist())

    # Per-user serving latency: one recommend() call per user, as an online service would.
    rng = np.random.default_rng(config.seed)
    sample = rng.choice(users, size=min(latency_users, len(users)), replace=False)
    seconds = []
    for u in catalog.user_ids[sample]:
        t = time.perf_counter()
        model.recommend(u, config.k)
        seconds.append(time.perf_counter() - t)

    timings = {"train_total_s": train_s, "score_all_test_users_s": batch_s}
    timings.update(model.timings_)
    timings.update(latency_summary(seconds))
    return ProtocolResult(
        protocol=split.protocol,
        split=split.description,
        users=users.tolist(),
        metrics=means,
        per_user=per_user,
        candidate_recall=candidate_recall(cands, truth, config.candidates_per_source),
        candidates_per_user=len(cands) / max(len(users), 1),
        timings=timings,
        importances=model.ranker_.importances(),
        ranker_stats=model.ranker_stats_,
        runs=runs,
        model=model,
    )


def evaluate_protocol(
    ratings: pd.DataFrame, catalog: Catalog, config: RecsysConfig, **kwargs
) -> ProtocolResult:
    """Split ``ratings`` with ``config.protocol`` and ``config.seed``, then ``evaluate_split``."""
    split = make_split(ratings, config.protocol, seed=config.seed, ratio=config.train_ratio)  # type: ignore[arg-type]
    return evaluate_split(split, catalog, config, **kwargs)


def validation_comparison(
    ratings: pd.DataFrame,
    catalog: Catalog,
    configs: dict[str, RecsysConfig],
    *,
    seeds: tuple[int, ...] = (42, 43, 44),
    ratio: float = 0.75,
    carves: int = 2,
    variant: str = "two_stage",
    metric: str = "ndcg@10",
) -> dict[str, np.ndarray]:
    """Compare whole pipelines without touching a test split: ``{name: (seeds, carves) array}``.

    The procedure behind the third and fourth rounds of EXPERIMENTS.md (then run as scripts) and
    its carve-size check. For each split seed the test split is drawn exactly as the benchmark draws
    it and set aside; from its training part, ``carves`` validation splits are cut with the same
    protocol (carve seeds ``seed + 1, seed + 2, ...``; ``ratio`` is the carve's training share:
    0.75 mirrors the test split, 0.9 trains on data closer to the final fit's size). Each
    config's pipeline, its own inner ranker carves included, is fitted on a carve's training
    part and scored on its test part. All configs must share one protocol; a temporal carve is
    one time cut, so use ``carves=1`` there.
    """
    protocols = {c.protocol for c in configs.values()}
    if len(protocols) != 1:
        raise InvalidArgumentError(f"configs must share one protocol, got {sorted(protocols)}")
    protocol = protocols.pop()
    out = {name: np.zeros((len(seeds), carves)) for name in configs}
    for a, seed in enumerate(seeds):
        outer = make_split(ratings, protocol, seed=seed)  # type: ignore[arg-type]
        for b in range(carves):
            carve = make_split(outer.train, protocol, seed=seed + 1 + b, ratio=ratio)  # type: ignore[arg-type]
            for name, config in configs.items():
                result = evaluate_split(carve, catalog, replace(config, seed=seed), latency_users=1)
                out[name][a, b] = result.metrics[variant][metric]
    return out


# -- cold slices ------------------------------------------------------------------------------
def cold_user_slice(
    split: Split,
    catalog: Catalog,
    config: RecsysConfig,
    *,
    share: float = 0.3,
    few: int = 3,
) -> dict[str, dict[str, float]]:
    """Users with no or few training interactions, against popularity.

    A random ``share`` of the test users is made cold *before* fitting: half lose their whole
    training history (served by the cold-start path: segment popularity), half keep only
    ``few`` random training interactions (served by the two-stage model). The model is refitted
    on that reduced training set, so nothing of the removed history leaks into any source.
    """
    reduced, no_history, few_history = _make_users_cold(split, config.seed, share, few)
    model = TwoStageRecommender(catalog, config).fit(reduced)

    truth = truth_by_user(catalog, split.test)
    pop = model.cold_users_.global_share_
    out: dict[str, dict[str, float]] = {}
    for label, group in (("no_history", no_history), ("few_history", few_history)):
        users = catalog.user_index(sorted(group))
        users = np.array([u for u in users if u in truth])
        seen = model.interactions_[users]
        masked_pop = np.where(seen.toarray() > 0, -np.inf, pop[None, :])
        runs = {"popularity": {}, "segment_popularity": {}}
        seg = model.cold_users_.score_users(users)
        seg = np.where(seen.toarray() > 0, -np.inf, seg)
        for b, u in enumerate(users.tolist()):
            runs["popularity"][u] = np.argsort(-masked_pop[b], kind="stable")[: config.k].tolist()
            runs["segment_popularity"][u] = np.argsort(-seg[b], kind="stable")[: config.k].tolist()
        if label == "few_history":
            runs["two_stage"] = {
                u: items.tolist()
                for u, (items, _, _) in zip(
                    users.tolist(), model.top_k_indices(users, config.k), strict=True
                )
            }
        means, _ = score_runs(truth, runs, users.tolist())
        for name, m in means.items():
            out[f"{label}/{name}"] = {**m, "users": float(len(users))}
    return out


def _make_users_cold(
    split: Split, seed: int, share: float, few: int
) -> tuple[pd.DataFrame, set, set]:
    """(reduced train, no-history user ids, few-history user ids): see ``cold_user_slice``."""
    rng = np.random.default_rng(seed)
    test_users = np.unique(split.test["user_id"].to_numpy())
    cold = rng.choice(test_users, size=max(2, int(share * len(test_users))), replace=False)
    no_history, few_history = set(cold[::2].tolist()), set(cold[1::2].tolist())
    train = split.train
    keep = ~train["user_id"].isin(no_history | few_history)
    few_rows = train[train["user_id"].isin(few_history)].sample(frac=1.0, random_state=seed)
    few_rows = few_rows.groupby("user_id").head(few)
    return pd.concat([train[keep], few_rows]), no_history, few_history


# How many genres a simulated new user names at sign-up (see ``cold_user_draws``). Three is the
# headline, fixed before it was measured; one and two show how much rides on that guess.
DECLARED_GENRES = (1, 2, 3)


@dataclass
class ColdDraw:
    """No-history users of one draw: per-user NDCG@k of popularity and of the served rule.

    ``with_genres[(rule, g)]``: the served rule when each user names ``g`` genres at sign-up,
    used by ``SegmentPopularity.add_genres(rule=rule)``.
    """

    seed: int
    shrinkage: float  # the pseudo-count chosen on training users (inf = global popularity)
    popularity: np.ndarray
    served: np.ndarray
    with_genres: dict[tuple[str, int], np.ndarray]


def cold_user_draws(
    ratings: pd.DataFrame, catalog: Catalog, config: RecsysConfig, seeds: tuple[int, ...]
) -> list[ColdDraw]:
    """The no-history slice of ``cold_user_slice`` on several split seeds, without the ranker.

    One draw holds ~140 users, too few to tell two popularity lists apart (NDCG@10 moves by
    ±0.01 between draws); pooling draws gives the paired test something to stand on. Only the
    cold-start model is fitted (shrinkage chosen on the training users of that draw). Each user
    is also served as if they had named ``g`` genres at sign-up, for every ``g`` in
    ``DECLARED_GENRES`` and both of ``SegmentPopularity.add_genres``' rules. The named genres
    are the top genres (``cold_start.top_genres``) of the training history that was removed to
    make the user cold, never of the test items: revealed taste, so real sign-up answers would
    be noisier than this.
    """
    from recsys.cold_start import SegmentPopularity, choose_shrinkage, top_genres

    draws = []
    for seed in seeds:
        split = make_split(ratings, "stratified", seed=seed, ratio=config.train_ratio)
        reduced, no_history, _ = _make_users_cold(split, seed, 0.3, 3)
        x = catalog.matrix(reduced)
        m = config.cold_shrinkage
        if m is None:
            m, _ = choose_shrinkage(catalog, x, seed=seed)
        cold = SegmentPopularity(catalog, m).fit(x)
        truth = truth_by_user(catalog, split.test)
        users = [u for u in catalog.user_index(sorted(no_history)).tolist() if u in truth]
        served = cold.score_users(np.array(users))
        runs = {
            "popularity": {u: _top(cold.global_share_, config.k) for u in users},
            "served": {u: _top(served[b], config.k) for b, u in enumerate(users)},
        }
        removed = truth_by_user(catalog, split.train[split.train["user_id"].isin(no_history)])
        variants = [(rule, g) for rule in ("taste", "first") for g in DECLARED_GENRES]
        for rule, g in variants:
            runs[f"{rule}/{g}"] = {
                u: _top(
                    cold.add_genres(served[b], top_genres(catalog, removed.get(u, ()), g), rule),
                    config.k,
                )
                for b, u in enumerate(users)
            }
        _, per_user = score_runs(truth, runs, users)
        ndcg = {name: scores["ndcg@10"] for name, scores in per_user.items()}
        with_genres = {(rule, g): ndcg[f"{rule}/{g}"] for rule, g in variants}
        draws.append(ColdDraw(seed, m, ndcg["popularity"], ndcg["served"], with_genres))
    return draws


def _top(scores: np.ndarray, k: int) -> list[int]:
    return np.argsort(-scores, kind="stable")[:k].tolist()


def cold_item_slice(
    ratings: pd.DataFrame,
    catalog: Catalog,
    *,
    share: float = 0.1,
    min_ratings: int = 5,
    seed: int = 42,
    prior_weight: float | None = None,
) -> dict[str, dict[str, float]]:
    """Items never seen in training, ranked among themselves for the users who rated them.

    A random ``share`` of items with >= ``min_ratings`` ratings is held out: all their ratings
    leave the training data. For each user who rated a held-out item, all held-out items are
    ranked by the content scorer (history = the user's other ratings) and by the genre
    popularity baseline; relevant = the held-out items the user rated. ``prior_weight`` is
    ContentScorer's (None: ``NEW_ITEM_PRIOR_WEIGHT``, which was chosen with ``seed=7``).
    """
    from recsys.cold_start import NEW_ITEM_PRIOR_WEIGHT, ContentScorer, genre_popularity

    rng = np.random.default_rng(seed)
    counts = ratings["item_id"].value_counts()
    eligible = np.sort(counts[counts >= min_ratings].index.to_numpy())
    held = rng.choice(eligible, size=max(2, int(share * len(eligible))), replace=False)
    train = ratings[~ratings["item_id"].isin(held)]
    test = ratings[ratings["item_id"].isin(held)]
    x = catalog.matrix(train)
    truth = truth_by_user(catalog, test)
    users = np.array(sorted(u for u in truth if x.indptr[u + 1] > x.indptr[u]))
    held_idx = catalog.item_index(held)
    content = ContentScorer(catalog).score(x[users], held_idx)
    w = NEW_ITEM_PRIOR_WEIGHT if prior_weight is None else prior_weight
    hybrid = ContentScorer(catalog, w).fit(x).score(x[users], held_idx)
    baseline = genre_popularity(catalog, x)[held_idx]
    random_scores = rng.random((len(users), len(held_idx)))
    runs: dict[str, dict[int, list[int]]] = {
        name: {} for name in ("content+genre_popularity", "content", "genre_popularity", "random")
    }
    for b, u in enumerate(users.tolist()):
        for name, s in (
            ("content+genre_popularity", hybrid[b]),
            ("content", content[b]),
            ("genre_popularity", baseline),
            ("random", random_scores[b]),
        ):
            runs[name][u] = held_idx[np.argsort(-s, kind="stable")[:10]].tolist()
    means, _ = score_runs(truth, runs, users.tolist())
    return {
        name: {**m, "users": float(len(users)), "items": float(len(held))}
        for name, m in means.items()
    }


def new_item_slots(
    result: ProtocolResult, catalog: Catalog, split: Split, slots: tuple[int, ...] = (1, 2)
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """What the served list gains and loses when its last places go to new items.

    For every evaluated user of ``result``: ``two_stage`` (the served list) and
    ``two_stage+{s}_new`` (its last ``s`` places given to new items, as
    ``recommend(new_item_slots=s)`` serves them). Besides the usual metrics, each variant has
    ``new_item_hit_rate``: among users whose test items include a new item (one with no
    training interaction), the share whose list holds one of them; ``users_with_new_items``
    counts those users; ``new_item_hit_rate_random`` is the rate ``s`` new items drawn at random
    would reach (exact: 1 - C(N - n, s) / C(N, s) for a user with n of the N new items).
    Returns (means, per-user values) as ``score_runs`` does. Meaningful on
    the temporal split; the stratified split has no new items (every item keeps a training
    rating), where every variant is the served list.
    """
    model = result.model
    assert model is not None
    users = np.array(result.users)
    truth = truth_by_user(catalog, split.test)
    new = set(model.new_items_.tolist())
    runs = {"two_stage": result.runs["two_stage"]}
    for s in slots:
        picks = model.top_k_indices(users, model.config.k, new_item_slots=s)
        runs[f"two_stage+{s}_new"] = {
            u: items.tolist() for u, (items, _, _) in zip(users.tolist(), picks, strict=True)
        }
    means, per_user = score_runs(truth, runs, users.tolist())
    with_new = _add_new_item_hits(means, runs, truth, new, users.tolist())
    n_new = len(new)
    for s in slots:
        shown = min(s, n_new)  # with fewer new items than slots, every one is shown
        miss = [
            math.comb(n_new - len(truth[u] & new), shown) / math.comb(n_new, shown)
            for u in with_new
        ]
        means[f"two_stage+{s}_new"]["new_item_hit_rate_random"] = (
            1.0 - float(np.mean(miss)) if with_new else float("nan")
        )
    return means, per_user


def added_item_slots(
    result: ProtocolResult,
    catalog: Catalog,
    split: Split,
    items: pd.DataFrame,
    users: pd.DataFrame,
    slots: tuple[int, ...] = (0, 1, 2),
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """:func:`new_item_slots` on the production path: the new films arrive after training.

    The model of ``result`` had every film in its catalogue from the start, the new ones as
    cold columns. Here a model with the same config is trained on a catalogue without them,
    and the films are then given to :meth:`~TwoStageRecommender.add_items` (title, genres,
    release date from ``items``), as a film that arrives after training would be. Variants
    ``two_stage+{s}_added``, scored on the same users with the same metrics and
    ``new_item_hit_rate``. ``s = 0`` is that model's own served list, the base its slots are
    compared with: its sources and ranker are fitted anew on a catalogue of other width (ALS's
    random start, for one, draws other numbers), so it is not ``two_stage``. ``items`` and
    ``users`` are the metadata frames the catalogue was built from.
    """
    model = result.model
    assert model is not None
    new_ids = catalog.item_ids[model.new_items_]
    known = items[~items["item_id"].isin(new_ids)]
    smaller = Catalog.from_frames(known, users, catalog.genre_names)
    later = TwoStageRecommender(smaller, model.config).fit(split.train)
    arriving = items[items["item_id"].isin(new_ids)]
    later.add_items(
        pd.DataFrame(
            {
                "item_id": arriving["item_id"].to_list(),
                "title": arriving["title"].to_list(),
                "genres": [
                    [g for g in catalog.genre_names if row[g]] or ["unknown"]
                    for _, row in arriving.iterrows()
                ],
                "release_date": arriving["release_date"].to_list(),
            }
        )
    )
    user_rows = np.array(result.users)
    truth = truth_by_user(catalog, split.test)
    new = set(model.new_items_.tolist())
    runs = {}
    for s in slots:
        # the same users (both catalogues share the users frame), answers mapped back to the
        # full catalogue's item indices so the metrics compare with new_item_slots' rows
        picks = later.top_k_indices(user_rows, later.config.k, new_item_slots=s)
        runs[f"two_stage+{s}_added"] = {
            u: catalog.item_index(later.ids_of(picked)).tolist()
            for u, (picked, _, _) in zip(user_rows.tolist(), picks, strict=True)
        }
    means, per_user = score_runs(truth, runs, user_rows.tolist())
    _add_new_item_hits(means, runs, truth, new, user_rows.tolist())
    return means, per_user


def _add_new_item_hits(
    means: dict[str, dict[str, float]],
    runs: dict[str, dict[int, list[int]]],
    truth: dict[int, set[int]],
    new: set[int],
    users: list[int],
) -> list[int]:
    """Add ``new_item_hit_rate`` and ``users_with_new_items`` to each run's ``means``: among
    the users whose test items include a new item, the share whose list holds one of them.
    Returns those users."""
    with_new = [u for u in users if truth[u] & new]
    for name, run in runs.items():
        hits = sum(bool(set(run[u]) & truth[u] & new) for u in with_new)
        means[name]["new_item_hit_rate"] = hits / len(with_new) if with_new else float("nan")
        means[name]["users_with_new_items"] = float(len(with_new))
    return with_new


# -- beyond accuracy --------------------------------------------------------------------------
def beyond_accuracy(
    result: ProtocolResult,
    catalog: Catalog,
    split: Split,
    lambdas: tuple[float, ...] = (0.9, 0.7, 0.5),
) -> dict[str, dict[str, float]]:
    """Coverage / novelty / diversity of each variant, and the MMR re-rank's accuracy cost."""
    from recsys.beyond import coverage, intra_list_diversity, mmr_rerank, novelty
    from recsys.cold_start import content_vectors

    model = result.model
    assert model is not None
    vectors = content_vectors(catalog)
    x = model.interactions_
    n_users = max(int((np.diff(x.indptr) > 0).sum()), 1)
    share = np.asarray(x.sum(axis=0)).ravel() / n_users
    runs = {name: result.runs[name] for name in ("popularity", "ease", "blend", "two_stage")}

    users = np.array(result.users)
    cands = model.candidates(users)
    scores = model.rank(cands)
    for lam in lambdas:
        run = {}
        for b, u in enumerate(users.tolist()):
            lo, hi = int(cands.offsets[b]), int(cands.offsets[b + 1])
            pool = np.argsort(-scores[lo:hi], kind="stable")[:50]
            run[u] = mmr_rerank(
                cands.items[lo:hi][pool], scores[lo:hi][pool], vectors, model.config.k, lam
            ).tolist()
        runs[f"two_stage+mmr(λ={lam})"] = run
    truth = truth_by_user(catalog, split.test)
    means, _ = score_runs(truth, runs, result.users)
    return {
        name: {
            "ndcg@10": means[name]["ndcg@10"],
            "coverage": coverage(run, catalog.n_items),
            "novelty_bits": novelty(run, share, n_users),
            "intra_list_diversity": intra_list_diversity(run, vectors),
        }
        for name, run in runs.items()
    }
