"""The OpenAI-compatible wire format: request bodies, error mapping, response and SSE parsing.

Everything here is pure (bytes and dicts in, dataclasses or exceptions out), shared by the sync
and async clients. Reference: the OpenAI API reference for ``POST /v1/chat/completions`` and
``POST /v1/embeddings``, and the WHATWG HTML spec §9.2 "Server-sent events" for the stream
framing (``data: {...}`` lines, events separated by a blank line, ``data: [DONE]`` at the end).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import httpx

from llm_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    HostNotFoundError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitError,
    RedirectError,
    ResponseDecodeError,
    ServerError,
)
from llm_client.responses import ChatChunk, ChatCompletion, Embeddings, Usage
from llm_client.retry import parse_retry_after

VALID_ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def validate_messages(messages: object) -> list[dict[str, Any]]:
    """Check the chat messages at the boundary, so mistakes fail here and not as a server 400.

    Each message is a dict with a valid ``role`` and a ``content`` that is either a str or the
    OpenAI list-of-parts form (``[{"type": "text", "text": "..."}, {"type": "image_url",
    "image_url": {"url": "..."}}]``). Only an assistant message that carries ``tool_calls`` (or
    the legacy ``function_call``) may leave ``content`` out or None. Anything else (42, None, a
    missing key) would reach the server, which answers with a 400 or, llama.cpp, a retried 500.
    Every message must also be plain JSON (no NaN, bytes or sets), as the extra parameters must.
    """
    if isinstance(messages, str):
        raise InvalidRequestError(
            "messages must be a list of {'role', 'content'} dicts, got a str; "
            "wrap it: [{'role': 'user', 'content': text}]"
        )
    if not isinstance(messages, Sequence) or len(messages) == 0:
        raise InvalidRequestError("messages must be a non-empty list of {'role', 'content'} dicts")
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise InvalidRequestError(f"messages[{i}] must be a dict with 'role' and 'content'")
        if message["role"] not in VALID_ROLES:
            raise InvalidRequestError(
                f"messages[{i}]['role'] is {message['role']!r}; valid: {sorted(VALID_ROLES)}"
            )
        _check_content(i, message)
        check_json(f"messages[{i}]", message)
        checked.append(dict(message))
    return checked


def _check_content(i: int, message: Mapping[str, Any]) -> None:
    content = message.get("content")
    where = f"messages[{i}]['content']"
    if isinstance(content, str):
        return
    if content is None:
        calls_a_tool = message["role"] == "assistant" and (
            message.get("tool_calls") or message.get("function_call")
        )
        if calls_a_tool:
            return
        state = "is None" if "content" in message else "is missing"
        raise InvalidRequestError(
            f"{where} {state}; content must be a str or a list of content parts "
            "(only an assistant message with tool_calls may omit it)"
        )
    if not isinstance(content, list) or not content:
        raise InvalidRequestError(
            f"{where} must be a str or a non-empty list of content parts such as "
            f"{{'type': 'text', 'text': '...'}}, got {type(content).__name__} {content!r:.60}"
        )
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise InvalidRequestError(
                f"{where}[{j}] must be a dict with a str 'type' (e.g. {{'type': 'text', "
                f"'text': '...'}}), got {part!r:.60}"
            )
        kind = part["type"]
        if kind == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequestError(f"{where}[{j}] is a text part: its 'text' must be a str")
        if kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, Mapping) or not isinstance(image.get("url"), str):
                raise InvalidRequestError(
                    f"{where}[{j}] is an image_url part: it needs "
                    "{'image_url': {'url': 'https://... or data:image/...;base64,...'}}"
                )
        # other part types (input_audio, file, refusal ...) pass through: the spec keeps growing


#: Sampling parameters checked when given (None passes through: JSON null = "server default").
#: (low, high) inclusive, from the OpenAI API reference for chat completions.
NUMERIC_PARAMS = {
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}
INT_PARAMS = ("seed", "top_k", "n")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_max_tokens(max_tokens: object) -> int:
    """``max_tokens`` must be an int >= 1 (not a bool, not 2.5, not "8")."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequestError(
            f"max_tokens must be an int >= 1, got {type(max_tokens).__name__} {max_tokens!r}"
        )
    return max_tokens


