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
deep copy of the leader's reply, marked ``coalesced=True`` (``CallCore.coalesced``). They copy
the snapshot the leader published as it landed (``Outcome.for_waiters``), not the reply its own
caller already holds and may be changing.

The rules, and why:

* **Same key as the cache.** A call is merged only if it would be cached (``PreparedCall.cache_key``
  is not None): ``cache=False``, a temperature > 0 call the cache skips, or a client without a
  cache never waits for anyone. Streams are never merged: each stream has one reader.
* **A leader that fails shares its error.** Every waiter raises its own copy of the leader's
  exception (``own_copy``: same type, attributes and cause, the leader's traceback; not the same
  object, see there). The leader already ran the whole retry policy on this exact request;
  re-running it once per waiter would multiply the load on a failing server, the stampede this
  module exists to prevent (Go's singleflight shares errors too). Errors are not cached, so the
  next call after the flight sends a fresh request.
* **A leader that is cancelled does not.** ``asyncio.CancelledError``, ``KeyboardInterrupt`` or
  ``SystemExit`` (any ``BaseException`` that is not an ``Exception``) say nothing about the
  request, so the flight is *abandoned*: its waiters wake up and the first to come back becomes
  the new leader and sends the request itself. A cancelled leader never hangs or fails them.
* **A waiter keeps its own deadline.** It waits at most until its own ``total_timeout`` runs out,
  then raises ``DeadlineExceededError``; the leader goes on for the others and fills the cache.
  The other way round, a leader whose own deadline runs out says nothing about the request
  either, only about the leader's budget: ``DeadlineExceededError``, ``RateLimiterTimeoutError``
  (it waited for a limiter slot until its deadline) or, with no time left, ``APITimeoutError``
  (an attempt's timeouts are cut to the deadline; ``max_retries=0`` raises it as it is). The
  flight is abandoned as for a cancelled leader (``_ended_by``), and a waiter with time left
  becomes the leader. A waiter therefore
  never fails before its own deadline because another caller started earlier. It adds no load
  that the calls would not make without single flight: the waiter that takes over would have
  been sending since it started.
* **Nothing leaks.** The leader's entry is removed in a ``finally`` that covers every line from
  the one that put it in the table (a Ctrl-C on the very next line included), before the
  outcome is published; waiters own no entry (a cancelled or timed-out waiter just stops
  waiting).

Accounting (``Stats``): a waiter that receives the leader's outcome, result or error, counts as
``coalesced``. It sent no request, so it adds no attempts and no tokens (as a cache hit adds
none); a waiter that raises counts its error, as every failed call does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import threading
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from llm_client.errors import APITimeoutError, DeadlineExceededError, RateLimiterTimeoutError
from llm_client.stats import Stats

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """How a flight ended: ``value``, or ``error``, or ``abandoned`` (its leader was cancelled
    or ran out of its own time)."""

    value: T | None = None
    error: BaseException | None = None
    abandoned: bool = False

    def for_waiters(self) -> Outcome[T]:
        """This outcome in objects no caller holds, taken before the leader returns.

        The leader's caller owns the originals and may change them as soon as it has them (a
        reply's vectors normalised in place, an error raised again); a waiter that wakes later
        must not copy those changes. A value or error that cannot be copied is shared as it is.
        """
        try:
            if self.error is not None:
                return Outcome(error=own_copy(self.error))
            if self.value is not None:
                return Outcome(value=copy.deepcopy(self.value))
        except Exception as exc:
            logger.warning("cannot copy a flight's outcome for its waiters (%r); sharing it", exc)
        return self


ABANDONED: Outcome[Any] = Outcome(abandoned=True)


def own_copy(error: BaseException) -> BaseException:
    """``error`` as a new object: same type, ``args`` and attributes (``status``, ``request_id``,
    ``attempts`` ...), same ``__cause__``, ``__context__``, notes and traceback.

    Why a waiter raises a copy: an exception object is mutable, and raising it changes it. Each
    ``raise`` adds the raiser's frames to its one ``__traceback__``, and a call made inside an
    ``except`` block makes the exception being handled its ``__context__``. Raised by 4 threads,
    one shared object ended with all 4 callers' stacks in one 31-frame traceback (17 with a
    copy each), and one caller's own ``LookupError`` in every caller's report ("During handling
    of the above exception ..."), the leader's caller's included, changed under it from other
    threads. ``concurrent.futures`` and asyncio futures do hand every caller the one object; we
    do not. An exception whose type cannot be rebuilt from its ``args`` and ``__dict__`` is
    returned as it is.
    """
    cls = type(error)
    try:
        twin = cls.__new__(cls, *error.args)  # no __init__: keyword-only arguments are in __dict__
        twin.__dict__.update(error.__dict__)
    except Exception:
        return error
    if type(twin) is not cls:  # e.g. OSError(errno, ...) picks a subclass
        return error
    if isinstance(notes := error.__dict__.get("__notes__"), list):
        twin.__notes__ = list(notes)  # add_note() on one copy must not show on the others
    twin.__cause__ = error.__cause__
    twin.__context__ = error.__context__
    twin.__suppress_context__ = error.__suppress_context__
    return twin.with_traceback(error.__traceback__)


def _ended_by(error: Exception, seconds_left: float | None) -> Outcome[Any]:
    """A leader's failure as its waiters see it: the error, or, when the leader's own deadline
    caused it, an abandoned flight (a waiter with time left takes over).

    Three errors can come from the leader's deadline rather than from the request:
    ``DeadlineExceededError`` (the retry loop stopped), ``RateLimiterTimeoutError`` (no limiter
    slot before the deadline: it is raised for nothing else) and ``APITimeoutError`` when the
    leader has no time left (its attempt's timeouts were cut to its deadline; with
    ``max_retries=0`` that error is raised as it is). An ``APITimeoutError`` with time left is
    the server being slow, which a waiter would meet too: it is shared like any other error.
    """
    if isinstance(error, DeadlineExceededError | RateLimiterTimeoutError):
        return ABANDONED
    if isinstance(error, APITimeoutError) and seconds_left is not None and seconds_left <= 0:
        return ABANDONED
    return Outcome(error=error)


class Flight:
    """One request in flight: the future its waiters wait on, and how many are waiting."""

    def __init__(self, key: str, future: Any) -> None:
        self.key = key  # the cache key
        self.future = future  # concurrent.futures.Future or asyncio.Future of an Outcome
        self.waiters = 0


class _FlightTable:
    """The flights of one client, and the bookkeeping both kinds share.

    The table maps a *slot* to its flight: the cache key for threads, (cache key, event loop)
    for tasks. A caller makes its own ``Flight`` and offers it (``_join``); if the slot was free,
    that flight is now in the table and the caller leads it; else it waits for the one there.
    """

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Flight] = {}

    def __len__(self) -> int:
        """Keys in flight now (0 when idle: nothing is left behind)."""
        with self._lock:
            return len(self._flights)

    def waiters(self) -> int:
        """Callers waiting for another's request now."""
        with self._lock:
            return sum(flight.waiters for flight in self._flights.values())

    def _join(self, slot: Hashable, ours: Flight) -> Flight:
        """The slot's flight: ``ours``, now in the table, if the slot was free (we lead it);
        else the flight in it, which counts us as a waiter until ``_left``."""
        with self._lock:
            flight = self._flights.setdefault(slot, ours)
            if flight is not ours:
                flight.waiters += 1
        if flight is not ours:
            logger.debug("call %s… waits for an identical call in flight", ours.key[:12])
        return flight

    def _left(self, flight: Flight) -> None:
        with self._lock:
            flight.waiters -= 1

    def _land(self, slot: Hashable, ours: Flight, outcome: Outcome[Any]) -> None:
        """End our flight, if ``ours`` is in the table: remove it first (a later caller starts
        afresh), then wake its waiters. Else (we waited, or were interrupted before ``_join``
        put it in) do nothing, so a ``finally`` around ``_join`` and the work can always call it.
        """
        with self._lock:
            if self._flights.get(slot) is not ours:
                return
            del self._flights[slot]
            waiting = ours.waiters  # no one can join now: it is out of the table
        if waiting:
            outcome = outcome.for_waiters()
            if outcome.abandoned:
                logger.info(
                    "the leader of call %s… was cancelled or ran out of time; a waiter takes over",
                    ours.key[:12],
                )
        ours.future.set_result(outcome)

    def _received(self, outcome: Outcome[T]) -> T:
        """A waiter's result: the leader's value, or its own copy of the leader's error raised."""
        self._stats.count("coalesced")
        if outcome.error is not None:
            error = own_copy(outcome.error)
            self._stats.error(error)
            raise error
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
            ours = Flight(key, concurrent.futures.Future())
            outcome: Outcome[Any] = ABANDONED  # stays so if we are interrupted, not failed
            try:
                flight = self._join(key, ours)
                if flight is ours:
                    value = work()
                    outcome = Outcome(value=value)
                    return value, False
            except Exception as exc:
                outcome = _ended_by(exc, seconds_left())
                raise
            finally:
                # one try from _join on: a Ctrl-C on the line after ours went in still lands it
                self._land(key, ours, outcome)
            try:
                outcome = flight.future.result(timeout=seconds_left())
            except TimeoutError:
                raise self._timed_out(key) from None
            finally:
                self._left(flight)
            if not outcome.abandoned:
                return self._received(outcome), True


class AsyncFlights(_FlightTable):
    """Single-flight for asyncio tasks (``AsyncClient``).

    Flights are per event loop: an asyncio future belongs to one loop, so a call on another loop
    (one client used by ``asyncio.run`` in two threads) leads a flight of its own.
    """

    async def run(
        self,
        key: str,
        work: Callable[[], Awaitable[T]],
        seconds_left: Callable[[], float | None],
    ) -> tuple[T, bool]:
        """As ``Flights.run``; cancelling a waiter only stops its own wait."""
        loop = asyncio.get_running_loop()
        while True:
            ours = Flight(key, loop.create_future())
            outcome: Outcome[Any] = ABANDONED  # stays so if the task is cancelled
            try:
                flight = self._join((key, loop), ours)
                if flight is ours:
                    value = await work()
                    outcome = Outcome(value=value)
                    return value, False
            except Exception as exc:
                outcome = _ended_by(exc, seconds_left())
                raise
            finally:
                self._land((key, loop), ours, outcome)
            try:
                # not wait_for: on Python 3.11 it returns the result, and drops the
                # cancellation, of a task cancelled after the flight landed but before it woke.
                # shield: a waiter that times out or is cancelled must not cancel the flight.
                async with asyncio.timeout(seconds_left()):  # None: no deadline
                    outcome = await asyncio.shield(flight.future)
            except TimeoutError:
                raise self._timed_out(key) from None
            finally:
                self._left(flight)
            if not outcome.abandoned:
                return self._received(outcome), True
