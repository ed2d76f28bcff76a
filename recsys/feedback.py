"""A feedback-loop simulation: retrain on the model's own recommendations, watch popularity pile up.

Offline logs are produced by the previous model. Retraining on them teaches the next model
what the last one showed, so exposure concentrates on already-popular items (Chaney, Stewart,
Engelhardt, "How algorithmic confounding in recommendation systems increases homogeneity and
decreases utility", RecSys 2018). The simulation, per round:

1. fit EASE (the best single source, and cheap) on the current log;
2. show every user a top-k list (seen items removed);
3. the simulated user accepts a shown item if it is one of their held-out "true" interactions
   (the test split), and otherwise with a small ``click_noise`` probability (curiosity clicks);
   accepted items are appended to the log.

We report per round the Gini coefficient of item exposure (0 = every item shown equally often,
1 = one item gets everything), catalogue coverage, and the share of users' true items
discovered so far. The counter-measure is **exploration**: ``explore_slots`` of the k slots go to
items drawn from ranks k..k+pool of the model's list with probability ∝ 1/popularity, so items
the model is unsure about get exposure and therefore data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.autoencoders import EASE
from recsys.sources import top_n


@dataclass(frozen=True)
class LoopRound:
    round: int
    exposure_gini: float
    coverage: float
    discovered_share: float  # cumulative share of held-out true items accepted so far
    accepted: int


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal, → 1 = concentrated)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if x.sum() == 0:
        return 0.0
    n = len(x)
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


def simulate(
    start: sp.csr_matrix,
    truth: sp.csr_matrix,
    *,
    rounds: int = 5,
    k: int = 10,
    explore_slots: int = 0,
    pool: int = 90,
    click_noise: float = 0.02,
    l2: float = 250.0,
    seed: int = 0,
) -> list[LoopRound]:
    """Run the loop; ``start`` is the initial log, ``truth`` the users' held-out interactions."""
    rng = np.random.default_rng(seed)
    log = start.tocsr().astype(np.float32)
    truth = truth.tocsr()
    total_true = max(int(truth.nnz), 1)
    discovered = sp.csr_matrix(truth.shape, dtype=np.float32)
    out = []
    for r in range(1, rounds + 1):
        model = EASE(l2).fit(log)
        ranked = top_n(model.score(log), log, k + pool)
        popularity = np.asarray(log.sum(axis=0)).ravel() + 1.0
        shown = ranked[:, :k].copy()
        if explore_slots:
            for u in range(shown.shape[0]):
                tail = ranked[u, k:]
                p = 1.0 / popularity[tail]
                picks = rng.choice(tail, size=explore_slots, replace=False, p=p / p.sum())
                shown[u, k - explore_slots :] = picks
        rows = np.repeat(np.arange(shown.shape[0]), k)
        cols = shown.ravel()
        liked = np.asarray(truth[rows, cols]).ravel() > 0
        curious = rng.random(len(cols)) < click_noise
        accept = liked | curious
        new = sp.csr_matrix(
            (np.ones(accept.sum(), dtype=np.float32), (rows[accept], cols[accept])),
            shape=log.shape,
        )
        log = ((log + new) > 0).astype(np.float32).tocsr()
        discovered = ((discovered + new.multiply(truth > 0)) > 0).astype(np.float32)
        exposure = np.bincount(cols, minlength=log.shape[1])
        out.append(
            LoopRound(
                round=r,
                exposure_gini=gini(exposure),
                coverage=float((exposure > 0).mean()),
                discovered_share=float(discovered.nnz / total_true),
                accepted=int(accept.sum()),
            )
        )
    return out