def check_temperature(temperature: object) -> float:
    """``temperature`` must be a finite number in [0, 2] (it is always sent; 0 is the default)."""
    if not _is_number(temperature) or not 0.0 <= temperature <= 2.0:  # type: ignore[operator]
        raise InvalidRequestError(
            f"temperature must be a number in [0, 2], got {type(temperature).__name__} "
            f"{temperature!r}"
        )
    return temperature  # type: ignore[return-value]


def check_params(params: Mapping[str, Any]) -> None:
    """Known sampling parameters in range, and every value JSON-serialisable without NaN/inf."""
    for name, (low, high) in NUMERIC_PARAMS.items():
        value = params.get(name)
        if value is not None and (not _is_number(value) or not low <= value <= high):
            raise InvalidRequestError(
                f"{name} must be a number in [{low:g}, {high:g}] or None, got {value!r}"
            )
    for name in INT_PARAMS:
        value = params.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidRequestError(f"{name} must be an int or None, got {value!r}")
    # n > 1 asks for n choices, but a ChatCompletion holds one (choices[0]), a stream mixes the
    # choices' deltas, and the limiter reserves max_tokens for one: n=4 could be billed 4x the
    # completion tokens we reserved, breaking the TPM guarantee, and 3 of 4 answers were dropped.
    if params.get("n") not in (None, 1):
        raise InvalidRequestError(
            f"n must be 1 or None, got {params['n']!r}: this client returns one choice per call "
            "(and reserves tokens for one); make n calls for n answers"
        )
    check_json("extra parameters", params)


