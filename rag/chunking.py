"""Chunkers: split a document into retrievable pieces that remember where they came from.

Every :class:`Chunk` keeps its document id and the character span ``[start, end)`` of
``Document.content`` it covers, so ``doc.content[c.start:c.end] == c.text`` always holds.

Four chunkers, one per strategy an interviewer asks about:

==================  ==============================================================================
``document``        one chunk per document; the embedder truncates it at its maximum length
``tokens``          windows of at most ``size`` model tokens, cut between words, sharing about
                    ``overlap`` tokens with their neighbours (tokenizer-aware: windows never exceed
                    the model's 256 positions; a word longer than a window is cut inside)
``sentences``       whole sentences packed greedily up to ``max_tokens``; a sentence longer than
                    the budget is cut into token windows
``recursive``       split by section heading, then paragraph, then line, then sentence, then token
                    windows, only as deep as needed, and re-merge neighbours up to ``max_tokens``
                    (the idea of LangChain's RecursiveCharacterTextSplitter, measured in tokens)
==================  ==============================================================================

Token counts come from a :class:`TokenSpans` object: the embedding model's own tokenizer in
production (:class:`HFTokenSpans`), a whitespace tokenizer in tests (:class:`WhitespaceSpans`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.documents import Document
from rag.errors import ConfigError

Span = tuple[int, int]


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: ``text == document.content[start:end]``."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    index: int  # position of the chunk within its document (0-based)

    def to_json(self) -> dict:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "index": self.index,
        }


class TokenSpans(Protocol):
    """Character spans of the tokens of ``text`` (no special tokens)."""

    def __call__(self, text: str) -> list[Span]: ...


class WhitespaceSpans:
    """Whitespace-separated words as tokens (tests, and when no model tokenizer is at hand)."""

    def __call__(self, text: str) -> list[Span]:
        return [m.span() for m in re.finditer(r"\S+", text)]


class HFTokenSpans:
    """Token spans from a Hugging Face fast tokenizer (the embedding model's WordPiece)."""

    def __init__(self, name_or_path: str) -> None:
        from transformers import AutoTokenizer  # heavy import, only when a model is used

        # We only read offsets, never feed the ids to the model, so lift the length warning.
        self._tok = AutoTokenizer.from_pretrained(name_or_path, model_max_length=10**9)

    def __call__(self, text: str) -> list[Span]:
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(span) for span in enc["offset_mapping"]]


class Chunker(Protocol):
    name: str

    def chunk(self, doc: Document) -> list[Chunk]: ...


def _make_chunks(doc: Document, spans: Sequence[Span]) -> list[Chunk]:
    content = doc.content
    chunks = []
    for start, end in spans:
        # Trim whitespace at the edges so offsets point at text, not at separators.
        while start < end and content[start].isspace():
            start += 1
        while end > start and content[end - 1].isspace():
            end -= 1
        if end > start:
            i = len(chunks)
            chunk_id = f"{doc.doc_id}@{doc.version}#{i}"
            chunks.append(Chunk(chunk_id, doc.doc_id, content[start:end], start, end, i))
    return chunks


def _word_cuts(text: str, spans: Sequence[Span]) -> list[int]:
    """Token positions where a window may start or end without splitting a word, ascending.

    Position ``i`` is the cut before token ``i``; ``len(spans)`` (the end) is always a cut. A cut
    is refused only between two tokens that touch (no gap between their spans) where both
    touching characters are alphanumeric: WordPiece's ``vitamin`` + ``##s``. Punctuation is a
    word boundary here (``D`` ``-`` ``3`` may be cut), so a URL splits at its slashes and dots.
    """

    def splits_a_word(left_end: int, right_start: int) -> bool:
        # ``left_end > 0`` and ``right_start < len(text)`` guard empty (zero-width) token spans.
        return (
            right_start <= left_end
            and left_end > 0
            and right_start < len(text)
            and text[left_end - 1].isalnum()
            and text[right_start].isalnum()
        )

    cuts = [i for i in range(1, len(spans)) if not splits_a_word(spans[i - 1][1], spans[i][0])]
    return [*cuts, len(spans)]


def _last_cut(cuts: Sequence[int], after: int, at_most: int) -> int | None:
    """The largest cut ``c`` with ``after < c <= at_most``, or None."""
    i = bisect.bisect_right(cuts, at_most) - 1
    return cuts[i] if i >= 0 and cuts[i] > after else None


