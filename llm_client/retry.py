"""When to retry, how long to wait, when to give up: pure functions, then a thin tenacity adapter.

The policy (each rule is one function below, so tests can check it without a server):

1. **What is retried** (``retry_reason``): connection errors, timeouts, malformed 2xx bodies,
   408, 409, 429 and every 5xx. Never a 3xx redirect (not followed: ``RedirectError``), never
   400/401/403/404/422, never a 429 whose body says
   ``insufficient_quota`` (waiting does not refill a quota), and never a host name that DNS
   says does not exist (``HostNotFoundError``: a typo does not fix itself in a retry budget; a
   *temporary* resolver failure, ``EAI_AGAIN``, is an ordinary connection error and is retried).
   The server's ``x-should-retry: true|false`` header overrides everything but that never-retry
   list: ``false`` stops even a 503, ``true`` retries a status neither list names (a 418).
   openai-python lets it override the never-retry statuses too; we trust our list over a header.
2. **How long** (``wait_seconds``): the server's ``retry-after-ms``, else ``retry-after`` (seconds
   or an HTTP date, RFC 9110 §10.2.3), parsed again from *each* failed attempt's own headers;
   without one, or when it says 0 (or a date already past), capped exponential backoff with
   jitter. A 0 is read as "no particular wait", not "hammer me now": a proxy that always sends
   ``Retry-After: 0`` would otherwise turn the retries into a burst of back-to-back requests at
   a server that just said it is overloaded (openai-python also backs off on 0)::

       wait(n) = min(base * 2**(n-1), cap) * (1 - jitter * U),   U ~ Uniform[0, 1)

   i.e. openai-python's schedule (0.5 s doubling to 8 s, up to 25 % shorter). Jitter only ever
   shortens the backoff; it is never applied to a server's Retry-After (retrying early is exactly
   what the server asked us not to do).
3. **When to give up** (``decide``): after ``max_retries`` retries; at once if Retry-After exceeds
   ``max_retry_after`` (``RetryAfterTooLongError``: fail loudly rather than hang for an hour);
   and when the wait would overrun the call's total deadline (``DeadlineExceededError``).

``RetryController`` plugs ``decide`` into tenacity's ``retry``/``wait``/``stop`` hooks with an
injected ``sleep``, and logs every decision with its reason.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import tenacity

from llm_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DeadlineExceededError,
    HostNotFoundError,
    QuotaExhaustedError,
    RateLimiterTimeoutError,
    RedirectError,
    ResponseDecodeError,
    RetryAfterTooLongError,
)

logger = logging.getLogger(__name__)

NEVER_RETRY_STATUS = frozenset({400, 401, 403, 404, 422})
RETRY_STATUS = frozenset({408, 409, 429})


def backoff_seconds(
    retry_number: int, *, base: float = 0.5, cap: float = 8.0, jitter: float = 0.25, u: float = 0.0
) -> float:
    """Backoff before retry ``retry_number`` (1 = first): min(base*2^(n-1), cap)*(1-jitter*u)."""
    if retry_number < 1:
        raise ValueError(f"retry_number starts at 1, got {retry_number}")
    exponent = min(retry_number - 1, 60)  # 2**60 s is already forever; avoids float overflow
    return min(base * 2.0**exponent, cap) * (1.0 - jitter * u)


def parse_retry_after(headers: Mapping[str, str], *, now_wall: float) -> float | None:
    """Seconds the server asked us to wait, or None when it did not say (or said nonsense).

    ``retry-after-ms`` (OpenAI / Azure, float milliseconds) wins over ``retry-after``, which is
    either delta-seconds or an HTTP date in any of RFC 9110's three forms (IMF-fixdate,
    RFC 850, asctime; all GMT); a date is converted with the wall clock ``now_wall``
    (a date in the past means "now": 0.0). ``headers`` must have lower-case keys.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms)
            if math.isfinite(value) and value >= 0:
                return value / 1000.0
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime names no zone; RFC 9110 dates are all GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_wall)


