"""The sync client end to end over a real loopback socket against the fault-injection server."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import socket
import threading

import httpx
import pytest

from llm_client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConfigurationError,
    DeadlineExceededError,
    HostNotFoundError,
    InvalidRequestError,
    NotFoundError,
    QuotaExhaustedError,
    RateLimitError,
    RateLimiterTimeoutError,
    RedirectError,
    ResponseDecodeError,
    RetryAfterTooLongError,
    ServerError,
    StreamInterruptedError,
    abandoned,
)
from llm_client.fault_server import Fault
from llm_client.local_server import free_port
from llm_client.rate_limit import estimate_chat_tokens

USER = [{"role": "user", "content": "hello"}]


def make_client(server, fake_time=None, **overrides):
    kwargs = dict(model="m", backoff_base=0.01, read_timeout=2.0, seed=0)
    if fake_time is not None:
        kwargs.update(
            clock=fake_time.clock, sleep=fake_time.sleep, wall_clock=lambda: 1e9 + fake_time.now
        )
    kwargs.update(overrides)
    return Client(server.base_url, **kwargs)


def test_chat_returns_text_usage_model_and_raw(fault_server):
    reply = make_client(fault_server).chat(USER, max_tokens=16)
    assert reply.text == "echo: hello"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == "m" and reply.raw["object"] == "chat.completion"
    assert reply.request_id and reply.attempts == 1 and not reply.cached
    assert fault_server.arrivals[0].key  # an idempotency key was sent


def test_streaming_yields_deltas_that_add_up_to_the_text(fault_server):
    stream = make_client(fault_server).chat(
        [{"role": "user", "content": "one two three"}], stream=True
    )
    deltas = [chunk.delta for chunk in stream]
    assert "".join(deltas) == "echo: one two three" == stream.text
    assert len(deltas) > 3


def test_retry_after_is_reread_from_every_attempt(fault_server, fake_time):
    fault_server.script(
        Fault.rate_limited(1.5, "ms"),
        Fault.rate_limited(2, "seconds"),
        Fault.status_code(503),  # no Retry-After: backoff (base 0.01, third retry = 0.04 * jitter)
        Fault.status_code(502, retry_after=0.7),
    )
    client = make_client(fault_server, fake_time, max_retries=5)
    reply = client.chat(USER)
    assert reply.attempts == 5
    assert fake_time.sleeps[:2] == [1.5, 2.0]
    assert 0.03 <= fake_time.sleeps[2] <= 0.04
    assert fake_time.sleeps[3] == 0.7
    keys = {a.key for a in fault_server.arrivals}
    assert len(keys) == 1, "the idempotency key must be reused across retries"
    stats = client.stats
    assert stats.retries == 4 and stats.attempts == 5 and stats.retry_reasons["HTTP 429"] == 2


def test_retry_after_as_http_date(fault_server, fake_time):
    fault_server.script(Fault.rate_limited(0.5, "date"))
    make_client(fault_server).chat(USER)  # real wall clock: waits until that second is reached
    report = fault_server.report()
    assert report.arrivals == 2 and report.early_retries == 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status_code(400), BadRequestError),
        (Fault.status_code(401), AuthenticationError),
        (Fault.status_code(404), NotFoundError),
        (Fault.status_code(422), BadRequestError),
        (Fault.quota(), QuotaExhaustedError),
        (Fault.status_code(503, should_retry="false"), ServerError),
    ],
)
def test_non_retryable_errors_are_raised_after_one_attempt(fault_server, fake_time, fault, error):
    fault_server.script(fault)
    with pytest.raises(error) as info:
        make_client(fault_server, fake_time).chat(USER)
    assert fault_server.report().arrivals == 1 and fake_time.sleeps == []
    assert info.value.status == fault.status and info.value.request_id and info.value.body["error"]


def test_x_should_retry_true_makes_an_unusual_status_retryable(fault_server, fake_time):
    fault_server.script(Fault.status_code(418, should_retry="true"))
    assert make_client(fault_server, fake_time).chat(USER).attempts == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault.reset(),
        Fault.truncate(),
        Fault.malformed(),
        Fault.wrong_shape(),  # was parsed after the retry loop: not retried, not counted
        Fault.status_code(500),
        Fault.status_code(409),
        Fault.status_code(408),
    ],
)
def test_transient_faults_are_retried_transparently(fault_server, fake_time, fault):
    fault_server.script(fault, fault)
    reply = make_client(fault_server, fake_time).chat(USER)
    assert reply.text == "echo: hello" and reply.attempts == 3


@pytest.mark.parametrize("kind", ["chat", "embed"])
def test_a_reply_of_the_wrong_shape_is_retried_then_counted_as_an_error(
    fault_server, fake_time, kind
):
    fault_server.script(*[Fault.wrong_shape()] * 3)
    client = make_client(fault_server, fake_time, max_retries=2)
    with pytest.raises(ResponseDecodeError):
        client.chat(USER) if kind == "chat" else client.embed(["a"])
    assert fault_server.report().arrivals == 3
    assert client.stats.errors == {"ResponseDecodeError": 1}


def test_errors_keep_their_context_when_retries_run_out(fault_server, fake_time):
    fault_server.script(*[Fault.rate_limited(0.5, "ms")] * 3)
    with pytest.raises(RateLimitError) as info:
        make_client(fault_server, fake_time, max_retries=2).chat(USER)
    err = info.value
    assert err.status == 429 and err.retry_after == 0.5 and err.request_id
    assert "gave up after 2 retries" in " ".join(getattr(err, "__notes__", []))


def test_a_retry_after_above_the_cap_fails_now_and_says_so(fault_server, fake_time):
    fault_server.script(Fault.rate_limited(120, "seconds"))
    with pytest.raises(RetryAfterTooLongError, match=r"above the 60\.0s cap") as info:
        make_client(fault_server, fake_time).chat(USER)
    assert isinstance(info.value.last_error, RateLimitError) and fake_time.sleeps == []


def test_read_timeout_is_retried(fault_server):
    fault_server.script(Fault.stall(1.0))
    reply = make_client(fault_server, read_timeout=0.2).chat(USER)
    assert reply.attempts == 2


def test_read_timeout_surfaces_as_typed_error(fault_server):
    fault_server.script(Fault.stall(1.0))
    with pytest.raises(APITimeoutError):
        make_client(fault_server, read_timeout=0.2, max_retries=0).chat(USER)


def test_total_deadline_bounds_all_retries(fault_server):
    fault_server.script(*[Fault.stall(1.0)] * 10)
    with pytest.raises(DeadlineExceededError) as info:
        make_client(fault_server, read_timeout=0.3, total_timeout=0.5, max_retries=10).chat(USER)
    assert info.value.attempts <= 2 and isinstance(info.value.last_error, APITimeoutError)


def test_an_attempt_gets_timeouts_no_longer_than_the_time_left(fake_time):
    # What bounds an attempt is the timeouts httpx is given: inspect those it was sent
    # (request.extensions["timeout"]) rather than time a stalled request.
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.extensions["timeout"])
        if len(sent) == 1:
            fake_time.now += 6.0  # a slow first attempt: 6 s of the 10 s total gone
            return httpx.Response(503, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"model": "m", "choices": [{"message": {"content": "hi"}}]})

    client = Client(
        "http://test/v1",
        model="m",
        transport=httpx.MockTransport(handler),
        connect_timeout=5.0,
        read_timeout=8.0,
        write_timeout=6.0,
        total_timeout=10.0,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    assert client.chat(USER).text == "hi"
    assert fake_time.sleeps == [1.0]
    assert sent[0] == {"connect": 5.0, "read": 8.0, "write": 6.0, "pool": 5.0}  # 10 s left
    assert sent[1] == {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0}  # 10 - 6 - 1 left


def test_total_deadline_is_checked_before_a_long_wait(fault_server, fake_time):
    fault_server.script(Fault.rate_limited(30, "seconds"))
    with pytest.raises(DeadlineExceededError, match="deadline"):
        make_client(fault_server, fake_time, total_timeout=10).chat(USER)
    assert fake_time.sleeps == []


def test_connection_refused_is_a_connection_error(fake_time):
    client = Client(
        "http://127.0.0.1:9/v1",
        model="m",
        max_retries=1,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    with pytest.raises(APIConnectionError):
        client.chat(USER)
    assert client.stats.attempts == 2


def test_stream_broken_before_the_first_event_is_retried(fault_server, fake_time):
    fault_server.script(Fault.stream_cut(0), Fault.rate_limited(0.2, "ms"))
    stream = make_client(fault_server, fake_time).chat(USER, stream=True)
    assert "".join(c.delta for c in stream) == "echo: hello"
    assert fault_server.report().arrivals == 3


def test_stream_broken_midway_raises_with_the_partial_text_and_is_not_cached(
    fault_server, tmp_path
):
    fault_server.script(Fault.stream_cut(3))
    client = make_client(fault_server, cache_dir=tmp_path)
    messages = [{"role": "user", "content": "a b c d e"}]
    got = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in client.chat(messages, stream=True):
            got.append(chunk.delta)
    assert info.value.partial_text == "".join(got) == "echo: a "
    assert "".join(c.delta for c in client.chat(messages, stream=True)) == "echo: a b c d e"
    assert fault_server.report().arrivals == 2  # the broken stream was not replayed from cache


def test_embeddings_keep_input_order(fault_server):
    result = make_client(fault_server).embed(["a", "b", "c"])
    assert len(result.vectors) == 3 and result.vectors[0] != result.vectors[1]
    assert make_client(fault_server).embed("b").vectors[0] == result.vectors[1]


def test_bad_input_fails_at_the_boundary_without_a_request(fault_server):
    client = make_client(fault_server)
    with pytest.raises(InvalidRequestError, match="got a str"):
        client.chat("hello")
    with pytest.raises(InvalidRequestError, match="role"):
        client.chat([{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        client.chat(USER, max_tokens=0)
    with pytest.raises(InvalidRequestError, match="temperature"):
        client.chat(USER, temperature=3)
    with pytest.raises(InvalidRequestError, match="texts"):
        client.embed([])
    assert fault_server.report().arrivals == 0


def test_configuration_errors_are_specific(monkeypatch):
    for name in ("AIS_LLM_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="AIS_LLM_BASE_URL"):
        Client()
    with pytest.raises(ConfigurationError, match="unknown config"):
        Client("http://x/v1", rmp=3)
    with pytest.raises(ConfigurationError, match="rpm"):
        Client("http://x/v1", rpm=0)


def test_base_url_api_key_and_model_come_from_the_environment(fault_server, monkeypatch):
    monkeypatch.setenv("AIS_LLM_BASE_URL", fault_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("AIS_LLM_MODEL", "env-model")
    client = Client()
    assert client.config.api_key == "sk-test"
    assert client.chat(USER).model == "env-model"


def test_stats_count_tokens_cost_and_latency(fault_server):
    client = make_client(fault_server, prices_per_million={"m": (1.0, 2.0)})
    a = client.chat(USER)
    b = client.chat([{"role": "user", "content": "another one"}])
    s = client.stats
    prompt = a.usage.prompt_tokens + b.usage.prompt_tokens
    completion = a.usage.completion_tokens + b.usage.completion_tokens
    assert s.calls == 2 and s.tokens["m"].prompt_tokens == prompt
    assert s.cost_usd == pytest.approx((prompt * 1.0 + completion * 2.0) / 1e6)
    assert 0 < s.latency_p50_s <= s.latency_p99_s


def test_openai_sdk_speaks_the_same_protocol_to_the_fault_server(fault_server):
    """Conformance cross-check: the official SDK parses what our server sends, as we do."""
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=fault_server.base_url, api_key="x", max_retries=0)
    theirs = sdk.chat.completions.create(model="m", messages=USER, max_tokens=16)
    ours = make_client(fault_server).chat(USER, max_tokens=16)
    assert theirs.choices[0].message.content == ours.text
    assert theirs.usage.total_tokens == ours.usage.total_tokens
    streamed = sdk.chat.completions.create(model="m", messages=USER, max_tokens=16, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == ours.text
    fault_server.script(Fault.rate_limited(1, "seconds"))
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="m", messages=USER, max_tokens=16)


def test_mock_transport_seam_works_offline():
    """The transport seam (httpx.MockTransport) for readers' own unit tests."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"model": "m", "choices": [{"message": {"content": "hi"}}]})

    client = Client("http://test/v1", model="m", transport=httpx.MockTransport(handler))
    assert client.chat(USER).text == "hi"


