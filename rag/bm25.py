"""BM25 sparse retrieval as a sparse matrix: readable, fast, and incrementally updatable.

Scoring (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond")::

    score(q, d) = sum over query terms t of  idf(t) * tf * C / (tf + k1 * (1 - b + b * |d| / avgdl))

    where tf = tf(t, d) is the count of t in d, |d| the length of d, avgdl the mean length

Two variants, chosen with ``method`` (both as catalogued by Kamphuis et al. 2020, "Which BM25 Do
You Mean?", and implemented by ``bm25s``, Lù 2024, arXiv:2407.03618):

* ``"lucene"`` (default): ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` (never negative), ``C = 1``.
* ``"okapi"``: ``idf = ln((N - df + 0.5) / (df + 0.5))`` with negative values floored to
  ``epsilon * mean(idf)``, ``C = k1 + 1``; exactly what ``rank_bm25.BM25Okapi`` computes, so the
  parity test compares scores to 1e-9.

The trick that makes it fast (the idea behind ``bm25s``): every factor of the sum except the query
term count depends only on (term, document), so we precompute the weight matrix
``W[d, t] = idf(t) * tf * C / (tf + k1 * norm(d))`` once, store it column-major (CSC), and a
query is the sum of a handful of columns: ``scores = W[:, q_terms] @ q_counts``. That is a few
thousand floating-point additions per query instead of a Python loop over documents.

Incremental updates: ``idf`` and ``avgdl`` depend on the whole collection, so adding or deleting
one document changes every weight. We keep raw term counts per document and rebuild ``W`` lazily,
in O(number of postings), on the first query after a change (a fraction of a second for SciFact).

Vocabulary compaction: every new term gets the next column id, and a term would keep its id (and
its column of ``W``) after the last document using it is replaced or removed. A long-lived index
that upserts news, logs or tickets meets ids, numbers and names that never repeat, so the
vocabulary would grow with every term ever seen, not with the live corpus (a review measured
156,000 terms over 200 live documents after 5,000 replacements, +35 MB and rising). So ``add`` and
``remove`` keep each term's document frequency, and once the dead terms (df 0) are more than half
the vocabulary and more than ``compact_min_dead``, the live terms are renumbered 0..n-1 in their
old order. A compaction costs O(vocabulary + postings): the vocabulary part is O(1) per dropped
term, since at least half the vocabulary died since the last one, and the postings part is less
than the weight rebuild that the same update causes anyway. It changes no score, bit for bit:
each column of ``W`` depends on its own term only, except through Okapi's mean idf, which is an
exact sum and so does not depend on the order of the terms either. Vocabulary ids are
therefore valid until the next ``add`` or ``remove`` only.

Threads: ``add`` and ``remove`` hold the write side of ``BM25Index.lock``, every query its read
side (:mod:`rag.rwlock`), so queries run side by side and never see half an update; after a
change, one of them rebuilds ``W`` while the others wait for it.

Tokenizer (shared by indexing and querying, so they can never disagree): lowercase, words of two
or more letters/digits (``\\b\\w\\w+\\b``, scikit-learn's and bm25s's pattern), Lucene's 33 English
stop words removed, Snowball English stemmer (PyStemmer).
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rag.errors import ConfigError
from rag.rwlock import RWLock, reads, writes

logger = logging.getLogger(__name__)

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the 33 words bm25s also uses).
_LUCENE_STOP = (
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with"
)
STOPWORDS_EN = frozenset(_LUCENE_STOP.split())
_WORD = re.compile(r"(?u)\b\w\w+\b")


def _finite(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


class Tokenizer:
    """Lowercase -> ``\\b\\w\\w+\\b`` words -> drop stop words -> Snowball stem (memoised).

    The stem memo is emptied when it reaches ``max_cached_words`` (SciFact has 36,000 distinct
    words): like the vocabulary, it would otherwise keep every word a long-lived index has ever
    seen (23 MB after the review's 5,000 replacements of 200 documents).
    """

    max_cached_words: int = 65_536

    def __init__(self, stem: bool = True, stopwords: Iterable[str] = STOPWORDS_EN) -> None:
        self.stopwords = frozenset(stopwords)
        self._stemmer = None
        if stem:
            import Stemmer  # PyStemmer

            self._stemmer = Stemmer.Stemmer("english")
        self._cache: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self.stopwords]
        if self._stemmer is None:
            return words
        cache, out = self._cache, []
        for w in words:
            s = cache.get(w)
            if s is None:
                if len(cache) >= self.max_cached_words:
                    cache.clear()
                s = cache[w] = self._stemmer.stemWord(w)
            out.append(s)
        return out


@dataclass(frozen=True)
class ScoredIds:
    """Top-k result of a sparse or dense index: ``ids[i]`` has score ``scores[i]``, best first."""

    ids: list[str]
    scores: np.ndarray  # shape (k,), float64 descending


class BM25Index:
    """BM25 over string ids with add / remove, lazy weight rebuilding and vocabulary compaction.

    >>> idx = BM25Index(Tokenizer())
    >>> idx.add(["a", "b"], ["cats purr softly", "dogs bark loudly"])
    >>> idx.search("purring cat", k=1).ids
    ['a']
    """

    # compact once more than max(this, half the vocabulary) terms occur in no live document
    compact_min_dead: int = 4096

    def __init__(
        self,
        tokenizer: Tokenizer | None = None,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        epsilon: float = 0.25,
        lock: RWLock | None = None,
    ) -> None:
        if method not in ("lucene", "okapi"):
            raise ConfigError(f"method must be 'lucene' or 'okapi', got {method!r}")
        # NaN fails every comparison, so `k1 < 0` alone let a NaN k1 through (BM25 found nothing)
        if not (_finite(k1) and k1 >= 0 and _finite(b) and 0 <= b <= 1):
            raise ConfigError(f"need finite k1 >= 0 and 0 <= b <= 1, got {k1=}, {b=}")
        self.tokenizer = tokenizer or Tokenizer()
        self.k1, self.b, self.method, self.epsilon = k1, b, method, epsilon
        self.vocab: dict[str, int] = {}
        self._counts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # id -> (term ids, tf)
        self._df = np.zeros(0, np.int64)  # term id -> live documents holding it (grows x2)
        self._live_terms = 0  # term ids with df > 0
        self._ids: list[str] = []  # row order of the built matrix
        self._row: dict[str, int] = {}
        self._weights: sp.csc_matrix | None = None
        # changes take the write side, queries the read side; a HybridIndex passes its own lock,
        # so one lock covers the whole index (see rag.rwlock)
        self.lock = lock or RWLock()
        self._building = threading.Lock()

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._counts

    # ---- updates -------------------------------------------------------------------------------
    @writes
    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index ``texts`` under ``ids``; an id already present is replaced."""
        if len(ids) != len(texts):
            raise ConfigError(f"got {len(ids)} ids but {len(texts)} texts")
        for doc_id, text in zip(ids, texts, strict=True):
            counts = Counter(self.tokenizer(text))
            terms = np.fromiter(
                (self.vocab.setdefault(t, len(self.vocab)) for t in counts), np.int64, len(counts)
            )
            if len(self.vocab) > len(self._df):
                self._df = np.pad(
                    self._df, (0, max(len(self.vocab), 2 * len(self._df)) - len(self._df))
                )
            old = self._counts.get(doc_id)  # a replaced id keeps its row (ties follow row order)
            if old is not None:
                self._uncount(old[0])
            self._live_terms += np.count_nonzero(self._df[terms] == 0)
            self._df[terms] += 1  # terms are distinct within a document
            self._counts[doc_id] = (terms, np.fromiter(counts.values(), np.float64, len(counts)))
        self._weights = None
        self._compact_if_mostly_dead()

    @writes
    def remove(self, ids: Iterable[str]) -> None:
        """Forget ``ids`` (unknown ids are ignored)."""
        for doc_id in ids:
            old = self._counts.pop(doc_id, None)
            if old is not None:
                self._uncount(old[0])
        self._weights = None
        self._compact_if_mostly_dead()

    def _uncount(self, terms: np.ndarray) -> None:
        self._df[terms] -= 1
        self._live_terms -= np.count_nonzero(self._df[terms] == 0)

    def _compact_if_mostly_dead(self) -> None:
        """Renumber the live terms 0..n-1 in their old order (see "Vocabulary compaction")."""
        n_dead = len(self.vocab) - self._live_terms
        if n_dead <= max(self.compact_min_dead, len(self.vocab) // 2):
            return
        live = self._df[: len(self.vocab)] > 0
        new_id = np.cumsum(live) - 1  # old id -> new id, for the live ids
        keep, to = live.tolist(), new_id.tolist()
        self.vocab = {t: to[i] for t, i in self.vocab.items() if keep[i]}
        self._counts = {d: (new_id[terms], tf) for d, (terms, tf) in self._counts.items()}
        self._df = self._df[: len(live)][live]
        logger.debug(
            "BM25 vocabulary compacted: %d dead terms dropped, %d kept", n_dead, len(self.vocab)
        )

    # ---- the formula ---------------------------------------------------------------------------
    def _idf(self, df: np.ndarray, n_docs: int) -> np.ndarray:
        if self.method == "lucene":
            return np.log1p((n_docs - df + 0.5) / (df + 0.5))
        idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)  # rank_bm25.BM25Okapi
        present = df > 0
        # fsum is exact, so the mean does not depend on the terms' order (compaction renumbers
        # them, and an updated index numbers them in another order than a fresh one)
        floor = self.epsilon * math.fsum(idf[present]) / present.sum() if present.any() else 0.0
        return np.where(present & (idf < 0), floor, idf)

    def _build(self) -> sp.csc_matrix:
        """Compute ``W[d, t]`` for every live document (see module docstring)."""
        self._ids = list(self._counts)
        self._row = {doc_id: i for i, doc_id in enumerate(self._ids)}
        n_docs, n_terms = len(self._ids), len(self.vocab)
        if n_docs == 0:
            return sp.csc_matrix((0, n_terms))
        terms = [self._counts[i][0] for i in self._ids]
        tfs = [self._counts[i][1] for i in self._ids]
        lengths = np.array([tf.sum() for tf in tfs])
        rows = np.repeat(np.arange(n_docs), [len(t) for t in terms])
        cols = np.concatenate(terms)
        tf = np.concatenate(tfs)
        df = np.bincount(cols, minlength=n_terms).astype(np.float64)
        idf = self._idf(df, n_docs)
        avgdl = lengths.mean() if lengths.mean() > 0 else 1.0
        norm = self.k1 * (1 - self.b + self.b * lengths / avgdl)
        numerator = tf * (self.k1 + 1) if self.method == "okapi" else tf
        data = idf[cols] * numerator / (tf + norm[rows])
        return sp.csc_matrix((data, (rows, cols)), shape=(n_docs, n_terms))

    @property
    def weights(self) -> sp.csc_matrix:
        if self._weights is None:
            with self._building:  # readers share the read lock: one builds, the others wait
                if self._weights is None:
                    self._weights = self._build()
        return self._weights

    # ---- queries -------------------------------------------------------------------------------
    @reads
    def score_all(self, query: str) -> tuple[list[str], np.ndarray]:
        """Scores of every indexed id: ``(ids, scores)`` with ``scores.shape == (len(ids),)``.

        Repeated query terms count repeatedly (as in rank_bm25); unknown terms contribute 0.
        """
        w = self.weights
        counts = Counter(self.vocab[t] for t in self.tokenizer(query) if t in self.vocab)
        if not counts or w.shape[0] == 0:
            return self._ids, np.zeros(w.shape[0])
        cols = np.fromiter(counts, np.int64, len(counts))
        qtf = np.fromiter(counts.values(), np.float64, len(counts))
        return self._ids, np.asarray(w[:, cols] @ qtf).ravel()

    @reads
    def term_presence(self, ids: Sequence[str], term_ids: np.ndarray) -> np.ndarray:
        """Boolean matrix ``(len(ids), len(term_ids))``: does indexed id i contain term j?"""
        w = self.weights
        if len(term_ids) == 0 or len(ids) == 0:
            return np.zeros((len(ids), len(term_ids)), bool)
        rows = [self._row[i] for i in ids]
        return (w[:, term_ids].tocsr()[rows] != 0).toarray()

    @reads
    def idf(self, term_ids: np.ndarray) -> np.ndarray:
        """Current idf of the given vocabulary ids (same formula as the scores)."""
        w = self.weights
        df = np.diff(w.indptr).astype(np.float64)
        return self._idf(df, w.shape[0])[term_ids]

    @reads
    def query_terms(self, query: str) -> np.ndarray:
        """Vocabulary ids of the distinct terms of ``query`` that some indexed document holds.

        A term whose last document was removed is left out, as in a fresh index of the same
        documents, so the reranker's term features do not depend on the index's history.
        """
        ids = sorted({self.vocab[t] for t in self.tokenizer(query) if t in self.vocab})
        return np.array([i for i in ids if self._df[i] > 0], dtype=np.int64)

    @reads
    def scores_for(self, query: str, ids: Sequence[str]) -> np.ndarray:
        """BM25 scores of the given ids (0 for unknown ids)."""
        _, scores = self.score_all(query)
        rows = [self._row.get(i, -1) for i in ids]
        return np.array([scores[r] if r >= 0 else 0.0 for r in rows])

    @reads
    def search(self, query: str, k: int = 10) -> ScoredIds:
        """Top ``k`` ids by score (ties broken by insertion order); zero-score ids are dropped."""
        ids, scores = self.score_all(query)
        return top_k(ids, scores, k)


def top_k(ids: Sequence[str], scores: np.ndarray, k: int) -> ScoredIds:
    """Best ``k`` entries with positive score, descending; stable for ties."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        # argpartition keeps an arbitrary subset of the entries tied at the k-th score, so keep
        # every entry that reaches it and let the stable sort below choose among the ties
        kth = np.partition(scores[positive], len(positive) - k)[len(positive) - k]
        positive = positive[scores[positive] >= kth]
    order = positive[np.argsort(-scores[positive], kind="stable")][:k]
    return ScoredIds([ids[i] for i in order], scores[order].astype(np.float64))


class RankBM25Index:
    """The reference backend: ``rank_bm25.BM25Okapi`` behind the same ``search`` interface.

    It is rebuilt from scratch on every change and scores with a Python loop over documents, which
    is why it is ~two orders of magnitude slower; it exists for parity tests and the speed table.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | None = None,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
    ) -> None:
        self.tokenizer = tokenizer or Tokenizer()
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self._texts: dict[str, list[str]] = {}
        self._model = None
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        for doc_id, text in zip(ids, texts, strict=True):
            self._texts[doc_id] = self.tokenizer(text)
        self._model = None

    def remove(self, ids: Iterable[str]) -> None:
        for doc_id in ids:
            self._texts.pop(doc_id, None)
        self._model = None

    def score_all(self, query: str) -> tuple[list[str], np.ndarray]:
        from rank_bm25 import BM25Okapi

        if self._model is None:
            self._ids = list(self._texts)
            self._model = BM25Okapi(
                [self._texts[i] for i in self._ids], k1=self.k1, b=self.b, epsilon=self.epsilon
            )
        return self._ids, np.asarray(
            self._model.get_scores(self.tokenizer(query)), dtype=np.float64
        )

    def search(self, query: str, k: int = 10) -> ScoredIds:
        ids, scores = self.score_all(query)
        return top_k(ids, scores, k)
