"""``AsyncClient``: the asyncio twin of ``Client``, same pipeline, same behaviour, awaitable I/O.

    >>> async with AsyncClient("http://127.0.0.1:8765/v1", model="smollm2-135m-instruct") as client:
    ...     reply = await client.chat([{"role": "user", "content": "Say hi"}], max_tokens=16)
    ...     async with await client.chat(messages, stream=True) as stream:
    ...         async for chunk in stream:
    ...             print(chunk.delta, end="")

Every task of one ``AsyncClient`` shares its limiter (FIFO across tasks), cache and stats, and
identical cacheable calls in flight at once share one request (``singleflight.py``).
One client may be used from several event loops (``asyncio.run`` twice, or in two threads):
each loop gets its own connection pool (``connections.py``) and its own flights.
Only the I/O differs from ``client.py``: ``httpx.AsyncClient``, ``tenacity.AsyncRetrying`` with
an injected ``async`` sleep, ``RateLimiter.acquire_async``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from llm_client import abandoned
from llm_client.cache import ResponseCache
from llm_client.config import ClientConfig
from llm_client.connections import LoopConnections
from llm_client.errors import APIConnectionError, LLMClientError, ResponseDecodeError
from llm_client.pipeline import CallCore, PreparedCall, StreamBase
from llm_client.protocol import HTTPX_ERRORS, decode_event, is_success, transport_error
from llm_client.rate_limit import Permit, RateLimiter
from llm_client.responses import ChatChunk, ChatCompletion, Embeddings
from llm_client.singleflight import AsyncFlights
from llm_client.stats import StatsSnapshot

R = TypeVar("R")


class AsyncClient:
    """Async client; constructor arguments as ``Client`` (``sleep`` must be an async callable)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        *,
        config: ClientConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: RateLimiter | None = None,
        cache: ResponseCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int | None = None,
        **overrides: Any,
    ) -> None:
        given = {
            k: v for k, v in (("base_url", base_url), ("api_key", api_key), ("model", model)) if v
        }
        config = (config or ClientConfig()).with_overrides(**given, **overrides)
        self._core = CallCore(
            config, clock=clock, wall_clock=wall_clock, seed=seed, limiter=limiter, cache=cache
        )
        self._sleep = sleep
        # one httpx client (and connection pool) per event loop that calls us: connections.py
        self._connections = LoopConnections(
            transport=transport,
            timeout=self._core.timeout(None),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self._flights = AsyncFlights(self._core.stats)  # identical cacheable calls share one

    @property
    def config(self) -> ClientConfig:
        return self._core.config

    @property
    def stats(self) -> StatsSnapshot:
        return self._core.stats.snapshot()

    @property
    def limiter(self) -> RateLimiter | None:
        return self._core.limiter

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        stream: bool = False,
        cache: bool | None = None,
        **params: Any,
    ) -> ChatCompletion | AsyncChatStream:
        """As ``Client.chat``; with ``stream=True`` await it to get an ``AsyncChatStream``.

        Read it as ``async with await client.chat(..., stream=True) as stream:`` so stopping
        early closes its connection and frees its rate-limit slot at once.
        """
        core = self._core
        call = core.prepare_chat(
            messages,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=stream,
            cache=cache,
            params=params,
        )
        started, deadline = core.clock(), core.deadline()
        core.stats.count("calls")
        if stream:  # never shared: a stream has one reader
            cached = core.cached_reply(call)
            if cached is not None:
                core.stats.latency(core.clock() - started)
                return AsyncChatStream.replay(cached)
            # latency from the call's start: every attempt and backoff wait (see StreamBase)
            opened = functools.partial(self._open_stream, started=started)
            stream, attempts = await self._with_retries(call, opened, deadline)
            stream.attempts = attempts
            return stream
        reply, shared = core.cached_reply(call), False
        if reply is None:
            reply, shared = await self._one_flight(
                call, deadline, lambda: self._fetch(call, deadline)
            )
        if shared:
            reply = core.coalesced(reply, attempts=0)
        latency = core.clock() - started
        core.stats.latency(latency)
        return dataclasses.replace(reply, latency_s=latency)

    async def embed(
        self, texts: str | list[str], model: str | None = None, *, cache: bool | None = None
    ) -> Embeddings:
        core = self._core
        call = core.prepare_embed(texts, model=model, cache=cache)
        started, deadline = core.clock(), core.deadline()
        core.stats.count("calls")
        result, shared = core.cached_reply(call), False
        if result is None:
            result, shared = await self._one_flight(
                call, deadline, lambda: self._fetch(call, deadline)
            )
        core.stats.latency(core.clock() - started)
        return core.coalesced(result) if shared else result

    async def aclose(self) -> None:
        """Close the connections of every event loop that used this client, and the cache; a
        later call is a ``ConfigurationError``."""
        self._core.closed = True
        await self._connections.aclose()
        if self._core.cache is not None:
            self._core.cache.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- a non-streamed call: shared, from the cache, or sent (as in client.py) ---------------
    async def _one_flight(
        self, call: PreparedCall, deadline: float | None, fetch: Callable[[], Awaitable[R]]
    ) -> tuple[R, bool]:
        if call.cache_key is None:  # only calls that would be cached are ever merged
            return await fetch(), False
        return await self._flights.run(
            call.cache_key, fetch, lambda: self._core.seconds_left(deadline)
        )

    async def _fetch(self, call: PreparedCall, deadline: float | None) -> Any:
        """The cache's reply (a second look), else the server's (retried), which is then counted
        and cached: a ChatCompletion with its attempts, or Embeddings."""
        core = self._core
        if (cached := core.cached_reply(call, again=True)) is not None:
            return cached
        (data, reply), attempts = await self._with_retries(call, self._post_json, deadline)
        core.account(call, reply.usage)
        core.cache_put(call, data)
        return dataclasses.replace(reply, attempts=attempts) if call.kind == "chat" else reply

    # ---- the retry loop and one attempt -------------------------------------------------------
    async def _with_retries(
        self,
        call: PreparedCall,
        attempt: Callable[[PreparedCall, float | None], Awaitable[Any]],
        deadline: float | None,
    ) -> tuple[Any, int]:
        core = self._core
        controller = core.controller(deadline)
        try:
            async for try_ in controller.async_retrying(self._sleep):
                with try_:
                    return await attempt(call, deadline), try_.retry_state.attempt_number
        except LLMClientError as exc:
            final = core.give_up(call, controller, exc)
            if final is exc:
                raise
            raise final from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _acquire(self, call: PreparedCall, deadline: float | None) -> Permit | None:
        limiter = self._core.limiter
        permit = None
        if limiter is not None:
            permit = await limiter.acquire_async(
                call.token_estimate,
                deadline=deadline,
                max_server_pause=self._core.config.max_retry_after,
            )
        self._core.stats.count("attempts")
        return permit

    async def _post_json(self, call: PreparedCall, deadline: float | None) -> tuple[dict, Any]:
        """One attempt, as ``Client._post_json``."""
        core = self._core
        permit = await self._acquire(call, deadline)
        used: int | None = None
        try:
            try:
                core.check_open()  # closed while this call waited (backoff, rate limiter)
                http = await self._connections.client()
                request = core.request(http, call, deadline)
                response = await http.send(request, stream=True)
                content = await self._read_body(call, response, deadline)
            except HTTPX_ERRORS as exc:
                raise transport_error(exc, url=core.url(call)) from exc
            headers = core.response_headers(response)
            core.raise_for_status(call, response.status_code, headers, content)
            data, used = core.json_body(content, headers)
            return data, core.parse_reply(call, data, headers)  # a wrong shape is retried too
        finally:
            self._core.release(permit, used)

    async def _read_body(
        self, call: PreparedCall, response: httpx.Response, deadline: float | None
    ) -> bytes:
        """As ``Client._read_body``: the deadline is checked after each piece of the body."""
        body = bytearray()
        try:
            async for piece in response.aiter_bytes():
                body += piece
                self._core.check_body_deadline(call, deadline, len(body))
        finally:
            await response.aclose()
        return bytes(body)

    async def _open_stream(
        self, call: PreparedCall, deadline: float | None, started: float
    ) -> AsyncChatStream:
        core = self._core
        permit = await self._acquire(call, deadline)
        response = stream = None
        try:
            try:
                core.check_open()  # closed while this call waited (backoff, rate limiter)
                http = await self._connections.client()
                request = core.request(http, call, deadline)
                response = await http.send(request, stream=True)
                headers = core.response_headers(response)
                if not is_success(response.status_code):
                    content = await self._read_body(call, response, deadline)
                    core.raise_for_status(call, response.status_code, headers, content)
                stream = AsyncChatStream(self, call, response, permit, started=started)
                # the first chunk is read and checked here: a bad one is retried like a bad body
                stream._first = stream._parse(await stream._next_event())
            except HTTPX_ERRORS as exc:
                raise transport_error(exc, url=core.url(call)) from exc
            return stream
        except BaseException:
            if stream is not None:  # a failed attempt: its __del__ must not end the call
                stream._closed = True
            # release before the await: a second cancellation landing in aclose() would skip it
            self._core.release(permit, None)
            if response is not None:
                await response.aclose()
            raise


