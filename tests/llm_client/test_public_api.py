"""Pin the public surface other systems (rag) and the Makefile depend on."""

from pathlib import Path

import llm_client
from llm_client import local_server


def test_all_is_pinned():
    # rag and readers import these names; change this list only on purpose
    assert sorted(llm_client.__all__) == [
        "APIConnectionError",
        "APIError",
        "APIStatusError",
        "APITimeoutError",
        "AsyncChatStream",
        "AsyncClient",
        "AuthenticationError",
        "BadRequestError",
        "ChatChunk",
        "ChatCompletion",
        "ChatStream",
        "Client",
        "ClientConfig",
        "ConfigurationError",
        "ConflictError",
        "DeadlineExceededError",
        "Embeddings",
        "HostNotFoundError",
        "InvalidRequestError",
        "LLMClientError",
        "NotFoundError",
        "PermissionDeniedError",
        "QuotaExhaustedError",
        "RateLimitError",
        "RateLimiter",
        "RateLimiterTimeoutError",
        "RedirectError",
        "ResponseCache",
        "ResponseDecodeError",
        "RetryAfterTooLongError",
        "ServerError",
        "StatsSnapshot",
        "StreamInterruptedError",
        "Usage",
        "cache_key",
    ]
    for name in llm_client.__all__:
        assert hasattr(llm_client, name), name


def test_local_server_interface():
    assert local_server.DEFAULT_MODEL_ALIAS == "smollm2-135m-instruct"
    server = local_server.LocalLLMServer(port=12345)
    assert (
        server.base_url == "http://127.0.0.1:12345/v1" and server.model == "smollm2-135m-instruct"
    )
    cmd = local_server.server_command(local_server.Path("/m.gguf"), 1, "a")
    assert cmd[1:3] == ["-m", "llama_cpp.server"] and "--interrupt_requests" in cmd
    assert cmd[cmd.index("--n_threads") + 1] == "2"


def test_stream_examples_use_the_with_form():
    # a stream left by `break` outside a `with` block holds its rate-limit slot (audit finding);
    # the examples people copy must show the form that frees it
    root = Path(llm_client.__file__).parent
    readme = (root / "README.md").read_text()
    assert 'with client.chat([{"role": "user", "content": "Count to 3"}], stream=True) as' in readme
    assert "async with await client.chat(" in readme
    assert "with client.chat(" in (root / "client.py").read_text().split('"""')[1]
    assert "async with await client.chat(" in (root / "async_client.py").read_text()