def _first_cut(cuts: Sequence[int], after: int, at_most: int) -> int | None:
    """The smallest cut ``c`` with ``after < c <= at_most``, or None."""
    i = bisect.bisect_right(cuts, after)
    return cuts[i] if i < len(cuts) and cuts[i] <= at_most else None


def _token_windows(
    text: str, tokens: TokenSpans, size: int, overlap: int, base: int = 0
) -> list[Span]:
    """Spans of windows of at most ``size`` tokens that start and end between words.

    Each window is cut back to its last word boundary, and the next one starts ``overlap`` tokens
    before that end, moved back to a word boundary (so neighbours share at least ``overlap``
    tokens when they can), hence about ``size - overlap`` tokens on. Windows shrink, never grow:
    ``size`` is the embedding model's sequence limit. A window holding no word boundary (one
    word longer than ``size`` tokens, or text without spaces such as Chinese, whose characters
    are all alphanumeric) is cut at ``size`` tokens as is, so no text is ever dropped. Every
    window starts and ends later than the one before, and together they cover every token.
    """
    spans = tokens(text)
    n = len(spans)
    if not n:
        return []
    cuts = _word_cuts(text, spans)

    def window_end(first: int) -> int:
        limit = min(first + size, n)
        if limit == n:
            return n
        cut = _last_cut(cuts, first, limit)
        return limit if cut is None else cut  # no boundary inside: the plain cut

    out, first = [], 0
    while True:
        end = window_end(first)
        out.append((base + spans[first][0], base + spans[end - 1][1]))
        if end == n:
            return out
        target = end - overlap
        # Back to a boundary (more overlap, not less); else forward, at the latest to ``end``
        # (no gap); else ``end`` was a plain cut inside a long word and ``target`` is one too.
        nxt = _last_cut(cuts, first, target)
        if nxt is None:
            nxt = _first_cut(cuts, max(first, target), end)
        if nxt is None:
            nxt = target
        if window_end(nxt) <= end:
            # A word too long to share a window with the overlap follows ``end``: the overlap
            # window would only repeat text, so start right at the boundary instead.
            nxt = end
        first = nxt


class DocumentChunker:
    """The whole document as one chunk (the usual BEIR protocol)."""

    name = "document"

    def chunk(self, doc: Document) -> list[Chunk]:
        return _make_chunks(doc, [(0, len(doc.content))])


class TokenWindowChunker:
    """Windows of at most ``size`` tokens, cut between words, overlapping by ``overlap`` tokens."""

    def __init__(self, tokens: TokenSpans, size: int = 254, overlap: int = 32) -> None:
        if size < 1 or not 0 <= overlap < size:
            raise ConfigError(f"need size >= 1 and 0 <= overlap < size, got {size=}, {overlap=}")
        self.tokens, self.size, self.overlap = tokens, size, overlap
        self.name = f"tokens-{size}-{overlap}"

    def chunk(self, doc: Document) -> list[Chunk]:
        return _make_chunks(doc, _token_windows(doc.content, self.tokens, self.size, self.overlap))


# Words that end with a period but do not end a sentence (scientific and general English).
_ABBREV = (
    "al e.g i.e cf vs etc fig figs eq eqs ref refs no nos approx dr mr mrs ms prof st vol pp "
    "ca resp incl dept univ jan feb mar apr jun jul aug sep sept oct nov dec"
)
ABBREVIATIONS = frozenset(_ABBREV.split())
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+|\n\s*\n")


