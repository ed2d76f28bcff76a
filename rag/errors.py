"""Exceptions raised by the RAG system.

Every error derives from :class:`RagError`, so callers can catch one type. Each carries the context
needed to fix the problem (the path, the expected and found values) in its attributes and message.

    RagError
    ├── ConfigError              a parameter is out of range or names an unknown option
    ├── DocumentError            a document is malformed (empty id, duplicate id, not text)
    ├── IndexError_              base of the on-disk index problems below
    │   ├── IndexNotFoundError   no index at the given path
    │   ├── IndexVersionError    the index was written by another format version
    │   ├── IndexCorruptError    a file is missing, truncated or fails its checksum
    │   ├── IndexMismatchError   the index was built with another model / chunker than requested
    │   ├── IndexOverwriteError  saving would replace something that is not an index
    │   └── IndexWriteError      the folder to save into cannot be created or written
    ├── RerankerError            the trained reranker file is missing, unreadable or cannot be
    │                            written, or the index it trained on was replaced before it
    │                            could be saved
    └── GenerationError          the LLM call failed or returned nothing usable

``IndexError_`` has a trailing underscore so it does not shadow the builtin ``IndexError``.
"""

from __future__ import annotations

from pathlib import Path


class RagError(Exception):
    """Root of every exception this package raises."""


class ConfigError(RagError, ValueError):
    """A parameter is invalid; the message names the parameter and the valid range."""


class DocumentError(RagError, ValueError):
    """A document cannot be indexed as given."""

    def __init__(self, message: str, *, doc_id: str | None = None) -> None:
        super().__init__(message)
        self.doc_id = doc_id


class IndexError_(RagError):
    """Base for problems with an on-disk index; carries the index ``path``."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class IndexNotFoundError(IndexError_):
    """There is no index (no manifest) at the path."""


class IndexVersionError(IndexError_):
    """The index format version differs from the one this code reads."""

    def __init__(self, message: str, *, path: Path | str, found: object, expected: object) -> None:
        super().__init__(message, path=path)
        self.found = found
        self.expected = expected


class IndexCorruptError(IndexError_):
    """A file of the index is missing, truncated, or does not match its recorded checksum."""


class IndexMismatchError(IndexError_):
    """The index was built with a different embedding model or chunker than the one in use."""


class IndexOverwriteError(IndexError_):
    """The save target exists and is neither an empty folder nor an index this package wrote;
    saving replaces the whole folder, so it would delete whatever is there."""


class IndexWriteError(IndexError_):
    """The folder that would hold the index cannot be created or written: a part of the path is
    a file, permission is denied, the file system is read-only. Found before the embedding, not
    at the save after it."""


class RerankerError(RagError):
    """The trained reranker cannot be loaded, used or saved."""


class GenerationError(RagError):
    """The language model call failed or returned an empty answer."""