class AsyncChatStream(StreamBase):
    """Async iterator of ``ChatChunk``s (live or a cached replay) and an async context manager.

    Use ``async with await client.chat(..., stream=True) as stream:``; after a bare
    ``async for ...: break`` the connection and rate-limit slot stay held until ``aclose()`` or
    garbage collection (see ``ChatStream``).
    """

    def __init__(
        self,
        client: AsyncClient | None,
        call: PreparedCall | None,
        response: httpx.Response | None,
        permit: Permit | None,
        replay: list[ChatChunk] | None = None,
        *,
        started: float = 0.0,
    ) -> None:
        lines = response.aiter_lines() if response is not None else None
        super().__init__(client, call, response, permit, lines, replay, started)

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._replay is not None:
            try:
                chunk = next(self._replay)
            except StopIteration:
                raise StopAsyncIteration from None
            self._texts.append(chunk.delta)
            return chunk
        if self._closed:
            raise StopAsyncIteration
        chunk, self._first = self._first, None
        if chunk is None and not self._done:
            try:
                chunk = self._parse(await self._next_event())
            except (httpx.HTTPError, APIConnectionError, ResponseDecodeError) as exc:
                error = self._broke(exc)  # the connection broke, or a chunk is not the protocol
                await self._finish(completed=False)
                raise error from exc
        if chunk is None:
            await self._finish(completed=True)
            raise StopAsyncIteration
        self._texts.append(chunk.delta)
        return chunk

    async def _next_event(self) -> dict | None:
        async for line in self._lines:  # type: ignore[union-attr]
            payload = self._decoder.feed(line)
            if payload is not None:
                return decode_event(payload)
        payload = self._decoder.flush()
        if payload is not None:
            return decode_event(payload)
        if self._state is not None and self._state.finish_reason is not None:
            return None
        raise APIConnectionError("stream ended without [DONE]")

    async def _finish(self, *, completed: bool) -> None:
        # the books first (no await: a second cancellation cannot skip them), then the connection
        if self._end(completed=completed):
            await self._response.aclose()  # type: ignore[union-attr]

    async def aclose(self) -> None:
        """Stop early: the connection is closed and nothing is cached."""
        if self._replay is not None:
            self._replay = iter(())
        await self._finish(completed=False)

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        """An abandoned stream: free its slot and record its latency on another thread, as
        ``ChatStream``'s ``__del__`` does (closing the connection needs an await, which
        neither ``__del__`` nor that thread can do)."""
        if getattr(self, "_client", None) is not None and not self._closed:
            abandoned.abandon(functools.partial(self._end, completed=False))
