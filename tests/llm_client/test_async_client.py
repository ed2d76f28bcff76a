"""AsyncClient parity: the same behaviour as Client, over the same real sockets."""

from __future__ import annotations

import asyncio
import gc
import json

import httpx
import pytest

from llm_client import (
    APITimeoutError,
    AsyncClient,
    ConfigurationError,
    DeadlineExceededError,
    InvalidRequestError,
    QuotaExhaustedError,
    RedirectError,
    StreamInterruptedError,
    abandoned,
)
from llm_client.fault_server import Fault, FaultServer, ServerLimits
from llm_client.rate_limit import estimate_chat_tokens

USER = [{"role": "user", "content": "hello"}]


def run(coro):
    return asyncio.run(coro)


def test_chat_stream_and_embed(fault_server):
    async def main():
        async with AsyncClient(fault_server.base_url, model="m") as client:
            reply = await client.chat(USER)
            stream = await client.chat([{"role": "user", "content": "a b c"}], stream=True)
            text = "".join([c.delta async for c in stream])
            vectors = (await client.embed(["a", "b"])).vectors
            return reply, text, vectors

    reply, text, vectors = run(main())
    assert reply.text == "echo: hello" and text == "echo: a b c" and len(vectors) == 2


def _on_fake_time(fault_server, fake_time) -> AsyncClient:
    """A client whose clock and backoff sleeps are the test's: retries cost no real time."""
    return AsyncClient(
        fault_server.base_url,
        model="m",
        clock=fake_time.clock,
        sleep=fake_time.asleep,
        backoff_base=0.01,
        seed=0,
    )


def test_retry_after_reread_each_attempt_with_injected_async_sleep(fault_server, fake_time):
    fault_server.script(
        Fault.rate_limited(1.5, "ms"), Fault.rate_limited(2, "seconds"), Fault.reset()
    )

    async def main():
        client = _on_fake_time(fault_server, fake_time)
        return await client.chat(USER)

    reply = run(main())
    assert reply.attempts == 4 and fake_time.sleeps[:2] == [1.5, 2.0]
    assert len({a.key for a in fault_server.arrivals}) == 1


def test_a_reply_of_the_wrong_shape_is_retried(fault_server, fake_time):
    fault_server.script(Fault.wrong_shape(), Fault.malformed())

    async def main():
        client = _on_fake_time(fault_server, fake_time)
        return await client.chat(USER), await client.embed(["a"])

    reply, embedded = run(main())
    assert reply.attempts == 3 and len(embedded.vectors) == 1
    assert fault_server.report().arrivals == 4


def test_non_retryable_is_not_retried(fault_server):
    fault_server.script(Fault.quota())

    async def main():
        await AsyncClient(fault_server.base_url, model="m").chat(USER)

    with pytest.raises(QuotaExhaustedError):
        run(main())
    assert fault_server.report().arrivals == 1


def test_stream_cut_midway_and_cached_replay(fault_server, tmp_path):
    fault_server.script(Fault.stream_cut(2))
    messages = [{"role": "user", "content": "x y z"}]

    async def main():
        client = AsyncClient(fault_server.base_url, model="m", cache_dir=tmp_path)
        with pytest.raises(StreamInterruptedError) as info:
            async for _ in await client.chat(messages, stream=True):
                pass
        live = [c.delta async for c in await client.chat(messages, stream=True)]
        replay_stream = await client.chat(messages, stream=True)
        replay = [c.delta async for c in replay_stream]
        return info.value.partial_text, live, replay, replay_stream.cached

    partial, live, replay, cached = run(main())
    assert partial == "echo: " and live == replay and cached
    assert fault_server.report().arrivals == 2


def test_tasks_share_the_limiter_and_never_exceed_server_limits():
    limits = ServerLimits(rpm=8, tpm=400, window=0.4)
    with FaultServer(limits=limits) as server:

        async def main():
            client = AsyncClient(server.base_url, model="m", rpm=8, tpm=400, rate_window=0.4)
            calls = [
                client.chat([{"role": "user", "content": f"task {i}"}], max_tokens=20)
                for i in range(48)
            ]
            return await asyncio.gather(*calls), client.stats

        replies, stats = run(main())
        report = server.report()
    assert len(replies) == 48 and stats.retries == 0
    assert report.arrivals == 48 and report.limit_violations == 0


def test_total_deadline_bounds_retries_async(fault_server):
    from llm_client import DeadlineExceededError

    fault_server.script(*[Fault.stall(1.0)] * 5)

    async def main():
        client = AsyncClient(fault_server.base_url, model="m", read_timeout=0.3, total_timeout=0.5)
        await client.chat(USER)

    with pytest.raises(DeadlineExceededError):
        run(main())


