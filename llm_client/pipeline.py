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
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx

from llm_client.cache import ResponseCache, cache_key
from llm_client.config import ClientConfig
from llm_client.errors import (
    ConfigurationError,
    InvalidRequestError,
    LLMClientError,
    StreamInterruptedError,
)
from llm_client.protocol import (
    SSEDecoder,
    chat_body,
    decode_json,
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

    # ---- prepare ------------------------------------------------------------------------------
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
        if isinstance(texts, str):
            texts = [texts]
        if (
            not isinstance(texts, Sequence)
            or not texts
            or not all(isinstance(t, str) for t in texts)
        ):
            raise InvalidRequestError("texts must be a str or a non-empty list of str")
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
        return self.config.base_url + call.endpoint  # type: ignore[operator]

    def headers(self, call: PreparedCall) -> dict[str, str]:
        headers = {"Idempotency-Key": call.idempotency_key, "User-Agent": USER_AGENT}
        if self.config.api_key:
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

    def give_up(self, controller: RetryController, exc: LLMClientError) -> LLMClientError:
        """The error a call raises once retrying stops (counted in the stats)."""
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
        if status >= 400:
            raise status_error(
                status, headers, content, now_wall=self.wall_clock(), url=self.url(call)
            )

    @staticmethod
    def json_body(content: bytes, headers: Mapping[str, str]) -> tuple[dict, int | None]:
        """The decoded body and the tokens it says were used (None when it has no usage)."""
        data = decode_json(content, headers)
        usage = Usage.from_json(data.get("usage"))
        return data, usage.total_tokens if usage else None

    # ---- cache and accounting -----------------------------------------------------------------
    def cache_get(self, call: PreparedCall, *, again: bool = False) -> Any | None:
        """The cached body, or None. ``again``: a second look by a call that has already missed
        (a single-flight leader looks again, see ``cached_reply``); it is not counted twice."""
        if call.cache_key is None or self.cache is None:
            return None
        outcome, data = self.cache.get(call.cache_key, call.kind)
        if again:
            return data
        self.stats.count(
            {"hit": "cache_hits", "miss": "cache_misses", "error": "cache_errors"}[outcome]
        )
        if outcome == "error":
            self.stats.count("cache_misses")
        return data

    def cached_reply(self, call: PreparedCall, *, again: bool = False) -> Any | None:
        """The cache's reply to ``call`` parsed (a ChatCompletion or Embeddings marked
        ``cached``), or None.

        A non-streamed call looks here first, then joins the single flight on a miss; the leader
        then looks ``again``, because the flight before it may have filled the cache between the
        two looks. So a hit costs one lookup and no flight, and no call sends a request for a
        reply the cache already holds.
        """
        data = self.cache_get(call, again=again)
        if data is None:
            return None
        reply = self.parse_reply(call, data, {})
        if call.kind == "chat":
            return dataclasses.replace(reply, cached=True, attempts=0)
        return dataclasses.replace(reply, cached=True)

    @staticmethod
    def parse_reply(call: PreparedCall, data: Any, headers: Mapping[str, str]) -> Any:
        """A 200 body as a ChatCompletion or Embeddings; a body of the wrong shape (JSON without
        ``choices``, say) is ``ResponseDecodeError``. The clients parse inside the attempt, so
        that error is retried like a body that is not JSON at all."""
        if call.kind == "chat":
            return parse_chat(data, request_id=request_id(headers))
        return parse_embeddings(data)

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

    def interrupted(self, cause: BaseException) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"stream broke after {len(self.raw_chunks)} chunk(s): {cause}",
            partial_text="".join(self.text_parts),
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
    like a non-streamed call's.
    """

    def __init__(
        self,
        client: Any,
        call: PreparedCall | None,
        response: httpx.Response | None,
        permit: Any,
        lines: Any,
        replay: list[dict] | None,
        started: float = 0.0,
    ) -> None:
        self._client, self._call, self._response, self._permit = client, call, response, permit
        self._lines = lines
        self._decoder = SSEDecoder()
        self._replay = iter(replay) if replay is not None else None
        self._state = StreamState(call) if call is not None else None
        self._first: dict | None = None
        self._started = started
        self._closed = False
        self.cached = replay is not None
        self._texts: list[str] = []

    @classmethod
    def replay(cls, chunks: list[dict]) -> Self:
        return cls(None, None, None, None, replay=chunks)  # type: ignore[call-arg]

    @property
    def text(self) -> str:
        return "".join(self._texts)
