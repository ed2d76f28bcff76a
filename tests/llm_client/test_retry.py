"""The retry policy as pure functions: backoff schedule, Retry-After parsing, retry decisions."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from llm_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    ConflictError,
    InvalidRequestError,
    QuotaExhaustedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from llm_client.retry import backoff_seconds, decide, parse_retry_after, retry_reason

POLICY = dict(max_retries=4, base=0.5, cap=8.0, jitter=0.25, max_retry_after=60.0)


def status(cls, code, headers=None, retry_after=None):
    return cls("x", status=code, headers=headers or {}, retry_after=retry_after)


def test_backoff_matches_openai_python_schedule_without_jitter():
    # openai-python: min(0.5 * 2**n, 8) for n = 0, 1, 2, ...
    assert [backoff_seconds(n, u=0.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]


def test_jitter_only_shortens_by_at_most_the_jitter_fraction():
    rng = random.Random(0)
    for n in range(1, 10):
        full = backoff_seconds(n, u=0.0)
        for _ in range(50):
            got = backoff_seconds(n, u=rng.random())
            assert 0.75 * full <= got <= full
    assert backoff_seconds(3, u=1.0) == pytest.approx(2.0 * 0.75)


def test_backoff_rejects_retry_number_zero_and_survives_huge_numbers():
    with pytest.raises(ValueError):
        backoff_seconds(0)
    assert backoff_seconds(10_000) == 8.0


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "100", "retry-after": "9"}, 0.1),  # ms wins, as in openai-python
        ({"retry-after": formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": formatdate(NOW - 30, usegmt=True)}, 0.0),  # a past date means now
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after-ms": "abc", "retry-after": "4"}, 4.0),  # bad ms falls back
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after_forms(headers, expected):
    got = parse_retry_after(headers, now_wall=NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    "date",  # RFC 9110 section 5.6.7's example, in the three forms a recipient MUST accept
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_parse_retry_after_reads_every_http_date_form_as_gmt(date):
    # asctime names no zone; it used to be dropped, so the client retried before it was told to
    example = 784_111_777.0  # 1994-11-06 08:49:37 UTC
    assert parse_retry_after({"retry-after": date}, now_wall=example - 86_400) == 86_400.0


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (status(BadRequestError, 400), False),
        (status(APIStatusError, 401), False),
        (status(APIStatusError, 403), False),
        (status(APIStatusError, 404), False),
        (status(BadRequestError, 422), False),
        (status(QuotaExhaustedError, 429), False),
        (status(APIStatusError, 408), True),
        (status(ConflictError, 409), True),
        (status(RateLimitError, 429), True),
        (status(ServerError, 500), True),
        (status(ServerError, 503), True),
        (status(APIStatusError, 418), False),
        (status(ServerError, 503, {"x-should-retry": "false"}), False),
        (status(APIStatusError, 418, {"x-should-retry": "true"}), True),
        (status(BadRequestError, 400, {"x-should-retry": "true"}), False),  # "never" is absolute
        (status(QuotaExhaustedError, 429, {"x-should-retry": "true"}), False),
        (APITimeoutError("t"), True),
        (APIConnectionError("c"), True),
        (ResponseDecodeError("d"), True),
        (InvalidRequestError("bad"), False),
        (KeyError("bug"), False),
    ],
)
def test_retry_reason_table(error, retryable):
    assert retry_reason(error)[0] is retryable


def test_decide_uses_retry_after_exactly_without_jitter():
    d = decide(
        status(RateLimitError, 429, retry_after=3.0),
        retry_number=1,
        u=0.99,
        seconds_left=None,
        **POLICY,
    )
    assert d.retry and d.wait == 3.0 and "retry-after" in d.reason


def test_decide_falls_back_to_backoff_without_retry_after():
    d = decide(status(ServerError, 502), retry_number=3, u=0.0, seconds_left=None, **POLICY)
    assert d.retry and d.wait == 2.0


def test_decide_reads_a_retry_after_of_zero_as_backoff():
    # "Retry-After: 0" (or a date already past) is not "retry at once": a proxy that always
    # sends it would turn the retries into back-to-back requests (openai-python backs off too)
    d = decide(
        status(RateLimitError, 429, retry_after=0.0),
        retry_number=2,
        u=0.0,
        seconds_left=None,
        **POLICY,
    )
    assert d.retry and d.wait == 1.0 and "backoff" in d.reason


def test_decide_fails_fast_above_the_retry_after_cap():
    d = decide(
        status(RateLimitError, 429, retry_after=61.0),
        retry_number=1,
        u=0.0,
        seconds_left=None,
        **POLICY,
    )
    assert not d.retry and d.give_up == "retry_after_cap" and "cap" in d.reason


def test_decide_gives_up_when_the_wait_would_pass_the_deadline():
    d = decide(
        status(RateLimitError, 429, retry_after=5.0),
        retry_number=1,
        u=0.0,
        seconds_left=4.0,
        **POLICY,
    )
    assert not d.retry and d.give_up == "deadline"


def test_decide_stops_after_max_retries():
    d = decide(APIConnectionError("x"), retry_number=5, u=0.0, seconds_left=None, **POLICY)
    assert not d.retry and d.give_up == "attempts"
    assert decide(APIConnectionError("x"), retry_number=4, u=0.0, seconds_left=None, **POLICY).retry


def test_decide_never_retries_non_retryable_even_with_retry_after():
    d = decide(
        status(QuotaExhaustedError, 429, retry_after=1.0),
        retry_number=1,
        u=0.0,
        seconds_left=None,
        **POLICY,
    )
    assert not d.retry and d.give_up == "not_retryable"
