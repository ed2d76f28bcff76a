"""Documents: what gets indexed, how it is loaded, and how a corpus is fingerprinted.

A :class:`Document` has an id, a title, a text and a version. Its indexable ``content`` is the
title and the text joined by a blank line; chunk character offsets point into ``content``, so a
citation can be traced back to the exact span of the source.

Two sources are supported:

* a BEIR-format folder: :func:`read_beir_corpus` reads its ``corpus.jsonl[.gz]`` alone, since
  indexing needs no queries or qrels, and a registered dataset name (``scifact``) goes through
  the shared loader :func:`evals.datasets.load_beir`, which verifies its checksums;
* a folder of ``.txt`` / ``.md`` files: the path relative to the folder is the id, the first
  markdown heading (or the file name) the title. Only regular files inside the folder are read
  (:func:`documents_from_folder`): a symlink out of it is skipped with a warning, so a link to
  ``~/.aws/credentials`` in a cloned repository is never indexed, shown or sent to a model.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import logging
import os
import stat
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import DocumentError

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
# Where the platform has them: O_NOFOLLOW makes open fail on a symlink, O_NONBLOCK makes opening
# a FIFO return at once (it would block until a writer came); the fstat after it decides.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class Document:
    """One source document. ``version`` grows by one each time the document is replaced."""

    doc_id: str
    text: str
    title: str = ""
    version: int = 1
    metadata: Mapping[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.doc_id, str) or not self.doc_id.strip():
            raise DocumentError(f"doc_id must be a non-empty string, got {self.doc_id!r}")
        if not isinstance(self.text, str) or not isinstance(self.title, str):
            raise DocumentError("title and text must be strings", doc_id=self.doc_id)
        for name in ("doc_id", "title", "text"):
            problem = utf8_problem(getattr(self, name))
            if problem:
                raise DocumentError(
                    f"document {self.doc_id!r}: its {name} holds {problem}", doc_id=self.doc_id
                )
        if not (self.text.strip() or self.title.strip()):
            raise DocumentError(f"document {self.doc_id!r} has no text", doc_id=self.doc_id)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise DocumentError(f"version must be >= 1, got {self.version}", doc_id=self.doc_id)
        try:  # the index stores metadata as JSON: refuse what it could not save
            saved = json.dumps(dict(self.metadata), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise DocumentError(
                f"metadata must be JSON-serialisable: {exc}", doc_id=self.doc_id
            ) from None
        problem = utf8_problem(saved)
        if problem:
            raise DocumentError(
                f"document {self.doc_id!r}: its metadata, as JSON, holds {problem}",
                doc_id=self.doc_id,
            )
        problem = _json_changes("metadata", self.metadata)
        if problem:
            raise DocumentError(problem, doc_id=self.doc_id)

    @property
    def content(self) -> str:
        """Title and text joined by a blank line; chunk offsets index into this string."""
        if self.title and self.text:
            return f"{self.title}\n\n{self.text}"
        return self.title or self.text

    def to_json(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "version": self.version,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, row: Mapping) -> Document:
        return cls(
            doc_id=row["doc_id"],
            text=row["text"],
            title=row.get("title", ""),
            version=int(row.get("version", 1)),
            metadata=row.get("metadata", {}),
        )


def utf8_problem(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8, or None when it can.

    A Python string may hold a lone surrogate (U+D800 to U+DFFF), which no UTF-8 file can:
    ``json.loads`` turns the escape ``"\\ud83d"`` (an emoji that JavaScript cut in half) into
    one, and Python decodes bytes in argv that are not UTF-8 into them (surrogateescape).
    Documents and queries are checked for them at the boundary: they used to pass, then crash
    deep inside (the corpus checksum, the index writer, the tokenizer) naming nothing.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"{text[exc.start]!r} at position {exc.start}, a lone surrogate that UTF-8 cannot "
            "encode (half of an emoji cut by a JSON escape, or bytes that were not UTF-8)"
        )
    return None


def _json_changes(where: str, value: object) -> str | None:
    """What a save and load would change in ``value`` (None: nothing), for the error message.

    ``json.dumps`` accepts two things it does not give back: non-string keys (``{1: "x"}``
    loads as ``{"1": "x"}``) and tuples (they load as lists). Metadata would then differ after
    a reload, silently, so both are refused when the document is made.
    """
    if isinstance(value, tuple):
        return f"{where} is a tuple, which JSON saves as a list; pass a list"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                saved = next(iter(json.loads(json.dumps({key: None}))))
                return (
                    f"{where} has the key {key!r} ({type(key).__name__}), which JSON saves as "
                    f"the string {saved!r}; metadata keys must be strings"
                )
            problem = _json_changes(f"{where}[{key!r}]", item)
            if problem:
                return problem
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _json_changes(f"{where}[{i}]", item)
            if problem:
                return problem
    return None


def documents_from_beir(corpus: Mapping[str, Mapping[str, str]]) -> list[Document]:
    """Turn a BEIR ``corpus`` dict (``{doc_id: {"title", "text"}}``) into documents.

    Documents whose title and text are both empty are skipped: they cannot be retrieved by any
    method and would only add ties.
    """
    docs = []
    for doc_id, row in corpus.items():
        title, text = row.get("title", "") or "", row.get("text", "") or ""
        if title.strip() or text.strip():
            docs.append(Document(doc_id=str(doc_id), title=title, text=text))
    return docs


def read_beir_corpus(folder: str | Path) -> dict[str, dict[str, str]]:
    """The ``corpus`` dict of a BEIR folder (``{doc_id: {"title", "text"}}``), from its
    ``corpus.jsonl`` or ``corpus.jsonl.gz`` alone.

    :func:`evals.datasets.load_beir` also wants ``queries.jsonl`` and ``qrels/test.tsv``, so a
    folder of your own documents (a corpus and nothing else) or a dataset judged only on ``dev``
    could not be indexed. A line that is not a JSON object with an ``_id`` is a
    :class:`DocumentError` naming the file and the line.
    """
    from evals.datasets import beir_corpus_file

    path = beir_corpus_file(Path(folder))
    if path is None:
        raise DocumentError(f"{folder} holds no corpus.jsonl or corpus.jsonl.gz")
    corpus, line_no = {}, 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                    title, text = row.get("title") or "", row.get("text") or ""
                    if not isinstance(title, str) or not isinstance(text, str):
                        raise TypeError("title and text must be strings")
                    corpus[str(row["_id"])] = {"title": title, "text": text}
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise DocumentError(
                        f"{path}, line {line_no}, is not a BEIR corpus record "
                        f'({{"_id": ..., "title": ..., "text": ...}}): {type(exc).__name__}: {exc}'
                    ) from exc
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DocumentError(
            f"{path} cannot be read (damaged or cut short after line {line_no}): {exc}"
        ) from exc
    return corpus


def _markdown_title(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            return ""
    return ""


def documents_from_folder(folder: str | Path) -> list[Document]:
    """Load every ``.txt``/``.md``/``.markdown`` file under ``folder`` (recursively, sorted by
    path), each file once.

    Only regular files inside the folder are read; the name alone decides nothing:

    * a symlink whose target resolves outside the folder is skipped with a warning (a link to
      ``../secret.env`` was indexed, then shown by ``search`` and sent to the model by ``ask``);
    * a symlink to a file inside the folder is skipped when that file has a text suffix of its
      own, since it is read under its own path (one document, not two copies competing for the
      top k); otherwise (``notes.md -> notes.rst``) the target is read under the link's path;
    * a directory (a Hugo page bundle ``guide.md/``) or a special file (a named pipe, a device)
      with a text suffix is skipped, logged at DEBUG (a pipe blocked the load forever, a
      directory ended it in an ``IsADirectoryError`` traceback).

    The check that decides is made on the opened file (``fstat``, opened without following a
    symlink), so a file swapped for a link or a pipe after the listing is refused, not read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DocumentError(f"{root} is not a folder of .txt/.md files")
    real_root = root.resolve()
    docs = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES):
        text = _read_regular_file(path, real_root)
        if text is None or not text.strip():
            continue
        title = _markdown_title(text) or path.stem
        docs.append(Document(doc_id=path.relative_to(root).as_posix(), title=title, text=text))
    if not docs:
        raise DocumentError(f"no non-empty {'/'.join(TEXT_SUFFIXES)} files under {root}")
    return docs


