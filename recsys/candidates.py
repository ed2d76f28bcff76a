"""Stage 1, merged: from every item to a few hundred candidates per user.

``build_sources`` constructs the sources a config names (``sources.py`` maps them by family).
Each source proposes its top-N unseen items; the union is the user's candidate set. For every
candidate we keep *every* source's score and rank (not only the proposer's): the ranker learns
from agreement between sources, and an item ranked 3rd by EASE but 400th by popularity is a
different bet from one ranked 3rd by both. The source that ranked an item best among those that
proposed it is recorded as its ``proposed_by`` (what ``Recommendation.sources`` reports).

Candidate recall@N (the share of a user's test items that made it into the set) bounds what any
ranker can reach: an item not in the set can never be recommended. ``candidate_recall`` measures
it per source and merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recsys.autoencoders import DLAE, EASE, EDLAE, MultVAE
from recsys.factors import ALS, BPR, EmbeddingNeighbours
from recsys.neighbours import ItemKNN, RP3beta, UserKNN
from recsys.sources import CandidateSource, Popularity

if TYPE_CHECKING:
    from recsys.config import RecsysConfig


@dataclass(frozen=True)
class CandidateSet:
    """Candidates of a batch of users, as flat arrays of (user, item) pairs grouped by user.

    users: (n_pairs,) user row indices, sorted (all pairs of a user are contiguous)
    items: (n_pairs,) item column indices
    scores, ranks: (n_pairs, n_sources) every source's score, and its rank among the user's
        unseen items (0 = that source's best item)
    proposed_by: (n_pairs,) index into ``source_names`` of the best-ranking proposing source
    offsets: (n_batch_users + 1,) pairs of batch user b are ``offsets[b]:offsets[b + 1]``
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    proposed_by: np.ndarray
    offsets: np.ndarray
    source_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)


def build_sources(config: RecsysConfig) -> list[CandidateSource]:
    """The sources named in ``config.sources``, constructed with the config's settings."""
    factories = {
        "popularity": lambda: Popularity(),
        "item_knn": lambda: ItemKNN(config.knn_neighbours, config.knn_shrink),
        "ease": lambda: EASE(config.ease_l2),
        "dlae": lambda: DLAE(config.dlae_dropout, config.dlae_l2),
        "edlae": lambda: EDLAE(config.dlae_dropout, config.dlae_l2),
        "user_knn": lambda: UserKNN(config.user_knn_neighbours, config.user_knn_shrink),
        "rp3beta": lambda: RP3beta(config.rp3_alpha, config.rp3_beta, config.rp3_neighbours),
        "als": lambda: ALS(
            config.als_factors,
            config.als_regularization,
            config.als_alpha,
            config.als_iterations,
            config.seed,
        ),
        "embedding": lambda: EmbeddingNeighbours(config.embedding_dim, config.seed),
        "multvae": lambda: MultVAE(
            config.vae_hidden,
            config.vae_latent,
            config.vae_beta,
            config.vae_epochs,
            seed=config.seed,
        ),
        "bpr": lambda: BPR(config.bpr_factors, config.bpr_l2, config.bpr_epochs, seed=config.seed),
    }
    return [factories[name]() for name in config.sources]


