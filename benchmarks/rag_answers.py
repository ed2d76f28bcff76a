"""The rag benchmark's answer-level check: grounded answers from the local SmolLM2 model.

On a fixed sample of test questions (and off-topic MovieLens questions that must abstain) it
reports the share of answers whose citations point into relevant documents, the abstention rates
and the latency per answer. Judged figures say how many answers could not be judged.

Generated answers are recorded on disk (:class:`RecordedGenerator`), like the embeddings: the key
is (sha256 of the GGUF model file, the exact prompt messages, max_tokens, temperature), the value
the answer text and the seconds the model took *when it was generated*. A later run with the
same model and prompts replays them and reports those recorded latencies, so a cached benchmark
run needs no LLM at all (a fresh answer took ~2 s on two CPU cores: p50 1.96 s when the record's
answers were generated); any change to the model file, the retrieval that fills the prompt, or
the prompt builder makes new keys and fresh answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.record import Row
from evals.files import exclusive_lock, written_atomically
from evals.timing import latency_summary
from rag.config import RagConfig

log = logging.getLogger(__name__)

N_QUESTIONS, N_QUESTIONS_QUICK = 30, 3
TOP_CHUNKS, ANSWER_TOKENS = 3, 96  # prompt: 3 numbered chunks; the answer is cut at 96 tokens
SOURCE_TOKENS = RagConfig().source_tokens  # longer chunks: their sentences nearest the question
BUDGET_S, BUDGET_QUICK_S = 600, 150  # wall-clock cap on fresh generation in one run


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RecordedGenerator:
    """A :class:`rag.answer.Generator` that replays recorded answers and records new ones.

    ``make_inner()`` builds the live generator (e.g. starts the local server) only on the first
    miss, so a fully recorded run never starts a model. ``calls`` lists ``(seconds, replayed)``
    per call: for a replayed answer ``seconds`` is the latency recorded when it was generated.
    The record is disposable: one that cannot be read is a miss, one that cannot be written (a
    cache folder that is a file, read-only, full) is a logged warning, and the run goes on.
    """

    def __init__(
        self,
        make_inner: Callable[[], object],
        path: Path,
        fingerprint: str,
        *,
        temperature: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.make_inner, self.path, self.fingerprint = make_inner, Path(path), fingerprint
        self.temperature, self.clock = temperature, clock
        self.inner = None
        self.calls: list[tuple[float, bool]] = []
        self.store: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError):  # a cache may always be thrown away
            return {}

    def key(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        raw = json.dumps([self.fingerprint, messages, max_tokens, self.temperature])
        return hashlib.sha256(raw.encode()).hexdigest()

    def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> str:
        key = self.key(messages, max_tokens)
        if key in self.store:
            hit = self.store[key]
            self.calls.append((hit["seconds"], True))
            return hit["text"]
        if self.inner is None:
            self.inner = self.make_inner()
        t0 = self.clock()
        text = self.inner.generate(messages, max_tokens=max_tokens)
        seconds = self.clock() - t0
        self.calls.append((seconds, False))
        self.store[key] = {"text": text, "seconds": round(seconds, 3)}
        # merge with what another run sharing the cache recorded meanwhile, then replace; saved
        # after every answer, so a crash loses at most one. The lock spans read to replace:
        # without it, a run that read before the other's replace overwrote its new answers.
        try:
            with exclusive_lock(self.path.with_suffix(".lock"), f"the answer record {self.path}"):
                self.store = self._read() | self.store
                with written_atomically(self.path) as tmp:
                    tmp.write_text(json.dumps(self.store))
        except OSError as exc:  # a cache, like the embeddings': this run keeps it in memory
            log.warning("answer record %s not written (%s); going on", self.path, exc)
        return text


def answer_rows(retriever, reranker, queries, qrels, ctx, notes, not_measured) -> list[Row]:
    """Answer-level check: cited-relevant share, abstention, latency with the local SmolLM2.

    Appends to ``not_measured`` when the check cannot run or covers fewer questions than planned.
    """
    from llm_client.local_server import LocalLLMServer, gguf_model_path
    from rag.answer import LLMClientGenerator, RagPipeline
    from rag.errors import GenerationError
    from rag.prompt import PromptBuilder

    rng = random.Random(ctx.seed)
    planned = N_QUESTIONS_QUICK if ctx.quick else N_QUESTIONS
    sample = sorted(rng.sample(sorted(queries), min(planned, len(queries))))
    n = len(sample)  # a test split with fewer questions is all there is: not a shortfall
    off_topic = _off_topic(ctx, 3 if ctx.quick else 20)
    try:
        model_file = gguf_model_path()
    except Exception as exc:
        not_measured.append(f"answer-level check: no local model ({exc})")
        return []
    servers: list = []

    def start_model():
        from llm_client import Client

        server = LocalLLMServer().start()
        servers.append(server)
        # A 135M model on two shared cores can need a minute per answer: long read timeout and
        # no retries (a retried timeout only doubles the wait).
        client = Client(
            server.base_url,
            model=server.model,
            read_timeout=300.0,
            total_timeout=600.0,
            max_retries=0,
        )
        return LLMClientGenerator(client=client)

    generator = RecordedGenerator(
        start_model, ctx.cache_dir / "rag" / "answers.json", file_sha256(model_file)
    )
    pipe = RagPipeline(
        retriever,
        generator,
        threshold=reranker.meta["threshold"] if reranker else None,
        mode="rerank" if reranker else "hybrid",
        top_chunks=TOP_CHUNKS,
        builder=PromptBuilder(2048, ANSWER_TOKENS, source_tokens=SOURCE_TOKENS),
    )
    # Wall-clock cap on fresh generation: on a shared CPU one answer can take minutes. Questions
    # not reached in time are reported as not attempted, never silently averaged.
    deadline = time.monotonic() + (BUDGET_QUICK_S if ctx.quick else BUDGET_S)
    failed = 0

    def ask(question):
        """(answer, latency in s) or None; a replayed answer costs its recorded latency."""
        nonlocal failed
        before = len(generator.calls)
        try:
            answer = pipe.ask(question)
        except GenerationError as exc:
            failed += 1
            notes.append(f"LLM call failed for {question[:60]!r}: {exc}")
            return None
        latency = answer.latency_s
        if len(generator.calls) > before and generator.calls[-1][1]:
            latency += generator.calls[-1][0]
        return answer, latency

    try:
        # Off-topic questions first: they should abstain, which costs no model call.
        off = [ask(q) for q in off_topic if time.monotonic() < deadline]
        off = [a for a, _ in filter(None, off)]
        done = []
        for q in sample:
            if time.monotonic() > deadline:
                break
            done.append((q, ask(queries[q])))
    finally:
        for server in servers:
            server.stop()
    attempted = len(done)
    done = [(q, r[0], r[1]) for q, r in done if r is not None]
    # ``failed`` also counts the off-topic questions; these counts are the sample's alone
    if not done:
        not_measured.append(
            f"answer-level check: no answer finished ({n - attempted} of {n} questions not "
            f"reached in the time budget, {attempted} LLM calls failed)"
        )
        return []
    if len(done) < n:
        not_measured.append(
            f"answer-level check: {n - len(done)} of {n} questions have no answer "
            f"({n - attempted} not reached in the time budget, {attempted - len(done)} LLM "
            "calls failed)"
        )
    answered = [(q, a, s) for q, a, s in done if not a.abstained]
    judged = [(q, a) for q, a, _ in answered if a.cited]
    hit = [any(s.doc_id in qrels[q] for s in a.cited) for q, a in judged]
    prec = [np.mean([s.doc_id in qrels[q] for s in a.cited]) for q, a in judged]
    in_prompt = [any(s.doc_id in qrels[q] for s in a.sources) for q, a, _ in answered]
    lat = latency_summary([s for _, _, s in answered] or [0.0])
    replayed = sum(r for _, r in generator.calls)
    notes.append(
        f"Answer-level check: {len(generator.calls)} LLM answers, {replayed} replayed from the "
        f"answer record ({generator.path.name}, keyed by model sha256 + prompt + settings) "
        "with the latency measured when each was generated."
    )
    metrics = {
        "questions": float(len(done)),
        "not_attempted_time_budget": float(n - attempted),
        "llm_failures": float(failed),
        "abstention_rate": round(1 - len(answered) / len(done), 4),
        "judged": float(len(judged)),
        "unjudged_no_citation": float(len(answered) - len(judged)),
        "invalid_citation_answers": float(sum(bool(a.invalid_citations) for _, a, _ in answered)),
        "cites_relevant_share": round(float(np.mean(hit)), 4) if hit else float("nan"),
        "citation_precision": round(float(np.mean(prec)), 4) if prec else float("nan"),
        "relevant_in_prompt_share": round(float(np.mean(in_prompt)), 4) if in_prompt else 0.0,
        "off_topic_questions": float(len(off)),
        "off_topic_abstention_rate": round(float(np.mean([a.abstained for a in off])), 4)
        if off
        else float("nan"),
        "answers_replayed": float(replayed),
    }
    first = done[0][1]
    return [
        Row(
            f"smollm2-135m, {TOP_CHUNKS} chunks",
            metrics,
            timings={
                "answer_p50_s": round(lat["p50_ms"] / 1e3, 2),
                "answer_p95_s": round(lat["p95_ms"] / 1e3, 2),
            },
            table="answers",
            extra={"example": {"question": first.question, "answer": first.text[:500]}},
        )
    ]


def _off_topic(ctx, n: int) -> list[str]:
    """Questions the scientific corpus cannot answer: about films in MovieLens-100k."""
    from evals.datasets import load_movielens_100k

    items = load_movielens_100k(data_dir=ctx.data_dir).items
    titles = items["title"].head(n).tolist()
    return [f"Who directed the film {t} and what is its plot?" for t in titles]
