"""Typed errors for the LLM client, each carrying the context needed to act on it.

The tree (catch a branch to handle everything below it)::

    LLMClientError
    ├── InvalidRequestError          bad input caught before anything is sent (also ValueError)
    ├── ConfigurationError           no base_url / model, a value out of range, an unusable
    │                                cache_dir, a request httpx cannot build (never retried;
    │                                also ValueError)
    ├── APIError                     something went wrong talking to the server
    │   ├── APIStatusError           non-2xx answer: .status, .request_id, .retry_after, .body
    │   │   ├── RedirectError            3xx (.location)     never retried (not followed)
    │   │   ├── BadRequestError          400, 422            never retried
    │   │   ├── AuthenticationError      401                 never retried
    │   │   ├── PermissionDeniedError    403                 never retried
    │   │   ├── NotFoundError            404                 never retried
    │   │   ├── ConflictError            409                 retried
    │   │   ├── RateLimitError           429                 retried (honouring Retry-After)
    │   │   │   └── QuotaExhaustedError  429 insufficient_quota: never retried
    │   │   └── ServerError              5xx                 retried
    │   ├── APITimeoutError          connect/read/write timed out          retried
    │   ├── APIConnectionError       refused, reset, truncated body        retried
    │   │   └── HostNotFoundError    the host name does not resolve        never retried
    │   ├── ResponseDecodeError      200 with a body that is not the protocol (retried)
    │   └── StreamInterruptedError   a stream broke after its first chunk (.partial_text)
    ├── RetryAfterTooLongError       the server asked us to wait (Retry-After, x-ratelimit-reset)
    │                                longer than the cap: we fail now
    ├── DeadlineExceededError        the total deadline ran out (across all retries)
    ├── RateLimiterTimeoutError      waiting for a client-side rate-limit slot hit the deadline
    └── LocalServerError             the local llama.cpp server did not start (its log tail;
                                     defined in local_server.py, where it is raised)

``APIStatusError`` mirrors openai-python's names (``RateLimitError``, ``APIConnectionError``...) so
code written against that SDK reads the same here. The three "give up" errors
(``RetryAfterTooLongError``, ``DeadlineExceededError``, ``RateLimiterTimeoutError``) keep the last
server error as ``.last_error`` (a ``RateLimiterTimeoutError`` has one when it stopped a retry)
and quote it in their message, so nothing the server said is lost.

An ``APIError`` a call raises carries the ``url`` it requested and ``attempts``, the attempts the
call made (``CallCore.with_context`` fills in both, also for errors raised where the URL was not
at hand: a body that is not the protocol, a stream that broke); both are in its message, so a
one-line ``error: ...`` says where and how often::

    ConnectError: [Errno 111] Connection refused (http://127.0.0.1:9/v1/embeddings, 5 attempts)
"""

from __future__ import annotations

from typing import Any


class LLMClientError(Exception):
    """Root of every error this package raises."""


class InvalidRequestError(LLMClientError, ValueError):
    """The request was rejected before sending (empty messages, max_tokens <= 0, ...)."""


class ConfigurationError(LLMClientError, ValueError):
    """The client is configured in a way that cannot work (no base URL, rpm <= 0, ...)."""


class APIError(LLMClientError):
    """A failure talking to the server.

    ``request_id`` is the server's id when it sent one, ``url`` the URL requested, ``attempts``
    how many attempts the call made (set when the retry loop gives up; None before), ``hint`` a
    likely fix when we can guess one.
    """

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.url = url
        self.hint = hint
        self.attempts: int | None = None

    def _head(self) -> str:
        return self.message

    def __str__(self) -> str:
        context = [self.url] if self.url else []
        if self.request_id:
            context.append(f"request_id={self.request_id}")
        if self.attempts is not None:
            context.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        text = self._head() + (f" ({', '.join(context)})" if context else "")
        return text + (f". {self.hint}" if self.hint else "")


