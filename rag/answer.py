"""Grounded answers: retrieve, decide whether to answer, pack the prompt, generate, check citations.

::

    question ─► retrieve ─► confidence < threshold? ──yes──► abstain ("not in the documents")
                               │ no
                               ▼
                      pack best chunks (rag.prompt) ─► Generator ─► answer + [n] citations

**Abstention.** A small model will answer anything (SmolLM2-135M never says "I don't know" on its
own), so the decision is made *before* generation from the retrieval score. Confidence is the
dense cosine similarity of the best chunk: unlike BM25 or fused scores it is on the same scale for
every query. The threshold is calibrated on in-domain train questions, which all have an answer in
the corpus: :func:`calibrate_threshold` returns the score that a chosen share (default 95%) of them
exceed, so at most ~5% of answerable questions are refused; off-topic questions score lower and are
refused. The benchmark measures both rates.

**Citations.** Citations in the answer are mapped back to the numbered sources. Two families
are read, both in order of first appearance, repeats dropped:

* *Bracketed numbers*: ``[2]``, ``[1, 3]``, ``[1; 2]``, ``[1, 2, and 3]``, ``[1 & 2]``, ranges
  ``[1-3]`` (hyphen, en or em dash) and full-width ``【1，2】`` / ``［1；2］`` / ``【1、3】``, with
  spaces anywhere inside. A number may carry the label the prompt gives its sources (they sit
  under a "Sources:" heading): ``[Source 2]``, ``[sources 2-3]``, ``[Source 1, Source 3]``, or
  the short ``[S2]``, ``[s1, s3]``, ``[S1-S3]`` (any case).
* *Superscripts*: a run of superscript digits right after a word of 3 or more letters or after
  ``. , ; : ! ?`` or a closing quote (``claim¹``, ``shown.²``). A run is one number
  (``claim¹²`` cites 12); ``¹,²`` cites 1 and 2 and ``¹⁻³`` (or ``¹–³``) the range 1-3.

Numbers that name no source are reported as ``invalid_citations``, whatever their form; a range
names the sources it covers plus each end that lies outside them, so ``[2-7]`` with three
sources cites 2 and 3 and reports 7.

What stays *no citation at all* (README, Limitations) is what a reader could not tell from
prose or maths: ``(1)`` (enumerations, years, equations), a bare "source 2" outside brackets
(none of the benchmark's recorded answers writes it; in prose it can be a count or a
distance), ``[1 2]`` without a separator, ``[1.5]``, ``[doc 2]`` (the prompt never calls its
sources documents), and superscripts after a digit or a word of one or two letters (``10⁶``,
``R²``, ``cm²``, ``x²``) or followed by a charge sign (``Fe³⁺``).

The model sits behind the :class:`Generator` seam; :class:`LLMClientGenerator` uses this repo's
``llm_client`` against any OpenAI-compatible endpoint (the offline default is the local SmolLM2
llama.cpp server).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rag.config import check_threshold
from rag.errors import ConfigError, GenerationError
from rag.prompt import PromptBuilder, Source

ABSTAIN_TEXT = "I could not find this in the indexed documents, so I will not guess."


class Generator(Protocol):
    """Turns chat messages into answer text. ``max_tokens`` is always sent."""

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> str: ...


class LLMClientGenerator:
    """A :class:`Generator` over ``llm_client.Client`` (OpenAI-compatible chat completions)."""

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        client=None,
        temperature: float = 0.0,
    ) -> None:
        if client is None:
            from llm_client import Client

            client = Client(base_url=base_url, model=model)
        self.client, self.temperature = client, temperature

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> str:
        from llm_client import LLMClientError

        try:
            result = self.client.chat(messages, max_tokens=max_tokens, temperature=self.temperature)
        except LLMClientError as exc:
            raise GenerationError(f"LLM call failed: {exc}") from exc
        return result.text


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    abstained: bool
    confidence: float  # dense cosine of the best chunk
    threshold: float | None
    sources: list[Source] = field(default_factory=list)  # what the prompt contained
    cited: list[Source] = field(default_factory=list)  # sources the answer cites
    invalid_citations: list[int] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # chunk ids that did not fit
    latency_s: float = 0.0


# One item is a number or a range; items are separated by "," ";" "&" "and" or ", and" (or the
# full-width "，" "；" "、" of a Chinese or Japanese answer). A
# separator always holds a non-space character and no two whitespace runs touch, so a text can
# match in only one way: failing on "[" + "1," * 100_000 costs linear time, not exponential. At
# most 9 digits: enough for any source list, and int() of a 5000-digit run would raise. Each
# number may carry the prompt's label, "source(s)" or "S"; the label begins with a letter, so
# the whitespace after it never touches a separator's.
# (?a) inside the label: under a plain IGNORECASE "s" would also match the long s "ſ".
_LABEL = r"(?:(?ai:sources?)\s*|(?ai:s))"  # Source 2, sources 2, S2, in any case
_ITEM = rf"{_LABEL}?(\d{{1,9}})(?:\s*[-–—]\s*{_LABEL}?(\d{{1,9}}))?"
_SEPARATOR = r"(?:\s*[,;，；、]\s*|\s*(?:[,;]\s*)?(?:and|&)\s*)"  # full-width ，；、 too
_ITEMS = re.compile(_ITEM)
# The brackets are not paired ("[1】" counts): a model that mixes them still meant a citation.
_BRACKETED = rf"[\[【［]\s*(?P<items>{_ITEM}(?:{_SEPARATOR}{_ITEM})*)\s*[\]】］]"
# A superscript run is one number. It is a citation only directly after a word of 3+ letters or
# after punctuation, so exponents and units are not read: 10⁶ (a digit), R², cm², x² (1-2
# letters); and not when a charge sign or another superscript digit follows (Fe³⁺). The
# lookbehinds are fixed-width and the run holds at most 9 digits: linear time on any text.
_SUPERSCRIPT_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_SUP = f"[{_SUPERSCRIPT_DIGITS}]"
# A letter is a word character but not a digit or "_"; super- and subscript digits are word
# characters that re's \d leaves out (they are not decimal digits), so they are taken out too.
_LETTER = rf"[^\W\d_{_SUPERSCRIPT_DIGITS}₀-₉]"
_SUPERSCRIPTED = (
    rf"(?:(?<={_LETTER}{{3}})|(?<=[.,;:!?\"”’]))"
    rf"(?P<sup_first>{_SUP}{{1,9}})(?:[⁻–](?P<sup_last>{_SUP}{{1,9}}))?"
    rf"(?![⁺⁻{_SUPERSCRIPT_DIGITS}])"
)
_CITATION = re.compile(f"{_BRACKETED}|{_SUPERSCRIPTED}")
_FROM_SUPERSCRIPT = str.maketrans(_SUPERSCRIPT_DIGITS, "0123456789")


def _cited_numbers(first: int, last: int, n_sources: int) -> list[int]:
    """What the item ``first-last`` cites (``first == last`` for a lone number): the sources it
    covers in ascending order, then each end that names no source, as written (the caller drops
    repeats). A reversed range is the same range. Only 1..n_sources is expanded, so
    ``[1-999999999]`` costs n_sources steps, not a billion.

    >>> _cited_numbers(2, 7, 3), _cited_numbers(3, 1, 3), _cited_numbers(5, 9, 3)
    ([2, 3, 7], [1, 2, 3], [5, 9])
    """
    lo, hi = min(first, last), max(first, last)
    covered = range(max(lo, 1), min(hi, n_sources) + 1)
    return [*covered, *(end for end in (lo, hi) if not 1 <= end <= n_sources)]


def parse_citations(text: str, n_sources: int) -> tuple[list[int], list[int]]:
    """Citation numbers in ``text``: ``(valid, invalid)``, each in order of first appearance
    without repeats; the recognised forms are in the module docstring.

    >>> parse_citations("See [2-7], [Source 1; S2], shown¹ and [0].", 3)
    ([2, 3, 1], [7, 0])
    """
    # dicts keep the first appearance and drop repeats in O(1), even for "[1, 2, ..., 99999]"
    valid: dict[int, None] = {}
    invalid: dict[int, None] = {}
    for found in _CITATION.finditer(text):
        if found.group("items") is not None:
            items = _ITEMS.findall(found.group("items"))
        else:
            first, last = found.group("sup_first", "sup_last")  # "¹²" -> "12"; last may be None
            items = [
                (first.translate(_FROM_SUPERSCRIPT), (last or "").translate(_FROM_SUPERSCRIPT))
            ]
        for first, last in items:
            for num in _cited_numbers(int(first), int(last or first), n_sources):
                (valid if 1 <= num <= n_sources else invalid).setdefault(num)
    return list(valid), list(invalid)


def calibrate_threshold(top_scores: Sequence[float], answer_rate: float = 0.95) -> float:
    """Score exceeded by ``answer_rate`` of answerable (train) questions' best-chunk scores."""
    if not 0 < answer_rate <= 1:
        raise ConfigError(f"answer_rate must be in (0, 1], got {answer_rate}")
    scores = np.asarray(top_scores, dtype=np.float64)
    if len(scores) == 0:
        raise ConfigError("need at least one score to calibrate the abstention threshold")
    return float(np.quantile(scores, 1.0 - answer_rate))


