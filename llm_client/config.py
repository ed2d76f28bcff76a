"""Every knob of the client in one frozen dataclass, with the default and the reason for it.

Pass a ``ClientConfig`` to ``Client(config=...)`` or override single fields as keyword arguments:
``Client(base_url, rpm=500, cache_dir=".llm-cache")``. Defaults follow openai-python where it has
one (timeouts, backoff 0.5 s doubling to 8 s, 25 % jitter) and are stricter where the issue asks
(a total deadline, a Retry-After cap that fails loudly instead of hanging).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from llm_client.errors import ConfigurationError

#: Environment variables read for defaults, in order of precedence.
BASE_URL_ENV = ("AIS_LLM_BASE_URL", "OPENAI_BASE_URL")
API_KEY_ENV = "OPENAI_API_KEY"
MODEL_ENV = "AIS_LLM_MODEL"


@dataclass(frozen=True)
class ClientConfig:
    # --- where and who ---------------------------------------------------------------------
    base_url: str | None = (
        None  # includes /v1, like the openai SDK; env AIS_LLM_BASE_URL, OPENAI_BASE_URL
    )
    api_key: str | None = None  # env OPENAI_API_KEY; a local server needs none
    model: str | None = None  # default model; env AIS_LLM_MODEL; per-call model= overrides
    default_max_tokens: int = (
        256  # always sent: llama.cpp and others otherwise generate to the limit
    )

    # --- timeouts (seconds) ----------------------------------------------------------------
    connect_timeout: float = 5.0  # TCP + TLS handshake
    read_timeout: float = 60.0  # max gap between bytes of the answer (per attempt)
    write_timeout: float = 10.0
    total_timeout: float | None = 300.0  # deadline for the whole call: all attempts and waits

    # --- retries -----------------------------------------------------------------------------
    max_retries: int = 4  # retries after the first attempt (openai-python: 2)
    backoff_base: float = 0.5  # first retry waits ~0.5 s, then 1, 2, 4 ... (capped)
    backoff_cap: float = 8.0  # longest backoff without a Retry-After
    jitter: float = 0.25  # wait is multiplied by 1 - jitter * U[0,1): spreads a thundering herd
    max_retry_after: float = 60.0  # a longer server Retry-After fails now (RetryAfterTooLongError)

    # --- client-side rate limit --------------------------------------------------------------
    rpm: int | None = None  # requests per window (None: unlimited)
    tpm: int | None = None  # tokens per window (prompt estimate + max_tokens, reconciled)
    rate_window: float = 60.0  # the window, seconds; smaller values compress time in tests
    follow_ratelimit_headers: bool = (
        True  # pause when x-ratelimit-remaining-* hits 0 (even without rpm/tpm)
    )

    # --- cache -------------------------------------------------------------------------------
    cache_dir: str | Path | None = None  # diskcache directory; None disables caching
    cache_ttl: float | None = 7 * 24 * 3600.0  # entries older than this are misses
    cache_nondeterministic: bool = False  # cache temperature > 0 calls without cache=True

    # --- accounting --------------------------------------------------------------------------
    # USD per million tokens: {model: (prompt_price, completion_price)}; unknown models cost 0.
    prices_per_million: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "write_timeout", "rate_window"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.total_timeout is not None and self.total_timeout <= 0:
            raise ConfigurationError(
                f"total_timeout must be > 0 or None, got {self.total_timeout!r}"
            )
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if not 0.0 <= self.jitter < 1.0:
            raise ConfigurationError(f"jitter must be in [0, 1), got {self.jitter!r}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name} must be a positive int or None, got {value!r}")
        if self.default_max_tokens <= 0:
            raise ConfigurationError("default_max_tokens must be > 0")

    def resolved(self) -> ClientConfig:
        """Fill base_url / api_key / model from the environment where not given."""
        base_url = self.base_url or next(
            (os.environ[k] for k in BASE_URL_ENV if os.environ.get(k)), None
        )
        api_key = self.api_key if self.api_key is not None else os.environ.get(API_KEY_ENV)
        model = self.model or os.environ.get(MODEL_ENV)
        if not base_url:
            raise ConfigurationError(
                "no base_url: pass base_url='http://host:port/v1' or set AIS_LLM_BASE_URL "
                "(or OPENAI_BASE_URL); start a local server with `python -m llm_client serve-local`"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"base_url must start with http:// or https://, got {base_url!r}"
            )
        return _replace(self, base_url=base_url.rstrip("/"), api_key=api_key, model=model)

    def with_overrides(self, **overrides: object) -> ClientConfig:
        """A copy with some fields replaced; unknown names raise ConfigurationError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(f"unknown config field(s) {unknown}; valid: {sorted(known)}")
        return _replace(self, **overrides)


def _replace(config: ClientConfig, **changes: object) -> ClientConfig:
    from dataclasses import replace

    return replace(config, **changes)
