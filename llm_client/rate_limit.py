"""A client-side limiter for requests *and* tokens per window: atomic, FIFO, shared, provable.

Why not a token bucket? A bucket of capacity C refilling at C/60 per second admits up to 2C
requests in some 60-second window (a full bucket, then a minute of refill), so a server that
counts a sliding window rejects us. LiteLLM's router checks rpm and tpm separately and
non-atomically (BerriAI/litellm#5783) and aiolimiter is a leaky bucket with the same burst
(mjpieters/aiolimiter#169). This limiter counts exactly what a sliding-window server counts.

**The rule.** A request *holds* its slot from admission until one window after its response
came back (``released_at + window``); while in flight it holds the slot indefinitely. A new
request is admitted only if, at that instant, ``held + 1 <= rpm`` and
``held_tokens + estimate <= tpm``. Because the server sees the request arrive at some moment
inside [admitted, released], every pair of requests the server could see within one window were
both held at the later admission, so the server never counts more than ``rpm`` (proof sketch in
the README). This costs one response latency per window of throughput, about 1 % at 60 s.

**Tokens.** Before sending we reserve ``estimate_chat_tokens`` = prompt estimate + max_tokens;
on release we reconcile to the response's ``usage.total_tokens`` (or a text-based estimate for
streams, which carry no usage on llama.cpp). The TPM guarantee needs estimate >= what the server
charges, which is why max_tokens is always sent.

**Fairness and atomicity.** Waiters queue in a FIFO; only the head may be admitted, and both
budgets are checked and debited under one lock, so a big request is never starved by small ones
and no request takes a request slot while waiting for tokens. ``acquire`` (threads) and
``acquire_async`` (asyncio tasks) share one instance and one queue.

**Interruption.** A Ctrl-C can land between any two bytecodes, so nothing is held outside the
``try`` that gives it back: a caller leaving ``acquire`` by any exception takes its ticket out
of the queue, or releases the slot it was admitted to but never got. Tickets and wake-ups of an
event loop closed by hand under waiting tasks (whose cleanup will never run) are dropped.

**Server headers.** ``observe_headers`` reads ``x-ratelimit-remaining-requests|tokens`` and
``x-ratelimit-reset-*`` (OpenAI's format, e.g. ``6m0s``): when the server says 0 remain, nobody
is admitted until its reset time, and the pause is logged with the header that set it. A pause
is a server asking us to wait, like ``Retry-After``, and is capped the same way: a caller whose
pause is longer than ``max_server_pause`` (the client passes ``max_retry_after``) fails at once
with ``RetryAfterTooLongError``, and one whose deadline comes before the pause ends fails at once
with ``RateLimiterTimeoutError``; both name the header. Before, a daily budget's
``x-ratelimit-reset-requests: 6m0s`` held every later call silently for its whole
``total_timeout``, then blamed ``rpm=None, tpm=None``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from llm_client.config import _count, _number
from llm_client.errors import (
    InvalidRequestError,
    RateLimiterTimeoutError,
    RetryAfterTooLongError,
)

logger = logging.getLogger(__name__)

MESSAGE_OVERHEAD_TOKENS = 4  # role + separators per message, as in OpenAI's cookbook count
REPLY_PRIMING_TOKENS = 3
#: What one ``image_url`` content part is reserved, whatever its size: a provider bills an image
#: by its pixels, not its bytes, up to a cap. OpenAI's gpt-4o at high detail charges at most
#: 85 + 170 x 8 tiles = 1,445 tokens; Anthropic about width x height / 750, at most ~1,600 (its
#: images are scaled to ~1.15 megapixels). 1,600 covers both; a low-detail image costs 85.
IMAGE_PART_TOKENS = 1_600
#: An ``input_audio`` part is reserved one token per this many bytes of decoded audio: audio is
#: billed by its duration (Gemini documents 32 tokens a second), and 250 bytes a token is 32 a
#: second for any encoding of 64 kbit/s or more (16 kHz 16-bit WAV is 512 kbit/s, MP3 64-320).
#: Lower bitrates (speech codecs, Opus at 16 kbit/s) can cost more than this reserves.
AUDIO_BYTES_PER_TOKEN = 250


def estimate_tokens(text: str) -> int:
    """ceil(len/4): the usual ~4 characters per token rule for English BPE vocabularies."""
    return math.ceil(len(text) / 4)


def estimate_content_tokens(content: object) -> int:
    """A message's ``content``: a str at chars/4, or a list of parts counted part by part.

    A text part counts its text at chars/4, an ``image_url`` part ``IMAGE_PART_TOKENS`` (not its
    URL: counting a base64 ``data:`` URL as text made a 450 KB photo ~150,000 tokens, so
    ``tpm=100_000`` refused it before sending), an ``input_audio`` part its decoded bytes over
    ``AUDIO_BYTES_PER_TOKEN`` (14 s of 16 kHz WAV: ~1,800, not ~150,000), and any other part (a
    file) the chars/4 of its JSON, which over-counts, the safe side for the limiter.
    """
    if isinstance(content, str):
        return estimate_tokens(content)
    if not isinstance(content, list):  # None: an assistant message that only calls tools
        return 0
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            total += estimate_tokens(str(part.get("text", "")))  # type: ignore[union-attr]
        elif kind == "image_url":
            total += IMAGE_PART_TOKENS
        elif kind == "input_audio":
            audio = part.get("input_audio")  # type: ignore[union-attr]
            data = audio.get("data") if isinstance(audio, Mapping) else None
            decoded = len(data) * 3 // 4 if isinstance(data, str) else 0  # base64: 4 chars, 3 bytes
            total += math.ceil(decoded / AUDIO_BYTES_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS
        else:
            total += estimate_tokens(json.dumps(part, ensure_ascii=False, default=str))
    return total


def estimate_chat_tokens(messages: Iterable[Mapping[str, object]], max_tokens: int) -> int:
    """Upper-ish estimate of what a chat call costs: prompt estimate plus max_tokens."""
    prompt = REPLY_PRIMING_TOKENS
    for message in messages:
        prompt += MESSAGE_OVERHEAD_TOKENS + estimate_content_tokens(message.get("content"))
    return prompt + max_tokens


@dataclass(eq=False)
class Permit:
    """One admitted request: what it reserved and when it holds the slot until."""

    tokens: int
    admitted_at: float
    released_at: float | None = None  # None while in flight

    def expires_at(self, window: float) -> float:
        return math.inf if self.released_at is None else self.released_at + window


@dataclass(eq=False)
class _Ticket:
    tokens: int
    permit: Permit | None = None
    waiters: list = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None  # queued by a task on this loop


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset_duration(text: str) -> float | None:
    """OpenAI's ``x-ratelimit-reset-*`` format ('1s', '6m0s', '20ms', '1h2m') to seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