class _FromConfig:
    """Marks a :class:`RagPipeline` argument left to the retriever's :class:`RagConfig`."""

    def __repr__(self) -> str:
        return "FROM_CONFIG"


FROM_CONFIG = _FromConfig()


class RagPipeline:
    """Question in, cited answer (or an explicit abstention) out.

    Settings not passed come from ``retriever.config`` (a :class:`~rag.config.RagConfig`):
    ``top_chunks`` from ``config.top_chunks``, ``threshold`` from ``config.abstain_threshold``,
    and the prompt builder from ``context_tokens``, ``answer_tokens`` and ``source_tokens``.
    An argument passed explicitly wins; ``threshold=None`` means "never abstain" even when the
    config sets a threshold.
    """

    def __init__(
        self,
        retriever,
        generator: Generator,
        *,
        builder: PromptBuilder | None = None,
        threshold: float | _FromConfig | None = FROM_CONFIG,
        mode: str = "hybrid",
        top_chunks: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        cfg = retriever.config
        self.retriever, self.generator = retriever, generator
        self.builder = builder or PromptBuilder(
            cfg.context_tokens, cfg.answer_tokens, source_tokens=cfg.source_tokens or None
        )
        top_chunks = cfg.top_chunks if top_chunks is None else top_chunks
        if isinstance(top_chunks, bool) or not isinstance(top_chunks, int) or top_chunks < 1:
            raise ConfigError(f"top_chunks must be a positive integer, got {top_chunks!r}")
        if isinstance(threshold, _FromConfig):
            threshold = cfg.abstain_threshold
        check_threshold(threshold, "threshold")  # NaN would never abstain
        self.threshold, self.mode, self.top_chunks, self.clock = threshold, mode, top_chunks, clock

    def confidence(self, question: str) -> float:
        best = self.retriever.dense(question, 1)
        return best[0].score if best else float("-inf")

    def ask(self, question: str) -> Answer:
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"the question must be a non-empty string, got {question!r}")
        started = self.clock()
        conf = self.confidence(question)
        if self.threshold is not None and conf < self.threshold:
            return Answer(
                question, ABSTAIN_TEXT, True, conf, self.threshold, latency_s=self.clock() - started
            )
        index = self.retriever.index
        with index.lock.read():  # no delete between the search and reading the hits' texts
            hits = self.retriever.search(question, self.top_chunks, mode=self.mode)
            docs, texts = index.documents, index.chunks
            chunks = [
                (h.doc_id, h.chunk_id, docs[h.doc_id].title, texts[h.chunk_id].text) for h in hits
            ]
        packed = self.builder.build(question, chunks)
        text = self.generator.generate(packed.messages, max_tokens=self.builder.answer_tokens)
        if not text or not text.strip():
            raise GenerationError("the model returned an empty answer")
        valid, invalid = parse_citations(text, len(packed.sources))
        cited = [packed.sources[n - 1] for n in valid]
        return Answer(
            question,
            text.strip(),
            False,
            conf,
            self.threshold,
            packed.sources,
            cited,
            invalid,
            packed.dropped,
            self.clock() - started,
        )