@pytest.mark.parametrize(
    ("stream", "first_failure"),
    [(False, Fault.status_code(503)), (True, Fault.status_code(503)), (True, Fault.stream_cut(0))],
)
def test_a_calls_latency_covers_every_attempt_and_backoff(
    fault_server, fake_time, stream, first_failure
):
    # stream_cut(0) fails after the stream object exists: its attempt must not count as a call
    fault_server.script(first_failure, Fault.rate_limited(0.5, "ms"))
    client = make_client(fault_server, fake_time)
    reply = client.chat(USER, stream=stream)
    if stream:
        assert "".join(chunk.delta for chunk in reply) == "echo: hello"
    gc.collect()  # a failed attempt's half-built stream is gone, and recorded nothing
    assert abandoned.wait_idle()  # (had it been handed to the abandoned-stream thread)
    waited = sum(fake_time.sleeps)  # the fake clock moves only while the client sleeps
    assert waited > 0.5 and client.stats.attempts == 3
    assert client.stats.latencies_observed == 1
    assert client.stats.latency_p50_s == pytest.approx(waited)
    if not stream:
        assert reply.latency_s == pytest.approx(waited)


def test_an_unreachable_server_error_names_the_url_and_the_attempts(fake_time):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connection refused
    client = Client(url, model="m", clock=fake_time.clock, sleep=fake_time.sleep, max_retries=2)
    with pytest.raises(APIConnectionError) as info:
        client.chat(USER)
    assert info.value.attempts == 3 and info.value.url == f"{url}/chat/completions"
    assert str(info.value).endswith(f"({url}/chat/completions, 3 attempts)")