@pytest.mark.parametrize("first_failure", [Fault.status_code(503), Fault.stream_cut(0)])
def test_a_streamed_calls_latency_covers_its_retries(fault_server, fake_time, first_failure):
    fault_server.script(first_failure, Fault.rate_limited(0.5, "ms"))

    async def main():
        client = _on_fake_time(fault_server, fake_time)
        text = "".join([c.delta async for c in await client.chat(USER, stream=True)])
        return text, client

    text, client = run(main())
    gc.collect()  # a failed attempt's half-built stream recorded nothing, even once finished
    assert abandoned.wait_idle()
    stats = client.stats
    assert text == "echo: hello" and stats.attempts == 3 and stats.latencies_observed == 1
    assert stats.latency_p50_s == pytest.approx(sum(fake_time.sleeps)) and stats.latency_p50_s > 0.5


def test_bad_content_and_max_tokens_fail_before_a_request(fault_server):
    async def main():
        async with AsyncClient(fault_server.base_url, model="m") as client:
            with pytest.raises(InvalidRequestError, match="content"):
                await client.chat([{"role": "user", "content": 42}])
            with pytest.raises(InvalidRequestError, match="max_tokens"):
                await client.chat(USER, max_tokens=2.5, stream=True)

    run(main())
    assert fault_server.report().arrivals == 0


def test_a_request_httpx_cannot_build_is_not_retried_async(fault_server, fake_time):
    async def main():
        client = _on_fake_time(fault_server, fake_time)
        # validation refuses such a URL up front; force one past it (see test_client.py)
        client._core._base_url = "http://"  # what CallCore.url builds the request URL from
        for stream in (False, True):
            with pytest.raises(ConfigurationError, match="UnsupportedProtocol"):
                await client.chat(USER, stream=stream)
        await client.aclose()
        return client.stats.attempts

    assert run(main()) == 2 and fake_time.sleeps == []


def test_a_stream_cancelled_again_while_it_closes_gives_back_its_slot(fault_server):
    # a shutdown that keeps cancelling: the second cancel lands inside ``await aclose()``; were
    # the release after that await, the slot would be lost for good (with rpm=1: every later
    # call would wait for it until its deadline)
    async def main():
        client = AsyncClient(fault_server.base_url, model="m", rpm=1)
        reading = asyncio.Event()

        async def consume():
            async with await client.chat(USER, stream=True) as stream:
                async for _ in stream:
                    reading.set()
                    await asyncio.Event().wait()  # a consumer that never finishes

        task = asyncio.create_task(consume())
        await reading.wait()
        while not task.done():  # cancel again at every point the task stops at while closing
            task.cancel()
            await asyncio.sleep(0)
        return client

    client = run(main())
    assert not client.limiter._in_flight and client.stats.latencies_observed == 1


def test_a_stream_cancelled_again_while_it_opens_gives_back_its_slot():
    # the same order in the cleanup of a failed open (close, then release). It needs a stream
    # whose headers came but whose first event did not, which the fault server cannot hold back
    # (stream_cut(0) resets at once), so a mock does; its close stops at an await, as a socket's
    async def main():
        waiting = asyncio.Event()

        class NoFirstEvent(httpx.AsyncByteStream):
            async def __aiter__(self):
                waiting.set()
                await asyncio.Event().wait()
                yield b""  # never reached

            async def aclose(self) -> None:
                await asyncio.sleep(0)

        def handler(request: httpx.Request) -> httpx.Response:
            headers = {"content-type": "text/event-stream"}
            return httpx.Response(200, headers=headers, stream=NoFirstEvent())

        transport = httpx.MockTransport(handler)
        client = AsyncClient("http://test/v1", model="m", rpm=1, transport=transport)
        task = asyncio.create_task(client.chat(USER, stream=True))
        await waiting.wait()
        while not task.done():
            task.cancel()
            await asyncio.sleep(0)
        return client

    assert not run(main()).limiter._in_flight


def test_an_abandoned_stream_frees_its_slot_and_records_its_latency(fault_server):
    # an abandoned stream is a finished call: its latency is recorded, as ChatStream's is
    async def main():
        client = AsyncClient(fault_server.base_url, model="m", rpm=10)
        stream = await client.chat([{"role": "user", "content": "a b c d"}], stream=True)
        await stream.__anext__()
        del stream
        gc.collect()
        assert abandoned.wait_idle()  # finished on the abandoned-stream thread
        return client

    client = run(main())
    assert not client.limiter._in_flight and client.stats.latencies_observed == 1


