"""Beyond accuracy: coverage, novelty, intra-list diversity, and an MMR diversity re-rank.

Accuracy alone rewards recommending the same blockbusters to everyone. These measures say what
else a list does, each on ``runs = {user: [item index, ...]}`` (top-k lists):

* **catalogue coverage** = |∪ lists| / n_items: how much of the catalogue is ever shown
  (Ge, Delgado-Battenfeld, Jannach, "Beyond accuracy", RecSys 2010);
* **novelty** = mean over shown items of −log2 p(i), p(i) = share of training users who
  interacted with i (self-information; Zhou et al., PNAS 2010): higher means less obvious;
* **intra-list diversity** = mean over lists of the mean pairwise distance 1 − cos(vᵢ, vⱼ)
  between the items' genre/year content vectors (Ziegler et al., WWW 2005).

``mmr_rerank`` is Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998): pick greedily
argmax λ·rel(i) − (1 − λ)·max_{j ∈ picked} sim(i, j), trading relevance for diversity. Its
accuracy cost is measured in the benchmark, not assumed.
"""

from __future__ import annotations

import numpy as np

from recsys.errors import InvalidArgumentError


def coverage(runs: dict[int, list[int]], n_items: int) -> float:
    shown = {i for items in runs.values() for i in items}
    return len(shown) / n_items


def novelty(runs: dict[int, list[int]], popularity_share: np.ndarray, n_users: int) -> float:
    """Mean self-information −log2 p(i) of shown items, p(i) = the share of ``n_users`` who
    interacted with item i.

    An item nobody has interacted with yet (a new film) counts as if one user had: p is floored
    at 1/n_users, the rarest a seen item can be, so it scores as the most novel seen item
    (log2(943) = 9.9 bits on MovieLens 100K) rather than an arbitrary 19.9 bits from a 1e-6 floor.
    """
    if n_users < 1:
        raise InvalidArgumentError(f"n_users must be >= 1, got {n_users}")
    p = np.clip(popularity_share, 1.0 / n_users, 1.0)
    values = [-np.log2(p[i]) for items in runs.values() for i in items]
    return float(np.mean(values)) if values else 0.0


def intra_list_diversity(runs: dict[int, list[int]], vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance within each list (vectors L2-normalised), averaged."""
    out = []
    for items in runs.values():
        if len(items) < 2:
            continue
        v = vectors[items]
        sim = v @ v.T
        n = len(items)
        out.append(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
    return float(np.mean(out)) if out else 0.0


def mmr_rerank(
    items: np.ndarray, relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float
) -> np.ndarray:
    """Greedy MMR over a candidate pool; relevance is min-max scaled to [0, 1] first.

    >>> v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> mmr_rerank(np.array([0, 1, 2]), np.array([3.0, 2.9, 2.0]), v, k=2, lam=0.5).tolist()
    [0, 2]
    """
    if not 0.0 <= lam <= 1.0:
        raise InvalidArgumentError(f"MMR lambda must be in [0, 1], got {lam}")
    if len(items) == 0:
        return items
    rel = relevance.astype(np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    sims = vectors[items] @ vectors[items].T
    picked: list[int] = []
    max_sim = np.zeros(len(items))
    available = np.ones(len(items), dtype=bool)
    for _ in range(min(k, len(items))):
        value = lam * rel - (1.0 - lam) * max_sim
        value[~available] = -np.inf
        j = int(np.argmax(value))
        picked.append(j)
        available[j] = False
        max_sim = np.maximum(max_sim, sims[j])
    return items[picked]
