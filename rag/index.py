"""The hybrid index: documents, their chunks, a BM25 index and a dense index, kept consistent.

Both retrieval indexes hold the same chunk ids. Every change goes through :meth:`HybridIndex.upsert`
or :meth:`HybridIndex.delete`, which touch the document table, the chunk table and *both* indexes
before returning, so a deleted or replaced version can never be retrieved again (tests check this
by searching for text that only the old version contained). Each change also bumps
``HybridIndex.generation``, which tells caches built from the contents (a retriever's title
terms) that they are stale.

On disk an index is a folder::

    manifest.json    format name and version, model, chunker, BM25 settings, counts, sha256 per file
    documents.jsonl  one Document per line (id, title, text, version, metadata)
    chunks.jsonl     one chunk per line (chunk id, doc id, character span); text comes from the doc
    vectors.npy      float32 (n_chunks, dim), row i = chunk i of chunks.jsonl

Other files in the folder (the CLI keeps its trained ``reranker.json`` there) are not part of the
index, and a save copies them into the new folder.

:meth:`HybridIndex.load` checks the format version, every file's checksum, the manifest's keys and
the row counts (documents, chunks, vectors), and raises :class:`~rag.errors.IndexVersionError`,
:class:`~rag.errors.IndexCorruptError` or :class:`~rag.errors.IndexMismatchError` rather than
serving wrong results. The model check compares what the names resolve to
(:func:`~rag.dense.same_model`), so ``sentence-transformers/all-MiniLM-L6-v2`` opens an index
built with ``all-MiniLM-L6-v2``. BM25 is not stored: it is rebuilt from the chunk text (a few
seconds for SciFact), so it can never disagree with it.

The folder's format checks, the crash-safe save (write ``PATH.tmp``, swap it in with two
renames) and the writer lock that keeps to one writer at a time are in :mod:`rag.store`.

Threads: the index owns a readers-writer lock (:mod:`rag.rwlock`) shared with its BM25 and dense
parts. ``upsert`` and ``delete`` change the index under its write side, whole and one at a time;
searches (:class:`~rag.retrieval.HybridRetriever`), ``chunk_to_doc`` and ``save`` hold its read
side, side by side, each seeing the index before or after a change. An upsert embeds before it
takes the lock. :func:`~rag.store.writer_lock` is the other lock: for processes and one folder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.bm25 import BM25Index, Tokenizer
from rag.chunking import Chunk, Chunker, HFTokenSpans, TokenSpans, make_chunker
from rag.config import RagConfig
from rag.dense import DenseIndex, Embedder, same_model
from rag.documents import Document, check_unique
from rag.embedding_cache import EmbeddingCache, texts_checksum
from rag.errors import ConfigError, IndexCorruptError, IndexMismatchError
from rag.rwlock import RWLock, reads, writes
from rag.store import (
    FILES,
    FORMAT,
    FORMAT_VERSION,
    check_save_target,
    chunk_row,
    file_sha256,
    read_jsonl,
    read_one_version,
    save_folder,
    swap_in,
    writer_lock,
)


@dataclass(frozen=True)
class UpdateReport:
    """What an upsert or delete changed."""

    added: list[str]
    replaced: list[str]
    deleted: list[str]
    chunks_added: int
    chunks_removed: int


def build_chunker(config: RagConfig, tokens: TokenSpans | None = None) -> Chunker:
    """The chunker named by ``config.chunker``; token-aware ones use the model's tokenizer."""
    if config.chunker != "document" and tokens is None:
        from rag.dense import resolve_model

        tokens = HFTokenSpans(resolve_model(config.model))
    return make_chunker(
        config.chunker,
        tokens,
        size=config.chunk_tokens,
        overlap=config.chunk_overlap,
        max_tokens=config.sentence_chunk_tokens,
    )


def build_bm25(config: RagConfig, lock: RWLock | None = None) -> BM25Index:
    return BM25Index(
        Tokenizer(), k1=config.bm25_k1, b=config.bm25_b, method=config.bm25_method, lock=lock
    )


