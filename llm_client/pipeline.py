"""The per-call pipeline shared by ``Client`` and ``AsyncClient``; only their I/O differs.

Every call goes through the same steps, in this order::

    prepare (validate, build body, estimate tokens, cache key, idempotency key)
      -> cache lookup (hit: return / replay, no request sent)
      -> single flight (singleflight.py; non-streamed cacheable calls only): an identical call
         already in flight? wait for its result instead of doing the steps below; else look in
         the cache once more (the flight before may just have filled it)
      -> retry loop (tenacity, see retry.py), each attempt:
             limiter slot (rate_limit.py) -> HTTP -> typed error or parsed body -> release slot
      -> reconcile tokens, account usage, store in cache

This module holds the steps that do no I/O, so the two clients cannot drift apart.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx

from llm_client import abandoned
from llm_client.cache import ResponseCache, cache_key
from llm_client.config import ClientConfig, split_credentials
from llm_client.errors import (
    APIError,
    APITimeoutError,
    ConfigurationError,
    InvalidRequestError,
    LLMClientError,
    ResponseDecodeError,
    StreamInterruptedError,
)
from llm_client.protocol import (
    SSEDecoder,
    chat_body,
    check_json,
    decode_json,
    is_success,
    lower_headers,
    parse_chat,
    parse_chunk,
    parse_embeddings,
    request_id,
    status_error,
    validate_messages,
)
from llm_client.rate_limit import Permit, RateLimiter, estimate_chat_tokens, estimate_tokens
from llm_client.responses import ChatChunk, Usage
from llm_client.retry import RetryController
from llm_client.stats import Stats

USER_AGENT = "ais-llm-client/0.1"

logger = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class PreparedCall:
    """One logical call, ready to send (maybe several times: the idempotency key stays the same)."""

    endpoint: str  # "/chat/completions" | "/embeddings"
    kind: str  # "chat" | "stream" | "embeddings"  (also the cache entry kind)
    body: dict[str, Any]
    model: str
    token_estimate: int  # what the limiter reserves: prompt estimate + max_tokens
    prompt_estimate: int
    cache_key: str | None  # None: this call neither reads nor writes the cache
    idempotency_key: str


class CallCore:
    """Configuration, limiter, cache and stats of one client, plus the pure pipeline steps."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        seed: int | None = None,
        limiter: RateLimiter | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.config = config.resolved()
        # a base_url's user:password@ travels as a Basic header only, never in the requested URL
        # (httpx logs that URL, and errors quote it): see config.split_credentials
        self._base_url, self._basic_auth = split_credentials(
            self.config.base_url  # type: ignore[arg-type]
        )
        self.clock, self.wall_clock = clock, wall_clock
        self.rng = random.Random(seed)
        if limiter is None and (config.rpm or config.tpm or config.follow_ratelimit_headers):
            # with no rpm/tpm it only pauses when the server's x-ratelimit headers say 0 remain
            limiter = RateLimiter(config.rpm, config.tpm, window=config.rate_window, clock=clock)
        self.limiter = limiter
        if cache is None and config.cache_dir is not None:
            cache = ResponseCache(config.cache_dir, ttl=config.cache_ttl, clock=wall_clock)
        self.cache = cache
        self.stats = Stats(config.prices_per_million)
        self.closed = False  # set by the client's close() / aclose()

    # ---- prepare ------------------------------------------------------------------------------
    def check_open(self) -> None:
        """A call on a closed client is refused at once: its connections and cache are gone (an
        async client would otherwise open a new pool behind the caller's back)."""
        if self.closed:
            raise ConfigurationError("this client is closed: make a new one to call again")

    def model_for(self, model: str | None) -> str:
        chosen = model or self.config.model
        if not chosen:
            raise ConfigurationError(
                "no model: pass model=... to the call or the client, or set AIS_LLM_MODEL"
            )
        return chosen

    def prepare_chat(
        self,
        messages: object,
        *,
        model: str | None,
        max_tokens: int | None,
        temperature: float,
        stream: bool,
        cache: bool | None,
        params: Mapping[str, Any],
    ) -> PreparedCall:
        self.check_open()
        checked = validate_messages(messages)
        max_tokens = self.config.default_max_tokens if max_tokens is None else max_tokens
        name = self.model_for(model)
        body = chat_body(
            model=name,
            messages=checked,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=stream,
            params=params,
        )
        estimate = estimate_chat_tokens(checked, max_tokens)
        use_cache = self._use_cache(cache, deterministic=temperature == 0.0)
        endpoint = "/chat/completions"
        return PreparedCall(
            endpoint,
            "stream" if stream else "chat",
            body,
            name,
            estimate,
            estimate - max_tokens,
            cache_key(endpoint, body) if use_cache else None,
            uuid.uuid4().hex,
        )

    def prepare_embed(
        self, texts: object, *, model: str | None, cache: bool | None
    ) -> PreparedCall:
        self.check_open()
        if isinstance(texts, str):
            texts = [texts]
        if (
            not isinstance(texts, Sequence)
            or not texts
            or not all(isinstance(t, str) for t in texts)
        ):
            raise InvalidRequestError("texts must be a str or a non-empty list of str")
        for i, text in enumerate(texts):
            check_json(f"texts[{i}]", text)  # UTF-8 must encode it (no lone surrogate)
        name = self.model_for(model)
        body = {"model": name, "input": list(texts)}
        estimate = sum(estimate_tokens(t) for t in texts)
        endpoint = "/embeddings"
        key = cache_key(endpoint, body) if self._use_cache(cache, deterministic=True) else None
        return PreparedCall(
            endpoint, "embeddings", body, name, estimate, estimate, key, uuid.uuid4().hex
        )

    def _use_cache(self, cache: bool | None, *, deterministic: bool) -> bool:
        if cache is True and self.cache is None:
            raise InvalidRequestError("cache=True but the client has no cache (set cache_dir=...)")
        if self.cache is None or cache is False:
            return False
        return cache is True or deterministic or self.config.cache_nondeterministic

    # ---- per attempt --------------------------------------------------------------------------
    def url(self, call: PreparedCall) -> str:
        """The URL requested, without any ``user:password@`` (it is in the headers)."""
        return self._base_url + call.endpoint

    def headers(self, call: PreparedCall) -> dict[str, str]:
        """Idempotency key, user agent and credentials: the base URL's Basic auth if it held
        any (it wins over ``api_key``, as when httpx applied it), else ``Bearer <api_key>``."""
        headers = {"Idempotency-Key": call.idempotency_key, "User-Agent": USER_AGENT}
        if self._basic_auth:
            headers["Authorization"] = self._basic_auth
        elif self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def deadline(self) -> float | None:
        total = self.config.total_timeout
        return None if total is None else self.clock() + total

    def seconds_left(self, deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - self.clock())

    def request(
        self, http: httpx.Client | httpx.AsyncClient, call: PreparedCall, deadline: float | None
    ) -> httpx.Request:
        """One attempt's POST, the same for the sync and async clients, streamed or not."""
        return http.build_request(
            "POST",
            self.url(call),
            json=call.body,
            headers=self.headers(call),
            timeout=self.timeout(deadline),
        )

    def timeout(self, deadline: float | None) -> httpx.Timeout:
        """Per-attempt httpx timeouts, each shortened so no attempt outlives the call's deadline."""
        c = self.config
        left = None if deadline is None else max(0.001, deadline - self.clock())

        def cut(value: float) -> float:
            return value if left is None else min(value, left)

        return httpx.Timeout(
            connect=cut(c.connect_timeout),
            read=cut(c.read_timeout),
            write=cut(c.write_timeout),
            pool=cut(c.connect_timeout),
        )

    def controller(self, deadline: float | None) -> RetryController:
        c = self.config
        return RetryController(
            max_retries=c.max_retries,
            base=c.backoff_base,
            cap=c.backoff_cap,
            jitter=c.jitter,
            max_retry_after=c.max_retry_after,
            clock=self.clock,
            deadline=deadline,
            rng=self.rng,
            on_retry=lambda decision: self.stats.retry(decision.reason),
        )

    # ---- the error a call raises -------------------------------------------------------------
    def with_context(self, call: PreparedCall, error: BaseException, attempts: int) -> None:
        """Give an ``APIError`` its call's context: the URL requested and the attempts made.

        The one place that does so, for the retry loop's errors (``give_up``) and a broken
        stream's (``StreamBase._broke``). Most errors know their URL when they are raised; a
        body that is not the protocol (parsed where no URL is at hand) or a broken stream did not.
        """
        if isinstance(error, APIError):
            error.url = error.url or self.url(call)
            error.attempts = attempts

    def give_up(
        self, call: PreparedCall, controller: RetryController, exc: LLMClientError
    ) -> LLMClientError:
        """The error a call raises once retrying stops, its context filled in, counted in the
        stats. The failure retried before it gets its context too: a give-up error quotes it."""
        if controller.retried_error is not None:
            self.with_context(call, controller.retried_error, controller.attempts - 1)
        self.with_context(call, exc, controller.attempts)
        final = controller.final_error(exc)
        self.stats.error(final)
        return final

    # ---- one attempt: its limiter slot and what the response says -----------------------------
    def release(self, permit: Permit | None, tokens: int | None) -> None:
        """Give back a limiter slot; ``tokens`` reconciles the reservation (None: keep it all)."""
        if permit is not None:
            self.limiter.release(permit, tokens)  # type: ignore[union-attr]

    def response_headers(self, response: httpx.Response) -> dict[str, str]:
        """Lower-cased headers, after letting the limiter learn from any rate-limit headers."""
        headers = lower_headers(response.headers)
        if self.limiter is not None and self.config.follow_ratelimit_headers:
            self.limiter.observe_headers(headers)
        return headers

    def raise_for_status(
        self, call: PreparedCall, status: int, headers: Mapping[str, str], content: bytes
    ) -> None:
        if not is_success(status):  # a 3xx too: redirects are not followed
            raise status_error(
                status, headers, content, now_wall=self.wall_clock(), url=self.url(call)
            )

    def check_body_deadline(
        self, call: PreparedCall, deadline: float | None, received: int
    ) -> None:
        """Raise ``APITimeoutError`` if the deadline has passed while a body is still arriving.

        httpx's read timeout bounds each gap between bytes, not the whole body: a server sending
        one byte every 0.1 s held a ``total_timeout=1.0`` call for 6.8 s. The clients read a
        non-streamed body piece by piece and call this after each piece, so a call overruns its
        deadline by at most one read, itself bounded by the read timeout (cut to the time left).
        With no time left to wait, the retry loop then gives up with ``DeadlineExceededError``
        (this error as its ``last_error``), as after any timeout; with ``max_retries=0`` it
        raises this error itself, as it would a read timeout.
        """
        if deadline is not None and self.clock() > deadline:
            raise APITimeoutError(
                f"total_timeout passed while the response body was arriving ({received} bytes "
                "so far)",
                url=self.url(call),
            )

    @staticmethod
    def json_body(content: bytes, headers: Mapping[str, str]) -> tuple[dict, int | None]:
        """The decoded body and the tokens it says were used (None when it has no usage).

        Both steps raise ``ResponseDecodeError`` for a body that is not the protocol (a usage
        count that is no number included), inside the attempt, so it is retried."""
        data = decode_json(content, headers)
        try:
            usage = Usage.from_json(data.get("usage"))
        except ResponseDecodeError as exc:
            exc.request_id = exc.request_id or request_id(headers)
            raise
        return data, usage.total_tokens if usage else None

    # ---- cache and accounting -----------------------------------------------------------------
    def cached_reply(self, call: PreparedCall, *, again: bool = False) -> Any | None:
        """The cache's reply to ``call``, parsed: a ChatCompletion or Embeddings marked
        ``cached``, or a stream's list of ``ChatChunk``s; None on a miss.

        The entry is parsed here, as part of the lookup, so one that reads as JSON but is no
        reply of its kind (``{"foo": 1}`` as a chat reply) is a miss counted in ``cache_errors``,
        as an unreadable one is: the cache can make a call faster, never make it fail.

        A non-streamed call looks here first, then joins the single flight on a miss; the leader
        then looks ``again``, because the flight before it may have filled the cache between the
        two looks (that second look is not counted again). So a hit costs one lookup and no
        flight, and no call sends a request for a reply the cache already holds.
        """
        if call.cache_key is None or self.cache is None:
            return None
        outcome, data = self.cache.get(call.cache_key, call.kind)
        reply = None
        if outcome == "hit":
            try:
                reply = self._from_cache(call, data)
            except ResponseDecodeError as exc:
                logger.warning(
                    "cache entry %s… is not a %s reply (%s); treating as a miss",
                    call.cache_key[:12],
                    call.kind,
                    exc,
                )
                outcome = "error"
        if not again:
            self.stats.count(
                {"hit": "cache_hits", "miss": "cache_misses", "error": "cache_errors"}[outcome]
            )
            if outcome == "error":
                self.stats.count("cache_misses")
        return reply

    @classmethod
    def _from_cache(cls, call: PreparedCall, data: Any) -> Any:
        """A cached body parsed as the reply it stands for; ``ResponseDecodeError`` if it is not."""
        if call.kind == "stream":
            return [parse_chunk(chunk) for chunk in data]
        reply = cls.parse_reply(call, data, {})
        if call.kind == "chat":
            return dataclasses.replace(reply, cached=True, attempts=0)
        return dataclasses.replace(reply, cached=True)

    @staticmethod
    def parse_reply(call: PreparedCall, data: Any, headers: Mapping[str, str]) -> Any:
        """A 200 body as a ChatCompletion or Embeddings; a body of the wrong shape (JSON without
        ``choices``, embeddings with a row missing) is ``ResponseDecodeError``. The clients
        parse inside the attempt, so that error is retried like a body that is not JSON at all,
        and such a body is never cached."""
        if call.kind == "chat":
            return parse_chat(data, request_id=request_id(headers))
        return parse_embeddings(
            data, inputs=len(call.body["input"]), request_id=request_id(headers)
        )

    def cache_put(self, call: PreparedCall, data: Any) -> None:
        if call.cache_key is not None and self.cache is not None:
            self.cache.set(call.cache_key, call.kind, data)

    def account(self, call: PreparedCall, usage: Usage | None) -> None:
        if usage is not None:
            self.stats.usage(call.model, usage.prompt_tokens, usage.completion_tokens)

    @staticmethod
    def coalesced(result: R, **changes: Any) -> R:
        """A waiter's copy of the result its leader got (single flight), marked ``coalesced``.

        A deep copy, so no caller sees another mutate its ``raw`` dict or vectors (each cache hit
        gets its own objects too); ``result`` is the snapshot the leader published as the flight
        landed (``Outcome.for_waiters``), not the reply the leader's own caller holds. Its usage
        is not accounted again: no tokens were spent on it.
        """
        copied: Any = copy.deepcopy(result)  # a ChatCompletion or Embeddings
        return dataclasses.replace(copied, coalesced=True, **changes)