def test_an_abandoned_stream_is_not_cached_and_is_accounted_as_far_as_it_went(
    fault_server, tmp_path
):
    # abandoned after its first chunk, a stream's reply is partial: caching it would replay the
    # fragment as the whole answer, so the next identical call goes to the server again. Its
    # usage is accounted as far as it went (the prompt, and the text it delivered: none here,
    # the first chunk only names the role), as for a stream closed early or broken
    messages = [{"role": "user", "content": "a b c d"}]

    async def main():
        client = AsyncClient(fault_server.base_url, model="m", cache_dir=tmp_path / "cache")
        stream = await client.chat(messages, stream=True)
        await stream.__anext__()
        del stream
        gc.collect()
        assert abandoned.wait_idle()  # finished on the abandoned-stream thread
        abandoned_stats, cached_entries = client.stats, len(client._core.cache)
        again = await client.chat(messages, stream=True)
        text = "".join([c.delta async for c in again])
        await client.aclose()
        return abandoned_stats, cached_entries, again.cached, text

    stats, cached_entries, again_cached, text = run(main())
    assert stats.latencies_observed == 1  # it did finish, as an abandoned call
    assert cached_entries == 0  # nothing cached
    prompt = estimate_chat_tokens(messages, max_tokens=1) - 1  # the server sent no usage yet
    assert (stats.tokens["m"].prompt_tokens, stats.tokens["m"].completion_tokens) == (prompt, 0)
    assert not again_cached and text == "echo: a b c d"
    assert fault_server.report().arrivals == 2


def test_a_broken_stream_names_its_cause_and_counts_as_one_error(fault_server):
    # httpx's async ReadError has an empty message: this one read "... 3 chunk(s): " before
    fault_server.script(Fault.stream_cut(3))

    async def main():
        client = AsyncClient(fault_server.base_url, model="m")
        with pytest.raises(StreamInterruptedError) as info:
            async with await client.chat([{"role": "user", "content": "a b c"}], stream=True) as s:
                async for _ in s:
                    pass
        return info.value, client.stats

    err, stats = run(main())
    cause = str(err).split("chunk(s): ")[1]
    assert cause.startswith(type(err.__cause__).__name__)
    assert err.url == f"{fault_server.base_url}/chat/completions" and err.attempts == 1
    assert stats.errors == {"StreamInterruptedError": 1} and stats.latencies_observed == 1


def test_a_chunk_that_is_not_the_protocol_mid_stream_interrupts_the_stream():
    # as in test_client.py: a mock, because the fault server only sends good chunks
    def event(data: dict) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    good = {"choices": [{"index": 0, "delta": {"content": "Hello "}, "finish_reason": None}]}
    body = event(good) + event({"object": "chat.completion.chunk"}) + b"data: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async def main():
        client = AsyncClient(
            "http://test/v1", model="m", rpm=10, transport=httpx.MockTransport(handler)
        )
        with pytest.raises(StreamInterruptedError, match="without a choices list") as info:
            async for _ in await client.chat(USER, stream=True):
                pass
        return info.value, client

    err, client = run(main())
    assert err.partial_text == "Hello " and not client.limiter._in_flight
    assert client.stats.latencies_observed == 1


def test_a_body_trickling_past_the_deadline_stops_at_the_deadline_async(fault_server):
    fault_server.script(Fault.trickle(0.02))

    async def main():
        await AsyncClient(fault_server.base_url, model="m", total_timeout=0.5).chat(USER)

    with pytest.raises(DeadlineExceededError) as info:
        run(main())
    assert isinstance(info.value.last_error, APITimeoutError)


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
def test_a_redirect_is_a_redirect_error_and_never_retried(stream):
    # as Client: a 301 was read as a reply and retried as a malformed body
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(301, headers={"location": "https://test/v1/chat/completions"})

    async def main():
        async with AsyncClient(
            "http://test/v1", model="m", transport=httpx.MockTransport(handler), backoff_base=0
        ) as client:
            with pytest.raises(RedirectError, match="redirected to https://test/v1/chat"):
                await client.chat(USER, stream=stream)

    run(main())
    assert len(sent) == 1


def test_a_stream_whose_only_event_is_done_ends_empty():
    # as Client: it broke with "stream ended without [DONE]" right after the [DONE]
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"data: [DONE]\n\n")

    async def main():
        async with AsyncClient(
            "http://test/v1", model="m", transport=httpx.MockTransport(handler)
        ) as client:
            async with await client.chat(USER, stream=True) as stream:
                chunks = [chunk async for chunk in stream]
            return chunks, client.stats.errors

    assert run(main()) == ([], {})


def test_a_stream_closed_early_is_accounted_as_far_as_it_went_async(fault_server):
    # as test_client.py's: before, a stream left early added no tokens and no cost
    messages = [{"role": "user", "content": "a b c d e f g h"}]

    async def main():
        async with AsyncClient(fault_server.base_url, model="m") as client:
            got = []
            async with await client.chat(messages, stream=True, max_tokens=64) as stream:
                async for chunk in stream:
                    got.append(chunk.delta)
                    if len(got) == 3:
                        break
            return "".join(got), client.stats

    text, stats = run(main())
    prompt = estimate_chat_tokens(messages, max_tokens=64) - 64
    assert text == "echo: a " and stats.tokens["m"].prompt_tokens == prompt
    assert stats.tokens["m"].completion_tokens == 2  # ceil(len("echo: a ") / 4)
