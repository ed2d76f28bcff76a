"""llm_client: an OpenAI-compatible LLM client with retries, rate limiting and caching.

See README.md for the file map and how it compares with openai-python, anthropic and LiteLLM.
"""

from llm_client.async_client import AsyncChatStream, AsyncClient
from llm_client.cache import ResponseCache, cache_key
from llm_client.client import ChatStream, Client
from llm_client.config import ClientConfig
from llm_client.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DeadlineExceededError,
    HostNotFoundError,
    InvalidRequestError,
    LLMClientError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitError,
    RateLimiterTimeoutError,
    RedirectError,
    ResponseDecodeError,
    RetryAfterTooLongError,
    ServerError,
    StreamInterruptedError,
)
from llm_client.rate_limit import RateLimiter
from llm_client.responses import ChatChunk, ChatCompletion, Embeddings, Usage
from llm_client.stats import StatsSnapshot

__all__ = [
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