class StreamState:
    """What a stream delivered so far: chunk objects (for the cache), text, usage, completion."""

    def __init__(self, call: PreparedCall) -> None:
        self.call = call
        self.raw_chunks: list[dict[str, Any]] = []
        self.text_parts: list[str] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.completed = False

    def add(self, data: dict[str, Any]) -> ChatChunk:
        chunk = parse_chunk(data)
        self.raw_chunks.append(data)
        self.text_parts.append(chunk.delta)
        self.usage = chunk.usage or self.usage
        self.finish_reason = chunk.finish_reason or self.finish_reason
        return chunk

    def interrupted(
        self, cause: BaseException, *, request_id: str | None = None
    ) -> StreamInterruptedError:
        # never an empty cause: httpx's async ReadError has no message, so name its type
        detail = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        return StreamInterruptedError(
            f"stream broke after {len(self.raw_chunks)} chunk(s): {detail}",
            partial_text="".join(self.text_parts),
            request_id=request_id,
        )

    def final_usage(self) -> Usage:
        """The server's usage if the stream had one, else our estimate (llama.cpp sends none)."""
        if self.usage is not None:
            return self.usage
        completion = estimate_tokens("".join(self.text_parts))
        prompt = self.call.prompt_estimate
        return Usage(prompt, completion, prompt + completion, estimated=True)


