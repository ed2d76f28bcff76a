"""The hybrid index: documents, their chunks, a BM25 index and a dense index, kept consistent.

Both retrieval indexes hold the same chunk ids. Every change goes through :meth:`HybridIndex.upsert`
or :meth:`HybridIndex.delete`, which touch the document table, the chunk table and *both* indexes
before returning, so a deleted or replaced version can never be retrieved again (tests check this
by searching for text that only the old version contained).

On disk an index is a folder::

    manifest.json    format name and version, model, chunker, BM25 settings, counts, sha256 per file
    documents.jsonl  one Document per line (id, title, text, version, metadata)
    chunks.jsonl     one chunk per line (chunk id, doc id, character span); text comes from the doc
    vectors.npy      float32 (n_chunks, dim), row i = chunk i of chunks.jsonl

:meth:`HybridIndex.load` checks the format version, every file's checksum and the row counts and
raises :class:`~rag.errors.IndexVersionError`, :class:`~rag.errors.IndexCorruptError` or
:class:`~rag.errors.IndexMismatchError` rather than serving wrong results. BM25 is not stored: it
is rebuilt from the chunk text (a few seconds for SciFact), so it can never disagree with it.
Saving writes a new folder next to the old one and swaps it in, so a crash mid-save keeps the old
index intact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.bm25 import BM25Index, Tokenizer
from rag.chunking import Chunk, Chunker, HFTokenSpans, TokenSpans, make_chunker
from rag.config import RagConfig
from rag.dense import DenseIndex, Embedder, EmbeddingCache
from rag.documents import Document, check_unique, corpus_checksum
from rag.errors import (
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexVersionError,
)

log = logging.getLogger(__name__)

FORMAT = "rag-index"
FORMAT_VERSION = 1
FILES = ("documents.jsonl", "chunks.jsonl", "vectors.npy")


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


def build_bm25(config: RagConfig) -> BM25Index:
    return BM25Index(Tokenizer(), k1=config.bm25_k1, b=config.bm25_b, method=config.bm25_method)


class HybridIndex:
    """Documents + chunks + BM25 + FAISS, updated together."""

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
        self.documents: dict[str, Document] = {}
        self.chunks: dict[str, Chunk] = {}
        self.doc_chunks: dict[str, list[str]] = {}
        self._chunk_to_doc: dict[str, str] | None = None  # see chunk_to_doc; None = stale
        self.bm25 = build_bm25(self.config)
        self.dense: DenseIndex | None = None if dim is None else self._new_dense(dim)

    def _new_dense(self, dim: int) -> DenseIndex:
        c = self.config
        return DenseIndex(dim, c.dense_index, hnsw_m=c.hnsw_m, ef_search=c.hnsw_ef_search)

    @property
    def chunk_to_doc(self) -> dict[str, str]:
        """Chunk id -> document id. Built once after each change (every query asks for it twice,
        and rebuilding it for 5,183 chunks took ~0.9 ms, a tenth of a hybrid query)."""
        if self._chunk_to_doc is None:
            self._chunk_to_doc = {cid: c.doc_id for cid, c in self.chunks.items()}
        return self._chunk_to_doc

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
        """
        docs = list(docs)
        check_unique(docs)
        replaced = [d.doc_id for d in docs if d.doc_id in self.documents]
        versioned = []
        for d in docs:
            old = self.documents.get(d.doc_id)
            if old is not None and d.version <= old.version:
                d = Document(d.doc_id, d.text, d.title, old.version + 1, d.metadata)
            versioned.append(d)
        new_chunks = [c for d in versioned for c in self.chunker.chunk(d)]
        texts = [c.text for c in new_chunks]
        if cache is not None:
            key = EmbeddingCache.key(
                self.embedder.model_id, self.chunker.name, corpus_checksum(versioned)
            )
            vecs = cache.get_or_compute(key, texts, self.embedder, progress=progress)
        else:
            vecs = self.embedder.encode(texts, progress=progress)
        removed = self._drop(replaced)
        for d in versioned:
            self.documents[d.doc_id] = d
            self.doc_chunks[d.doc_id] = []
        for c in new_chunks:
            self.chunks[c.chunk_id] = c
            self.doc_chunks[c.doc_id].append(c.chunk_id)
        self._chunk_to_doc = None
        ids = [c.chunk_id for c in new_chunks]
        self.bm25.add(ids, texts)
        if self.dense is None:
            self.dense = self._new_dense(vecs.shape[1])
        self.dense.add(ids, vecs)
        added = [d.doc_id for d in versioned if d.doc_id not in replaced]
        return UpdateReport(added, replaced, [], len(new_chunks), removed)

    def _drop(self, doc_ids: Iterable[str]) -> int:
        chunk_ids = [cid for d in doc_ids for cid in self.doc_chunks.pop(d, [])]
        for d in doc_ids:
            self.documents.pop(d, None)
        for cid in chunk_ids:
            del self.chunks[cid]
        self._chunk_to_doc = None
        self.bm25.remove(chunk_ids)
        if self.dense is not None:
            self.dense.remove(chunk_ids)
        return len(chunk_ids)

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
        """Write the index folder (atomically replacing an existing one)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            self._write(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing behind
            raise
        old = path.with_name(path.name + ".old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
        return path

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
        manifest = self.manifest() | {"files": {n: _sha256(tmp / n) for n in FILES}}
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
        path = Path(path)
        manifest = read_manifest(path)
        if manifest["model"] != embedder.model_id:
            raise IndexMismatchError(
                f"index at {path} was built with model {manifest['model']!r}, but the embedder is "
                f"{embedder.model_id!r}; query vectors would not be comparable. Use the same "
                "model or rebuild the index.",
                path=path,
            )
        for name in FILES:
            expected = manifest.get("files", {}).get(name)
            if not (path / name).exists():
                raise IndexCorruptError(f"{path / name} is missing", path=path)
            actual = _sha256(path / name)
            if actual != expected:
                raise IndexCorruptError(
                    f"{path / name} fails its checksum (expected {expected}, found {actual}); "
                    "the file was modified or truncated. Rebuild with `python -m rag index`.",
                    path=path,
                )
        config = (config or RagConfig()).replace(model=manifest["model"], **manifest["config"])
        chunker = build_chunker(config, tokens)
        if chunker.name != manifest["chunker"]:
            raise IndexMismatchError(
                f"chunker {chunker.name!r} != index's {manifest['chunker']!r}", path=path
            )
        docs = [
            Document.from_json(json.loads(line))
            for line in (path / "documents.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        rows = [
            json.loads(line)
            for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        vecs = np.load(path / "vectors.npy")
        if len(rows) != manifest["n_chunks"] or vecs.shape[0] != len(rows):
            raise IndexCorruptError(
                f"{path}: {len(rows)} chunks, {vecs.shape[0]} vectors, "
                f"manifest says {manifest['n_chunks']}",
                path=path,
            )
        index = cls(embedder, chunker, config, dim=manifest["dim"] or vecs.shape[1])
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
        index.dense.add(ids, vecs)
        return index


def read_manifest(path: Path) -> dict:
    """Parse and check ``manifest.json`` (format name and version)."""
    mpath = path / "manifest.json"
    if not mpath.exists():
        raise IndexNotFoundError(
            f"no index at {path} (missing manifest.json); build one with "
            "`python -m rag index PATH`",
            path=path,
        )
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise IndexCorruptError(f"{mpath} is not valid JSON: {exc}", path=path) from exc
    if manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{mpath} is not a {FORMAT} manifest", path=path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexVersionError(
            f"index at {path} has format version {manifest.get('format_version')}, this code "
            f"reads version {FORMAT_VERSION}; rebuild it with `python -m rag index`.",
            path=path,
            found=manifest.get("format_version"),
            expected=FORMAT_VERSION,
        )
    return manifest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
