"""Wire-format pieces: SSE framing, status -> typed error, response shape checks, percentiles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_client import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    QuotaExhaustedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from llm_client.protocol import (
    SSEDecoder,
    decode_event,
    decode_json,
    parse_chat,
    parse_chunk,
    parse_embeddings,
    status_error,
)
from llm_client.stats import percentile


def feed_all(lines):
    decoder = SSEDecoder()
    events = [e for line in lines if (e := decoder.feed(line)) is not None]
    tail = decoder.flush()
    return events + ([tail] if tail is not None else [])


def test_sse_events_comments_multiline_and_unterminated_tail():
    lines = [
        ": keep-alive",
        'data: {"a": 1}',
        "",
        "event: x",
        "data: line1",
        "data: line2",
        "",
        "id: 7",
        'data:{"b":2}',
    ]
    assert feed_all(lines) == ['{"a": 1}', "line1\nline2", '{"b":2}']


def test_done_sentinel_and_bad_events():
    assert decode_event("[DONE]") is None
    with pytest.raises(ResponseDecodeError, match="not JSON"):
        decode_event("{oops")
    with pytest.raises(ResponseDecodeError, match="server error inside the stream"):
        decode_event(json.dumps({"error": {"message": "boom"}}))


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, {"error": {"message": "bad", "type": "invalid_request_error"}}, BadRequestError),
        (401, {"error": {"message": "key"}}, AuthenticationError),
        (404, {"error": "no such model"}, NotFoundError),
        (429, {"error": {"message": "slow", "code": "rate_limit_exceeded"}}, RateLimitError),
        (429, {"error": {"message": "pay", "code": "insufficient_quota"}}, QuotaExhaustedError),
        (429, {"error": {"message": "pay", "type": "insufficient_quota"}}, QuotaExhaustedError),
        (503, "upstream down", ServerError),
    ],
)
def test_status_errors_are_typed_with_context(status, body, cls):
    content = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    headers = {"x-request-id": "req-1", "retry-after": "3"}
    err = status_error(status, headers, content, now_wall=0.0)
    assert type(err) is cls
    assert err.status == status and err.request_id == "req-1" and err.retry_after == 3.0
    assert err.body == body


def test_response_shape_errors_are_decode_errors():
    with pytest.raises(ResponseDecodeError, match="choices"):
        parse_chat({"object": "chat.completion"})
    with pytest.raises(ResponseDecodeError, match="choices"):
        parse_chunk({"object": "chat.completion.chunk"})
    assert (
        parse_chunk(
            {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
        ).usage.total_tokens
        == 5
    )


@pytest.mark.parametrize(
    "data",
    [
        [1],
        {"choices": [5]},
        {"choices": [{"delta": "text"}]},
        {"choices": [{"delta": {"content": 5}}]},
    ],
)
def test_a_chunk_of_any_wrong_shape_is_a_decode_error(data):
    # a chunk is parsed mid-stream, where only a ResponseDecodeError becomes an interruption
    with pytest.raises(ResponseDecodeError):
        parse_chunk(data)


@pytest.mark.parametrize(
    "choice",
    [
        {},  # before: the text "", cached
        {"message": None},
        {"message": "hi"},
        {"message": {"content": [{"type": "text", "text": "hi"}]}},  # before: text was a list
        {"message": {"content": 5}},
    ],
)
def test_a_chat_choice_without_a_message_with_str_content_is_a_decode_error(choice):
    with pytest.raises(ResponseDecodeError, match=r"choices\[0\]\.message") as info:
        parse_chat({"choices": [choice]}, request_id="req-1")
    assert info.value.request_id == "req-1"


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "assistant", "content": ""},
    ],
)
def test_a_reply_with_null_absent_or_empty_content_has_the_text_empty(message):
    reply = parse_chat({"choices": [{"message": message, "finish_reason": "tool_calls"}]})
    assert reply.text == "" and reply.raw["choices"][0]["message"] == message


BAD_USAGE = [
    {"prompt_tokens": "n/a"},
    {"completion_tokens": {"cached": 1}},
    {"total_tokens": 1e999},
]


@pytest.mark.parametrize("usage", BAD_USAGE)
def test_a_usage_count_that_is_no_number_is_a_decode_error(usage):
    # before: int() raised a bare ValueError / TypeError / OverflowError, even mid-stream
    reply = {"choices": [{"message": {"content": "ok"}}], "usage": usage}
    with pytest.raises(ResponseDecodeError, match="is not a token count"):
        parse_chat(reply)
    with pytest.raises(ResponseDecodeError, match="is not a token count"):
        parse_chunk({"choices": [], "usage": usage})
    with pytest.raises(ResponseDecodeError, match="is not a token count"):
        parse_embeddings({"data": [{"index": 0, "embedding": [1.0]}], "usage": usage}, inputs=1)


def test_a_body_that_is_not_an_object_keeps_its_request_id():
    with pytest.raises(ResponseDecodeError, match="got list") as info:
        decode_json(b"[1, 2]", {"x-request-id": "req-1"})
    assert info.value.request_id == "req-1"


@pytest.mark.parametrize(
    ("indices", "inputs", "match"),
    [
        ([0], 2, "1 row.s. for 2 input"),
        ([0, 1, 2], 2, "3 row.s. for 2 input"),
        ([1, 0, 0], 3, r"indices \[0, 0, 1\], expected 0..2"),
    ],
)
def test_embeddings_need_one_row_per_input_numbered_from_zero(indices, inputs, match):
    data = {"data": [{"index": i, "embedding": [float(i)]} for i in indices]}
    with pytest.raises(ResponseDecodeError, match=match):
        parse_embeddings(data, inputs=inputs)
    ok = {"data": [{"index": 1, "embedding": [1.0]}, {"index": 0, "embedding": [0.0]}]}
    assert parse_embeddings(ok, inputs=2).vectors == [[0.0], [1.0]]  # input order restored


@given(
    st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=200),
    st.sampled_from([50, 95, 99]),
)
def test_percentile_matches_numpy_inverted_cdf(values, q):
    expected = np.percentile(values, q, method="inverted_cdf")
    assert percentile(sorted(values), q) == pytest.approx(expected)


@pytest.mark.parametrize("content", [b"", b'{"detail": "Not Found"}'])
def test_a_404_names_the_url_hints_at_v1_and_says_its_status_once(content):
    url = "http://127.0.0.1:8765/chat/completions"  # a base URL without /v1
    err = status_error(404, {"x-request-id": "req-1"}, content, now_wall=0.0, url=url)
    assert str(err) == (
        f"HTTP 404: Not Found ({url}, request_id=req-1). OpenAI-compatible base URLs usually "
        "end in /v1 (e.g. http://host:port/v1)"
    )
    assert err.url == url


def test_a_404_under_v1_is_not_blamed_on_the_base_url():
    url = "http://127.0.0.1:8765/v1/chat/completions"
    err = status_error(404, {}, b'{"error": "no such model"}', now_wall=0.0, url=url)
    assert str(err) == f"HTTP 404: no such model ({url})" and err.hint is None