def retry_reason(error: BaseException) -> tuple[bool, str]:
    """(should this failure be retried at all?, the reason in words)."""
    if isinstance(error, QuotaExhaustedError):
        return False, "429 insufficient_quota: waiting will not refill the quota"
    if isinstance(error, RedirectError):  # whatever x-should-retry says: it will redirect again
        return False, f"HTTP {error.status} redirect to {error.location} is not followed"
    if isinstance(error, APIStatusError):
        if error.status in NEVER_RETRY_STATUS:
            return False, f"HTTP {error.status} is never retried"
        hint = error.headers.get("x-should-retry")
        if hint == "true":
            return True, f"HTTP {error.status} with x-should-retry: true"
        if hint == "false":
            return False, f"HTTP {error.status} with x-should-retry: false"
        if error.status in RETRY_STATUS or error.status >= 500:
            return True, f"HTTP {error.status}"
        return False, f"HTTP {error.status} is not retryable"
    if isinstance(error, APITimeoutError):
        return True, "timeout"
    if isinstance(error, HostNotFoundError):
        return False, "the host name does not resolve (a typo is not transient)"
    if isinstance(error, APIConnectionError):
        return True, "connection error"
    if isinstance(error, ResponseDecodeError):
        return True, "malformed response body"
    return False, f"{type(error).__name__} is not an API failure"


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt; ``give_up`` says why we stopped if ``retry`` is False."""

    retry: bool
    wait: float
    reason: str
    give_up: str | None = (
        None  # None | "not_retryable" | "attempts" | "retry_after_cap" | "deadline"
    )
    retry_after: float | None = None


def decide(
    error: BaseException,
    *,
    retry_number: int,
    max_retries: int,
    base: float,
    cap: float,
    jitter: float,
    max_retry_after: float,
    u: float,
    seconds_left: float | None,
) -> RetryDecision:
    """The whole retry policy as one pure function (see the module docstring)."""
    retryable, reason = retry_reason(error)
    retry_after = getattr(error, "retry_after", None)
    if not retryable:
        return RetryDecision(False, 0.0, reason, "not_retryable", retry_after)
    if retry_number > max_retries:
        return RetryDecision(
            False, 0.0, f"{reason}; gave up after {max_retries} retries", "attempts"
        )
    if retry_after is not None and retry_after > max_retry_after:
        why = f"{reason}; server asked for {retry_after:.1f}s, above the {max_retry_after:.1f}s cap"
        return RetryDecision(False, 0.0, why, "retry_after_cap", retry_after)
    if retry_after is not None and retry_after > 0:  # 0 means backoff: see the module docstring
        wait, source = retry_after, f"retry-after {retry_after:.3f}s"
    else:
        wait = backoff_seconds(retry_number, base=base, cap=cap, jitter=jitter, u=u)
        source = f"backoff {wait:.3f}s"
    if seconds_left is not None and wait >= seconds_left:
        why = f"{reason}; waiting {wait:.3f}s would pass the deadline ({seconds_left:.3f}s left)"
        return RetryDecision(False, 0.0, why, "deadline", retry_after)
    return RetryDecision(True, wait, f"{reason}; {source}", None, retry_after)


class RetryController:
    """One call's retry state, exposed as tenacity hooks.

    ``deadline`` is an absolute time on ``clock`` (or None). tenacity calls ``retry`` then
    ``wait`` then ``stop`` after each failure; ``decide`` runs once in ``retry`` and the other
    hooks read its answer, so jitter is drawn once per failure.
    """

    def __init__(
        self,
        *,
        max_retries: int,
        base: float,
        cap: float,
        jitter: float,
        max_retry_after: float,
        clock: Callable[[], float],
        deadline: float | None,
        rng: random.Random,
        on_retry: Callable[[RetryDecision], None] | None = None,
    ) -> None:
        self._params = dict(
            max_retries=max_retries,
            base=base,
            cap=cap,
            jitter=jitter,
            max_retry_after=max_retry_after,
        )
        self._clock = clock
        self.deadline = deadline
        self._rng = rng
        self._on_retry = on_retry
        self.last: RetryDecision | None = None
        self.attempts = 0
        self.retried_error: BaseException | None = None  # the last failure that was retried

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self._clock()

    def _retry(self, state: tenacity.RetryCallState) -> bool:
        self.attempts = state.attempt_number
        error = state.outcome.exception() if state.outcome else None
        if error is None:
            return False
        self.last = decide(
            error,
            retry_number=state.attempt_number,
            u=self._rng.random(),
            seconds_left=self.seconds_left(),
            **self._params,
        )
        level = logging.INFO if self.last.retry else logging.DEBUG
        logger.log(
            level,
            "attempt %d failed (%s): %s",
            state.attempt_number,
            "retrying" if self.last.retry else "giving up",
            self.last.reason,
        )
        if self.last.retry:
            self.retried_error = error
            if self._on_retry is not None:
                self._on_retry(self.last)
        return self.last.retry

    def _wait(self, state: tenacity.RetryCallState) -> float:
        return self.last.wait if self.last else 0.0

    def retrying(self, sleep: Callable[[float], None]) -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=self._retry, wait=self._wait, stop=tenacity.stop_never, sleep=sleep, reraise=True
        )

    def async_retrying(self, sleep: Callable[[float], object]) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(
            retry=self._retry, wait=self._wait, stop=tenacity.stop_never, sleep=sleep, reraise=True
        )

    def final_error(self, error: BaseException) -> BaseException:
        """The exception to raise once tenacity re-raised ``error``: names *why* we stopped.

        ``error`` already carries its URL and attempts (``CallCore.give_up`` fills them in
        first); the give-up errors quote it as their last error, so their message names both.
        A ``RateLimiterTimeoutError`` on a retry quotes the failure before it, which would
        otherwise be lost (the server's 500 that made us retry, say).
        """
        previous = self.retried_error
        if isinstance(error, RateLimiterTimeoutError) and previous is not None:
            return RateLimiterTimeoutError(
                f"{error}; last error: {previous}",
                last_error=previous,
                attempts=self.attempts - 1,  # the last attempt got no slot, so sent nothing
            )
        if isinstance(error, RetryAfterTooLongError) and previous is not None:
            # the limiter's: a server pause above the cap, met waiting for the retry's slot
            return RetryAfterTooLongError(
                f"{error}; last error: {previous}",
                retry_after=error.retry_after,
                cap=error.cap,
                last_error=previous,
                attempts=self.attempts - 1,
            )
        last = self.last
        if last is None or last.give_up in (None, "not_retryable"):
            return error
        if last.give_up == "retry_after_cap":
            return RetryAfterTooLongError(
                f"not retrying: {last.reason}; last error: {error}",
                retry_after=last.retry_after or 0.0,
                cap=self._params["max_retry_after"],
                last_error=error,
                attempts=self.attempts,
            )
        if last.give_up == "deadline":
            return DeadlineExceededError(
                f"total deadline exceeded after {self.attempts} attempt(s): {last.reason}; "
                f"last error: {error}",
                last_error=error,
                attempts=self.attempts,
            )
        error.add_note(f"llm_client: {last.reason}")
        return error