def check_json(what: str, value: object) -> None:
    """``value`` must be plain JSON: no NaN or inf, bytes, sets or other objects, and text that
    UTF-8 can encode.

    Checked here because otherwise httpx finds out while sending, as a bare ``ValueError`` or
    ``TypeError`` from inside ``json`` (not an ``LLMClientError``), after the attempt was counted
    and a rate-limit slot taken; with a cache, ``cache_key`` failed the same way even earlier.
    The text check is the one ``ensure_ascii=True`` hides: a lone UTF-16 surrogate (what
    ``json.loads`` makes of ``"\\ud83d"``, a browser's string cut inside an emoji) is written
    as an escape there, but httpx and ``cache_key`` write UTF-8, where it is a bare
    ``UnicodeEncodeError``.
    """
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise InvalidRequestError(
            f"{what} contains text that is not valid Unicode: a lone surrogate {bad!r} (a string "
            "cut inside an emoji?), which cannot be sent as UTF-8; repair or drop it first"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{what} must be JSON values (no NaN or inf): {exc}") from None


def chat_body(
    *,
    model: str,
    messages: list[dict[str, Any]],
    max_tokens: int,
    temperature: float,
    stream: bool,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON body of a chat request; ``params`` (top_p, stop, seed...) pass through.

    ``temperature`` and the ``NUMERIC_PARAMS`` are sent as floats: JSON writes ``0`` and ``0.0``
    differently, and the body is the cache key, so ``temperature=0`` and ``temperature=0.0``
    must be one request (one cache entry, one shared flight). A float is sent as it was, so
    the key of a call that passes floats (the default ``temperature=0.0`` included) is the
    same as it always was.
    """
    check_max_tokens(max_tokens)
    check_temperature(temperature)
    check_params(params)
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": float(temperature),
    }
    if stream:
        body["stream"] = True
    body.update(params)
    for name in NUMERIC_PARAMS:
        if body.get(name) is not None:
            body[name] = float(body[name])
    return body


def lower_headers(headers: httpx.Headers | Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def request_id(headers: Mapping[str, str]) -> str | None:
    return headers.get("x-request-id") or headers.get("request-id")


#: Shown with a 404 from a URL without /v1: the usual cause is a base URL missing its /v1.
V1_HINT = "OpenAI-compatible base URLs usually end in /v1 (e.g. http://host:port/v1)"


def is_success(status: int) -> bool:
    """A 2xx status: the only one whose body is the protocol.

    Not "below 400": httpx does not follow redirects (and we do not ask it to, see
    ``RedirectError``), so a 301 from an ``http://`` base URL that moved to ``https://`` reached
    the body parser as if it were a reply, and its HTML page was retried as a malformed body.
    """
    return 200 <= status < 300


def status_error(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    now_wall: float,
    url: str | None = None,
) -> APIStatusError:
    """Map a non-2xx response to the typed error, keeping status, ids, Retry-After, body and URL.

    Without an error message in the body the message is the status's reason phrase ("Not Found"),
    so the text never reads "HTTP 404: HTTP 404".
    """
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        body = content.decode("utf-8", "replace")
    error = body.get("error") if isinstance(body, dict) else None
    try:
        message, code = HTTPStatus(status).phrase, None
    except ValueError:  # a status Python has no name for (e.g. 599)
        message, code = "no error message", None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        code = error.get("code") or error.get("type")
    elif isinstance(error, str):
        message = error
    elif isinstance(body, dict) and isinstance(body.get("detail"), str):
        message = body["detail"]  # FastAPI's shape (llama_cpp.server): {"detail": "Not Found"}
    elif isinstance(body, str) and body:
        message = body[:500]
    cls = _STATUS_ERRORS.get(status, ServerError if status >= 500 else APIStatusError)
    if status == 429 and "insufficient_quota" in (str(code), str(error)):
        cls = QuotaExhaustedError
    hint = None
    if status == 404 and url is not None and "/v1/" not in httpx.URL(url).path + "/":
        hint = V1_HINT
    if 300 <= status < 400:  # the body is a page for browsers; where it points is the news
        cls = RedirectError
        message, hint = _redirect_message(headers, url)
    return cls(
        message,
        status=status,
        request_id=request_id(headers),
        body=body,
        headers=dict(headers),
        retry_after=parse_retry_after(headers, now_wall=now_wall),
        code=str(code) if code else None,
        url=url,
        hint=hint,
    )


def _redirect_message(headers: Mapping[str, str], url: str | None) -> tuple[str, str]:
    """A 3xx's message (where the server points, a relative Location made absolute) and hint."""
    location = headers.get("location")
    if not location:
        return "redirect without a Location header", "Redirects are not followed; check base_url"
    try:
        target = str(httpx.URL(url).join(location)) if url else location
    except httpx.InvalidURL:
        target = location
    return (
        f"redirected to {target}",
        "Redirects are not followed (a POST is not replayed to another URL, nor the API key "
        "sent there); set base_url to the new location, without the endpoint path",
    )


#: httpx errors raised while *building or writing* a request, before any byte reached a server:
#: a URL without a scheme or host, a header value with a newline. They are configuration
#: mistakes (``ConfigurationError``, never retried): retrying the same request cannot fix them.
#: ``httpx.InvalidURL`` is not an ``httpx.HTTPError``, so callers catch ``HTTPX_ERRORS``.
REQUEST_BUILD_ERRORS = (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL)


def transport_error(exc: Exception, *, url: str | None = None) -> Exception:
    """httpx failures to ours: a request that cannot be built (``ConfigurationError``),
    timeouts, a host name that does not exist, and everything else that broke the connection.
    ``url`` is the URL requested."""
    if isinstance(exc, REQUEST_BUILD_ERRORS):
        # the message names the failure type, not the header value: it could hold the API key
        detail = str(exc) if not isinstance(exc, httpx.LocalProtocolError) else "bad header"
        return ConfigurationError(
            f"the request to {url} could not be sent ({type(exc).__name__}: {detail}); "
            "check base_url (http(s)://host[:port]/v1) and api_key"
        )
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{type(exc).__name__}: {exc or 'timed out'}", url=url)
    message = f"{type(exc).__name__}: {exc or 'connection failed'}"
    if _dns_errno(exc) in _NO_SUCH_HOST:
        return HostNotFoundError(message, url=url, hint="Check the host name in the base URL")
    return APIConnectionError(message, url=url)


# getaddrinfo's "this name does not exist" answers (a typo), as opposed to EAI_AGAIN ("the
# resolver failed, try again later"), which stays a retried APIConnectionError.
_NO_SUCH_HOST = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)


def _dns_errno(exc: BaseException) -> int | None:
    """The getaddrinfo error code behind an httpx error (httpx -> httpcore -> socket.gaierror)."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain; bounded so a cyclic chain cannot loop
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror):
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def decode_json(content: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """A 2xx body as a JSON object; anything else is ``ResponseDecodeError`` (retried)."""
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ResponseDecodeError(
            f"response is not JSON ({exc}); first bytes: {content[:80]!r}",
            request_id=request_id(headers),
        ) from None
    if not isinstance(data, dict):
        raise ResponseDecodeError(
            f"expected a JSON object, got {type(data).__name__}", request_id=request_id(headers)
        )
    return data


def parse_chat(data: dict[str, Any], *, request_id: str | None = None) -> ChatCompletion:
    """A chat completion JSON object to ``ChatCompletion`` (shape errors: ResponseDecodeError).

    ``choices[0].message`` must be an object, and its ``content`` a str, or null or absent (a
    reply that only calls tools): ``text`` is then "". Anything else is not the protocol, and
    raising here keeps it out of the cache: a reply that is read as "" or as a list would be
    cached and served as a good one.
    """
    try:
        choice = data["choices"][0]
        message = choice["message"]
        if not isinstance(message, dict):
            raise TypeError(f"message is a {type(message).__name__}")
        text = message.get("content")
        if text is not None and not isinstance(text, str):
            raise TypeError(f"message.content is a {type(text).__name__}")
        return ChatCompletion(
            text=text or "",
            model=str(data.get("model", "")),
            usage=Usage.from_json(data.get("usage")),
            finish_reason=choice.get("finish_reason"),
            raw=data,
            request_id=request_id,
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise ResponseDecodeError(
            "chat completion without a choices[0].message whose content is a str or null "
            f"({exc!r})",
            request_id=request_id,
        ) from None


def parse_chunk(data: dict[str, Any]) -> ChatChunk:
    """One ``chat.completion.chunk`` object to ``ChatChunk`` (shape errors: ResponseDecodeError,
    whatever is wrong: a chunk is parsed mid-stream, where nothing else may escape)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        raise ResponseDecodeError(f"stream chunk without a choices list: {str(data)[:120]}")
    try:
        usage = Usage.from_json(data.get("usage"))
        if not choices:  # e.g. the usage-only final chunk of stream_options.include_usage
            return ChatChunk("", None, data, usage)
        choice = choices[0]
        delta = (choice.get("delta") or {}).get("content") or ""
        if not isinstance(delta, str):
            raise TypeError(f"delta.content is a {type(delta).__name__}")
        return ChatChunk(delta, choice.get("finish_reason"), data, usage)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ResponseDecodeError(
            f"stream chunk of the wrong shape ({exc}): {str(data)[:120]}"
        ) from None


def parse_embeddings(
    data: dict[str, Any], *, inputs: int, request_id: str | None = None
) -> Embeddings:
    """An embeddings object to ``Embeddings``, its rows put back in input order.

    ``inputs`` is how many texts were sent: the reply needs one row per text, indices 0..n-1,
    or it is a ``ResponseDecodeError`` (retried, never cached): a reply that dropped a row would
    give 2 texts 1 vector, and ``vectors[i]`` would no longer belong to ``texts[i]``.
    """
    try:
        rows = sorted(data["data"], key=lambda row: row["index"])
        indices = [row["index"] for row in rows]
        vectors = [list(map(float, row["embedding"])) for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise ResponseDecodeError(
            f"embeddings response without data[].embedding ({exc!r})", request_id=request_id
        ) from None
    if len(rows) != inputs:
        raise ResponseDecodeError(
            f"embeddings response has {len(rows)} row(s) for {inputs} input(s)",
            request_id=request_id,
        )
    if indices != list(range(inputs)):
        raise ResponseDecodeError(
            f"embeddings response has indices {indices[:8]}, expected 0..{inputs - 1}",
            request_id=request_id,
        )
    return Embeddings(vectors, str(data.get("model", "")), Usage.from_json(data.get("usage")), data)


class SSEDecoder:
    """Incremental SSE framing: feed decoded lines, get each event's ``data`` payload.

    Returns None until a blank line ends an event; multi-line ``data:`` fields are joined with
    newlines per the spec; comments (``:``) and other fields (event, id, retry) are ignored.
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data:
                return None
            payload, self._data = "\n".join(self._data), []
            return payload
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """An event the server did not terminate with a blank line (seen at end of stream)."""
        if not self._data:
            return None
        payload, self._data = "\n".join(self._data), []
        return payload


def decode_event(payload: str) -> dict[str, Any] | None:
    """The JSON of one event, or None for the ``[DONE]`` sentinel."""
    if payload.strip() == "[DONE]":
        return None
    try:
        data = json.loads(payload)
    except ValueError:
        raise ResponseDecodeError(f"stream event is not JSON: {payload[:120]!r}") from None
    if not isinstance(data, dict):
        raise ResponseDecodeError(f"stream event is not a JSON object: {payload[:120]!r}")
    if "error" in data and "choices" not in data:  # llama.cpp / vLLM report mid-stream errors so
        raise ResponseDecodeError(f"server error inside the stream: {str(data['error'])[:200]}")
    return data