def test_a_host_name_that_does_not_resolve_is_not_retried(fake_time):
    host = "no-such-host.invalid"  # RFC 2606: never resolves
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            pytest.skip("this machine's resolver fails temporarily (retried by design)")
    client = Client(f"http://{host}/v1", model="m", clock=fake_time.clock, sleep=fake_time.sleep)
    with pytest.raises(HostNotFoundError, match="Check the host name") as info:
        client.chat(USER)
    assert info.value.attempts == 1 and fake_time.sleeps == [] and host in str(info.value)


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": 42},
        {"role": "user", "content": None},
        {"role": "user"},  # content missing
        {"role": "assistant", "content": None},  # None only with tool_calls
        {"role": "user", "content": []},
        {"role": "user", "content": [{"text": "no type"}]},
        {"role": "user", "content": [{"type": "text", "text": 5}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": "not a dict"}]},
        {"role": "user", "content": ["plain str part"]},
    ],
)
def test_bad_message_content_fails_before_a_request(fault_server, fake_time, message):
    # before: sent as is; llama.cpp answered 500, which was retried 5 times (~6.5 s)
    client = make_client(fault_server, fake_time)
    for stream in (False, True):
        with pytest.raises(InvalidRequestError, match=r"messages\[1\]\['content'\]"):
            client.chat([{"role": "system", "content": "be brief"}, message], stream=stream)
    assert fault_server.report().arrivals == 0 and fake_time.sleeps == []


