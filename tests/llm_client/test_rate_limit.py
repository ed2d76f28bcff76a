"""The limiter's arithmetic with a fake clock, then threads against the server's own limits."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_client import (
    AsyncClient,
    Client,
    ConfigurationError,
    InvalidRequestError,
    RateLimitError,
    RateLimiterTimeoutError,
    RetryAfterTooLongError,
)
from llm_client.fault_server import FaultServer, ServerLimits
from llm_client.rate_limit import (
    AUDIO_BYTES_PER_TOKEN,
    IMAGE_PART_TOKENS,
    RateLimiter,
    estimate_chat_tokens,
    estimate_content_tokens,
    estimate_tokens,
    parse_reset_duration,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admit(limiter, tokens=1):
    ticket = limiter.join(tokens)
    delay = limiter.poll(ticket)
    assert delay == 0.0, f"expected admission, got wait {delay}"
    return ticket.permit


def test_rpm_counts_a_slot_until_one_window_after_release():
    clock = Clock()
    limiter = RateLimiter(rpm=2, window=10.0, clock=clock)
    a, b = admit(limiter), admit(limiter)
    clock.now = 1.0
    limiter.release(a)
    limiter.release(b)
    ticket = limiter.join(1)
    assert limiter.poll(ticket) == pytest.approx(10.0)  # a's slot frees at 1.0 + 10
    clock.now = 10.999
    assert limiter.poll(ticket) > 0
    clock.now = 11.0
    assert limiter.poll(ticket) == 0.0


def test_in_flight_requests_hold_their_slot_indefinitely():
    clock = Clock()
    limiter = RateLimiter(rpm=1, window=1.0, clock=clock)
    admit(limiter)  # never released
    clock.now = 1000.0
    assert limiter.poll(limiter.join(1)) == math.inf


def test_tpm_is_checked_together_with_rpm_and_reconciled_with_usage():
    clock = Clock()
    limiter = RateLimiter(rpm=100, tpm=100, window=60.0, clock=clock)
    first = admit(limiter, 80)
    ticket = limiter.join(30)
    assert limiter.poll(ticket) == math.inf  # 80 + 30 > 100 and the 80 is in flight
    limiter.release(first, tokens_used=50)  # the response said 50: 50 + 30 fits now
    assert limiter.poll(ticket) == 0.0
    assert limiter.usage() == (2, 80)


def test_fifo_a_big_request_is_not_starved_by_small_ones():
    clock = Clock()
    limiter = RateLimiter(tpm=100, window=10.0, clock=clock)
    limiter.release(admit(limiter, 60))
    big = limiter.join(90)
    small = limiter.join(10)
    assert limiter.poll(big) == pytest.approx(10.0)
    assert limiter.poll(small) == math.inf  # would fit (60 + 10) but must wait its turn
    clock.now = 10.0
    assert limiter.poll(big) == 0.0
    assert limiter.poll(small) == 0.0  # 90 + 10 = 100 fits


def test_a_request_larger_than_tpm_is_rejected_at_the_boundary():
    limiter = RateLimiter(tpm=100)
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        limiter.join(101)
    with pytest.raises(ConfigurationError):
        RateLimiter(rpm=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rpm": 0.5}, r"rpm must be an int >= 1, or None \(unlimited\), got 0\.5"),
        ({"rpm": math.nan}, r"rpm must be an int >= 1, or None \(unlimited\), got nan"),
        ({"rpm": True}, "rpm must be an int >= 1"),
        ({"tpm": 10.0}, "tpm must be an int >= 1"),
        ({"window": math.nan}, r"window must be a finite number > 0, got nan"),
        ({"window": math.inf}, r"window must be a finite number > 0, got inf"),
    ],
)
def test_a_limiter_built_by_hand_refuses_what_client_config_refuses(kwargs, message):
    # before: only "<= 0" was checked, so rpm=0.5 or NaN never fit and the first call waited out
    # its whole total_timeout (300 s by default); a NaN window never let a slot expire
    with pytest.raises(ConfigurationError, match=message):
        RateLimiter(**kwargs)
    assert RateLimiter(rpm=1, tpm=1, window=0.001).rpm == 1  # the smallest valid values


def test_numpy_integers_are_counts_for_the_limiter_and_the_config():
    # a value read from a numpy array or a DataFrame: refused after the limiter began sharing
    # ClientConfig's rule, which had only taken Python ints (found by a re-read)
    import numpy as np

    from llm_client.config import ClientConfig

    limiter = RateLimiter(rpm=np.int64(60), tpm=np.int32(1000))
    assert (limiter.rpm, limiter.tpm) == (60, 1000)
    assert ClientConfig(rpm=np.int64(60)).rpm == 60


def test_cancel_leaves_the_queue_so_the_next_one_can_go():
    clock = Clock()
    limiter = RateLimiter(rpm=1, window=1.0, clock=clock)
    first = limiter.join(1)
    second = limiter.join(1)
    limiter.cancel(first)
    assert limiter.poll(second) == 0.0


def test_server_ratelimit_headers_pause_admissions():
    clock = Clock()
    limiter = RateLimiter(rpm=100, clock=clock)
    limiter.observe_headers(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}
    )
    assert limiter.poll(limiter.join(1)) == pytest.approx(360.0)
    limiter.observe_headers(
        {"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1h"}
    )
    clock.now = 360.0
    assert limiter.poll(limiter._queue[0]) == 0.0


def test_a_server_pause_above_the_cap_fails_at_once_and_names_the_header():
    # a pause is the server asking us to wait, as Retry-After is, and is capped the same way;
    # before, acquire waited it out (6 minutes here), or the caller's whole deadline
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    limiter.observe_headers(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}
    )
    with pytest.raises(RetryAfterTooLongError, match="x-ratelimit-reset-requests: 6m0s") as info:
        limiter.acquire(1, max_server_pause=60.0)
    assert info.value.retry_after == pytest.approx(360.0) and info.value.cap == 60.0
    assert "360.0s more" in str(info.value) and not limiter._queue
    with pytest.raises(RateLimiterTimeoutError, match=r"past the deadline \(3.0s left\)"):
        limiter.acquire(1, deadline=clock.now + 3.0, max_server_pause=600.0)
    clock.now = 350.0  # 10 s to go: under the cap and the deadline, so it would be waited for
    assert limiter._timeout(10.0, 400.0, limiter.join(1), 60.0) == pytest.approx(10.0)


def test_server_token_ratelimit_headers_pause_admissions():
    clock = Clock()
    limiter = RateLimiter(rpm=100, clock=clock)
    limiter.observe_headers(
        {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "30s"}
    )
    assert limiter.poll(limiter.join(1)) == pytest.approx(30.0)
    clock.now = 30.0
    assert limiter.poll(limiter._queue[0]) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m", 3720.0),
        ("0.5", 0.5),
        ("abc", None),
        ("1x", None),
    ],
)
def test_parse_reset_duration(text, seconds):
    got = parse_reset_duration(text)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_token_estimates():
    assert (
        estimate_tokens("") == 0 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    )
    messages = [{"role": "user", "content": "abcdefgh"}]
    assert estimate_chat_tokens(messages, max_tokens=10) == 3 + 4 + 2 + 10


PHOTO = "data:image/jpeg;base64," + "/9j/" * 112_500  # 450 KB of base64: an ordinary photo


def test_content_parts_are_estimated_part_by_part_and_an_image_at_a_fixed_allowance():
    # before: chars/4 of str(parts), base64 included, so this photo was ~112,000 tokens
    parts = [
        {"type": "text", "text": "What is in this picture?"},  # 24 chars: 6 tokens
        {"type": "image_url", "image_url": {"url": PHOTO, "detail": "high"}},
    ]
    messages = [{"role": "user", "content": parts}]
    assert estimate_chat_tokens(messages, max_tokens=16) == 3 + 4 + 6 + IMAGE_PART_TOKENS + 16
    # audio by its decoded bytes (400 base64 chars: 300 bytes), a file by its JSON (over)
    audio = {"type": "input_audio", "input_audio": {"data": "UklG" * 100, "format": "wav"}}
    assert estimate_content_tokens([audio]) == math.ceil(300 / AUDIO_BYTES_PER_TOKEN) + 4
    file = {"type": "file", "file": {"filename": "a.pdf", "file_data": "JVBE" * 100}}
    assert estimate_content_tokens([file]) == math.ceil(len(json.dumps(file)) / 4)
    assert estimate_content_tokens(None) == 0 and estimate_content_tokens("abcde") == 2


def test_an_image_message_is_sent_under_the_readmes_tpm(fault_server):
    # before: "request needs ~112,000 tokens but the limit is 100000": refused, nothing sent
    client = Client(fault_server.base_url, model="m", rpm=600, tpm=100_000)
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PHOTO}},
    ]
    client.chat([{"role": "user", "content": parts}], max_tokens=16)
    # and 14 s of 16 kHz 16-bit WAV (450 KB of base64), ~150,000 tokens as JSON text before.
    # A client of its own: the fault server bills the photo as text, and reconciling to that
    # bill fills this client's window for 60 s
    client = Client(fault_server.base_url, model="m", rpm=600, tpm=100_000)
    wav = base64.b64encode(bytes(337_500)).decode()
    audio = {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}
    client.chat([{"role": "user", "content": [audio]}], max_tokens=16)
    assert fault_server.report().arrivals == 2


def test_acquire_times_out_at_the_deadline():
    limiter = RateLimiter(rpm=1, window=60.0)
    limiter.acquire(1)
    with pytest.raises(RateLimiterTimeoutError, match="deadline"):
        limiter.acquire(1, deadline=limiter._clock() + 0.05)
    assert len(limiter._queue) == 0


@settings(max_examples=40, deadline=None)
@given(
    rpm=st.integers(1, 5),
    tpm=st.integers(20, 60),
    ops=st.lists(
        st.tuples(st.integers(1, 20), st.floats(0.0, 3.0), st.floats(0.0, 2.0)), max_size=40
    ),
)
def test_property_a_sliding_window_server_never_sees_too_many(rpm, tpm, ops):
    """Simulate: admit in FIFO order (advancing the clock to each wait), the server sees each
    request at a random moment between admission and release; it must never count more than
    rpm requests or tpm tokens within any window."""
    clock, window = Clock(), 5.0
    limiter = RateLimiter(rpm=rpm, tpm=tpm, window=window, clock=clock)
    rng = random.Random(len(ops))
    in_flight, seen = [], []  # seen: (arrival time, tokens)
    for tokens, gap, duration in ops:
        clock.now += gap
        ticket = limiter.join(tokens)
        while (delay := limiter.poll(ticket)) != 0.0:
            if math.isinf(delay):  # release the oldest in-flight request to make progress
                permit, arrival, end = in_flight.pop(0)
                clock.now = max(clock.now, end)
                limiter.release(permit, permit.tokens)
            else:
                clock.now += delay
        start = clock.now
        end = start + duration
        arrival = rng.uniform(start, end)
        in_flight.append((ticket.permit, arrival, end))
        seen.append((arrival, tokens))
        in_flight.sort(key=lambda x: x[2])
        while in_flight and in_flight[0][2] <= clock.now:
            permit, _, end_ = in_flight.pop(0)
            clock.now, saved = end_, clock.now
            limiter.release(permit, permit.tokens)
            clock.now = saved
    for t, _ in seen:
        inside = [(a, k) for a, k in seen if t - window + 1e-9 < a <= t]  # float ties at the edge
        assert len(inside) <= rpm
        assert sum(k for _, k in inside) <= tpm


def test_threads_sharing_a_client_never_exceed_the_servers_limits():
    """Real sockets and real time (a 0.4 s window): 12 threads, 60 calls, server counts."""
    limits = ServerLimits(rpm=6, tpm=300, window=0.4)
    with FaultServer(limits=limits) as server:
        client = Client(server.base_url, model="m", rpm=6, tpm=300, rate_window=0.4)
        errors = []

        def work(i: int) -> None:
            try:
                for j in range(5):
                    client.chat(
                        [{"role": "user", "content": f"thread {i} call {j}"}], max_tokens=20
                    )
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = server.report()
    assert not errors
    assert report.arrivals == 60
    assert report.limit_violations == 0
    assert client.stats.retries == 0


def test_following_x_ratelimit_headers_avoids_the_servers_429s():
    """The client's own limit is too generous (100); the server allows 3 per 0.5 s and says so in
    x-ratelimit-remaining/reset headers. Following them: no rejections. Ignoring them: rejected.

    The server counts rejected attempts in its window (as OpenAI does), so the ignoring client's
    retries can be rejected in turn until it gives up (about 1 run in 15): that is the failure
    the headers prevent, so it is allowed there and only there."""
    rejected = {}
    for follow in (True, False):
        with FaultServer(limits=ServerLimits(rpm=3, window=0.5)) as server:
            client = Client(
                server.base_url,
                model="m",
                rpm=100,
                rate_window=0.5,
                follow_ratelimit_headers=follow,
            )
            try:
                for i in range(6):
                    client.chat([{"role": "user", "content": f"call {i}"}], max_tokens=4)
            except RateLimitError:
                if follow:
                    raise
            rejected[follow] = server.report().limit_violations
    assert rejected[True] == 0
    assert rejected[False] > 0


def test_headers_are_followed_even_without_client_limits():
    with FaultServer(limits=ServerLimits(rpm=2, window=0.4)) as server:
        client = Client(server.base_url, model="m")  # no rpm/tpm: header-following only
        for i in range(5):
            client.chat([{"role": "user", "content": f"call {i}"}], max_tokens=4)
        assert server.report().limit_violations == 0
        assert client.limiter is not None and client.limiter.usage() == (0, 0)


def test_an_abandoned_stream_releases_its_slot(fault_server):
    client = Client(fault_server.base_url, model="m", rpm=10, rate_window=60.0)
    stream = client.chat([{"role": "user", "content": "a b c d"}], stream=True)
    next(stream)
    assert len(client.limiter._in_flight) == 1
    stream.close()
    assert len(client.limiter._in_flight) == 0  # released: no longer blocks forever
    assert client.limiter.usage()[0] == 1  # but still counts for one window after its release


LONG = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]


def test_breaking_out_of_a_with_block_frees_the_streams_slot_and_connection(fault_server):
    # `for chunk in stream: break` alone keeps both until close() or garbage collection (the
    # audit's next call under rpm=2 then timed out); the `with` form the README shows does not
    client = Client(fault_server.base_url, model="m", rpm=2, rate_window=60.0, total_timeout=5)
    with client.chat(LONG, max_tokens=64, stream=True) as stream:
        for _ in stream:
            break
        assert len(client.limiter._in_flight) == 1  # still held inside the block
    assert not client.limiter._in_flight and stream._response.is_closed
    assert client.chat(LONG, max_tokens=4).text  # the second of rpm=2: admitted at once


def test_breaking_out_of_an_async_with_block_frees_the_streams_slot_and_connection(
    fault_server,
):
    async def main():
        async with AsyncClient(
            fault_server.base_url, model="m", rpm=2, rate_window=60.0, total_timeout=5
        ) as client:
            async with await client.chat(LONG, max_tokens=64, stream=True) as stream:
                async for _ in stream:
                    break
                assert len(client.limiter._in_flight) == 1
            assert not client.limiter._in_flight and stream._response.is_closed
            return (await client.chat(LONG, max_tokens=4)).text

    assert asyncio.run(main())


@pytest.mark.parametrize(
    ("window", "error", "says"),
    [
        (120.0, RetryAfterTooLongError, r"above the 60.0s cap"),  # max_retry_after: 60 s
        (30.0, RateLimiterTimeoutError, r"past the deadline \(\d.\ds left\)"),  # 2 s left
    ],
)
def test_a_server_pause_past_the_cap_or_the_deadline_fails_the_next_call_at_once(
    window, error, says
):
    # the fault server allows 1 request per window and says so (remaining 0, reset in ms).
    # Before: the next call waited silently for its whole total_timeout, then raised
    # "no rate-limit slot within the deadline (rpm=None, tpm=None ...)", naming no header
    with FaultServer(limits=ServerLimits(rpm=1, window=window)) as server:
        client = Client(server.base_url, model="m", total_timeout=2.0)
        client.chat([{"role": "user", "content": "one"}], max_tokens=4)
        with pytest.raises(error, match=says) as info:
            client.chat([{"role": "user", "content": "two"}], max_tokens=4)
        assert server.report().arrivals == 1
    assert "x-ratelimit-remaining-requests: 0, x-ratelimit-reset-requests: " in str(info.value)
    assert client.stats.errors == {error.__name__: 1}


def test_a_server_pause_async_fails_at_once_above_the_cap():
    async def main(server):
        async with AsyncClient(server.base_url, model="m", total_timeout=2.0) as client:
            await client.chat([{"role": "user", "content": "one"}], max_tokens=4)
            with pytest.raises(RetryAfterTooLongError, match="x-ratelimit-reset-requests"):
                await client.chat([{"role": "user", "content": "two"}], max_tokens=4)

    with FaultServer(limits=ServerLimits(rpm=1, window=120.0)) as server:
        asyncio.run(main(server))
        assert server.report().arrivals == 1


def test_a_short_server_pause_is_logged_and_waited_for(caplog):
    with FaultServer(limits=ServerLimits(rpm=1, window=0.3)) as server:
        client = Client(server.base_url, model="m")
        with caplog.at_level(logging.INFO, logger="llm_client.rate_limit"):
            for i in range(2):
                client.chat([{"role": "user", "content": f"call {i}"}], max_tokens=4)
        assert server.report().limit_violations == 0
    pauses = [r.getMessage() for r in caplog.records if "pausing requests" in r.getMessage()]
    assert pauses and "x-ratelimit-remaining-requests: 0" in pauses[0]
