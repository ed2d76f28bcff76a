"""Every knob of the client in one frozen dataclass, with the default and the reason for it.

Pass a ``ClientConfig`` to ``Client(config=...)`` or override single fields as keyword arguments:
``Client(base_url, rpm=500, cache_dir=".llm-cache")``. Defaults follow openai-python where it has
one (timeouts, backoff 0.5 s doubling to 8 s, 25 % jitter) and are stricter where the issue asks
(a total deadline, a Retry-After cap that fails loudly instead of hanging).
"""

from __future__ import annotations

import base64
import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import httpx

from llm_client.errors import ConfigurationError

#: Environment variables read for defaults, in order of precedence.
BASE_URL_ENV = ("AIS_LLM_BASE_URL", "OPENAI_BASE_URL")
API_KEY_ENV = "OPENAI_API_KEY"
MODEL_ENV = "AIS_LLM_MODEL"


def env_base_url() -> str | None:
    """The base URL the environment names (the first of ``BASE_URL_ENV`` that is set), or None."""
    return next((os.environ[k] for k in BASE_URL_ENV if os.environ.get(k)), None)


def env_model() -> str | None:
    """The model name the environment names (``MODEL_ENV``), or None."""
    return os.environ.get(MODEL_ENV) or None


def redact_url(url: str) -> str:
    """``url`` with its ``user:password@``, if any, shown as ``***@``: for messages and reprs.

    >>> redact_url("https://alice:s3cret@host.example/v1")
    'https://***@host.example/v1'

    Done on the string, so a URL httpx cannot parse, or one without its ``http://`` (both quoted
    in a ``ConfigurationError``), is redacted too.
    """
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in authority:
        return url
    return f"{scheme}{sep}***@{authority.rpartition('@')[2]}{rest[len(authority) :]}"


def split_credentials(base_url: str) -> tuple[str, str | None]:
    """(``base_url`` without ``user:password@``, the ``Authorization`` value they stand for).

    httpx turns a URL's userinfo into HTTP Basic auth, as curl does, but keeps it in the
    request's URL, and so in its own log line (``HTTP Request: POST http://user:pass@...``) and
    in every error that names the URL. The client therefore requests the bare URL and sends the
    same ``Basic`` header itself (RFC 7617: base64 of ``user:password``, percent-decoded, UTF-8).
    The value is None when the URL holds no credentials.
    """
    url = httpx.URL(base_url)
    if not (url.username or url.password):
        return base_url, None
    token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")
    return str(url.copy_with(username=None, password=None)), f"Basic {token}"


def mask_key(api_key: str) -> str:
    """``'***'`` and, for a key long enough that they give little away, its last 4 characters."""
    return "***" + (api_key[-4:] if len(api_key) >= 16 else "")