def test_content_parts_and_tool_call_messages_are_sent(fault_server):
    tool_call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert make_client(fault_server).chat(messages, max_tokens=8).text.startswith("echo")
    assert fault_server.report().arrivals == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_tokens": 2.5}, "max_tokens must be an int >= 1"),
        ({"max_tokens": True}, "max_tokens must be an int >= 1"),
        ({"max_tokens": "8"}, "max_tokens must be an int >= 1"),
        ({"max_tokens": float("nan")}, "max_tokens must be an int >= 1"),
        ({"temperature": None}, r"temperature must be a number in \[0, 2\]"),
        ({"temperature": "0"}, r"temperature must be a number in \[0, 2\]"),
        ({"temperature": float("inf")}, r"temperature must be a number in \[0, 2\]"),
        ({"top_p": 1.5}, r"top_p must be a number in \[0, 1\]"),
        ({"top_p": float("nan")}, r"top_p must be a number in \[0, 1\]"),
        ({"presence_penalty": -3}, r"presence_penalty must be a number in \[-2, 2\]"),
        ({"seed": 1.5}, "seed must be an int"),
        # before: sent; the limiter reserved tokens for one choice, the reply kept only one
        ({"n": 4}, "n must be 1 or None, got 4: this client returns one choice"),
        ({"n": 0}, "n must be 1 or None, got 0"),
        ({"logit_bias": {"1": float("nan")}}, "JSON values"),
        ({"stop": {"a", "b"}}, "JSON values"),
    ],
)
def test_max_tokens_and_sampling_parameters_fail_before_a_request(
    fault_server, fake_time, kwargs, match
):
    # before: 2.5 got a retried server 500, True went out as JSON true, nan and "8" raised
    # a ValueError / TypeError from deep inside json and the comparison
    client = make_client(fault_server, fake_time)
    with pytest.raises(InvalidRequestError, match=match):
        client.chat(USER, **kwargs)
    assert fault_server.report().arrivals == 0 and fake_time.sleeps == []


def test_valid_sampling_parameters_and_json_nulls_are_sent(fault_server):
    client = make_client(fault_server)
    client.chat(USER, max_tokens=8, temperature=1, top_p=0.9, seed=7, stop=None, n=1)
    client.chat(USER, n=None)
    assert fault_server.report().arrivals == 2


@pytest.mark.parametrize(
    "base_url", ["http://", "http:///v1", "https://:8080/v1", "http://local host/v1", "ftp://h/v1"]
)
def test_a_base_url_without_an_http_host_is_refused_when_the_client_is_made(base_url):
    # before: "http://" passed, then UnsupportedProtocol was retried 5 times (6.7 s)
    with pytest.raises(ConfigurationError, match="base_url"):
        Client(base_url, model="m")


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_httpx_cannot_build_is_a_configuration_error_not_retried(
    fault_server, fake_time, stream
):
    # ClientConfig now refuses such URLs up front; force one past it (as a gap in validation
    # would) to pin the second line of defence: UnsupportedProtocol is never retried
    client = make_client(fault_server, fake_time)
    client._core._base_url = "http://"  # what CallCore.url builds the request URL from
    with pytest.raises(ConfigurationError, match="UnsupportedProtocol") as info:
        client.chat(USER, stream=stream)
    assert "check base_url" in str(info.value)
    assert client.stats.attempts == 1 and fake_time.sleeps == []
    assert not client.limiter._in_flight  # its rate-limit slot was given back


