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

Saving writes the new folder at ``PATH.tmp``, then swaps it in with two renames
(``PATH`` -> ``PATH.old``, ``PATH.tmp`` -> ``PATH``), so a crash while writing keeps the old index
intact. If the second rename fails the first is undone; if the process dies between the two,
load reads ``PATH.old`` in place (readers never rename, so a reader cannot break a writer's
swap) and the next save renames it back. A symlinked ``PATH`` keeps its link: the folder it
points at is swapped. The swap replaces the whole folder, so
:meth:`HybridIndex.save` refuses a ``PATH`` that is neither empty nor an index
(:class:`~rag.errors.IndexOverwriteError`) instead of deleting what is in it, and a ``PATH`` whose
folder cannot be written (:class:`~rag.errors.IndexWriteError`) before it writes anything.

One writer at a time, enforced: every write to an index takes its writer lock (:func:`writer_lock`,
an ``flock`` on the empty file ``PATH.lock`` beside the folder), so two processes saving to the
same path run one after the other instead of deleting each other's ``PATH.tmp``. Readers take no
lock and may run beside the writer: load checks each file on the bytes it parses, and reads again
when the folder was swapped under it (:func:`_read_one_version`), so it returns one version,
never a mix.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from evals.files import exclusive_lock, writable_folder
from rag.bm25 import BM25Index, Tokenizer
from rag.chunking import Chunk, Chunker, HFTokenSpans, TokenSpans, make_chunker
from rag.config import RagConfig
from rag.dense import DenseIndex, Embedder, same_model
from rag.documents import Document, check_unique
from rag.embedding_cache import EmbeddingCache, texts_checksum
from rag.errors import (
    ConfigError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexOverwriteError,
    IndexVersionError,
    IndexWriteError,
)

log = logging.getLogger(__name__)

