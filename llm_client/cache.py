"""A response cache on disk (diskcache), keyed by a canonical form of the request.

**The key** is SHA-256 over canonical JSON (sorted keys, no whitespace) of the endpoint and the
request body *minus nothing that changes the answer*: model, messages, max_tokens, temperature,
every extra parameter, and whether it was streamed (numbers as ``chat_body`` sends them:
``temperature=0`` as ``0.0``, so it shares a key with ``temperature=0.0``). Not in the key: the
API key (two users share answers, and a key never lands on disk) and the base URL (so a local
server on a new port still hits; use separate ``cache_dir``s for servers that differ under the
same model name).

**What is stored** is JSON (never pickle: a cache directory is not trusted code) with a
version, a kind (``chat``, ``stream``, ``embeddings``), the wall time it was stored, and the
server's raw JSON; for streams, the list of chunk objects in order, so a hit *replays the stream
chunk for chunk* (LiteLLM returns a cached stream as one block: BerriAI/litellm#11145).

**What is read** is decided by the database, not by what this module wrote: diskcache's stock
``Disk`` unpickles any row whose ``mode`` column says pickle, and joins a row's ``filename`` to
the folder (``os.path.join(folder, "/home/me/x")`` is ``/home/me/x``). Anyone who could write the
folder (a shared or restored cache, ``/tmp``) could run code on the next lookup, and a row naming
an outside file, once expired, made the next write delete that file (diskcache culls expired rows
on ``set``). The cache therefore opens the folder with ``ConfinedDisk``: it reads raw, binary and
text values only, never a pickle, and a value file only where diskcache puts one (``ab/cd/<28 hex
digits>.val``, resolving inside the folder: no symlink out). Any other row is a miss counted as an
error, and its file is never read or deleted.

**Failure is a miss.** An entry that cannot be read or decoded (truncated file, a foreign value, a
row ``ConfinedDisk`` refuses, a locked or damaged database) is logged, counted as an error, and
treated as a miss; a failed write is logged and ignored. The cache can make calls faster, never
make them fail. Nor may it make them hang: while another process holds SQLite's write lock (a
suspended writer, a long ``clear()``), a write waits at most ``LOCK_TIMEOUT`` seconds, then is
skipped. diskcache's ``retry=True`` would retry forever, after the server has already answered
(and, in the async client, on the event loop). This module checks an entry's envelope and rough
shape; the client then parses the reply inside it (``CallCore.cached_reply``), and one that is no
reply of its kind (``{"foo": 1}`` as a chat completion) is an error and a miss in the same way.
diskcache reads the database as it opens it, so a damaged one (not a database at all, a
malformed page) fails there, before any entry is read. The cache then runs without a store: one
warning says why and what to do (delete the directory to start a new cache), every lookup is a
miss counted as an error, every write is skipped, and ``unusable`` holds the reason. Before, that
open error was a ``ConfigurationError``, and no client could be built on the directory until
someone deleted it. (A database that another process keeps locked *while it opens* is not
covered: diskcache retries its opening statements for a fixed 60 s, then it is a
``ConfigurationError``.)
A ``cache_dir`` that cannot hold a cache at all (a file, an unwritable place, ``""``) or a ``ttl``
that is no finite number of seconds > 0 is different: a configuration mistake, reported once when
the cache is opened (``ConfigurationError``, with ``ClientConfig``'s rules and messages).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, MODE_TEXT

from llm_client.config import _check_cache_dir, _number
from llm_client.errors import ConfigurationError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Seconds SQLite waits for another connection's lock (diskcache's default is 60). An uncontended
# write holds the lock for milliseconds, so a longer wait means a stuck holder: skip the write.
LOCK_TIMEOUT = 1.0
KINDS = frozenset({"chat", "stream", "embeddings"})
# SQLite's names for a damaged database (prefixes: it may name an extended code, such as
# SQLITE_CORRUPT_INDEX). Met at open, the cache runs without a store; any other error there (no
# permission, a parent that is a file, a lock held past diskcache's 60 s) is a ConfigurationError.
DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
REMEDY = "delete the directory to start a new cache"
# The only value file names diskcache's Disk.filename makes: two hex levels, 28 hex digits, .val
# (the separator is os.sep where it was written; both are accepted, a copy may cross systems).
VALUE_FILE = re.compile(r"[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val")


def cache_key(endpoint: str, body: Mapping[str, Any]) -> str:
    """Stable hex key of a request: sha256 of canonical JSON of (endpoint, body)."""
    canonical = json.dumps(
        {"endpoint": endpoint, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RefusedEntry(ValueError):
    """A row ``ConfinedDisk`` will not read. Not an ``OSError`` on purpose: diskcache turns an
    ``OSError`` from ``fetch`` into a silent miss, and this one must be counted and logged."""


class ConfinedDisk(diskcache.Disk):
    """diskcache's ``Disk`` for a folder someone else may have written (see the module docstring).

    ``fetch`` reads raw, binary and text values; a pickle (or any other mode) raises
    ``RefusedEntry``, and so does a value file that is not one of this folder's (``value_path``).
    ``remove`` (diskcache calls it to cull, expire and clear) leaves such a file alone, with a
    log line. ``get`` refuses a pickled key (only iteration reads keys back; ours are str).

    Left open: a writer of the folder who swaps a checked sub-folder for a symlink in the
    microseconds between the check and the open or unlink. Such a race can make a read return
    an outside file's bytes (parsed as a cache entry, not run); a hostile folder is still not a
    safe place to keep a cache.
    """

    def __init__(self, directory: str, min_file_size: int = 0, pickle_protocol: int = 0) -> None:
        # the same parameters as Disk: diskcache passes the folder's disk_* settings by name
        super().__init__(directory, min_file_size, pickle_protocol)
        self._root = os.path.realpath(directory)

    def value_path(self, filename: object) -> str | None:
        """The full path of ``filename`` if it is a value file of this folder, else None."""
        if not isinstance(filename, str) or not VALUE_FILE.fullmatch(filename):
            return None  # absolute, "..", or any name diskcache does not make
        full = os.path.join(self._directory, filename)
        real = os.path.realpath(full)  # follows symlinks: a linked file or sub-folder going out
        return full if os.path.commonpath([real, self._root]) == self._root else None

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_RAW:
            return super().fetch(mode, filename, value, read)
        if mode not in (MODE_BINARY, MODE_TEXT):
            raise RefusedEntry(
                f"the row's value has mode {mode!r}; only raw ({MODE_RAW}), binary "
                f"({MODE_BINARY}) and text ({MODE_TEXT}) values are read, never a pickle"
            )
        if self.value_path(filename) is None:
            raise RefusedEntry(
                f"the row names {filename!r} as its value file; only a file diskcache names "
                "(ab/cd/<28 hex digits>.val) inside the cache folder is read"
            )
        return super().fetch(mode, filename, value, read)

    def remove(self, file_path: str) -> None:
        if self.value_path(file_path) is None:
            logger.warning(
                "a cache row names %r as its value file, not a file of %s; not deleting it",
                file_path,
                self._root,
            )
            return
        super().remove(file_path)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise RefusedEntry("the row's key is a pickle; this cache's keys are str")
        return super().get(key, raw)


class ResponseCache:
    """``get(key, kind)`` / ``set(key, kind, data)`` over a diskcache directory, with a TTL.

    ``clock`` is the wall clock used for the TTL (injected in tests). diskcache is safe across
    threads and processes; hit/miss/error counters are on the ``Stats`` object of the client.
    ``diskcache_settings`` go to ``diskcache.Cache`` (``timeout`` defaults to ``LOCK_TIMEOUT``;
    the ``disk`` is always ``ConfinedDisk``).
    ``ttl`` is a finite number of seconds > 0, or None (never expire). ``unusable`` is None, or
    why the database could not be opened (every lookup is then an error, see the module
    docstring).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
        **diskcache_settings: Any,
    ) -> None:
        # ClientConfig's rules: Path("") is the current directory, and a NaN ttl never expired
        if directory is None:  # ClientConfig's None means no cache; a cache needs a folder
            raise ConfigurationError(
                "ResponseCache needs a directory; for no cache, give the client cache_dir=None"
            )
        _check_cache_dir(directory)
        _number("ttl", ttl, low=0.0, low_open=True, none="never expire")
        self.directory = Path(directory)
        self.ttl = ttl
        self._clock = clock
        self.unusable: str | None = None
        self._store: diskcache.Cache | None = None
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigurationError(
                f"cache_dir {str(directory)!r} is a file, not a directory; pass a directory "
                "path (it is created if missing)"
            )
        diskcache_settings.setdefault("timeout", LOCK_TIMEOUT)
        try:
            self._store = diskcache.Cache(
                str(self.directory), disk=ConfinedDisk, **diskcache_settings
            )
        except (OSError, sqlite3.Error) as exc:
            if not (getattr(exc, "sqlite_errorname", None) or "").startswith(DAMAGED):
                raise ConfigurationError(
                    f"cannot open a cache in cache_dir {str(directory)!r}: {exc}"
                ) from exc
            self.unusable = f"the database is damaged ({exc}); {REMEDY}"
            logger.warning(
                "cannot open the cache in %s (%s); running without it: every lookup is a miss "
                "counted as a cache error",
                self.directory,
                self.unusable,
            )

    def get(self, key: str, kind: str) -> tuple[str, Any]:
        """("hit", data) | ("miss", None) | ("error", None). Never raises for a bad entry."""
        if self._store is None:  # logged once, when it failed to open
            return "error", None
        try:
            raw = self._store.get(key, default=None, retry=False)
        except RefusedEntry as exc:  # a foreign or hostile row: nothing was unpickled or opened
            logger.warning("cache entry %s… refused (%s); treating as a miss", key[:12], exc)
            return "error", None
        except Exception as exc:  # locked or damaged database, I/O error: a miss, not a crash
            logger.warning("cache read failed for %s…: %r; treating as a miss", key[:12], exc)
            return "error", None
        if raw is None:
            return "miss", None
        try:
            entry = json.loads(raw)
            if entry["v"] != FORMAT_VERSION or entry["kind"] != kind:
                raise ValueError(f"entry is version {entry['v']} kind {entry['kind']!r}")
            stored_at, data = float(entry["stored_at"]), entry["data"]
            _check_shape(kind, data)
        except Exception as exc:
            logger.warning("cache entry %s… unreadable (%r); treating as a miss", key[:12], exc)
            return "error", None
        if self.ttl is not None and self._clock() - stored_at > self.ttl:
            logger.debug("cache entry %s… expired", key[:12])
            return "miss", None
        return "hit", data

    def set(self, key: str, kind: str, data: Any) -> bool:
        """Store ``data`` (JSON-serialisable) under ``key``; False (and a log line) if it failed."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        if self._store is None:
            return False
        entry = {"v": FORMAT_VERSION, "kind": kind, "stored_at": self._clock(), "data": data}
        try:
            # retry=False: a lock held past the timeout raises diskcache.Timeout instead of
            # looping forever; the write is skipped (the caller already has its answer).
            self._store.set(
                key, json.dumps(entry, separators=(",", ":")).encode(), expire=self.ttl, retry=False
            )
        except diskcache.Timeout:
            logger.warning(
                "cache write skipped for %s…: the database stayed locked by another "
                "connection for %.1f s",
                key[:12],
                self._store.timeout,
            )
            return False
        except Exception as exc:
            logger.warning("cache write failed for %s…: %r", key[:12], exc)
            return False
        return True

    def clear(self) -> None:
        if self._store is None:
            raise ConfigurationError(
                f"cannot clear the cache in {str(self.directory)!r}: {self.unusable}"
            )
        self._store.clear()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __len__(self) -> int:
        return 0 if self._store is None else len(self._store)


def _check_shape(kind: str, data: Any) -> None:
    if kind == "stream":
        if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
            raise ValueError("stream entry is not a list of chunk objects")
    elif not isinstance(data, dict):
        raise ValueError(f"{kind} entry is not a JSON object")