def test_an_api_key_that_cannot_be_a_header_is_refused_without_echoing_it():
    # a key read from a file keeps its newline; httpx refused the header on every attempt
    with pytest.raises(ConfigurationError, match="index 9 of 10") as info:
        Client("http://127.0.0.1:1/v1", model="m", api_key="sk-secret\n")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "hi", "name": float("nan")},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": b"RIFF"}}]},
        {"role": "user", "content": "hi", "name": {"a set"}},
    ],
    ids=["nan", "bytes", "set"],
)
def test_a_message_that_is_not_json_fails_before_a_request(fault_server, tmp_path, message, cached):
    # before: a bare ValueError / TypeError from inside json (not an LLMClientError) once the
    # attempt had been counted and a rate-limit slot taken; with a cache, from cache_key
    client = make_client(fault_server, cache_dir=tmp_path if cached else None)
    with pytest.raises(InvalidRequestError, match=r"messages\[1\] must be JSON values"):
        client.chat([{"role": "system", "content": "be brief"}, message])
    assert client.stats.attempts == 0 and fault_server.report().arrivals == 0


HALF_EMOJI = json.loads('"smile \\ud83d"')  # a browser's string cut inside an emoji


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": HALF_EMOJI},
        {"role": "user", "content": [{"type": "text", "text": HALF_EMOJI}]},
        {"role": "user", "content": "hi", "name": HALF_EMOJI},
    ],
    ids=["content", "text-part", "other-field"],
)
def test_text_utf8_cannot_encode_fails_before_a_request(fault_server, tmp_path, message, cached):
    # before: a bare UnicodeEncodeError from httpx (after a limiter slot and an attempt) or,
    # with a cache, from cache_key: json.dumps's default ensure_ascii hid the lone surrogate
    client = make_client(fault_server, cache_dir=tmp_path if cached else None, rpm=10)
    with pytest.raises(InvalidRequestError, match=r"messages\[1\] contains text that is not valid"):
        client.chat([{"role": "system", "content": "be brief"}, message])
    assert client.stats.attempts == 0 and fault_server.report().arrivals == 0
    assert client.limiter.usage() == (0, 0)


def test_an_embed_text_utf8_cannot_encode_fails_before_a_request(fault_server):
    client = make_client(fault_server)
    with pytest.raises(InvalidRequestError, match=r"texts\[1\] contains text that is not valid"):
        client.embed(["fine", HALF_EMOJI])
    assert client.stats.attempts == 0 and fault_server.report().arrivals == 0


# ---- streams that break, and what a failed call says about itself -------------------------------


def sse(*events: dict) -> bytes:
    """A complete SSE body: each event as a ``data:`` line, then ``[DONE]``."""
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + (
        b"data: [DONE]\n\n"
    )


def chunk(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


NOT_A_CHUNK = {"object": "chat.completion.chunk"}  # no choices: not the protocol
SSE_HEADERS = {"content-type": "text/event-stream", "x-request-id": "req-1"}


def test_a_chunk_that_is_not_the_protocol_mid_stream_interrupts_the_stream():
    # the fault server only sends good chunks; a proxy can send this one, so a mock serves it.
    # it must end the stream like a broken connection: slot freed, latency recorded
    def handler(request: httpx.Request) -> httpx.Response:
        body = sse(chunk("Hello "), NOT_A_CHUNK, chunk("world"))
        return httpx.Response(200, headers=SSE_HEADERS, content=body)

    client = Client("http://test/v1", model="m", rpm=10, transport=httpx.MockTransport(handler))
    with pytest.raises(StreamInterruptedError, match="without a choices list") as info:
        for _ in client.chat(USER, stream=True):
            pass
    err = info.value
    assert err.partial_text == "Hello " and err.request_id == "req-1" and err.attempts == 1
    stats = client.stats
    assert not client.limiter._in_flight and stats.latencies_observed == 1
    assert stats.errors == {"StreamInterruptedError": 1}


def test_a_first_chunk_that_is_not_the_protocol_is_retried(fake_time):
    # nothing was handed to the caller yet, so it is retried like a body of the wrong shape
    bodies = [sse(NOT_A_CHUNK), sse(chunk("hi"))]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE_HEADERS, content=bodies.pop(0))

    client = Client(
        "http://test/v1",
        model="m",
        transport=httpx.MockTransport(handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    stream = client.chat(USER, stream=True)
    assert "".join(c.delta for c in stream) == "hi" and stream.attempts == 2
    assert client.stats.errors == {}


def test_a_stream_that_breaks_midway_counts_as_one_error(fault_server):
    fault_server.script(Fault.stream_cut(3))
    client = make_client(fault_server)
    messages = [{"role": "user", "content": "a b c d e"}]
    with pytest.raises(StreamInterruptedError), client.chat(messages, stream=True) as stream:
        for _ in stream:
            pass
    stream.close()
    assert list(stream) == []  # ended: reading or closing it again counts nothing more
    assert client.stats.errors == {"StreamInterruptedError": 1}


@pytest.mark.parametrize("ending", ["closed early", "broken midway"])
def test_a_stream_that_ends_early_is_accounted_as_far_as_it_went(fault_server, tmp_path, ending):
    # the server generated (and bills) the tokens it sent; before, only a completed stream
    # added tokens and cost. It keeps its whole limiter reservation and is never cached.
    if ending == "broken midway":
        fault_server.script(Fault.stream_cut(3))
    client = make_client(
        fault_server, cache_dir=tmp_path, tpm=10_000, prices_per_million={"m": (1.0, 2.0)}
    )
    messages = [{"role": "user", "content": "a b c d e f g h"}]
    got = []
    stream = client.chat(messages, stream=True, max_tokens=64)
    with contextlib.suppress(StreamInterruptedError), stream:
        for chunk in stream:
            got.append(chunk.delta)
            if len(got) == 3:
                break  # a "stop generating" button
    text = "".join(got)
    assert text == "echo: a "  # three chunks either way: the role, "echo: ", "a "
    prompt = estimate_chat_tokens(messages, max_tokens=64) - 64  # no usage: the estimate
    completion = math.ceil(len(text) / 4)
    tokens = client.stats.tokens["m"]
    assert (tokens.prompt_tokens, tokens.completion_tokens) == (prompt, completion)
    assert client.stats.cost_usd == pytest.approx((prompt * 1.0 + completion * 2.0) / 1e6)
    assert client.limiter.usage() == (1, prompt + 64)  # the whole reservation, kept
    assert len(client._core.cache) == 0


def test_a_broken_stream_is_accounted_at_the_servers_usage_when_one_came():
    # the usage chunk arrived, then the connection closed before [DONE]
    usage = '{"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}'
    events = [
        '{"choices": [{"delta": {"content": "hi"}, "finish_reason": null}]}',
        '{"choices": [], "usage": ' + usage + "}",
    ]
    content = "".join(f"data: {event}\n\n" for event in events).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})

    client = Client("http://test/v1", model="m", transport=httpx.MockTransport(handler))
    stream = client.chat(USER, stream=True)
    with pytest.raises(StreamInterruptedError, match="without \\[DONE\\]"), stream:
        list(stream)
    tokens = client.stats.tokens["m"]
    assert (tokens.prompt_tokens, tokens.completion_tokens) == (7, 5)


