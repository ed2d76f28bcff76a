"""A readers-writer lock: many threads search one index at once, or one thread changes it.

A :class:`~rag.index.HybridIndex` is several structures that must agree (documents, chunks, the
BM25 counts and weights, the dense ids and vectors). A change touches all of them, one after
the other; a search reads several of them. Without a lock a search that runs during an upsert
reads a half-made change (a chunk id whose document is not yet listed, a row past the end of
the vectors), and two upserts at once interleave their read-modify-writes and corrupt the index
for good. One plain lock would fix both but run searches one at a time, so the index owns an
:class:`RWLock` (the classic construction, Courtois, Heymans & Parnas 1971, "Concurrent Control
with Readers and Writers", in its writer-preference form), shared with its BM25 and dense
parts:

* **read** (searches, features, ``chunk_to_doc``, ``save``): shared; any number of threads.
* **write** (``upsert``, ``delete``, BM25/dense ``add``/``remove``): exclusive; waits for the
  readers inside to leave.
* **Writer preference.** Once a writer waits, new readers wait behind it, so a steady stream of
  searches cannot starve an upsert (readers inside finish first). The price: a stream of writers
  can delay searches, which suits an index that is searched far more than it is changed.
* **Re-entrant.** A thread holding the read lock may take it again (a search that calls another
  search), even while a writer waits: making it wait would deadlock, as the writer waits for
  it. A thread holding the write lock may take either lock again (``upsert`` calls ``_drop``,
  which calls BM25's ``remove``).
* **No upgrade.** A thread holding only the read lock that asks for the write lock gets a
  ``RuntimeError`` at once: two such threads would each wait for the other forever.

This lock is for threads of one process sharing one index object in memory.
:func:`rag.store.writer_lock` is another lock: a file lock that keeps two processes (or two
index objects) from saving to one folder at once. Take that one first and this one inside it
(``save`` does), never the other way round.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class RWLock:
    """Many readers or one writer, writer preference, re-entrant (rules in the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0  # threads holding the read lock (a nested read is not counted)
        # the thread id holding the write lock; only that thread sets it to its own id, so a
        # thread may compare it with its own id without holding the condition
        self._writer: int | None = None
        self._writers_waiting = 0
        self._mine = threading.local()  # .reads: this thread's read depth

    @contextmanager
    def read(self) -> Iterator[None]:
        depth = getattr(self._mine, "reads", 0)
        # a read inside this thread's own read or write hold takes nothing: that hold already
        # keeps writers out (and waiting for a writer that waits for this thread would deadlock)
        outer = depth == 0 and self._writer != threading.get_ident()
        if outer:
            with self._cond:
                self._cond.wait_for(lambda: self._writer is None and not self._writers_waiting)
                self._readers += 1
        self._mine.reads = depth + 1
        try:
            yield
        finally:
            self._mine.reads = depth
            if outer:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me:
            yield
            return
        if getattr(self._mine, "reads", 0):
            raise RuntimeError(
                "this thread holds the index's read lock and asked for its write lock; an "
                "upgrade could deadlock: leave the `with index.lock.read():` block first"
            )
        with self._cond:
            self._writers_waiting += 1
            try:
                self._cond.wait_for(lambda: self._writer is None and self._readers == 0)
            finally:
                self._writers_waiting -= 1
                self._cond.notify_all()  # readers waiting only behind this writer (if it gave up)
            self._writer = me
        try:
            yield
        finally:
            with self._cond:
                self._writer = None
                self._cond.notify_all()


def reads(method: F) -> F:
    """Run ``method`` holding the read side of ``self.lock``."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.lock.read():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


def writes(method: F) -> F:
    """Run ``method`` holding the write side of ``self.lock``."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.lock.write():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]
