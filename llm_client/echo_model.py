"""The fault server's stand-in for a model: deterministic echo replies, SSE chunks, hash embeddings.

Replies are ``"echo: <last user message>"`` cut to ``max_tokens`` tokens, where a token is
ceil(chars/4) (``count_tokens``), so usage is exact and predictable and tests can assert on text.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llm_client.faults import count_tokens


def chat_completion(body: dict[str, Any], model: str) -> tuple[dict[str, Any], int]:
    messages = body.get("messages") or []
    prompt = sum(count_tokens(str(m.get("content") or "")) for m in messages if isinstance(m, dict))
    last = next(
        (
            str(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    max_tokens = int(body.get("max_tokens") or 16)
    text = ("echo: " + last)[: max_tokens * 4]  # never more than max_tokens tokens
    completion = count_tokens(text)
    payload = {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", model),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length" if len(text) < len("echo: " + last) else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return payload, prompt + completion


def stream_events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat completion as chunk events: a role chunk, word by word, then a finish chunk."""
    text = payload["choices"][0]["message"]["content"]
    base = {
        "id": payload["id"],
        "object": "chat.completion.chunk",
        "created": 0,
        "model": payload["model"],
    }
    pieces = [{"role": "assistant", "content": ""}] + [{"content": w} for w in words(text)]
    events = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in pieces
    ]
    events.append(
        {
            **base,
            "choices": [
                {"index": 0, "delta": {}, "finish_reason": payload["choices"][0]["finish_reason"]}
            ],
        }
    )
    return events


def words(text: str) -> list[str]:
    words, start = [], 0
    for i, ch in enumerate(text):
        if ch == " ":
            words.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        words.append(text[start:])
    return words


def embeddings(body: dict[str, Any], model: str) -> tuple[dict[str, Any], int]:
    texts = body.get("input") or []
    texts = [texts] if isinstance(texts, str) else texts
    rows = []
    for i, text in enumerate(texts):
        digest = hashlib.sha256(str(text).encode()).digest()
        rows.append(
            {"object": "embedding", "index": i, "embedding": [b / 255.0 for b in digest[:8]]}
        )
    tokens = sum(count_tokens(str(t)) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {
        "object": "list",
        "data": rows,
        "model": body.get("model", model),
        "usage": usage,
    }, tokens