def split_sentences(text: str) -> list[Span]:
    """Sentence spans of ``text`` by a rule-based splitter.

    A boundary is sentence punctuation followed by whitespace and an upper-case letter, digit or
    opening bracket, unless the word before the period is a known abbreviation (``et al.``,
    ``e.g.``, ``Fig.``) or a single letter (an initial). A blank line ends a sentence too, except
    right after sentence punctuation, where the rules above decide: "End of para." followed by a
    blank line and a lower-case word stays one sentence, as does "etc." followed by one.
    Rules miss some cases (e.g. ``U.S. Army``), but they are fast, deterministic and need no
    model download; chunk quality is measured by the ablation rather than assumed.
    """
    spans, start = [], 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if not m.group().startswith("\n"):
            nxt = text[end : end + 1]
            if not nxt or not (nxt.isupper() or nxt.isdigit() or nxt in "([\"'"):
                continue
            word = (
                text[start : m.start()].rsplit(None, 1)[-1]
                if text[start : m.start()].split()
                else ""
            )
            word = word.lstrip("([\"'").lower()
            if word in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        spans.append((start, end))
        start = end
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _pack(text: str, pieces: Sequence[Span], tokens: TokenSpans, max_tokens: int) -> list[Span]:
    """Merge adjacent spans greedily while the merged span has at most ``max_tokens`` tokens.

    Pieces longer than the budget are cut into token windows first.
    """
    out: list[Span] = []
    cur: Span | None = None
    cur_n = 0
    for s, e in pieces:
        n = len(tokens(text[s:e]))
        if n > max_tokens:  # too long on its own: flush, then cut into windows
            if cur:
                out.append(cur)
                cur, cur_n = None, 0
            out.extend(_token_windows(text[s:e], tokens, max_tokens, 0, base=s))
            continue
        if cur is not None and cur_n + n <= max_tokens:
            cur, cur_n = (cur[0], e), cur_n + n
        else:
            if cur:
                out.append(cur)
            cur, cur_n = (s, e), n
    if cur:
        out.append(cur)
    return out


class SentenceChunker:
    """Whole sentences packed up to ``max_tokens`` tokens per chunk."""

    def __init__(self, tokens: TokenSpans, max_tokens: int = 128) -> None:
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        self.tokens, self.max_tokens = tokens, max_tokens
        self.name = f"sentences-{max_tokens}"

    def chunk(self, doc: Document) -> list[Chunk]:
        text = doc.content
        return _make_chunks(doc, _pack(text, split_sentences(text), self.tokens, self.max_tokens))


# Separators from coarse to fine: markdown section, paragraph, line. Sentences come after these.
_SEPARATORS = (re.compile(r"\n(?=#{1,6} )"), re.compile(r"\n\s*\n"), re.compile(r"\n"))


class RecursiveChunker:
    """Section -> paragraph -> line -> sentence -> token windows, as deep as each piece needs."""

    def __init__(self, tokens: TokenSpans, max_tokens: int = 128) -> None:
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        self.tokens, self.max_tokens = tokens, max_tokens
        self.name = f"recursive-{max_tokens}"

    def _split(self, text: str, span: Span, level: int) -> list[Span]:
        s, e = span
        if len(self.tokens(text[s:e])) <= self.max_tokens:
            return [span]
        if level < len(_SEPARATORS):
            cuts = [m.end() for m in _SEPARATORS[level].finditer(text, s, e)]
            parts = list(zip([s, *cuts], [*cuts, e], strict=True))
        elif level == len(_SEPARATORS):
            parts = [(s + a, s + b) for a, b in split_sentences(text[s:e])]
        else:  # finest level: token windows, handled by _pack
            return [span]
        parts = [p for p in parts if text[p[0] : p[1]].strip()]
        if len(parts) <= 1:
            return self._split(text, span, level + 1)
        pieces = [q for p in parts for q in self._split(text, p, level + 1)]
        return _pack(text, pieces, self.tokens, self.max_tokens)

    def chunk(self, doc: Document) -> list[Chunk]:
        text = doc.content
        spans = _pack(text, self._split(text, (0, len(text)), 0), self.tokens, self.max_tokens)
        return _make_chunks(doc, spans)


def make_chunker(
    kind: str,
    tokens: TokenSpans | None = None,
    *,
    size: int = 254,
    overlap: int = 32,
    max_tokens: int = 128,
) -> Chunker:
    """Build a chunker by name (``document``, ``tokens``, ``sentences``, ``recursive``)."""
    if kind == "document":
        return DocumentChunker()
    tokens = tokens or WhitespaceSpans()
    if kind == "tokens":
        return TokenWindowChunker(tokens, size, overlap)
    if kind == "sentences":
        return SentenceChunker(tokens, max_tokens)
    if kind == "recursive":
        return RecursiveChunker(tokens, max_tokens)
    raise ConfigError(f"unknown chunker {kind!r}; choose document, tokens, sentences or recursive")
