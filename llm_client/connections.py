"""``LoopConnections``: one ``httpx.AsyncClient`` per event loop, for ``AsyncClient``.

Why per loop? httpx's async connection pool (httpcore) belongs to the loop that opened it: a
pooled keep-alive connection is that loop's socket transport, and a request waiting for a
connection waits on that loop's future. ``AsyncClient`` used to share one pool between every
loop that called it, which the README says is supported ("a client used from ``asyncio.run`` in
two threads"). It was not:

* ``asyncio.run`` twice in one thread: the second run was handed the first run's keep-alive
  connection, whose loop was closed: a bare ``RuntimeError: Event loop is closed``, not retried,
  not counted;
* two threads each running a loop: ``RuntimeError ... bound to a different event loop``, and
  calls hung far past ``total_timeout``, parked on a future completed from the other thread,
  which never woke their own loop.

So each running loop gets a client (and pool) of its own, made on its first call and keyed by
the loop, as ``AsyncFlights`` keys its flights. The TLS context is built once and shared: it
holds no loop state, and building it is the slow part of making a client.

**When a loop ends.** Its pool holds sockets of a loop that can no longer close them, and the
pool keeps the loop alive, so a table keyed weakly by the loop would never let go of either.
Each per-loop client is therefore closed *by its loop as that loop shuts down*: with the client
comes a small async generator, started on that loop and kept suspended (``_closed_with_loop``).
asyncio records every async generator a loop starts, and ``asyncio.run`` (``Runner.close``)
closes the unfinished ones with ``loop.shutdown_asyncgens()`` before it closes the loop; closing
ours removes the loop's entry and awaits ``client.aclose()`` while the loop still runs. A loop
closed without that step (``loop.close()`` by hand) is dropped from the table at the next call
or ``aclose``, from any loop; its sockets then close when they are garbage collected.

A ``transport=`` passed by the caller (``httpx.MockTransport`` in tests) is the caller's: it is
shared by every loop, as given, wrapped in one client, and closed by ``aclose``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

from llm_client.errors import ConfigurationError

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _LoopClient:
    http: httpx.AsyncClient
    closer: AsyncGenerator[None, None]  # ``_closed_with_loop(self)``, started on the loop


class LoopConnections:
    """The ``httpx.AsyncClient`` of the running event loop (``await connections.client()``)."""

    def __init__(
        self,
        *,
        timeout: httpx.Timeout,
        limits: httpx.Limits,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout, self._limits = timeout, limits
        self._lock = threading.Lock()  # loops in other threads share the table
        self._shared: httpx.AsyncClient | None = None
        self._tls = None
        if transport is None:
            self._tls = httpx.create_ssl_context()
        else:
            self._shared = httpx.AsyncClient(transport=transport, timeout=timeout, limits=limits)
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False  # after aclose(), no pool is made again

    def __len__(self) -> int:
        """How many loops hold a client now (a caller's transport: always 0)."""
        with self._lock:
            return len(self._per_loop)

    async def client(self) -> httpx.AsyncClient:
        """The running loop's client, made (and set to close with the loop) on its first call.

        ``ConfigurationError`` once ``aclose`` has run: a call that passed its check as another
        thread closed the client must not open a pool nobody will close.
        """
        if self._closed:
            raise _closed_error()
        if self._shared is not None:
            return self._shared
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:  # closed by another thread since the check above
                raise _closed_error()
            entry = self._per_loop.get(loop)
            if entry is not None:
                return entry.http
            self._forget_closed_loops()
            http = httpx.AsyncClient(verify=self._tls, timeout=self._timeout, limits=self._limits)
            entry = self._per_loop[loop] = _LoopClient(http, self._closed_with_loop(http))
        # runs to its ``yield`` at once, without suspending: no other task sees it half made
        await anext(entry.closer)
        return entry.http

    async def _closed_with_loop(self, http: httpx.AsyncClient) -> AsyncGenerator[None, None]:
        """Suspended for the loop's lifetime; closed by ``shutdown_asyncgens`` or ``aclose``."""
        try:
            yield
        finally:
            loop = asyncio.get_running_loop()
            with self._lock:
                entry = self._per_loop.get(loop)
                if entry is not None and entry.http is http:
                    del self._per_loop[loop]
            await http.aclose()

    def _forget_closed_loops(self) -> None:
        """Drop the clients of loops closed without ``shutdown_asyncgens`` (lock held)."""
        for loop in [loop for loop in self._per_loop if loop.is_closed()]:
            del self._per_loop[loop]

    async def aclose(self) -> None:
        """Close every loop's client: this loop's now; a live other loop's on that loop (not
        waited for: it may be busy or never run again); a closed loop's is only dropped."""
        self._closed = True
        if self._shared is not None:
            await self._shared.aclose()
            return
        running = asyncio.get_running_loop()
        with self._lock:
            entries = list(self._per_loop.items())
            self._per_loop.clear()
        for loop, entry in entries:
            if loop is running:
                await entry.closer.aclose()
            elif not loop.is_closed():
                closing = _close_on_its_loop(entry)
                try:
                    asyncio.run_coroutine_threadsafe(closing, loop)
                except RuntimeError:  # the loop closed in between: nothing left to close on
                    closing.close()


def _closed_error() -> ConfigurationError:
    return ConfigurationError("this client is closed: make a new one to call again")


async def _close_on_its_loop(entry: _LoopClient) -> None:
    try:
        await entry.closer.aclose()
    except Exception:  # nobody awaits this: say it here, or it is lost
        logger.warning("closing an event loop's connections failed", exc_info=True)
