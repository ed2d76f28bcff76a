"""Named results: what a call returns, with the raw JSON kept alongside the convenient fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_client.errors import ResponseDecodeError


@dataclass(frozen=True)
class Usage:
    """Token counts as the server reported them (``estimated=True``: our count, e.g. streams)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_json(cls, data: Any) -> Usage | None:
        """A reply's ``usage`` object; None when it has none (absent, null, not an object).

        A count that is missing or null reads as 0. One that is no number (``"n/a"``, an
        object, ``1e999``) is ``ResponseDecodeError``: the body is not the protocol, so it is
        retried like any such body (a stream's chunk: the stream is interrupted) and never
        cached, rather than a bare ``ValueError``, ``TypeError`` or ``OverflowError`` from
        ``int()`` that would escape the call uncounted.
        """
        if not isinstance(data, dict):
            return None
        prompt = _token_count(data, "prompt_tokens")
        completion = _token_count(data, "completion_tokens")
        return cls(prompt, completion, _token_count(data, "total_tokens") or prompt + completion)


def _token_count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name) or 0
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ResponseDecodeError(f"usage.{name} is not a token count: {value!r:.60}") from None


@dataclass(frozen=True)
class ChatCompletion:
    """A finished chat call. ``text`` is the first choice's content ("" if the server sent none).

    ``cached`` says it came from the local cache (no request was sent); ``coalesced`` says this
    call waited for an identical one already in flight and got a copy of its reply (single
    flight: no request of its own, its tokens not counted again; ``cached`` then says whether
    that reply came from the cache); ``attempts`` counts the HTTP attempts this call made (0 for
    a cache hit or a coalesced call); ``latency_s`` is the whole call in seconds, every attempt
    and backoff wait included; ``raw`` is the server's JSON, unmodified.
    """

    text: str
    model: str
    usage: Usage | None
    finish_reason: str | None
    raw: dict[str, Any]
    request_id: str | None = None
    cached: bool = False
    attempts: int = 1
    latency_s: float = 0.0
    coalesced: bool = False


@dataclass(frozen=True)
class ChatChunk:
    """One server-sent event of a streamed chat: ``delta`` is the new text ("" for role-only)."""

    delta: str
    finish_reason: str | None
    raw: dict[str, Any]
    usage: Usage | None = None


@dataclass(frozen=True)
class Embeddings:
    """``vectors[i]`` embeds ``texts[i]`` (the server's ``index`` order is restored).

    ``cached`` and ``coalesced`` mean what they mean on ``ChatCompletion``.
    """

    vectors: list[list[float]]
    model: str
    usage: Usage | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    cached: bool = False
    coalesced: bool = False