class StreamBase:
    """State shared by ``ChatStream`` and ``AsyncChatStream``: they differ only in reading lines.

    ``lines`` is the response's (async) line iterator, or None for a replay of cached chunks.
    ``started`` is the clock reading when the *call* began, before its first attempt: the latency
    recorded when the stream ends covers every attempt, every backoff wait and the whole stream,
    like a non-streamed call's. ``attempts`` is how many attempts opening it took (0: a replay).
    """

    def __init__(
        self,
        client: Any,
        call: PreparedCall | None,
        response: httpx.Response | None,
        permit: Any,
        lines: Any,
        replay: list[ChatChunk] | None,
        started: float = 0.0,
    ) -> None:
        self._client, self._call, self._response, self._permit = client, call, response, permit
        self._lines = lines
        self._decoder = SSEDecoder()
        self._replay = iter(replay) if replay is not None else None
        self._state = StreamState(call) if call is not None else None
        self._first: ChatChunk | None = None  # read (and checked) while the stream was opened
        # [DONE] (or the end after a finish_reason) was read. Its own flag, not "_first is
        # None", which also means "already handed out": a stream whose only event is [DONE]
        # must end there, not read on past the end
        self._done = False
        self._started = started
        self._closed = False
        self.cached = replay is not None
        self.attempts = 0
        self._texts: list[str] = []
        if client is not None:
            abandoned.start()  # a live stream: if it is abandoned, that thread finishes it

    @classmethod
    def replay(cls, chunks: list[ChatChunk]) -> Self:
        return cls(None, None, None, None, replay=chunks)  # type: ignore[call-arg]

    @property
    def text(self) -> str:
        return "".join(self._texts)

    def _parse(self, data: dict | None) -> ChatChunk | None:
        """One event (None at ``[DONE]``) parsed into a chunk and added to the stream's state."""
        if data is None:
            self._done = True
            return None
        return self._state.add(data)  # type: ignore[union-attr]

    def _broke(self, cause: BaseException) -> StreamInterruptedError:
        """The error of a stream that broke after its first chunk (the connection, or a chunk
        that is not the protocol), with its call's context, counted in the stats once, as every
        failed call is (a failure before the first chunk is the retry loop's to count)."""
        core = self._client._core
        error = self._state.interrupted(  # type: ignore[union-attr]
            cause,
            request_id=request_id(self._response.headers),  # type: ignore[union-attr]
        )
        core.with_context(self._call, error, self.attempts)
        core.stats.error(error)
        return error

    def _end(self, *, completed: bool) -> bool:
        """Mark a live stream ended and settle its books; False if it had already ended.

        Gives back the rate-limit slot, accounts the stream's usage, caches a completed stream,
        records the call's latency. It awaits nothing, so no cancellation can cut it short, and
        the clients close the connection only after it. (An await before the release would let
        a second cancellation land in it and skip the release: the slot would be gone for good.)

        Usage is accounted for every stream that delivered a chunk, however it ended: read to
        the end, closed early (a "stop generating" button), broken mid-way, or abandoned. The
        server generated, and bills, the tokens up to that point, so ``stats`` counts them, by
        the rule a completed stream uses (``StreamState.final_usage``: the server's usage if it
        sent one, else the prompt estimate plus chars/4 of the text received). Before, only a
        completed stream added tokens and cost. An incomplete stream still keeps its whole
        limiter reservation (the server may have generated more than reached us) and is never
        cached (a fragment is not the answer).
        """
        if self._closed or self._client is None:
            return False
        self._closed = True
        core, state = self._client._core, self._state
        delivered = completed or state.raw_chunks  # type: ignore[union-attr]
        usage = state.final_usage() if delivered else None  # type: ignore[union-attr]
        core.release(self._permit, usage.total_tokens if completed and usage else None)
        core.account(self._call, usage)  # type: ignore[arg-type]
        if completed:
            core.cache_put(self._call, state.raw_chunks)  # type: ignore[arg-type,union-attr]
        core.stats.latency(core.clock() - self._started)
        return True