class HybridIndex:
    """Documents + chunks + BM25 + FAISS, updated together; safe to share between threads.

    Concurrent upserts end as one thread making them in turn would leave the index, and a search
    sees it before or after each change (module docstring, "Threads"). Code that reads
    ``documents``, ``chunks`` or ``doc_chunks`` itself while other threads change the index
    holds ``with index.lock.read():`` around the reads that must agree, and calls no ``upsert``
    or ``delete`` inside it (a read lock is not upgraded: :mod:`rag.rwlock`).
    """

    def __init__(
        self,
        embedder: Embedder,
        chunker: Chunker,
        config: RagConfig | None = None,
        *,
        dim: int | None = None,
    ) -> None:
        self.config = config or RagConfig()
        self.embedder, self.chunker = embedder, chunker
        self.lock = RWLock()  # shared by bm25 and dense: one lock over the whole index
        self.documents: dict[str, Document] = {}
        self.chunks: dict[str, Chunk] = {}
        self.doc_chunks: dict[str, list[str]] = {}
        self._chunk_to_doc: dict[str, str] | None = None  # see chunk_to_doc; None = stale
        # +1 on every upsert and delete: whatever is cached from the index's contents (the
        # chunk -> document map here, a retriever's title terms) is stale once it moves on
        self.generation = 0
        self.bm25 = build_bm25(self.config, self.lock)
        self.dense: DenseIndex | None = None if dim is None else self._new_dense(dim)
        # Set by load(): the folder it read (``path``, or ``path.old`` while a save is interrupted,
        # see rag.store.index_folder) and the manifest found there. A file kept beside the index
        # (the CLI's reranker.json) is written to that folder, not looked up again by name, and
        # the manifest tells whether a save has swapped another version in since. None if built
        # in memory.
        self.loaded_from: Path | None = None
        self.loaded_manifest: dict | None = None

    def _new_dense(self, dim: int) -> DenseIndex:
        c = self.config
        return DenseIndex(
            dim, c.dense_index, hnsw_m=c.hnsw_m, ef_search=c.hnsw_ef_search, lock=self.lock
        )

    @property
    @reads
    def chunk_to_doc(self) -> dict[str, str]:
        """Chunk id -> document id. Built once after each change (every query asks for it twice,
        and rebuilding it for 5,183 chunks took ~0.9 ms, a tenth of a hybrid query). It agrees
        with a search's chunk ids if both are read under one ``with index.lock.read():``."""
        if self._chunk_to_doc is None:
            self._chunk_to_doc = {cid: c.doc_id for cid, c in self.chunks.items()}
        return self._chunk_to_doc

    def _changed(self) -> None:
        self._chunk_to_doc = None
        self.generation += 1

    # ---- updates -------------------------------------------------------------------------------
    def upsert(
        self,
        docs: Sequence[Document],
        *,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
    ) -> UpdateReport:
        """Add new documents and replace existing ones (their version goes up by one).

        New chunks are embedded first, so if embedding fails nothing already indexed is touched.
        The embedding, the slow part, runs outside the write lock: searches go on meanwhile,
        and so does another thread's upsert. The change itself holds the write lock. If another
        upsert of one of these documents lands while this one embeds, this one is numbered
        after it (chunk ids name the version), with the vectors already made.
        """
        docs = list(docs)
        check_unique(docs)
        with self.lock.read():
            versioned = self._versioned(docs)
            dim = None if self.dense is None else self.dense.dim  # a cached entry must fit
        new_chunks = [c for d in versioned for c in self.chunker.chunk(d)]
        texts = [c.text for c in new_chunks]
        vecs = self._embed(texts, cache, dim, progress)
        with self.lock.write():
            now = self._versioned(docs)
            if [d.version for d in now] != [d.version for d in versioned]:
                versioned = now  # another upsert landed: re-cut the ids for the new versions
                new_chunks = [c for d in versioned for c in self.chunker.chunk(d)]
                if [c.text for c in new_chunks] != texts:  # a chunker whose cuts follow versions
                    texts = [c.text for c in new_chunks]
                    vecs = self._embed(texts, cache, dim, progress)
            return self._apply(versioned, new_chunks, texts, vecs)

    def _versioned(self, docs: list[Document]) -> list[Document]:
        """``docs`` with the version they get now: a document already indexed goes up by one."""
        out = []
        for d in docs:
            old = self.documents.get(d.doc_id)
            if old is not None and d.version <= old.version:
                d = Document(d.doc_id, d.text, d.title, old.version + 1, d.metadata)
            out.append(d)
        return out

    def _embed(
        self, texts: list[str], cache: EmbeddingCache | None, dim: int | None, progress: bool
    ) -> np.ndarray:
        if cache is None:
            return self.embedder.encode(texts, progress=progress)
        # keyed by the exact texts embedded: a chunker that cuts elsewhere under the same name
        # (a new TokenSpans, session 32's word-boundary windows) can never be served the vectors
        # of the old chunks
        key = EmbeddingCache.key(self.embedder.model_id, self.chunker.name, texts_checksum(texts))
        return cache.get_or_compute(key, texts, self.embedder, dim=dim, progress=progress)

    def _apply(
        self, versioned: list[Document], new_chunks: list[Chunk], texts: list[str], vecs: np.ndarray
    ) -> UpdateReport:
        """Put embedded documents into every structure; the caller holds the write lock."""
        replaced = [d.doc_id for d in versioned if d.doc_id in self.documents]
        removed = self._drop(replaced)
        for d in versioned:
            self.documents[d.doc_id] = d
            self.doc_chunks[d.doc_id] = []
        for c in new_chunks:
            self.chunks[c.chunk_id] = c
            self.doc_chunks[c.doc_id].append(c.chunk_id)
        self._changed()
        ids = [c.chunk_id for c in new_chunks]
        self.bm25.add(ids, texts)
        if self.dense is None:
            self.dense = self._new_dense(vecs.shape[1])
        self.dense.add(ids, vecs)
        added = [d.doc_id for d in versioned if d.doc_id not in replaced]
        return UpdateReport(added, replaced, [], len(new_chunks), removed)

    def _drop(self, doc_ids: Iterable[str]) -> int:
        """Remove documents from every structure; the caller holds the write lock."""
        chunk_ids = [cid for d in doc_ids for cid in self.doc_chunks.pop(d, [])]
        for d in doc_ids:
            self.documents.pop(d, None)
        for cid in chunk_ids:
            del self.chunks[cid]
        self._changed()
        self.bm25.remove(chunk_ids)
        if self.dense is not None:
            self.dense.remove(chunk_ids)
        return len(chunk_ids)

    @writes
    def delete(self, doc_ids: Sequence[str]) -> UpdateReport:
        """Remove documents (and all their chunks) from every structure; unknown ids are ignored.

        A single id may be passed as a string: ``delete("ab")`` deletes ``"ab"``, not "a" and "b".
        """
        if isinstance(doc_ids, str):
            doc_ids = [doc_ids]
        known = [d for d in doc_ids if d in self.documents]
        removed = self._drop(known)
        return UpdateReport([], [], known, 0, removed)

    # ---- persistence ---------------------------------------------------------------------------
    @reads
    def manifest(self) -> dict:
        c = self.config
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.embedder.model_id,
            "chunker": self.chunker.name,
            "config": {
                k: getattr(c, k)
                for k in (
                    "chunker",
                    "chunk_tokens",
                    "chunk_overlap",
                    "sentence_chunk_tokens",
                    "bm25_method",
                    "bm25_k1",
                    "bm25_b",
                    "dense_index",
                    "hnsw_m",
                    "hnsw_ef_search",
                )
            },
            "n_documents": len(self.documents),
            "n_chunks": len(self.chunks),
            "dim": None if self.dense is None else self.dense.dim,
        }

    def save(self, path: str | Path) -> Path:
        """Write the index folder at ``path``, replacing an index already there.

        ``path`` must be new, an empty folder, or a folder holding an index this package wrote
        (otherwise :class:`~rag.errors.IndexOverwriteError`: the folder is replaced as a whole,
        so any other files in it would be deleted). Files in the old index folder that the index
        does not write itself, such as the CLI's ``reranker.json``, are copied into the new one.
        Files bound to the embedding model or chunker (``reranker.json``: its features and
        abstention threshold are raw cosines of one model over one chunking) are carried over only
        when the new index uses the same model and chunker as the old one.
        The swap is two renames (``path`` -> ``path.old``, ``path.tmp`` -> ``path``); if either
        fails the previous index stays at ``path``, and if the process dies between them, the
        next :meth:`save` renames ``path.old`` back (:meth:`load` reads it in place meanwhile).
        If ``path`` is a symlink, the folder it points at is swapped and the link kept. The whole
        save holds the folder's writer lock (:func:`~rag.store.writer_lock`): a second save to the
        same path waits for this one to finish. Inside it, the save holds this index's read lock
        (:attr:`lock`), so it writes one state of the index: an upsert from another thread waits
        for the save, and searches go on.
        """
        folder = save_folder(path)
        check_save_target(folder)  # an unwritable folder: a clear error, not the lock's OSError
        with writer_lock(folder), self.lock.read():  # the folder's lock first (see rag.rwlock)
            swap_in(folder, self._write, self.manifest())
        return Path(path)

    def _write(self, tmp: Path) -> None:
        order = list(self.chunks)
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
            for d in self.documents.values():
                f.write(json.dumps(d.to_json(), ensure_ascii=False) + "\n")
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for cid in order:
                f.write(json.dumps(self.chunks[cid].to_json(), ensure_ascii=False) + "\n")
        dim = self.dense.dim if self.dense is not None else 0
        vecs = np.zeros((0, dim), np.float32)
        if self.dense is not None and order:
            vecs = self.dense.vectors[[self.dense._row[cid] for cid in order]]
        np.save(tmp / "vectors.npy", vecs)
        manifest = self.manifest() | {"files": {n: file_sha256(tmp / n) for n in FILES}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(
        cls,
        path: str | Path,
        embedder: Embedder,
        *,
        config: RagConfig | None = None,
        tokens: TokenSpans | None = None,
    ) -> HybridIndex:
        """Read an index folder, verifying version, checksums and shapes (see module docstring)."""
        path, manifest, data = read_one_version(path)
        if not same_model(manifest["model"], embedder.model_id):
            raise IndexMismatchError(
                f"index at {path} was built with model {manifest['model']!r}, but the embedder is "
                f"{embedder.model_id!r}; query vectors would not be comparable. Use the same "
                "model or rebuild the index.",
                path=path,
            )
        try:
            config = (config or RagConfig()).replace(model=manifest["model"], **manifest["config"])
        except (TypeError, ConfigError) as exc:
            raise IndexCorruptError(
                f"{path / 'manifest.json'} holds an invalid config {manifest['config']!r}: {exc}",
                path=path,
            ) from exc
        chunker = build_chunker(config, tokens)
        if chunker.name != manifest["chunker"]:
            raise IndexMismatchError(
                f"chunker {chunker.name!r} != index's {manifest['chunker']!r}", path=path
            )
        # parsed from the bytes whose checksums were checked, never read again from disk
        docs = read_jsonl(path, "documents.jsonl", data, Document.from_json)
        rows = read_jsonl(path, "chunks.jsonl", data, chunk_row)
        # the raw bytes and the array are both in memory here (twice the file's size): the price
        # of parsing exactly the bytes whose checksum was checked
        vecs = np.load(io.BytesIO(data["vectors.npy"]))
        if len(rows) != manifest["n_chunks"] or vecs.shape[0] != len(rows):
            raise IndexCorruptError(
                f"{path}: {len(rows)} chunks, {vecs.shape[0]} vectors, "
                f"manifest says {manifest['n_chunks']}",
                path=path,
            )
        if len(docs) != manifest["n_documents"]:
            raise IndexCorruptError(
                f"{path}: {len(docs)} documents, manifest says {manifest['n_documents']}",
                path=path,
            )
        known = {d.doc_id for d in docs}
        orphans = sorted({r["doc_id"] for r in rows} - known)
        if orphans:
            raise IndexCorruptError(
                f"{path}: chunks.jsonl names documents that documents.jsonl lacks: {orphans[:5]}",
                path=path,
            )
        # dim is None for an index saved before any document was added: like a new index, it
        # takes its dimension from the first vectors added (vectors.npy is then (0, 0))
        dim = manifest["dim"]
        if dim is None and rows:
            raise IndexCorruptError(
                f"{path}: manifest has no vector dimension (dim) but {len(rows)} chunks", path=path
            )
        index = cls(embedder, chunker, config, dim=dim)
        index.loaded_from, index.loaded_manifest = path, manifest
        index.documents = {d.doc_id: d for d in docs}
        for r in rows:
            doc = index.documents[r["doc_id"]]
            text = doc.content[r["start"] : r["end"]]
            chunk = Chunk(r["chunk_id"], r["doc_id"], text, r["start"], r["end"], r["index"])
            index.chunks[chunk.chunk_id] = chunk
            index.doc_chunks.setdefault(chunk.doc_id, []).append(chunk.chunk_id)
        index._chunk_to_doc = None
        ids = [r["chunk_id"] for r in rows]
        index.bm25.add(ids, [index.chunks[i].text for i in ids])
        if index.dense is not None:
            index.dense.add(ids, vecs)
        return index
