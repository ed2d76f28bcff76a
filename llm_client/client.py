"""``Client``: the synchronous OpenAI-compatible client (chat, streaming chat, embeddings).

Quick start (a local server: ``python -m llm_client serve-local --port 8765``)::

    >>> from llm_client import Client
    >>> client = Client("http://127.0.0.1:8765/v1", model="smollm2-135m-instruct",
    ...                 rpm=600, cache_dir=".llm-cache")
    >>> reply = client.chat([{"role": "user", "content": "Say hi"}], max_tokens=16)
    >>> reply.text, reply.usage.total_tokens          # doctest: +SKIP
    ('Hi there! How can I help you today?', 41)
    >>> with client.chat([{"role": "user", "content": "Count to 3"}], stream=True) as stream:
    ...     for chunk in stream:
    ...         print(chunk.delta, end="")            # doctest: +SKIP

Use a stream in a ``with`` block: leaving it (a ``break``, an exception) closes the connection
and gives back the rate-limit slot. A bare ``for chunk in stream: break`` does not; the stream
holds both until ``close()`` or garbage collection, and other calls may wait for that slot.

The pipeline (prepare, cache, retries, rate limit, accounting) lives in ``pipeline.py`` and is
shared with ``AsyncClient``; this file is only the blocking I/O around it. ``transport=`` accepts
any ``httpx.BaseTransport`` (e.g. ``httpx.MockTransport``), ``sleep=``/``clock=`` are injected.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from llm_client import abandoned
from llm_client.cache import ResponseCache
from llm_client.config import ClientConfig
from llm_client.errors import APIConnectionError, LLMClientError, ResponseDecodeError
from llm_client.pipeline import CallCore, PreparedCall, StreamBase
from llm_client.protocol import HTTPX_ERRORS, decode_event, is_success, transport_error
from llm_client.rate_limit import Permit, RateLimiter
from llm_client.responses import ChatChunk, ChatCompletion, Embeddings
from llm_client.singleflight import Flights
from llm_client.stats import StatsSnapshot

R = TypeVar("R")


class Client:
    """Blocking client. Thread-safe: share one instance; its limiter and stats are shared too.

    ``base_url`` includes ``/v1``; defaults come from ``AIS_LLM_BASE_URL`` / ``OPENAI_BASE_URL``,
    ``OPENAI_API_KEY`` and ``AIS_LLM_MODEL``. Any ``ClientConfig`` field can be given as a
    keyword (``rpm=``, ``total_timeout=``, ``cache_dir=`` ...).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        *,
        config: ClientConfig | None = None,
        transport: httpx.BaseTransport | None = None,
        limiter: RateLimiter | None = None,
        cache: ResponseCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = httpx.Client(transport=transport, timeout=self._core.timeout(None))
        self._flights = Flights(self._core.stats)  # identical cacheable calls share one request

    @property
    def config(self) -> ClientConfig:
        return self._core.config

    @property
    def stats(self) -> StatsSnapshot:
        """A snapshot of the counters (tokens, cost, attempts, retries, cache, latency)."""
        return self._core.stats.snapshot()

    @property
    def limiter(self) -> RateLimiter | None:
        return self._core.limiter

    # ---- public calls -------------------------------------------------------------------------
    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        stream: bool = False,
        cache: bool | None = None,
        **params: Any,
    ) -> ChatCompletion | ChatStream:
        """One chat completion; ``stream=True`` returns a ``ChatStream`` of ``ChatChunk``s.

        Read a stream inside ``with client.chat(..., stream=True) as stream:`` so that stopping
        early (``break``, an exception) closes it at once (see ``ChatStream``).

        ``cache``: None = cache when the client has a cache and temperature is 0 (or
        ``cache_nondeterministic``); True = cache even at temperature > 0; False = bypass.
        A cacheable call made while an identical one is in flight (another thread) waits for it
        and shares its reply (``coalesced=True``; see ``singleflight.py``).
        Extra keyword arguments (top_p, stop, seed, response_format ...) go into the body.

        Checked before anything is sent (``InvalidRequestError``): each message's role and
        content (a str, or a list of content parts), ``max_tokens`` an int >= 1, ``temperature``
        a number in [0, 2], top_p / penalties / seed when given, ``n`` 1 or None (one choice
        per call), and every message and extra value plain JSON (no NaN or inf, bytes or sets).
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
                return ChatStream.replay(cached)
            # the stream's clock starts now, not after the attempt that worked: its latency
            # covers every attempt and backoff wait, like a non-streamed call's
            opened = functools.partial(self._open_stream, started=started)
            stream, attempts = self._with_retries(call, opened, deadline)
            stream.attempts = attempts
            return stream
        reply, shared = core.cached_reply(call), False
        if reply is None:
            reply, shared = self._one_flight(call, deadline, lambda: self._fetch(call, deadline))
        if shared:
            reply = core.coalesced(reply, attempts=0)
        latency = core.clock() - started
        core.stats.latency(latency)
        return dataclasses.replace(reply, latency_s=latency)

    def embed(
        self, texts: str | list[str], model: str | None = None, *, cache: bool | None = None
    ) -> Embeddings:
        """Embed one text or a list; ``vectors[i]`` belongs to ``texts[i]``."""
        core = self._core
        call = core.prepare_embed(texts, model=model, cache=cache)
        started, deadline = core.clock(), core.deadline()
        core.stats.count("calls")
        result, shared = core.cached_reply(call), False
        if result is None:
            result, shared = self._one_flight(call, deadline, lambda: self._fetch(call, deadline))
        core.stats.latency(core.clock() - started)
        return core.coalesced(result) if shared else result

    def close(self) -> None:
        """Close the connections and the cache; a later call is a ``ConfigurationError``."""
        self._core.closed = True
        self._http.close()
        if self._core.cache is not None:
            self._core.cache.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- a non-streamed call: shared, from the cache, or sent ---------------------------------
    def _one_flight(
        self, call: PreparedCall, deadline: float | None, fetch: Callable[[], R]
    ) -> tuple[R, bool]:
        """``(fetch(), False)``, or ``(its result, True)`` when an identical cacheable call was
        already in flight and this one waited for it (see ``singleflight.py``)."""
        if call.cache_key is None:  # only calls that would be cached are ever merged
            return fetch(), False
        return self._flights.run(call.cache_key, fetch, lambda: self._core.seconds_left(deadline))

    def _fetch(self, call: PreparedCall, deadline: float | None) -> Any:
        """The cache's reply (a second look), else the server's (retried), which is then counted
        and cached: a ChatCompletion with its attempts, or Embeddings."""
        core = self._core
        if (cached := core.cached_reply(call, again=True)) is not None:
            return cached
        (data, reply), attempts = self._with_retries(call, self._post_json, deadline)
        core.account(call, reply.usage)
        core.cache_put(call, data)
        return dataclasses.replace(reply, attempts=attempts) if call.kind == "chat" else reply

    # ---- the retry loop and one attempt -------------------------------------------------------
    def _with_retries(
        self,
        call: PreparedCall,
        attempt: Callable[[PreparedCall, float | None], Any],
        deadline: float | None,
    ) -> tuple[Any, int]:
        """Run ``attempt`` under the retry policy until the call's ``deadline``; returns (its
        result, attempts made)."""
        core = self._core
        controller = core.controller(deadline)
        try:
            for try_ in controller.retrying(self._sleep):
                with try_:
                    return attempt(call, deadline), try_.retry_state.attempt_number
        except LLMClientError as exc:
            final = core.give_up(call, controller, exc)
            if final is exc:
                raise
            raise final from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _acquire(self, call: PreparedCall, deadline: float | None) -> Permit | None:
        """A rate-limit slot (None without a limiter). Call it inside the ``try`` that releases
        it: a Ctrl-C can land on any bytecode, and one between admission and that ``try`` used
        to keep the slot in flight for the client's life (one less rpm; with rpm=1, every later
        call timed out). Python-to-Python returns check no signals, so storing the result is
        safe; ``RateLimiter.acquire`` gives back a slot it admitted but did not return."""
        limiter = self._core.limiter
        if limiter is None:
            return None
        # a server pause above max_retry_after fails here, at once
        return limiter.acquire(
            call.token_estimate,
            deadline=deadline,
            max_server_pause=self._core.config.max_retry_after,
        )

    def _post_json(self, call: PreparedCall, deadline: float | None) -> tuple[dict, Any]:
        """One attempt: send, check the status, decode; returns (the body, its parsed reply)."""
        core = self._core
        permit = None
        used: int | None = None  # failed attempts keep their full reservation (conservative)
        try:
            permit = self._acquire(call, deadline)
            core.stats.count("attempts")
            try:
                core.check_open()  # closed while this call waited (backoff, rate limiter)
                request = core.request(self._http, call, deadline)
                response = self._http.send(request, stream=True)
                content = self._read_body(call, response, deadline)
            except HTTPX_ERRORS as exc:
                raise transport_error(exc, url=core.url(call)) from exc
            headers = core.response_headers(response)
            core.raise_for_status(call, response.status_code, headers, content)
            data, used = core.json_body(content, headers)
            return data, core.parse_reply(call, data, headers)  # a wrong shape is retried too
        finally:
            self._core.release(permit, used)

    def _read_body(
        self, call: PreparedCall, response: httpx.Response, deadline: float | None
    ) -> bytes:
        """The whole body, read piece by piece with the call's deadline checked after each piece
        (``CallCore.check_body_deadline``), then the response closed."""
        body = bytearray()
        try:
            for piece in response.iter_bytes():
                body += piece
                self._core.check_body_deadline(call, deadline, len(body))
        finally:
            response.close()
        return bytes(body)

    def _open_stream(
        self, call: PreparedCall, deadline: float | None, started: float
    ) -> ChatStream:
        """Send the request and read up to the first event; failures so far are retryable."""
        core = self._core
        permit = response = stream = None
        try:
            permit = self._acquire(call, deadline)  # in the try: see _acquire
            core.stats.count("attempts")
            try:
                core.check_open()  # closed while this call waited (backoff, rate limiter)
                request = core.request(self._http, call, deadline)
                response = self._http.send(request, stream=True)
                headers = core.response_headers(response)
                if not is_success(response.status_code):
                    content = self._read_body(call, response, deadline)
                    core.raise_for_status(call, response.status_code, headers, content)
                stream = ChatStream(self, call, response, permit, started=started)
                # the first chunk is read and checked here: a bad one is retried like a bad body
                stream._first = stream._parse(stream._next_event())
            except HTTPX_ERRORS as exc:
                raise transport_error(exc, url=core.url(call)) from exc
            return stream
        except BaseException:
            if stream is not None:  # a failed attempt, not the call: its __del__ must not
                stream._closed = True  # finish it, or each failed attempt records a latency
            self._core.release(permit, None)  # before closing, as in ChatStream._finish
            if response is not None:
                response.close()
            raise


class ChatStream(StreamBase):
    """An iterator of ``ChatChunk``s and a context manager. ``text`` is everything so far.

    Either live (reading server-sent events) or a replay of a cached stream, chunk for chunk.
    A live stream that breaks mid-way (the connection, or a chunk that is not the protocol)
    raises ``StreamInterruptedError`` carrying the partial text; only a stream that reached
    ``[DONE]`` (or a finish_reason) is cached and reconciled with the limiter. ``attempts`` is how
    many attempts opening it took (0 for a replay), as on ``ChatCompletion``.

    A live stream holds an HTTP connection and a rate-limit slot until it is exhausted or
    closed. Use it as ``with client.chat(..., stream=True) as stream:``: leaving the block (a
    ``break``, an exception) closes it. Python does not tell an iterator that a ``for`` loop was
    left, so after a bare ``for chunk in stream: break`` the slot stays held while ``stream`` is
    referenced; once the stream is garbage collected, ``__del__`` has it closed (the slot freed,
    the call's latency recorded, as ``close()`` does) on a separate thread (``abandoned.py``).
    """

    def __init__(
        self,
        client: Client | None,
        call: PreparedCall | None,
        response: httpx.Response | None,
        permit: Permit | None,
        replay: list[ChatChunk] | None = None,
        *,
        started: float = 0.0,
    ) -> None:
        lines = response.iter_lines() if response is not None else None
        super().__init__(client, call, response, permit, lines, replay, started)

    def __iter__(self) -> Iterator[ChatChunk]:
        return self

    def __next__(self) -> ChatChunk:
        if self._replay is not None:
            chunk = next(self._replay)
            self._texts.append(chunk.delta)
            return chunk
        if self._closed:
            raise StopIteration
        chunk, self._first = self._first, None
        if chunk is None and not self._done:
            try:
                chunk = self._parse(self._next_event())
            except (httpx.HTTPError, APIConnectionError, ResponseDecodeError) as exc:
                error = self._broke(exc)  # the connection broke, or a chunk is not the protocol
                self._finish(completed=False)
                raise error from exc
        if chunk is None:
            self._finish(completed=True)
            raise StopIteration
        self._texts.append(chunk.delta)
        return chunk

    def _next_event(self) -> dict | None:
        """The next event's JSON; None at ``[DONE]``. A stream that just ends is an error unless a
        finish_reason was already seen (some servers omit ``[DONE]``)."""
        for line in self._lines:  # type: ignore[union-attr]
            payload = self._decoder.feed(line)
            if payload is not None:
                return decode_event(payload)
        payload = self._decoder.flush()
        if payload is not None:
            return decode_event(payload)
        if self._state is not None and self._state.finish_reason is not None:
            return None
        raise APIConnectionError("stream ended without [DONE]")

    def _finish(self, *, completed: bool) -> None:
        if self._end(completed=completed):  # the books first, then the connection
            self._response.close()  # type: ignore[union-attr]

    def close(self) -> None:
        """Stop early: the connection is closed and nothing is cached."""
        if self._replay is not None:
            self._replay = iter(())
        self._finish(completed=False)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # an abandoned stream must not hold its rate-limit slot forever; it is closed on
        # another thread, since the collector may run this inside a lock close() takes
        if getattr(self, "_client", None) is not None and not self._closed:
            abandoned.abandon(self.close)