FORMAT = "rag-index"
FORMAT_VERSION = 1
FILES = ("documents.jsonl", "chunks.jsonl", "vectors.npy")
MANIFEST_KEYS = ("model", "chunker", "config", "n_documents", "n_chunks", "dim", "files")


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
        # +1 on every upsert and delete: whatever is cached from the index's contents (the
        # chunk -> document map here, a retriever's title terms) is stale once it moves on
        self.generation = 0
        self.bm25 = build_bm25(self.config)
        self.dense: DenseIndex | None = None if dim is None else self._new_dense(dim)
        # Set by load(): the folder it read (``path``, or ``path.old`` while a save is interrupted,
        # see index_folder) and the manifest found there. A file kept beside the index (the CLI's
        # reranker.json) is written to that folder, not looked up again by name, and the manifest
        # tells whether a save has swapped another version in since. None if built in memory.
        self.loaded_from: Path | None = None
        self.loaded_manifest: dict | None = None

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
            # keyed by the exact texts embedded: a chunker that cuts elsewhere under the same
            # name (a new TokenSpans, session 32's word-boundary windows) can never be served
            # the vectors of the old chunks
            key = EmbeddingCache.key(
                self.embedder.model_id, self.chunker.name, texts_checksum(texts)
            )
            dim = None if self.dense is None else self.dense.dim  # a cached entry must fit
            vecs = cache.get_or_compute(key, texts, self.embedder, dim=dim, progress=progress)
        else:
            vecs = self.embedder.encode(texts, progress=progress)
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
        """Write the index folder at ``path``, replacing an index already there.

        ``path`` must not exist, be an empty folder, or hold an index this package wrote
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
        save holds the index's writer lock (:func:`writer_lock`): a second save to the same path
        waits for this one to finish.
        """
        folder = save_folder(path)
        check_save_target(folder)  # an unwritable folder: a clear error, not the lock's OSError
        with writer_lock(folder):
            self._swap_in(folder)
        return Path(path)

    def _swap_in(self, folder: Path) -> None:
        """The body of :meth:`save`, run under the writer lock."""
        recover_interrupted_save(folder)
        check_save_target(folder)
        tmp, old = _sibling(folder, "tmp"), _sibling(folder, "old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            self._write(tmp)
            _carry_over(folder, tmp, self.manifest())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing behind
            raise
        try:
            if folder.exists():
                shutil.rmtree(old, ignore_errors=True)  # a cut-short clean-up left it
                folder.rename(old)
            tmp.rename(folder)
        except BaseException:
            if old.exists() and not folder.exists():
                old.rename(folder)  # put the previous index back
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        if old.exists():
            log.warning(
                "saved the index to %s but could not delete the previous one at %s; "
                "delete that folder by hand",
                folder,
                old,
            )

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
        path, manifest, data = _read_one_version(path)
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
        docs = _jsonl(path, "documents.jsonl", data, Document.from_json)
        rows = _jsonl(path, "chunks.jsonl", data, _chunk_row)
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


LOAD_ATTEMPTS = 3
"""How often :meth:`HybridIndex.load` reads an index that another process swapped meanwhile."""


def _read_one_version(path: str | Path) -> tuple[Path, dict, dict[str, bytes]]:
    """The folder, manifest and checked file contents of one saved version of the index.

    A save in another process swaps a new folder in while a reader goes through the files
    (module docstring), so the manifest of one version can meet the files of the next (a false
    "fails its checksum"), or a file can vanish with the folder it was in. So each file is read
    once and checked on the bytes that load then parses: what load returns is always one version.
    A read that fails while the folder changed under it (:func:`_version`) is tried again; one
    that fails on an unchanged folder is a damaged index, and its error says so.
    """
    for _ in range(LOAD_ATTEMPTS):
        folder = index_folder(path)
        before = _version(folder)
        try:
            manifest = read_manifest(folder)
            return folder, manifest, {name: _read_checked(folder, name, manifest) for name in FILES}
        except (IndexCorruptError, IndexNotFoundError) as exc:
            if _version(folder) == before:
                raise
            log.info("the index at %s changed while it was read (%s); reading it again", path, exc)
    raise IndexCorruptError(
        f"the index at {path} changed while it was read, {LOAD_ATTEMPTS} times in a row: "
        "another process keeps saving to it. Load it again once that save has finished.",
        path=Path(path),
    )


T = TypeVar("T")
CHUNK_KEYS = ("chunk_id", "doc_id", "start", "end", "index")


def _chunk_row(row: dict) -> dict:
    """A row of ``chunks.jsonl``, checked to hold every key load reads."""
    missing = [key for key in CHUNK_KEYS if key not in row]
    if missing:
        raise KeyError(missing[0])
    return row


def _jsonl(folder: Path, name: str, data: dict[str, bytes], parse: Callable[[dict], T]) -> list[T]:
    """The rows of index file ``name`` (its checked bytes in ``data``), each through ``parse``.

    Lines are split on ``"\\n"`` alone, the only line end :meth:`HybridIndex.save` writes.
    ``str.splitlines`` also splits on U+2028, U+2029 and U+0085, which ``json.dumps(...,
    ensure_ascii=False)`` leaves raw inside a string: a document holding one (text copied from
    a web page or a PDF) was cut in two, and the index it was saved in never loaded again.
    A row that does not parse is an :class:`~rag.errors.IndexCorruptError` naming the file.
    """
    where = folder / name
    try:
        lines = data[name].decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise IndexCorruptError(f"{where} is not UTF-8 text: {exc}", path=folder) from exc
    rows = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:  # not JSON, a bad Document, a missing key
            raise IndexCorruptError(
                f"{where}, line {line_no}, cannot be read ({type(exc).__name__}: {exc}); "
                "rebuild the index with `python -m rag index`.",
                path=folder,
            ) from exc
    return rows


def _version(folder: Path) -> tuple | None:
    """What tells one saved version of an index folder from the next, None if there is none.

    A save renames a new folder into place (a new inode and change time) with a new manifest.
    """
    try:
        stat = folder.stat()
        return stat.st_dev, stat.st_ino, stat.st_ctime_ns, (folder / "manifest.json").read_bytes()
    except OSError:
        return None


def _read_checked(folder: Path, name: str, manifest: dict) -> bytes:
    """The bytes of index file ``name``, checked against the manifest's sha256 for it."""
    try:
        data = (folder / name).read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{folder / name} is missing", path=folder) from None
    expected, actual = manifest["files"].get(name), hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise IndexCorruptError(
            f"{folder / name} fails its checksum (expected {expected}, found {actual}); "
            "the file was modified or truncated. Rebuild with `python -m rag index`.",
            path=folder,
        )
    return data


def read_manifest(path: Path) -> dict:
    """Parse and check ``manifest.json`` (format name and version)."""
    mpath = path / "manifest.json"
    try:
        text = mpath.read_text()
    except (FileNotFoundError, NotADirectoryError):
        raise IndexNotFoundError(
            f"no index at {path} (missing manifest.json); build one with "
            "`python -m rag index PATH`",
            path=path,
        ) from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexCorruptError(f"{mpath} is not valid JSON: {exc}", path=path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{mpath} is not a {FORMAT} manifest", path=path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexVersionError(
            f"index at {path} has format version {manifest.get('format_version')}, this code "
            f"reads version {FORMAT_VERSION}; rebuild it with `python -m rag index`.",
            path=path,
            found=manifest.get("format_version"),
            expected=FORMAT_VERSION,
        )
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise IndexCorruptError(
            f"{mpath} lacks {', '.join(map(repr, missing))} (a {FORMAT} manifest has "
            f"{', '.join(MANIFEST_KEYS)}); rebuild the index with `python -m rag index`.",
            path=path,
        )
    return manifest


def _sibling(path: Path, suffix: str) -> Path:
    """``path.tmp``, ``path.old`` or ``path.lock``: the names :meth:`HybridIndex.save` uses."""
    return path.with_name(f"{path.name}.{suffix}")


def save_folder(path: str | Path) -> Path:
    """The folder a save to ``path`` swaps, as an absolute path: the target of a symlinked
    ``path``, else ``path``.

    The link's target, not the link: renaming the link itself would turn it into a plain folder
    and strand the target. Absolute, with ``.`` and ``..`` resolved, because the names beside
    it (``PATH.tmp``, ``PATH.old``, ``PATH.lock``) are made from its last part: ``Path(".")``
    has none (``--index .`` embedded or trained for minutes, then crashed with a ValueError)
    and ``idx/..`` would name ``idx/...tmp``.
    """
    return Path(path).resolve()


@contextmanager
def writer_lock(path: str | Path) -> Iterator[None]:
    """Hold the writer lock of the index at ``path``, waiting while another writer holds it.

    Every write to an index takes it: :meth:`HybridIndex.save` for its whole swap, and the CLI's
    ``train-reranker`` from its check that the index is still the version it trained on until
    its ``reranker.json`` is written. Without it two saves to one path delete each other's
    ``PATH.tmp`` midway, and a save could swap a new version in between that check and that
    write. The lock is :func:`evals.files.exclusive_lock` on ``PATH.lock``, an empty file left
    beside the folder: re-entrant within a thread and one lock however the path is spelt, so a
    read-modify-write can hold it from load to save::

        with writer_lock(path):
            index = HybridIndex.load(path, embedder)
            index.upsert(new_documents)
            index.save(path)

    POSIX only: on Windows no lock is taken, and one writer at a time is the caller's rule.
    """
    folder = save_folder(path)
    with exclusive_lock(_sibling(folder, "lock"), f"another process writing the index at {folder}"):
        yield


def _is_index(path: Path) -> bool:
    """Does ``path`` hold a manifest this package wrote (any format version)?"""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def check_save_target(path: str | Path) -> None:
    """Raise :class:`~rag.errors.IndexOverwriteError` unless saving to ``path`` is safe, and
    :class:`~rag.errors.IndexWriteError` unless it is possible.

    Safe: nothing is there, an empty folder, or an index this package wrote. Anything else
    (a file, a folder of notes) would be deleted by the save, which replaces the whole folder.
    Possible: the folder that holds ``path``, where the save writes ``PATH.tmp``, ``PATH.old``
    and ``PATH.lock``, can be created (it is, as the save would) and written, proven with a probe
    file: permission bits answer wrongly for root and on read-only mounts. Cheap, so the CLI calls
    it before minutes of embedding, which a save that fails afterwards would throw away.
    """
    path = Path(path)
    parent = save_folder(path).parent
    try:
        writable_folder(parent)
    except OSError as exc:
        is_file = isinstance(exc, (FileExistsError, NotADirectoryError))
        raise IndexWriteError(
            f"cannot save the index to {path}: its folder {parent} cannot be "
            f"{'created (a part of that path is a file)' if is_file else 'written'}: "
            f"{exc.strerror or exc}; pass a path in a folder that can be written",
            path=path,
        ) from exc
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise IndexOverwriteError(
            f"cannot save the index to {path}: it is a file, and saving would replace it; "
            "pass a folder that does not exist yet, an empty one, or an existing index",
            path=path,
        )
    if _is_index(path):
        return
    entries = sorted(p.name for p in path.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise IndexOverwriteError(
            f"cannot save the index to {path}: the folder is not empty ({shown}) and holds no "
            f"index (no {FORMAT} manifest.json); saving replaces the whole folder and would "
            "delete those files. Pass a folder that does not exist yet, an empty one, or an "
            "existing index.",
            path=path,
        )


def _interrupted(path: Path) -> bool:
    """Did a save to ``path`` die between its two renames?

    Such a save leaves no folder at ``path``, the previous index at ``path.old`` and a complete
    new one at ``path.tmp``. A ``path.old`` alone is not one: a finished save whose clean-up of
    ``path.old`` stopped part way, followed by the user deleting ``path``, leaves just that.
    """
    return (
        not path.exists()
        and not path.is_symlink()
        and _is_index(_sibling(path, "old"))
        and _is_index(_sibling(path, "tmp"))
    )


def index_folder(path: str | Path) -> Path:
    """The folder to read the index at ``path`` from, without changing anything on disk.

    That is ``path`` (or the folder a symlink there points at), except while a save is
    interrupted (see :func:`recover_interrupted_save`): then it is ``path.old``, the previous
    index, read in place. Readers never rename: one running between a writer's two renames
    would make the writer's second rename fail. The next :meth:`HybridIndex.save` tidies up.
    """
    folder = save_folder(path)  # absolute: `.` and `..` have no name to put `.old` after
    if _interrupted(folder):
        log.warning(
            "an earlier save to %s was interrupted; reading the previous index at %s "
            "(the next save puts it back in place)",
            folder,
            _sibling(folder, "old"),
        )
        return _sibling(folder, "old")
    return folder


def recover_interrupted_save(path: str | Path) -> bool:
    """Undo a save that died between its two renames; returns whether there was one to undo.

    The previous index, at ``path.old``, is the one a failed save promises to keep, so it is
    renamed back (the next save cleans ``path.tmp`` up). Only :meth:`HybridIndex.save` calls
    this: readers use :func:`index_folder`, which reads ``path.old`` in place.
    """
    path = save_folder(path)
    old = _sibling(path, "old")
    if not _interrupted(path):
        return False
    try:
        old.rename(path)
    except OSError as exc:
        log.warning("found an interrupted save at %s but cannot rename %s back: %s", path, old, exc)
        return False
    log.warning("an earlier save to %s was interrupted; restored the previous index", path)
    return True


MODEL_BOUND_FILES = ("reranker.json",)
"""Files kept beside an index that hold scores of its embedding model over its chunks."""


def _carry_over(old: Path, new: Path, manifest: dict) -> list[str]:
    """Copy the files of index folder ``old`` that an index does not write into ``new``.

    These are files other code keeps beside the index, such as the CLI's ``reranker.json``.
    The reranker is kept on purpose: its features are relative to each query's candidates and
    name no document, and its abstention threshold is a dense-cosine level, so it stays valid
    when documents are added, replaced or deleted (retrain after the corpus changes a lot).
    Dropping it would silently switch the CLI back to unreranked search with no abstention.
    It is not kept when the new index (``manifest``) uses another embedding model or chunker:
    then those cosines are another model's, and the threshold would abstain at random.
    """
    if not _is_index(old):
        return []
    previous = json.loads((old / "manifest.json").read_text())
    same = (
        same_model(str(previous.get("model")), manifest["model"])
        and previous.get("chunker") == manifest["chunker"]
    )
    kept = []
    for item in sorted(old.iterdir()):
        if item.name in (*FILES, "manifest.json"):
            continue
        if item.name in MODEL_BOUND_FILES and not same:
            log.warning(
                "not keeping %s from the previous index at %s: it was trained for model %r "
                "with chunker %r, and the new index uses %r with %r; retrain it",
                item.name,
                old,
                previous.get("model"),
                previous.get("chunker"),
                manifest["model"],
                manifest["chunker"],
            )
            continue
        if item.is_dir():
            shutil.copytree(item, new / item.name, symlinks=True)
        else:
            shutil.copy2(item, new / item.name, follow_symlinks=False)
        kept.append(item.name)
    if kept:
        log.info("kept %s from the previous index at %s", ", ".join(kept), old)
    return kept


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
