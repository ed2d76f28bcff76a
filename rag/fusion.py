"""Fusion: combine the ranked lists of several retrievers into one.

Two families, both over document-level :class:`~rag.hits.Hit` lists:

* **Reciprocal rank fusion** (Cormack, Clarke & Büttcher, SIGIR 2009)::

      rrf(d) = sum_i  w_i / (k + rank_i(d))          rank_i is 1-based; absent lists add 0

  It uses ranks only, so it needs no score calibration; ``k = 60`` damps the head of each list.
  The weights ``w_i`` really apply (a test checks that a heavy weight flips the order).

* **Convex combination** of normalised scores (Bruch, Gai & Ingber 2023, "An Analysis of Fusion
  Functions for Hybrid Retrieval", arXiv:2210.11934)::

      convex(d) = sum_i  w_i * norm_i(score_i(d))

  with ``norm`` either min-max (``(s - min) / (max - min)``) or z-score (``(s - mean) / std``)
  over the list's scores. A document missing from list ``i`` is given that list's lowest
  normalised score: it was not retrieved, so its true score is at most the list's minimum. A
  list whose scores are all equal (a single hit, say) has no spread to normalise by; it still
  says which documents it found, so its documents get the constant normalisation (1 under
  min-max, 0 under z-scores) and a missing document one unit less. Giving the missing ones the
  same value would make such a list count for nothing.

Which is the default? Bruch et al. find a tuned convex combination beats RRF and is
sample-efficient to tune; our benchmark agrees on SciFact (both convex fusions score above RRF
on nDCG@10: README, main table). ``zscore`` is the default, with its one weight tuned on
*train* queries: it is within noise of min-max here, and one outlier score cannot squash the
rest of its list.
RRF is the safe choice when no training queries exist. Ties are broken by the best rank a
document had in any list, then by id, so the output is deterministic.

Which chunk stands for a fused document? Each input list names the document's best chunk *for
that retriever*, and with several chunks per document BM25 and dense may name different ones.
The fused hit keeps the chunk from the list that ranked the document best (the earlier list on
a tie: BM25 in :class:`~rag.retrieval.HybridRetriever`), the passage that earned it its place;
that chunk is what a prompt shows. With one chunk per document (the default) there is no choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.errors import ConfigError
from rag.hits import Hit


def _check_weights(n_lists: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * n_lists
    if len(weights) != n_lists:
        raise ConfigError(f"got {len(weights)} weights for {n_lists} result lists")
    if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ConfigError(f"weights must be >= 0 with at least one > 0, got {list(weights)}")
    return [float(w) for w in weights]


def _finish(
    scores: dict[str, float], best_rank: dict[str, int], chunk: dict[str, str], limit: int | None
) -> list[Hit]:
    order = sorted(scores, key=lambda d: (-scores[d], best_rank[d], d))
    if limit is not None:
        order = order[:limit]
    return [Hit(d, scores[d], chunk[d]) for d in order]


def _bookkeeping(results: Sequence[Sequence[Hit]]) -> tuple[dict[str, int], dict[str, str]]:
    """Each document's best rank in any list, and the chunk it had there (first list on ties)."""
    best_rank: dict[str, int] = {}
    chunk: dict[str, str] = {}
    for hits in results:
        for rank, h in enumerate(hits, start=1):
            if rank < best_rank.get(h.doc_id, rank + 1):
                best_rank[h.doc_id], chunk[h.doc_id] = rank, h.chunk_id
    return best_rank, chunk


def reciprocal_rank_fusion(
    results: Sequence[Sequence[Hit]],
    weights: Sequence[float] | None = None,
    *,
    k: int = 60,
    limit: int | None = None,
) -> list[Hit]:
    """Weighted RRF of ``results`` (each best-first). Returns hits with the fused score."""
    if k < 0:
        raise ConfigError(f"rrf k must be >= 0, got {k}")
    w = _check_weights(len(results), weights)
    scores: dict[str, float] = {}
    for wi, hits in zip(w, results, strict=True):
        for rank, h in enumerate(hits, start=1):
            scores[h.doc_id] = scores.get(h.doc_id, 0.0) + wi / (k + rank)
    best_rank, chunk = _bookkeeping(results)
    return _finish(scores, best_rank, chunk, limit)


def normalize(scores: np.ndarray, method: str) -> np.ndarray:
    """Min-max to [0, 1] or z-score; a constant list maps to 1.0 (min-max) or 0.0 (z-score)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return scores
    if method == "minmax":
        lo, hi = scores.min(), scores.max()
        return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
    if method == "zscore":
        sd = scores.std()
        return np.zeros_like(scores) if sd == 0 else (scores - scores.mean()) / sd
    raise ConfigError(f"normalisation must be 'minmax' or 'zscore', got {method!r}")


def convex_fusion(
    results: Sequence[Sequence[Hit]],
    weights: Sequence[float] | None = None,
    *,
    method: str = "zscore",
    limit: int | None = None,
) -> list[Hit]:
    """Weighted sum of normalised scores (see module docstring for missing documents)."""
    w = _check_weights(len(results), weights)
    normed = [normalize(np.array([h.score for h in hits]), method) for hits in results]
    docs = {h.doc_id for hits in results for h in hits}
    scores = dict.fromkeys(docs, 0.0)
    for wi, hits, z in zip(w, results, normed, strict=True):
        if not hits:
            continue  # an empty list carries no information about anyone
        floor = float(z.min())
        if z.max() == z.min():  # all scores equal: found beats not found (module docstring)
            floor -= 1.0
        present = {h.doc_id: float(zi) for h, zi in zip(hits, z, strict=True)}
        for d in docs:
            scores[d] += wi * present.get(d, floor)
    best_rank, chunk = _bookkeeping(results)
    return _finish(scores, best_rank, chunk, limit)


def fuse(
    results: Sequence[Sequence[Hit]],
    method: str,
    weights: Sequence[float] | None = None,
    *,
    rrf_k: int = 60,
    limit: int | None = None,
) -> list[Hit]:
    """Dispatch on ``method``: ``rrf``, ``minmax`` or ``zscore``."""
    if method == "rrf":
        return reciprocal_rank_fusion(results, weights, k=rrf_k, limit=limit)
    return convex_fusion(results, weights, method=method, limit=limit)