def _rank_matrix(scores: np.ndarray) -> np.ndarray:
    """Rank of every item per row (0 = highest score); seen items carry -inf so they sink."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :], axis=1)
    return ranks


def generate(
    sources: Sequence[CandidateSource],
    users: np.ndarray,
    history: sp.csr_matrix,
    per_source: int,
    exclude: sp.csr_matrix | None = None,
) -> CandidateSet:
    """Merge each source's top-``per_source`` items for ``users`` (rows of ``history``).

    Items in ``exclude`` (default: ``history``, i.e. seen items) are never proposed.
    """
    n_users, n_items = history.shape[0], history.shape[1]
    seen_rows, seen_cols = (history if exclude is None else exclude).nonzero()
    all_scores, all_ranks = [], []
    proposed = np.zeros((n_users, n_items), dtype=bool)
    best_rank = np.full((n_users, n_items), np.iinfo(np.int64).max)
    proposer = np.full((n_users, n_items), -1, dtype=np.int64)
    for s_idx, source in enumerate(sources):
        scores = source.score(history).astype(np.float32)
        masked = scores.copy()
        masked[seen_rows, seen_cols] = -np.inf
        ranks = _rank_matrix(masked)
        if isinstance(source, EmbeddingNeighbours):
            # The FAISS index proposes; it returns the same items as the dense top-N (exact IP).
            _, top = source.search(history, per_source, exclude)
            mine = np.zeros_like(proposed)
            rows = np.repeat(np.arange(n_users), top.shape[1])
            valid = top.ravel() >= 0
            mine[rows[valid], top.ravel()[valid]] = True
        else:
            mine = ranks < per_source
        mine[seen_rows, seen_cols] = False
        better = mine & (ranks < best_rank)
        proposer[better] = s_idx
        best_rank[better] = ranks[better]
        proposed |= mine
        all_scores.append(scores)
        all_ranks.append(ranks)
    rows, cols = np.nonzero(proposed)  # row-major: pairs come out grouped by user
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_users))])
    return CandidateSet(
        users=np.asarray(users)[rows],
        items=cols,
        scores=np.stack([s[rows, cols] for s in all_scores], axis=1),
        ranks=np.stack([r[rows, cols] for r in all_ranks], axis=1).astype(np.float32),
        proposed_by=proposer[rows, cols],
        offsets=offsets,
        source_names=tuple(s.name for s in sources),
    )


def candidate_recall(
    candidates: CandidateSet, truth: dict[int, set[int]], per_source: int
) -> dict[str, float]:
    """Mean over users with test items of |candidates ∩ test| / |test|, per source and merged.

    A source's own set is its items with rank < ``per_source``. ``truth`` maps user row index ->
    set of test item indices; a user with test items but no candidates counts as recall 0.
    """
    out: dict[str, list[float]] = {name: [] for name in (*candidates.source_names, "merged")}
    for b in range(len(candidates.offsets) - 1):
        lo, hi = candidates.offsets[b], candidates.offsets[b + 1]
        if hi == lo:
            continue
        user = int(candidates.users[lo])
        relevant = truth.get(user)
        if not relevant:
            continue
        items = candidates.items[lo:hi]
        hit = np.fromiter((i in relevant for i in items), dtype=bool, count=len(items))
        out["merged"].append(hit.sum() / len(relevant))
        for s, name in enumerate(candidates.source_names):
            own = candidates.ranks[lo:hi, s] < per_source
            out[name].append((hit & own).sum() / len(relevant))
    return {name: float(np.mean(v)) if v else 0.0 for name, v in out.items()}


def blend_scores(cands: CandidateSet, names: tuple[str, ...]) -> np.ndarray:
    """Sum over ``names`` of score / (user's best candidate score for that source).

    ``names`` is ``RecsysConfig.blend_sources`` when serving; names not among the candidate
    set's sources are skipped.
    """
    total = np.zeros(len(cands), dtype=np.float64)
    counts = np.diff(cands.offsets)
    starts = cands.offsets[:-1][counts > 0]
    for name in names:
        if name not in cands.source_names:
            continue
        s = cands.scores[:, cands.source_names.index(name)].astype(np.float64)
        best = np.repeat(np.maximum.reduceat(s, starts), counts[counts > 0])
        total += np.where(best > 0, s / np.where(best > 0, best, 1.0), 0.0)
    return total


def per_user_z(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Standardise ``values`` within each user's candidates (mean 0, std 1; constant -> 0)."""
    counts = np.diff(offsets)
    nonempty = counts > 0
    starts = offsets[:-1][nonempty]
    n = counts[nonempty].astype(np.float64)
    v = values.astype(np.float64)
    mean = np.add.reduceat(v, starts) / n
    var = np.add.reduceat(v * v, starts) / n - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    mean_r = np.repeat(mean, counts[nonempty])
    std_r = np.repeat(std, counts[nonempty])
    return np.where(std_r > 1e-12, (v - mean_r) / np.where(std_r > 1e-12, std_r, 1.0), 0.0)
