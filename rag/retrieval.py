"""The retrieval pipeline: BM25, dense, hybrid fusion and reranking over a :class:`HybridIndex`.

::

    query ──► BM25 (chunks) ──► best chunk per doc ─┐
          └─► embed ─► FAISS (chunks) ─► best per doc ─┴─► fuse (z-score / min-max / RRF)
                                                            └─► [rerank top `rerank_depth`] ─► hits

Every stage returns document-level :class:`~rag.hits.Hit` lists, best first, so each can be
evaluated on its own (the benchmark's rows are exactly these stages).

Threads: one retriever may serve many threads while others upsert into its index. Each search
embeds its query first, then holds the index's read lock (:mod:`rag.rwlock`) from its first
look at the index to its last (both lists of a hybrid search, the reranker's features), so its
hits come from one state of the index, before or after any upsert, never between.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rag.bm25 import ScoredIds
from rag.config import RagConfig
from rag.documents import utf8_problem
from rag.errors import ConfigError
from rag.features import candidate_features
from rag.fusion import fuse
from rag.hits import Candidate, Hit, best_per_document

MODES = ("bm25", "dense", "hybrid", "rerank")


class Retriever(Protocol):
    def search(self, query: str, k: int = 10) -> list[Hit]: ...


class Reranker(Protocol):
    """Reorders fused candidates; returns hits (best first) whose scores are the reranker's."""

    def rerank(self, query: str, candidates: Sequence[Candidate]) -> list[Hit]: ...