def test_an_abandoned_stream_frees_its_slot_and_records_its_latency(fault_server):
    # parity with AsyncChatStream (see test_async_client.py): the latency runs until the
    # stream is exhausted, closed, broken or, here, garbage collected
    client = make_client(fault_server, rpm=10)
    stream = client.chat([{"role": "user", "content": "a b c d"}], stream=True)
    next(stream)
    del stream
    gc.collect()
    assert abandoned.wait_idle()  # the collector hands it to another thread to finish
    assert not client.limiter._in_flight and client.stats.latencies_observed == 1


def test_a_stream_collected_inside_a_held_lock_is_finished_after_it_without_deadlock(
    fault_server,
):
    # The collector runs __del__ wherever the last reference goes, here inside the stats' and
    # the limiter's locks. They are not re-entrant: a __del__ that took either would wait for
    # its own thread forever. It takes neither; the stream is finished once they are free.
    client = make_client(fault_server, rpm=10)
    streams = [client.chat([{"role": "user", "content": "a b c d"}], stream=True)]
    next(streams[0])

    def drop_inside_the_locks():
        with client._core.stats._lock, client.limiter._lock:
            streams.clear()  # the last reference: __del__ runs here, in this thread

    worker = threading.Thread(target=drop_inside_the_locks, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "__del__ deadlocked on a lock its own thread held"
    assert abandoned.wait_idle()
    assert not client.limiter._in_flight and client.stats.latencies_observed == 1


@pytest.mark.parametrize(
    ("faults", "stream", "error"),
    [
        ([Fault.malformed()] * 2, False, ResponseDecodeError),
        ([Fault.wrong_shape()] * 2, False, ResponseDecodeError),
        ([Fault.stream_cut(2)], True, StreamInterruptedError),
    ],
    ids=["malformed", "wrong_shape", "stream_cut"],
)
def test_the_error_a_call_raises_names_the_url_the_attempts_and_the_request_id(
    fault_server, fake_time, faults, stream, error
):
    # every final error carries the call's URL and attempts, a broken stream's included
    fault_server.script(*faults)
    client = make_client(fault_server, fake_time, max_retries=1)
    with pytest.raises(error) as info:
        reply = client.chat([{"role": "user", "content": "a b c d"}], stream=stream)
        if stream:
            list(reply)
    err, url = info.value, f"{fault_server.base_url}/chat/completions"
    attempts = len(faults)
    assert err.url == url and err.attempts == attempts and err.request_id
    assert f"({url}, request_id={err.request_id}, {attempts} attempt" in str(err)


def test_a_retry_after_above_the_cap_names_the_url_and_the_attempts(fault_server, fake_time):
    fault_server.script(Fault.rate_limited(120, "seconds"))
    with pytest.raises(RetryAfterTooLongError) as info:
        make_client(fault_server, fake_time).chat(USER)
    assert f"({fault_server.base_url}/chat/completions, request_id=" in str(info.value)
    assert str(info.value).endswith(", 1 attempt)") and info.value.attempts == 1


def test_a_rate_limiter_timeout_on_a_retry_keeps_the_error_before_it(fault_server):
    # rpm=1: the retry after the 500 waits for the only slot (held a window after the 500) until
    # the deadline. The 500 must survive as last_error and in the message
    fault_server.script(Fault.status_code(500))
    client = make_client(fault_server, rpm=1, total_timeout=0.3)
    with pytest.raises(RateLimiterTimeoutError) as info:
        client.chat(USER)
    err = info.value
    assert isinstance(err.last_error, ServerError) and err.attempts == 1
    assert "last error: HTTP 500" in str(err) and fault_server.base_url in str(err)
    assert fault_server.report().arrivals == 1 and not client.limiter._in_flight


@pytest.mark.parametrize(
    ("indices", "match"),
    [
        ([0], "1 row"),
        ([0, 1, 2], "3 row"),
        ([0, 0], r"indices \[0, 0\]"),
        ([1, 2], r"indices \[1, 2\]"),
    ],
)
def test_embeddings_without_one_row_per_text_are_retried_and_never_cached(
    tmp_path, fake_time, indices, match
):
    # the fault server always answers one row per text; a proxy that drops one is mocked.
    # accepted, 2 texts would get 1 vector, and that reply would be cached
    def handler(request: httpx.Request) -> httpx.Response:
        rows = [{"index": i, "embedding": [1.0, float(i)]} for i in indices]
        return httpx.Response(200, json={"data": rows, "model": "e"})

    client = Client(
        "http://test/v1",
        model="e",
        cache_dir=tmp_path,
        transport=httpx.MockTransport(handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        max_retries=1,
    )
    with pytest.raises(ResponseDecodeError, match=match):
        client.embed(["first text", "second text"])
    assert client.stats.attempts == 2 and len(client._core.cache) == 0


def test_a_body_trickling_past_the_deadline_stops_at_the_deadline(fault_server):
    # every byte comes well within the read timeout, so only the deadline checked between the
    # pieces of the body stops the call; without it, total_timeout=0.5 waits for the whole body
    fault_server.script(Fault.trickle(0.02))
    with pytest.raises(DeadlineExceededError) as info:
        make_client(fault_server, total_timeout=0.5).chat(USER)
    last = info.value.last_error
    assert isinstance(last, APITimeoutError) and "while the response body was arriving" in str(last)
    assert fault_server.report().arrivals == 1


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(
    ("status", "location", "target"),
    [
        (301, "https://test/v1/chat/completions", "https://test/v1/chat/completions"),
        (307, "/v2/chat/completions", "http://test/v2/chat/completions"),  # relative: resolved
    ],
)
def test_a_redirect_is_a_redirect_error_naming_where_and_never_retried(
    fake_time, stream, status, location, target
):
    # before: httpx does not follow redirects and only >= 400 was an error, so the 301 page was
    # read as a reply: 5 attempts, then ResponseDecodeError ("response is not JSON"), or,
    # streamed, "stream ended without [DONE]"
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        page = b"<html><title>301 Moved Permanently</title></html>"
        return httpx.Response(status, headers={"location": location}, content=page)

    client = Client(
        "http://test/v1",
        model="m",
        transport=httpx.MockTransport(handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    with pytest.raises(RedirectError) as info:
        client.chat(USER, stream=stream)
    error = info.value
    assert len(sent) == 1 and fake_time.sleeps == []  # not retried
    assert error.status == status and error.location == location
    assert f"redirected to {target}" in str(error) and "set base_url" in str(error)
    assert "<html>" not in str(error)
    assert client.stats.errors == {"RedirectError": 1}


@pytest.mark.parametrize(
    "usage", [{"prompt_tokens": "n/a"}, {"prompt_tokens": {"cached": 1}}, {"prompt_tokens": 1e999}]
)
def test_a_reply_whose_usage_is_not_the_protocol_is_retried_and_counted(fake_time, usage):
    # before: a bare ValueError / TypeError / OverflowError, not retried, not in stats.errors
    def body(usage_json: str) -> bytes:
        reply = '{"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]'
        return f'{reply}, "model": "m", "usage": {usage_json}}}'.encode()

    replies = [body(json.dumps(usage)), body('{"prompt_tokens": 1, "completion_tokens": 1}')]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=replies.pop(0), headers={"x-request-id": "req-9"})

    client = Client(
        "http://test/v1",
        model="m",
        transport=httpx.MockTransport(handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    reply = client.chat(USER)
    assert reply.text == "ok" and reply.attempts == 2 and reply.usage.total_tokens == 2
    assert client.stats.retry_reasons == {"malformed response body": 1}

    replies[:] = [body(json.dumps(usage))]
    transport = httpx.MockTransport(handler)
    once = Client("http://test/v1", model="m", max_retries=0, transport=transport)
    with pytest.raises(ResponseDecodeError, match="is not a token count") as info:
        once.chat(USER)
    assert info.value.request_id == "req-9" and once.stats.errors == {"ResponseDecodeError": 1}


@pytest.mark.parametrize("usage", ['{"prompt_tokens": "n/a"}', '{"prompt_tokens": 1e999}'])
def test_a_stream_chunk_whose_usage_is_not_the_protocol_interrupts_the_stream(usage):
    # before: 1e999 escaped the stream as a bare OverflowError, its slot never given back
    events = [
        '{"choices": [{"delta": {"content": "a"}, "finish_reason": null}]}',
        '{"choices": [], "usage": ' + usage + "}",
        "[DONE]",
    ]
    content = "".join(f"data: {event}\n\n" for event in events).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})

    client = Client("http://test/v1", model="m", rpm=10, transport=httpx.MockTransport(handler))
    stream = client.chat(USER, stream=True)
    with pytest.raises(StreamInterruptedError, match="is not a token count") as info, stream:
        list(stream)
    assert info.value.partial_text == "a"
    assert client.stats.errors == {"StreamInterruptedError": 1}
    assert client.limiter.usage()[0] == 1  # released (held one window), not in flight
    assert not client.limiter._in_flight


def test_a_reply_whose_content_is_not_a_str_is_retried_and_never_cached(fake_time, tmp_path):
    # before: text became the list and was cached; {"choices": [{}]} cached the text ""
    replies = [
        {"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}]},
        {"choices": [{}]},
        {"choices": [{"message": {"content": "hi"}}]},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=replies.pop(0))

    client = Client(
        "http://test/v1",
        model="m",
        cache_dir=tmp_path,
        transport=httpx.MockTransport(handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    reply = client.chat(USER)
    assert reply.text == "hi" and reply.attempts == 3
    assert client.stats.retry_reasons == {"malformed response body": 2}
    again = client.chat(USER)
    assert again.cached and again.text == "hi"


def test_a_stream_whose_only_event_is_done_ends_empty_and_is_cached(tmp_path):
    # before: StreamInterruptedError "stream ended without [DONE]", right after the [DONE]
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=b"data: [DONE]\n\n")

    transport = httpx.MockTransport(handler)
    client = Client("http://test/v1", model="m", rpm=10, cache_dir=tmp_path, transport=transport)
    with client.chat(USER, stream=True) as stream:
        assert list(stream) == [] and stream.text == ""
    assert client.stats.errors == {} and not client.limiter._in_flight
    with client.chat(USER, stream=True) as replay:
        assert replay.cached and list(replay) == []
    assert len(sent) == 1


SECRETS = ("sk-live-0123456789abcdef", "s3cret-pass")  # an api_key, a password in the base_url


def test_credentials_never_reach_a_connection_errors_message_nor_a_log_line(fake_time, caplog):
    # before: "ConnectError: [Errno 111] Connection refused (http://alice:s3cret-pass@127.0.0.1:
    # PORT/v1/chat/completions, 2 attempts)", which rag copies into its GenerationError
    port = free_port()  # nothing listens there: connection refused
    client = Client(
        f"http://alice:s3cret-pass@127.0.0.1:{port}/v1",
        api_key=SECRETS[0],
        model="m",
        max_retries=1,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    with caplog.at_level("DEBUG"), pytest.raises(APIConnectionError) as info:
        client.chat(USER)
    assert info.value.attempts == 2
    assert info.value.url == f"http://127.0.0.1:{port}/v1/chat/completions"
    texts = [str(info.value), repr(info.value), caplog.text, repr(client.config)]
    assert caplog.records and not [t for t in texts for s in SECRETS if s in t]


def test_a_base_urls_password_is_sent_as_basic_auth_and_never_logged(fault_server, caplog):
    # before: httpx requested http://alice:s3cret-pass@.../chat/completions and logged that URL
    # on every attempt ("HTTP Request: POST http://alice:s3cret-pass@...")
    fault_server.script(Fault.status_code(503), None)
    url = fault_server.base_url.replace("http://", "http://alice:s3cret-pass@")
    client = Client(url, api_key=SECRETS[0], model="m", backoff_base=0.0, max_retries=1)
    with caplog.at_level("DEBUG"):
        assert client.chat(USER).attempts == 2
    assert "HTTP Request: POST" in caplog.text and "retrying" in caplog.text
    assert not [s for s in SECRETS if s in caplog.text]
    # what goes on the wire: the bare URL, and the same Basic header httpx built from the URL
    # (it wins over api_key, as it did when httpx applied it)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers["authorization"]))
        return httpx.Response(200, json={"model": "m", "choices": [{"message": {"content": "hi"}}]})

    offline = Client(
        "http://al%40ice:s3cret-pass@test/v1",
        api_key=SECRETS[0],
        model="m",
        transport=httpx.MockTransport(handler),
    )
    offline.chat(USER)
    assert seen == [("http://test/v1/chat/completions", "Basic YWxAaWNlOnMzY3JldC1wYXNz")]