class RateLimiter:
    """Requests-per-window and tokens-per-window limiter (see module docstring).

    ``poll`` is the pure arithmetic (no waiting) and is what unit tests drive with a fake clock;
    ``acquire``/``acquire_async`` wait on it; ``release`` returns the slot's tokens to the truth.
    ``rpm`` and ``tpm`` are ints >= 1 or None (unlimited), ``window`` a finite number of seconds
    > 0: ``ClientConfig``'s rules (its ``rate_window`` is this ``window``), checked here too for a
    limiter built by hand, with the same ``ConfigurationError`` naming the argument.
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ClientConfig's rules: a float rpm below 1 or a NaN never fit, so every call waited out
        # its whole deadline; a NaN window never let a released slot expire.
        _count("rpm", rpm, low=1, none="unlimited")
        _count("tpm", tpm, low=1, none="unlimited")
        _number("window", window, low=0.0, low_open=True)
        self.rpm, self.tpm, self.window = rpm, tpm, window
        self._clock = clock
        # Only ``with self._lock`` and raw ``Lock.acquire``: both are C, so a Ctrl-C (a
        # KeyboardInterrupt raised between any two bytecodes) cannot leave the lock held or
        # released twice. ``threading.Condition`` is Python code and can: interrupted inside
        # ``wait`` or ``__enter__`` it left this lock held (the next ``cancel`` deadlocked its own
        # thread) or unlocked ("RuntimeError: release unlocked lock").
        self._lock = threading.Lock()
        self._thread_waiters: list[threading.Lock] = []  # each held until a notify releases it
        self._queue: deque[_Ticket] = deque()
        # Held slots: in flight (a set), or released and counting down (a heap by expiry), with
        # running totals so admission is O(1) and pruning O(log n) however high the limits are.
        self._in_flight: set[Permit] = set()
        self._released: list[tuple[float, int, Permit]] = []
        self._seq = 0
        self._count = 0
        self._tokens = 0
        self._hold_until = -math.inf  # the server's x-ratelimit-reset: no admission before
        self._hold_reason = ""  # the headers that set it, for the log and the errors
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    # ---- arithmetic ---------------------------------------------------------------------------
    def join(self, tokens: int) -> _Ticket:
        """Take a place in the FIFO queue for a request that will use ``tokens``."""
        ticket = self._ticket(tokens)
        with self._lock:
            self._queue.append(ticket)
        return ticket

    def _ticket(self, tokens: int) -> _Ticket:
        """A new ticket for ``tokens``, checked but not yet queued."""
        if tokens < 0:
            raise InvalidRequestError(f"token estimate must be >= 0, got {tokens}")
        if self.tpm is not None and tokens > self.tpm:
            raise InvalidRequestError(
                f"request needs ~{tokens} tokens but the limit is {self.tpm} per {self.window:g}s; "
                "lower max_tokens or shorten the prompt"
            )
        return _Ticket(tokens)

    def poll(self, ticket: _Ticket) -> float:
        """0.0 if ``ticket`` was just admitted (``ticket.permit`` is set); otherwise how long to
        wait before polling again (``inf``: until another request is released or admitted)."""
        with self._lock:
            return self._poll_locked(ticket)

    def _poll_locked(self, ticket: _Ticket) -> float:
        if ticket.permit is not None:
            return 0.0
        while self._queue and _dead(self._queue[0]):  # its task can never run again: drop it
            self._queue.popleft()
        if not self._queue or self._queue[0] is not ticket:
            return math.inf  # not our turn: FIFO
        now = self._clock()
        self._prune(now)
        if now < self._hold_until:
            return self._hold_until - now
        if self.rpm is None and self.tpm is None:  # only following server headers: no bookkeeping
            ticket.permit = Permit(ticket.tokens, admitted_at=now)
            self._queue.popleft()
            self._notify_locked()
            return 0.0
        if self._fits(self._count, self._tokens, ticket.tokens):
            ticket.permit = Permit(ticket.tokens, admitted_at=now)
            self._in_flight.add(ticket.permit)
            self._count += 1
            self._tokens += ticket.tokens
            self._queue.popleft()
            self._notify_locked()  # the next in line may fit too
            return 0.0
        # Free released slots in expiry order until we fit; in-flight ones never expire, so if
        # those alone block us we wait for a release (inf).
        count, used = self._count, self._tokens
        for expires, _, permit in sorted(self._released):
            count, used = count - 1, used - permit.tokens
            if self._fits(count, used, ticket.tokens):
                return expires - now
        return math.inf

    def _prune(self, now: float) -> None:
        while self._released and self._released[0][0] <= now:
            _, _, permit = heapq.heappop(self._released)
            self._count -= 1
            self._tokens -= permit.tokens

    def _fits(self, count: int, used: int, tokens: int) -> bool:
        return (self.rpm is None or count + 1 <= self.rpm) and (
            self.tpm is None or used + tokens <= self.tpm
        )

    def release(self, permit: Permit, tokens_used: int | None = None) -> None:
        """The response is back: start the slot's one-window countdown, reconcile its tokens."""
        with self._lock:
            if permit not in self._in_flight:
                return  # released twice: ignore
            self._release_locked(permit, tokens_used)

    def _release_locked(self, permit: Permit, tokens_used: int | None) -> None:
        self._in_flight.remove(permit)
        permit.released_at = self._clock()
        if tokens_used is not None:
            self._tokens += max(0, tokens_used) - permit.tokens
            permit.tokens = max(0, tokens_used)
        self._seq += 1
        heapq.heappush(self._released, (permit.expires_at(self.window), self._seq, permit))
        self._notify_locked()

    def cancel(self, ticket: _Ticket) -> None:
        """Leave the queue without being admitted (deadline, task cancelled)."""
        with self._lock:
            if ticket in self._queue:
                self._queue.remove(ticket)
            self._notify_locked()

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Follow a server's ``x-ratelimit-*`` headers: pause admissions until its reset."""
        waits = []
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = headers.get(f"x-ratelimit-reset-{kind}")
            if remaining is None or reset is None:
                continue
            try:
                exhausted = float(remaining) <= 0
            except ValueError:
                continue
            seconds = parse_reset_duration(reset)
            if exhausted and seconds:
                why = (
                    f"x-ratelimit-remaining-{kind}: {remaining}, x-ratelimit-reset-{kind}: {reset}"
                )
                waits.append((seconds, why))
        if waits:
            seconds, why = max(waits)
            with self._lock:
                now = self._clock()
                if now + seconds <= self._hold_until:
                    return
                if now >= self._hold_until:  # a new pause, not a longer one: say so once
                    logger.info("server rate limit: pausing requests for %.3fs (%s)", seconds, why)
                self._hold_until, self._hold_reason = now + seconds, why
                self._notify_locked()

    def usage(self) -> tuple[int, int]:
        """(requests, tokens) currently held: in flight or released less than a window ago."""
        with self._lock:
            self._prune(self._clock())
            return self._count, self._tokens

    # ---- waiting ------------------------------------------------------------------------------
    def _notify_locked(self) -> None:
        for waiter in self._thread_waiters:
            if waiter.locked():
                waiter.release()
        # A loop closed by hand (Ctrl-C out of run_until_complete, then loop.close()) never runs
        # its waiting tasks' cleanup: forget their waiters rather than raise "Event loop is
        # closed" into whichever caller is notifying; their tickets are dropped by _poll_locked.
        self._async_waiters[:] = [w for w in self._async_waiters if not w[0].is_closed()]
        for loop, future in self._async_waiters:
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(_wake, future)

    def acquire(
        self,
        tokens: int,
        *,
        deadline: float | None = None,
        max_server_pause: float | None = None,
    ) -> Permit:
        """Block the calling thread until admitted. ``deadline`` is absolute, on this clock;
        a server pause (``observe_headers``) longer than ``max_server_pause`` seconds, or past
        the deadline, raises at once instead of waiting.

        Safe against a Ctrl-C at any bytecode: the ticket is queued inside the ``try`` that gives
        it back, a permit admitted but not yet returned is released, and the waiting is on a raw
        lock of this thread's own, outside the limiter's lock."""
        ticket = self._ticket(tokens)
        waiter: threading.Lock | None = None
        try:
            with self._lock:
                self._queue.append(ticket)
            while True:
                with self._lock:
                    if waiter is not None:
                        self._thread_waiters.remove(waiter)
                    delay = self._poll_locked(ticket)
                    if delay == 0.0:
                        return ticket.permit  # type: ignore[return-value]
                    timeout = self._timeout(delay, deadline, ticket, max_server_pause)
                    waiter = threading.Lock()
                    waiter.acquire()  # released by the next _notify_locked
                    self._thread_waiters.append(waiter)
                waiter.acquire(timeout=-1 if timeout is None else timeout)
        except BaseException:
            self._abandon(ticket, waiter)
            raise

    def _abandon(self, ticket: _Ticket, waiter: object = None) -> None:
        """A waiting caller is leaving with an exception: take its ticket out of the queue, or
        give back the slot it was admitted to but never got (a Ctrl-C on the way out)."""
        with self._lock:
            if waiter in self._thread_waiters:
                self._thread_waiters.remove(waiter)  # type: ignore[arg-type]
            if ticket in self._queue:
                self._queue.remove(ticket)
            if ticket.permit is not None and ticket.permit in self._in_flight:
                self._release_locked(ticket.permit, None)
            self._notify_locked()

    async def acquire_async(
        self,
        tokens: int,
        *,
        deadline: float | None = None,
        max_server_pause: float | None = None,
    ) -> Permit:
        """Like ``acquire`` for asyncio tasks; the queue is shared with threads."""
        loop = asyncio.get_running_loop()
        ticket = self._ticket(tokens)
        ticket.loop = loop
        try:
            with self._lock:
                self._queue.append(ticket)
            while True:
                with self._lock:
                    delay = self._poll_locked(ticket)
                    if delay == 0.0:
                        return ticket.permit  # type: ignore[return-value]
                    timeout = self._timeout(delay, deadline, ticket, max_server_pause)
                    waiter = (loop, loop.create_future())
                    self._async_waiters.append(waiter)
                try:
                    await asyncio.wait([waiter[1]], timeout=timeout)
                finally:
                    with self._lock:  # gone if its loop was closed (_notify_locked)
                        if waiter in self._async_waiters:
                            self._async_waiters.remove(waiter)
        except BaseException:
            self._abandon(ticket)
            raise

    def _timeout(
        self,
        delay: float,
        deadline: float | None,
        ticket: _Ticket,
        max_server_pause: float | None = None,
    ) -> float | None:
        """Seconds to wait (None: until notified); raise once the deadline has passed, or at
        once when the server's pause outlasts ``max_server_pause`` or the deadline (lock held).
        """
        now = self._clock()
        paused = self._hold_until - now  # > 0: the server said 0 remain, until its reset
        left = None if deadline is None else deadline - now
        if paused > 0 and max_server_pause is not None and paused > max_server_pause:
            self._leave_locked(ticket)
            raise RetryAfterTooLongError(
                f"not waiting: the server paused requests for {paused:.1f}s more "
                f"({self._hold_reason}), above the {max_server_pause:.1f}s cap (max_retry_after)",
                retry_after=paused,
                cap=max_server_pause,
                last_error=None,
                attempts=0,
            )
        if left is not None and (left <= 0 or 0 < left < paused):
            self._leave_locked(ticket)
            if left > 0:
                raise RateLimiterTimeoutError(
                    f"no rate-limit slot within the deadline: the server paused requests for "
                    f"{paused:.1f}s more ({self._hold_reason}), past the deadline ({left:.1f}s "
                    "left)"
                )
            held = f"; the server paused requests ({self._hold_reason})" if paused > 0 else ""
            raise RateLimiterTimeoutError(
                f"no rate-limit slot within the deadline (rpm={self.rpm}, tpm={self.tpm}, "
                f"window={self.window:g}s, {len(self._queue)} still waiting{held})"
            )
        if left is not None:
            delay = min(delay, left)
        return None if math.isinf(delay) else delay

    def _leave_locked(self, ticket: _Ticket) -> None:
        if ticket in self._queue:
            self._queue.remove(ticket)
        self._notify_locked()


def _dead(ticket: _Ticket) -> bool:
    """A ticket queued from an event loop that has since been closed: no task will poll it."""
    return ticket.loop is not None and ticket.loop.is_closed()


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
