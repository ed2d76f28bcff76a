"""Finishing abandoned streams outside the garbage collector.

A live stream dropped without ``close()`` still holds a rate-limit slot, and its call has no
latency recorded yet: its ``__del__`` must settle both. But the garbage collector runs
``__del__`` wherever an allocation triggers a collection, in any thread, including inside one
of this package's locked sections (the limiter's, the stats', httpx's pool). Those locks are not
re-entrant, so a ``__del__`` that took one could deadlock its own thread.

So ``__del__`` takes no lock. It hands the stream to :func:`abandon`, which puts it on a
:class:`queue.SimpleQueue` (its ``put`` is re-entrant: the standard library made it for
``__del__`` and weakref callbacks), and one daemon thread finishes each stream in turn: frees
its slot, records its latency, closes what it can. The stream is kept alive until then (Python
calls ``__del__`` once, so finishing it does not run it again).

The cost is that the slot comes back a moment after the collection, not during it;
:func:`wait_idle` blocks until every stream abandoned so far is finished.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = ["abandon", "start", "wait_idle"]

_queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()


def start() -> None:
    """Make sure the finishing thread runs. Called when a live stream opens (ordinary code,
    where taking a lock is safe), never from ``__del__``; again after a fork, which keeps no
    threads."""
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="llm-client-abandoned", daemon=True)
            _thread.start()


def _after_fork_in_child() -> None:
    # fork copies a lock held by another thread inside start() as held, and that thread is not
    # in the child to release it: the child gets a fresh one
    global _thread_lock
    _thread_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def abandon(finish: Callable[[], object]) -> None:
    """Queue ``finish`` (a stream's bound close) to run on the finishing thread. Lock-free."""
    _queue.put(finish)


def wait_idle(timeout: float = 10.0) -> bool:
    """Block until every stream abandoned before this call is finished; False on timeout."""
    start()
    done = threading.Event()
    _queue.put(done.set)  # one consumer, first in first out: it runs after all queued before it
    return done.wait(timeout)


def _run() -> None:
    while True:
        finish = _queue.get()
        try:
            finish()
        except Exception:  # one stream's failure must not stop the thread that finishes the rest
            log.warning("finishing an abandoned stream failed", exc_info=True)
        del finish  # the last reference: the stream is freed here
