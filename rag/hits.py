"""Search results and the chunk -> document step.

Retrievers score *chunks*; evaluation and fusion work on *documents*. A document's score is the
score of its best chunk (max pooling). Max rather than sum or mean, because one passage that
answers the query is what makes a document relevant, and a long document should not win by having
many mediocre chunks (the "MaxP" finding of Dai & Callan 2019, arXiv:1905.09217).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Hit:
    """A document-level result. ``chunk_id`` is the chunk that gave the document its score."""

    doc_id: str
    score: float
    chunk_id: str = ""


@dataclass
class Candidate:
    """A fused candidate handed to a reranker, with every first-stage signal it may use.

    ``features`` holds named retrieval signals (``bm25``, ``dense``, ``fused``, ranks, ...);
    ``text`` is the best chunk's text, for text-based rerankers such as a cross-encoder.
    """

    doc_id: str
    chunk_id: str
    text: str
    title: str = ""
    features: dict[str, float] = field(default_factory=dict)


def best_per_document(
    chunk_ids: Sequence[str], scores: np.ndarray, chunk_to_doc: Mapping[str, str], k: int
) -> list[Hit]:
    """Collapse chunk scores to the ``k`` best documents by their maximum chunk score.

    ``chunk_ids`` must be sorted by descending score (as retrievers return them), so the first
    chunk seen for a document is its best one.
    """
    hits: list[Hit] = []
    seen: set[str] = set()
    for chunk_id, score in zip(chunk_ids, scores, strict=True):
        doc_id = chunk_to_doc[chunk_id]
        if doc_id not in seen:
            seen.add(doc_id)
            hits.append(Hit(doc_id, float(score), chunk_id))
            if len(hits) == k:
                break
    return hits


def as_run(results: Mapping[str, Sequence[Hit]]) -> dict[str, dict[str, float]]:
    """``{query_id: [Hit, ...]}`` -> the BEIR/trec ``run`` shape ``{query_id: {doc_id: score}}``.

    Scores are replaced by ``n - rank`` so that the metric code's ranking equals our ranking even
    when scores tie (trec_eval would otherwise break ties by doc id).
    """
    return {
        qid: {h.doc_id: float(len(hits) - i) for i, h in enumerate(hits)}
        for qid, hits in results.items()
    }