class APIStatusError(APIError):
    """The server answered with a non-2xx status.

    Attributes: ``status`` (int), ``request_id``, ``retry_after`` (seconds parsed from this
    response's ``retry-after-ms`` / ``retry-after`` headers, or None), ``body`` (parsed JSON or
    text), ``headers`` (dict, lower-case keys), ``code`` (the ``error.code``/``type`` field if any),
    and ``url``, ``attempts``, ``hint`` as on ``APIError``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, url=url, hint=hint)
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.headers = headers or {}
        self.code = code

    def _head(self) -> str:
        return f"HTTP {self.status}: {self.message}"


class RedirectError(APIStatusError):
    """3xx: the server sent us to ``location`` (None if it named none). Never retried.

    Redirects are not followed: a POST replayed to another URL is a new request the caller did
    not ask for, and its ``Authorization`` header could go to another host. The usual cause is a
    base URL on ``http://`` that the server moves to ``https://``; the fix is a new base URL.
    Its own error, so that the redirect page is never parsed as a reply (and retried as a
    ``ResponseDecodeError`` that hides where the server pointed).
    """

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


class BadRequestError(APIStatusError):
    """400 / 422: the server says the request itself is wrong. Retrying cannot help."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: unknown model or endpoint (check base_url ends in /v1)."""


class ConflictError(APIStatusError):
    """409: a conflicting request is in progress (e.g. same idempotency key); retried."""


class RateLimitError(APIStatusError):
    """429: slow down. ``retry_after`` says for how long when the server told us."""


class QuotaExhaustedError(RateLimitError):
    """429 with ``insufficient_quota``: the account is out of credit. Waiting will not help."""


class ServerError(APIStatusError):
    """5xx: the server failed; usually transient."""


class APITimeoutError(APIError):
    """A connect, read or write timeout fired for one attempt."""


class APIConnectionError(APIError):
    """The connection failed: refused, reset by peer, or closed before the body was complete."""


class HostNotFoundError(APIConnectionError):
    """The host name in the base URL does not resolve (DNS said "no such name"). Not retried.

    A name that does not exist is almost always a typo, and a typo does not fix itself within a
    retry budget; retrying only made the user wait ~7 s for the same answer. A *temporary* DNS
    failure (``EAI_AGAIN``: the resolver timed out or failed) stays a plain, retried
    ``APIConnectionError``.
    """


class ResponseDecodeError(APIError):
    """A 2xx response whose body is not valid protocol JSON (truncated, malformed, wrong shape)."""


class StreamInterruptedError(APIError):
    """A stream failed after its first chunk was read: the connection broke, or a chunk was not
    the protocol.

    It is not retried: replaying would show the caller the same text twice. ``partial_text``
    holds what had arrived, so nothing is lost; ``url``, ``request_id`` and ``attempts`` (the
    attempts it took to open the stream) are set as on every error a call raises.
    """

    def __init__(self, message: str, *, partial_text: str, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.partial_text = partial_text


class _GaveUp(LLMClientError):
    def __init__(self, message: str, *, last_error: BaseException | None, attempts: int) -> None:
        super().__init__(message)
        self.last_error = last_error
        self.attempts = attempts


class RetryAfterTooLongError(_GaveUp):
    """The server asked us to wait longer than ``max_retry_after``; failing now beats hanging.

    Asked by a ``Retry-After`` (``last_error`` is the response that said it), or by a pause
    from ``x-ratelimit-remaining-*: 0`` + ``x-ratelimit-reset-*`` on an earlier response, met
    while waiting for a limiter slot (``last_error`` is None on a first attempt, else the
    failure retried before it). ``retry_after`` is the wait asked for, ``cap`` the limit.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        cap: float,
        last_error: BaseException | None,
        attempts: int,
    ) -> None:
        super().__init__(message, last_error=last_error, attempts=attempts)
        self.retry_after = retry_after
        self.cap = cap


class DeadlineExceededError(_GaveUp):
    """The call's total deadline (``total_timeout``) ran out, counting every retry and wait."""


class RateLimiterTimeoutError(_GaveUp):
    """No client-side rate-limit slot became free before the call's deadline.

    When that happened on a retry, ``last_error`` is the error of the attempt before (a 500,
    say) and ``attempts`` the requests sent; on a first attempt they are None and 0.
    """

    def __init__(
        self, message: str, *, last_error: BaseException | None = None, attempts: int = 0
    ) -> None:
        super().__init__(message, last_error=last_error, attempts=attempts)