def _read_regular_file(path: Path, real_root: Path) -> str | None:
    """The text of ``path`` if it is a regular file inside ``real_root`` (see
    :func:`documents_from_folder`), else None with the reason logged."""
    # realpath, unlike Path.resolve, does not raise on a symlink loop (open refuses it below);
    # checked for every path, so a folder linked in from outside is left out too
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(real_root):
        log.warning("skipping %s: it resolves to %s, outside %s", path, target, real_root)
        return None
    if path.is_symlink() and target.suffix.lower() in TEXT_SUFFIXES and target.is_file():
        log.debug("skipping %s: a symlink to %s, read under its own path", path, target)
        return None
    try:
        fd = os.open(target, _OPEN_FLAGS)  # no link followed: one swapped in is refused
    except FileNotFoundError:  # a dangling link, or removed since the listing
        log.warning("skipping %s: it no longer exists", path)
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link: a loop, or one swapped in
            log.warning("skipping %s: a symlink loop, or made a symlink since the check", path)
            return None
        if path.is_dir():  # Windows refuses to open a directory
            log.debug("skipping %s: a directory", path)
            return None
        raise DocumentError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a pipe, a device)"
        log.debug("skipping %s: %s", path, kind)
        return None
    with os.fdopen(fd, encoding="utf-8") as f:  # text mode, as read_text: \r\n reads as \n
        try:
            return f.read()
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{path} is not UTF-8 text: {exc}") from exc


def is_beir_folder(path: str | Path) -> bool:
    p = Path(path)
    return (p / "corpus.jsonl").exists() or (p / "corpus.jsonl.gz").exists()


def corpus_checksum(documents: Iterable[Document]) -> str:
    """SHA-256 over (id, version, title, text) of every document, in id order.

    It names the corpus a benchmark record ran on. The embedding cache is keyed by the chunk
    texts instead (:func:`rag.embedding_cache.texts_checksum`), which also change with the chunker.
    """
    h = hashlib.sha256()
    for doc in sorted(documents, key=lambda d: d.doc_id):
        row = [doc.doc_id, doc.version, doc.title, doc.text]
        h.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def check_unique(documents: Iterable[Document]) -> None:
    """Raise :class:`DocumentError` naming the first duplicated id."""
    seen: set[str] = set()
    for doc in documents:
        if doc.doc_id in seen:
            raise DocumentError(f"duplicate doc_id {doc.doc_id!r}", doc_id=doc.doc_id)
        seen.add(doc.doc_id)
