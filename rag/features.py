"""Features of a (query, candidate document) pair for the learning-to-rank reranker.

The first stage already computes the two strongest signals, BM25 and dense similarity, but only
for the documents each retriever put in its own top list. For every fused candidate we compute
*both* exactly (max over the document's chunks), then describe them the way a ranker can use
across queries: raw, rank within the candidate list, z-score and min-max within the list, gap to
the list's best. To those we add cheap lexical-match signals that neither score captures:
query-term coverage (plain and idf-weighted), title coverage, and the length of the document.

Features are per-query-relative on purpose: a BM25 score of 20 is high for one query and low for
another, while "the best BM25 score among the candidates" means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.fusion import normalize
from rag.hits import Candidate, Hit

FEATURE_NAMES = (
    "bm25",
    "bm25_rank",
    "bm25_z",
    "bm25_minmax",
    "bm25_gap",
    "dense",
    "dense_rank",
    "dense_z",
    "dense_minmax",
    "dense_gap",
    "fused",
    "fused_rank",
    "coverage",
    "idf_coverage",
    "title_coverage",
    "n_query_terms",
    "log_length",
    "n_chunks",
)


def _rank(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score (1 = highest); ties share the order of appearance."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def describe(name: str, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Raw score, rank, z-score, min-max and gap to the best, all within one candidate list."""
    return {
        name: scores,
        f"{name}_rank": _rank(scores),
        f"{name}_z": normalize(scores, "zscore"),
        f"{name}_minmax": normalize(scores, "minmax"),
        f"{name}_gap": scores.max() - scores,
    }


def candidate_features(
    index, query: str, query_vector: np.ndarray, fused: Sequence[Hit], title_terms: dict
) -> list[Candidate]:
    """Build :class:`Candidate` objects with :data:`FEATURE_NAMES` for the fused hits.

    ``index`` is a :class:`~rag.index.HybridIndex`; ``title_terms`` caches title term ids per
    document across queries. It is keyed by document id only, so it is valid for one state of
    the index: :class:`~rag.retrieval.HybridRetriever` empties it when ``index.generation``
    moves (an upsert may retitle a document under the same id).
    """
    if not fused:
        return []
    bm25, dense = index.bm25, index.dense
    doc_ids = [h.doc_id for h in fused]
    chunk_lists = [index.doc_chunks[d] for d in doc_ids]
    flat = [c for cl in chunk_lists for c in cl]
    owner = np.repeat(np.arange(len(doc_ids)), [len(cl) for cl in chunk_lists])

    def per_doc_max(chunk_scores: np.ndarray) -> np.ndarray:
        out = np.full(len(doc_ids), -np.inf)
        np.maximum.at(out, owner, chunk_scores)
        return out

    bm25_doc = per_doc_max(bm25.scores_for(query, flat))
    dense_doc = per_doc_max(dense.scores_for(query_vector, flat))
    fused_scores = np.array([h.score for h in fused])
    cols = describe("bm25", bm25_doc) | describe("dense", dense_doc)
    cols["fused"] = fused_scores
    cols["fused_rank"] = np.arange(1, len(fused) + 1, dtype=np.float64)

    q_terms = bm25.query_terms(query)
    q_idf = bm25.idf(q_terms)
    present = np.zeros((len(doc_ids), len(q_terms)), bool)  # does document i contain term j?
    np.logical_or.at(present, owner, bm25.term_presence(flat, q_terms))
    n_terms = max(1, len(q_terms))
    idf_total = q_idf.sum()
    q_set = set(q_terms.tolist())
    title_cov, lengths = [], []
    for doc_id in doc_ids:
        if doc_id not in title_terms:
            title = index.documents[doc_id].title
            title_terms[doc_id] = set(bm25.query_terms(title).tolist()) if title else set()
        title_cov.append(len(q_set & title_terms[doc_id]) / n_terms)
        lengths.append(np.log1p(len(index.documents[doc_id].content)))
    coverage = present.sum(axis=1) / n_terms
    idf_cov = present @ q_idf / idf_total if idf_total > 0 else np.zeros(len(doc_ids))
    cols |= {
        "coverage": coverage.astype(np.float64),
        "idf_coverage": np.asarray(idf_cov, np.float64),
        "title_coverage": np.array(title_cov),
        "n_query_terms": np.full(len(doc_ids), float(len(q_terms))),
        "log_length": np.array(lengths),
        "n_chunks": np.array([float(len(cl)) for cl in chunk_lists]),
    }
    out = []
    for i, h in enumerate(fused):
        chunk = index.chunks.get(h.chunk_id)
        out.append(
            Candidate(
                doc_id=h.doc_id,
                chunk_id=h.chunk_id,
                text=chunk.text if chunk else index.documents[h.doc_id].content,
                title=index.documents[h.doc_id].title,
                features={name: float(cols[name][i]) for name in FEATURE_NAMES},
            )
        )
    return out