class HybridRetriever:
    """BM25 + dense + fusion + optional reranker over one :class:`~rag.index.HybridIndex`.

    Every method may be called from several threads at once, and while other threads change the
    index (see the module docstring). A caller that looks the hits up in the index afterwards
    (``index.documents[hit.doc_id]``) holds ``with index.lock.read():`` around the search and
    the look-ups, or a delete may land between them.
    """

    def __init__(
        self,
        index,
        config: RagConfig | None = None,
        *,
        reranker: Reranker | None = None,
        query_cache_size: int = 4096,
    ) -> None:
        self.index = index
        self.config = config or index.config
        self.reranker = reranker
        self._qvecs: OrderedDict[str, np.ndarray] = OrderedDict()
        self._qvecs_of = index.embedder  # the model that made them (see embed)
        self._cache_size = query_cache_size
        self._title_terms: dict = {}  # doc id -> title term ids, for the reranker's features
        self._title_terms_of: tuple[object, int] | None = None  # (index, its generation)

    # ---- query embeddings (memoised: eval and training ask the same query many times) -----------
    def embed(self, queries: Sequence[str], *, progress: bool = False) -> np.ndarray:
        # Cached vectors are one model's. Another index put in (``retriever.index = other``) or
        # another embedder put into the index makes them stale, as an upsert makes the title
        # terms stale (_titles). Keyed on the embedder object, not the index: two indexes that
        # share one embedder share its query vectors.
        if self._qvecs_of is not self.index.embedder:
            self._qvecs.clear()
            self._qvecs_of = self.index.embedder
        # .get, not `in` then [ ]: another thread may evict an entry between the two
        known = {q: v for q in queries if (v := self._qvecs.get(q)) is not None}
        missing = [q for q in dict.fromkeys(queries) if q not in known]
        if missing:
            vecs = self.index.embedder.encode(missing, progress=progress)
            known.update(zip(missing, vecs, strict=True))
            if self._cache_size > 0:
                self._qvecs.update(zip(missing, vecs, strict=True))
                while len(self._qvecs) > self._cache_size:
                    self._qvecs.popitem(last=False)
        return np.stack([known[q] for q in queries])

    def _titles(self) -> dict:
        """The title-terms cache, emptied whenever the index has changed since it was filled
        (an upsert can retitle a document under the same id) or another index was put in."""
        # keyed on the index object itself, not its id(): a new index can reuse the id of one
        # that was garbage collected
        index, generation = self._title_terms_of or (None, None)
        if index is not self.index or generation != self.index.generation:
            # a new dict, not .clear(): a search in another thread may still be filling the old
            self._title_terms = {}
            self._title_terms_of = (self.index, self.index.generation)
        return self._title_terms

    # ---- single retrievers ----------------------------------------------------------------------
    def _docs(self, search, k: int) -> list[Hit]:
        """Ask ``search(n_chunks)`` for more chunks until ``k`` distinct documents are covered.

        The caller holds the index's read lock: the chunk count, the chunk -> document map and
        the search's chunk ids must all come from one state of the index.
        """
        n_chunks = len(self.index.chunks)
        if n_chunks == 0:
            return []
        want = min(max(k * 2, k + 10), n_chunks)
        c2d = self.index.chunk_to_doc
        while True:
            found: ScoredIds = search(want)
            hits = best_per_document(found.ids, found.scores, c2d, k)
            if len(hits) >= k or want >= n_chunks or len(found.ids) < want:
                return hits
            want = min(want * 2, n_chunks)

    # Each public entry point checks its query and k once (_check_request), then calls the
    # unchecked private stages, so hybrid and rerank do not re-check what they already did.
    def bm25(self, query: str, k: int = 10) -> list[Hit]:
        _check_request(query, k)
        return self._bm25(query, k)

    def dense(self, query: str, k: int = 10) -> list[Hit]:
        _check_request(query, k)
        return self._dense(query, k)

    def _bm25(self, query: str, k: int) -> list[Hit]:
        with self.index.lock.read():
            return self._docs(lambda n: self.index.bm25.search(query, n), k)

    def _dense(self, query: str, k: int, qv: np.ndarray | None = None) -> list[Hit]:
        """``qv``: the query's vector, if the caller embedded it already (outside the lock)."""
        if qv is None:
            if len(self.index.chunks) == 0:  # an empty index loads no model
                return []
            qv = self.embed([query])  # before the lock: a writer need not wait for the model
        with self.index.lock.read():
            return self._docs(lambda n: self.index.dense.search(qv, n)[0], k)

    # ---- fusion and reranking --------------------------------------------------------------------
    def hybrid(
        self,
        query: str,
        k: int = 10,
        *,
        method: str | None = None,
        dense_weight: float | None = None,
    ) -> list[Hit]:
        """Fuse the top ``config.candidates`` of each retriever and return the best ``k``."""
        _check_request(query, k)
        return self._hybrid(query, k, method=method, dense_weight=dense_weight)

    def _hybrid(
        self,
        query: str,
        k: int,
        *,
        method: str | None = None,
        dense_weight: float | None = None,
        qv: np.ndarray | None = None,
    ) -> list[Hit]:
        c = self.config
        w = c.dense_weight if dense_weight is None else dense_weight
        depth = max(k, c.candidates)
        if qv is None and len(self.index.chunks):
            qv = self.embed([query])  # before the lock, as in _dense
        with self.index.lock.read():  # both lists from one state of the index
            lists = [self._bm25(query, depth), self._dense(query, depth, qv)]
        return fuse(lists, method or c.fusion, [1.0 - w, w], rrf_k=c.rrf_k, limit=k)

    def candidates(self, query: str, depth: int | None = None) -> list[Candidate]:
        """The top ``depth`` fused hits with every feature a reranker may use."""
        depth = _depth(depth, self.config.rerank_depth)
        _check_request(query, depth)
        qv = self.embed([query])
        with self.index.lock.read():  # the features describe the index the hits came from
            fused = self._hybrid(query, depth, qv=qv)
            return candidate_features(self.index, query, qv[0], fused, self._titles())

    def rerank(self, query: str, k: int = 10, *, depth: int | None = None) -> list[Hit]:
        """Rerank the top ``depth`` fused candidates; the rest keep their fused order below them."""
        _check_request(query, k)
        depth = _depth(depth, self.config.rerank_depth)  # _hybrid below does not check it
        if self.reranker is None:
            raise ConfigError(
                "no reranker configured; train one with `python -m rag train-reranker`"
            )
        qv = self.embed([query])
        with self.index.lock.read():  # the features describe the index the hits came from
            fused = self._hybrid(query, max(k, depth), qv=qv)
            cands = candidate_features(self.index, query, qv[0], fused[:depth], self._titles())
        head = self.reranker.rerank(query, cands)  # reads the candidates, not the index
        return (head + fused[depth:])[:k]

    def search(self, query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        return getattr(self, mode)(query, k)  # each mode checks the query and k


def _check_request(query: object, k: object) -> None:
    """The checks every retrieval entry point makes before any work."""
    if not isinstance(query, str):
        raise ConfigError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ConfigError("query is empty")
    problem = utf8_problem(query)
    if problem:
        raise ConfigError(f"the query holds {problem}")
    if not _positive_int(k):
        raise ConfigError(f"k must be a positive integer, got {k!r}")


def _depth(depth: object, default: int) -> int:
    """``depth`` fused candidates to rerank: a positive integer, or None for ``default``."""
    if depth is None:
        return default
    if not _positive_int(depth):
        raise ConfigError(f"depth must be a positive integer or None, got {depth!r}")
    return depth


def _positive_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= 1
