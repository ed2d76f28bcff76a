"""Single-flight: identical cacheable calls in flight at the same time share one request.

Without it, N threads (or tasks) asking the same question at the same moment all miss the cache
and all send it: an audit saw 8 threads make 6 requests for one answer. With it, the first
caller for a cache key that missed the cache, the *leader*, does the work (a second cache
lookup, the request with its retries, accounting, cache write) and the callers that miss while
it is in flight, the *waiters*, wait for its outcome. The idea and the name come from Go's
``golang.org/x/sync/singleflight`` (``Group.Do``), written for groupcache to stop exactly this
stampede on a cache miss.

    >>> flights = Flights(Stats())
    >>> flights.run("cache key", lambda: "the answer", lambda: None)  # nobody in flight: lead
    ('the answer', False)

``run`` returns ``(result, shared)``; the clients give each waiter (``shared`` True) its own
deep copy of the leader's reply, marked ``coalesced=True`` (``CallCore.coalesced``).

The rules, and why:

* **Same key as the cache.** A call is merged only if it would be cached (``PreparedCall.cache_key``
  is not None): ``cache=False``, a temperature > 0 call the cache skips, or a client without a
  cache never waits for anyone. Streams are never merged: each stream has one reader.
* **A leader that fails shares its error.** Every waiter raises the leader's exception (the same
  object, as ``concurrent.futures`` does). The leader already ran the whole retry policy on this
  exact request; re-running it once per waiter would multiply the load on a failing server, the
  stampede this module exists to prevent (Go's singleflight shares errors too). Errors are not
  cached, so the next call after the flight sends a fresh request.
* **A leader that is cancelled does not.** ``asyncio.CancelledError``, ``KeyboardInterrupt`` or
  ``SystemExit`` (any ``BaseException`` that is not an ``Exception``) say nothing about the
  request, so the flight is *abandoned*: its waiters wake up and the first to come back becomes
  the new leader and sends the request itself. A cancelled leader never hangs or fails them.
* **A waiter keeps its own deadline.** It waits at most until its own ``total_timeout`` runs out,
  then raises ``DeadlineExceededError``; the leader goes on for the others and fills the cache.
* **Nothing leaks.** The leader removes its entry in a ``finally`` before publishing the outcome,
  whatever happened; waiters own no entry (a cancelled or timed-out waiter just stops waiting).

Accounting (``Stats``): a waiter that receives the leader's outcome, result or error, counts as
``coalesced``. It sent no request, so it adds no attempts and no tokens (as a cache hit adds
none); a waiter that raises counts its error, as every failed call does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from llm_client.errors import DeadlineExceededError
from llm_client.stats import Stats

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How a flight ended: ``value``, or ``error``, or ``abandoned`` (its leader was cancelled)."""

    value: T | None = None
    error: BaseException | None = None
    abandoned: bool = False


ABANDONED: Outcome[Any] = Outcome(abandoned=True)


class Flight:
    """One request in flight: the future its waiters wait on, and how many are waiting."""

    def __init__(self, future: Any) -> None:
        self.future = future  # concurrent.futures.Future or asyncio.Future of an Outcome
        self.waiters = 0


class _FlightTable:
    """The flights of one client by cache key, and the bookkeeping both kinds share."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        """Keys in flight now (0 when idle: nothing is left behind)."""
        with self._lock:
            return len(self._flights)

    def waiters(self) -> int:
        """Callers waiting for another's request now."""
        with self._lock:
            return sum(flight.waiters for flight in self._flights.values())

    def _join(self, key: str, new_future: Callable[[], Any]) -> tuple[Flight, bool]:
        """(the key's flight, True if we lead it). A waiter is counted until ``_left``."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = Flight(new_future())
                return flight, True
            flight.waiters += 1
        logger.debug("call %s… waits for an identical call in flight", key[:12])
        return flight, False

    def _left(self, flight: Flight) -> None:
        with self._lock:
            flight.waiters -= 1

    def _land(self, key: str, flight: Flight, outcome: Outcome[Any]) -> None:
        """End a flight: remove it first (a later caller starts afresh), then wake its waiters."""
        with self._lock:
            del self._flights[key]
            waiting = flight.waiters
        if outcome.abandoned and waiting:
            logger.info("the leader of call %s… was cancelled; a waiter takes over", key[:12])
        flight.future.set_result(outcome)

    def _received(self, outcome: Outcome[T]) -> T:
        """A waiter's result: the leader's value, or its error raised again."""
        self._stats.count("coalesced")
        if outcome.error is not None:
            self._stats.error(outcome.error)
            raise outcome.error
        return outcome.value  # type: ignore[return-value]

    def _timed_out(self, key: str) -> DeadlineExceededError:
        error = DeadlineExceededError(
            f"total deadline exceeded while waiting for an identical call in flight (key "
            f"{key[:12]}…); that call goes on and will fill the cache",
            last_error=None,
            attempts=0,
        )
        self._stats.error(error)
        return error


class Flights(_FlightTable):
    """Single-flight for threads (``Client``)."""

    def run(
        self, key: str, work: Callable[[], T], seconds_left: Callable[[], float | None]
    ) -> tuple[T, bool]:
        """``(work()'s result, False)`` for a leader; ``(the leader's result, True)`` for a
        waiter. ``seconds_left()`` is the caller's own time budget (None: no deadline)."""
        while True:
            flight, leader = self._join(key, concurrent.futures.Future)
            if leader:
                return self._lead(key, flight, work), False
            try:
                outcome = flight.future.result(timeout=seconds_left())
            except TimeoutError:
                raise self._timed_out(key) from None
            finally:
                self._left(flight)
            if not outcome.abandoned:
                return self._received(outcome), True

    def _lead(self, key: str, flight: Flight, work: Callable[[], T]) -> T:
        outcome: Outcome[Any] = ABANDONED  # stays so if work() is interrupted, not failed
        try:
            value = work()
            outcome = Outcome(value=value)
            return value
        except Exception as exc:
            outcome = Outcome(error=exc)
            raise
        finally:
            self._land(key, flight, outcome)


class AsyncFlights(_FlightTable):
    """Single-flight for asyncio tasks (``AsyncClient``; one event loop, as httpx requires)."""

    async def run(
        self,
        key: str,
        work: Callable[[], Awaitable[T]],
        seconds_left: Callable[[], float | None],
    ) -> tuple[T, bool]:
        """As ``Flights.run``; cancelling a waiter only stops its own wait."""
        while True:
            flight, leader = self._join(key, asyncio.get_running_loop().create_future)
            if leader:
                return await self._lead(key, flight, work), False
            try:
                # shield: a waiter that times out or is cancelled must not cancel the flight
                outcome = await asyncio.wait_for(asyncio.shield(flight.future), seconds_left())
            except TimeoutError:
                raise self._timed_out(key) from None
            finally:
                self._left(flight)
            if not outcome.abandoned:
                return self._received(outcome), True

    async def _lead(self, key: str, flight: Flight, work: Callable[[], Awaitable[T]]) -> T:
        outcome: Outcome[Any] = ABANDONED  # stays so if the task is cancelled
        try:
            value = await work()
            outcome = Outcome(value=value)
            return value
        except Exception as exc:
            outcome = Outcome(error=exc)
            raise
        finally:
            self._land(key, flight, outcome)