@dataclass(frozen=True)
class ClientConfig:
    # --- where and who ---------------------------------------------------------------------
    base_url: str | None = (
        None  # includes /v1, like the openai SDK; env AIS_LLM_BASE_URL, OPENAI_BASE_URL
    )
    api_key: str | None = None  # env OPENAI_API_KEY; a local server needs none; repr masks it
    model: str | None = None  # default model; env AIS_LLM_MODEL; per-call model= overrides
    default_max_tokens: int = (
        256  # always sent: llama.cpp and others otherwise generate to the limit
    )

    # --- timeouts (seconds) ----------------------------------------------------------------
    connect_timeout: float = 5.0  # TCP + TLS handshake
    read_timeout: float = 60.0  # max gap between bytes of the answer (per attempt)
    write_timeout: float = 10.0  # max time to send the request body (per attempt)
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
    cache_dir: str | Path | None = None  # diskcache directory (not ""); None disables caching
    cache_ttl: float | None = 7 * 24 * 3600.0  # entries older than this are misses
    cache_nondeterministic: bool = False  # cache temperature > 0 calls without cache=True

    # --- accounting --------------------------------------------------------------------------
    # USD per million tokens: {model: (prompt_price, completion_price)}; unknown models cost 0.
    prices_per_million: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every number must be finite: NaN compares False with everything, so a NaN timeout or
        # deadline slipped past "<= 0" checks and failed deep inside httpx, or silently meant
        # "no deadline". Counts must be ints (bool is not a count).
        _count("default_max_tokens", self.default_max_tokens, low=1)
        for name in ("connect_timeout", "read_timeout", "write_timeout", "rate_window"):
            _number(name, getattr(self, name), low=0.0, low_open=True)
        _number("total_timeout", self.total_timeout, low=0.0, low_open=True, none="no deadline")
        _count("max_retries", self.max_retries, low=0)
        _number("backoff_base", self.backoff_base, low=0.0)
        _number("backoff_cap", self.backoff_cap, low=0.0)
        _number("jitter", self.jitter, low=0.0, high=1.0)
        _number("max_retry_after", self.max_retry_after, low=0.0)
        for name in ("rpm", "tpm"):
            _count(name, getattr(self, name), low=1, none="unlimited")
        _number("cache_ttl", self.cache_ttl, low=0.0, low_open=True, none="never expire")
        for name in ("follow_ratelimit_headers", "cache_nondeterministic"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be True or False, got {value!r}")
        for name in ("base_url", "model"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"{name} must be a str or None, got {value!r}")
        _check_api_key(self.api_key)
        _check_cache_dir(self.cache_dir)
        for model, prices in self.prices_per_million.items():
            if (
                not isinstance(prices, tuple | list)
                or len(prices) != 2
                or not all(_is_number(p) and math.isfinite(p) and p >= 0 for p in prices)
            ):
                raise ConfigurationError(
                    f"prices_per_million[{model!r}] must be (prompt_usd, completion_usd) per "
                    f"million tokens, two finite numbers >= 0, got {prices!r}"
                )

    def __repr__(self) -> str:
        """Every field, and no secret: ``api_key='***cdef'`` (``mask_key``) and ``base_url``
        without its ``user:password@`` (``redact_url``). The dataclass's own repr showed both
        in full, in any log line, f-string or error tracker that printed the config."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.api_key is not None:
            shown["api_key"] = mask_key(self.api_key)
        if self.base_url is not None:
            shown["base_url"] = redact_url(self.base_url)
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def resolved(self) -> ClientConfig:
        """Fill base_url / api_key / model from the environment where not given."""
        base_url = self.base_url or env_base_url()
        api_key = self.api_key if self.api_key is not None else os.environ.get(API_KEY_ENV)
        model = self.model or env_model()
        if not base_url:
            raise ConfigurationError(
                "no base_url: pass base_url='http://host:port/v1' or set AIS_LLM_BASE_URL "
                "(or OPENAI_BASE_URL); start a local server with `python -m llm_client serve-local`"
            )
        _check_base_url(base_url)
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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(
    name: str,
    value: object,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    none: str | None = None,
) -> None:
    """A finite number in range; ``none`` (what None means) when None is allowed."""
    if value is None and none is not None:
        return
    ok = _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]
    if ok:
        ok = value > low if low_open else value >= low  # type: ignore[operator]
        ok = ok and (high is None or value < high)  # type: ignore[operator]
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}"
        valid = bound if high is None else f"in [{low:g}, {high:g})"
        also = f", or None ({none})" if none else ""
        raise ConfigurationError(f"{name} must be a finite number {valid}{also}, got {value!r}")


def _count(name: str, value: object, *, low: int, none: str | None = None) -> None:
    """An int >= low (not a bool, not 2.5); ``none`` (what None means) when None is allowed."""
    if value is None and none is not None:
        return
    # numbers.Integral: an int or a numpy integer (np.int64(60) from a config array), not 2.5
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        also = f", or None ({none})" if none else ""
        raise ConfigurationError(f"{name} must be an int >= {low}{also}, got {value!r}")


def _check_base_url(base_url: str) -> None:
    """http(s) with a host, a port in 1..65535 if one is given, and no query or fragment.

    Checked here, once, rather than failing on every retry: "http://" has no host; port 99999
    would send the requests, Authorization header included, to port 34463 (99999 mod 65536);
    and the endpoint is appended to the URL, so a query or fragment would swallow it
    (``/v1?k=1/chat/completions``).
    """
    example = "e.g. http://127.0.0.1:8765/v1"
    shown = redact_url(base_url)  # the messages never quote a user:password@
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"base_url must start with http:// or https://, got {shown!r} ({example})"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in base_url):
        raise ConfigurationError(f"base_url {shown!r} contains whitespace or control characters")
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"base_url {shown!r} is not a valid URL: {exc}") from None
    if not url.host:
        raise ConfigurationError(f"base_url {shown!r} has no host ({example})")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ConfigurationError(
            f"base_url {shown!r} has port {url.port}; a port is 1..65535 ({example})"
        )
    # on the raw string: httpx.URL drops an empty "?" or "#", which would still break the path
    if "?" in base_url or "#" in base_url:
        raise ConfigurationError(
            f"base_url {shown!r} has a query or fragment; the endpoint path is appended to "
            f"base_url, so it must end with the path ({example})"
        )


def _check_cache_dir(cache_dir: object) -> None:
    """None (no cache) or a path, str or ``os.PathLike``, that is not empty.

    ``""`` is what an unset environment variable reads as (``os.environ.get("X", "")``), and
    ``Path("")`` is the current directory: it used to cache silently into whatever folder the
    process ran in. Other types (``123``, bytes) failed later as a bare ``TypeError``.
    """
    if cache_dir is None:
        return
    path = os.fspath(cache_dir) if isinstance(cache_dir, str | os.PathLike) else None
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError(
            "cache_dir must be a non-empty path (a str or a pathlib.Path), or None for no "
            f"cache; got {cache_dir!r}"
        )


def _check_api_key(api_key: object) -> None:
    """Visible ASCII, no spaces (RFC 9110 VCHAR): what a header value can hold. Wider than
    RFC 6750's token characters on purpose, since key formats vary by provider.

    A key read from a file often ends in a newline; httpx would refuse the header on every
    attempt. The message never echoes the key.
    """
    if api_key is None:
        return
    if not isinstance(api_key, str):
        raise ConfigurationError(f"api_key must be a str or None, got {type(api_key).__name__}")
    bad = [i for i, ch in enumerate(api_key) if not "!" <= ch <= "~"]
    if bad:
        raise ConfigurationError(
            f"api_key has {len(bad)} whitespace, control or non-ASCII character(s) (first at "
            f"index {bad[0]} of {len(api_key)}); strip the key (a trailing newline from a file?)"
        )
