"""The rag benchmark's answer-level check: what makes its record 'partial', with a fake pipeline."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks import rag_answers
from rag.errors import GenerationError


class FakePipeline:
    """Answers every question citing document "d1"; ``fail`` lists questions whose call fails."""

    fail: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        pass

    def ask(self, question):
        if question in self.fail:
            raise GenerationError("the model went away")
        cited = [SimpleNamespace(doc_id="d1")]
        return SimpleNamespace(
            question=question,
            text="an answer [1]",
            abstained=False,
            cited=cited,
            sources=cited,
            invalid_citations=[],
            latency_s=0.1,
        )


@pytest.fixture
def answer_rows(tmp_path, monkeypatch):
    """``answer_rows`` on a 5-question split, with no model, server or MovieLens needed."""
    model = tmp_path / "model.gguf"
    model.write_bytes(b"not a model")
    monkeypatch.setattr("llm_client.local_server.gguf_model_path", lambda: model)
    monkeypatch.setattr("rag.answer.RagPipeline", FakePipeline)
    monkeypatch.setattr(rag_answers, "_off_topic", lambda ctx, n: [])
    queries = {f"q{i}": f"question {i}?" for i in range(5)}
    qrels = {q: {"d1": 1} for q in queries}
    ctx = SimpleNamespace(quick=False, seed=0, cache_dir=tmp_path, data_dir=None)

    def run(fail=()):
        FakePipeline.fail = tuple(queries[q] for q in fail)
        not_measured: list[str] = []
        rows = rag_answers.answer_rows(None, None, queries, qrels, ctx, [], not_measured)
        return rows, not_measured

    return run


def test_a_split_smaller_than_the_plan_is_fully_measured(answer_rows):
    # 5 test questions, 30 planned: every one answered is the whole check, not 25 'not reached'
    rows, not_measured = answer_rows()
    assert not_measured == []
    assert rows[0].metrics["questions"] == 5
    assert rows[0].metrics["not_attempted_time_budget"] == 0


def test_a_failed_answer_makes_the_check_partial(answer_rows):
    rows, not_measured = answer_rows(fail=["q3"])
    assert not_measured == [
        "answer-level check: 1 of 5 questions have no answer "
        "(0 not reached in the time budget, 1 LLM calls failed)"
    ]
    assert rows[0].metrics["llm_failures"] == 1
