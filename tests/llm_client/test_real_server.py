"""End to end against a server nobody here wrote: llama.cpp serving SmolLM2-135M-Instruct.

Uses the session fixtures ``llm_base_url`` / ``llm_model`` from tests/conftest.py (CI exports
AIS_LLM_BASE_URL; otherwise one LocalLLMServer is started for the session). The 135M model's
words are not asserted, only the protocol: text arrives, usage adds up, streams concatenate,
errors are typed, caches replay.
"""

from __future__ import annotations

import asyncio

import pytest

from llm_client import (
    APIStatusError,
    AsyncClient,
    Client,
    InvalidRequestError,
    NotFoundError,
)

pytestmark = pytest.mark.llm
PROMPT = [{"role": "user", "content": "Name one colour."}]


@pytest.fixture(scope="module")
def client(llm_base_url, llm_model, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("llm-cache")
    with Client(llm_base_url, model=llm_model, read_timeout=120.0, cache_dir=cache_dir) as c:
        yield c


@pytest.fixture(scope="module")
def cold(client):
    """One real generation, shared (each costs seconds on 2 shared cores); it is also cached."""
    return client.chat(PROMPT, max_tokens=8)


def test_chat_returns_text_and_usage(cold):
    assert cold.text.strip() and not cold.cached
    assert 0 < cold.usage.completion_tokens <= 8
    assert cold.usage.total_tokens == cold.usage.prompt_tokens + cold.usage.completion_tokens
    assert cold.finish_reason in ("stop", "length")


def test_stream_concatenates_to_the_same_text_at_temperature_zero(client, cold):
    stream = client.chat(PROMPT, max_tokens=8, stream=True, cache=False)
    assert "".join(chunk.delta for chunk in stream) == cold.text == stream.text


def test_stream_without_usage_is_estimated_and_reconciled(llm_base_url, llm_model):
    with Client(llm_base_url, model=llm_model, read_timeout=120.0, rpm=100, tpm=5000) as c:
        list(c.chat(PROMPT, max_tokens=6, stream=True))
        requests, tokens = c.limiter.usage()
        assert requests == 1 and 0 < tokens < 5000  # reconciled from the reserved estimate
        assert c.stats.tokens[llm_model].completion_tokens > 0


def test_cached_call_and_cached_stream_replay(client, cold):
    hot = client.chat(PROMPT, max_tokens=8)
    assert hot.cached and hot.text == cold.text
    live = [c.delta for c in client.chat(PROMPT, max_tokens=6, stream=True)]
    replay = client.chat(PROMPT, max_tokens=6, stream=True)
    assert [c.delta for c in replay] == live and replay.cached


def test_errors_from_the_real_server_are_typed(llm_base_url, llm_model):
    with Client(llm_base_url, model=llm_model, max_retries=0) as c:
        with pytest.raises(APIStatusError) as info:  # llama.cpp answers validation errors with 500
            c.chat(PROMPT, max_tokens=8, stop=5)  # a param we pass through unchecked
        assert info.value.status in (400, 422, 500)
        with pytest.raises(InvalidRequestError, match="top_p"):  # checked: never reaches it
            c.chat(PROMPT, max_tokens=8, top_p="not a number")
        with pytest.raises(InvalidRequestError, match="content"):  # was a 500, retried 5 times
            c.chat([{"role": "user", "content": 42}], max_tokens=8)
        assert c.stats.attempts == 1
    wrong = Client(llm_base_url.removesuffix("/v1") + "/v2", model=llm_model, max_retries=0)
    with wrong, pytest.raises(NotFoundError):
        wrong.chat(PROMPT, max_tokens=8)


def test_async_client_with_concurrent_streams(llm_base_url, llm_model):
    async def main():
        async with AsyncClient(llm_base_url, model=llm_model, read_timeout=120.0) as c:

            async def one(i):
                messages = [{"role": "user", "content": f"Say {i}."}]
                stream = await c.chat(messages, max_tokens=4, stream=True)
                return "".join([ch.delta async for ch in stream])

            return await asyncio.gather(*(one(i) for i in range(2)))

    texts = asyncio.run(main())
    assert len(texts) == 2 and all(t.strip() for t in texts)


def test_openai_sdk_cross_check(llm_base_url, llm_model, cold):
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=llm_base_url, api_key="none", max_retries=0)
    theirs = sdk.chat.completions.create(
        model=llm_model, messages=PROMPT, max_tokens=8, temperature=0.0
    )
    assert theirs.choices[0].message.content == cold.text
