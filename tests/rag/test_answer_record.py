"""The rag benchmark's answer record: replay recorded answers with their measured latency."""

import itertools
import threading

from benchmarks.rag_answers import RecordedGenerator


class EchoGenerator:
    """A real (trivial) generator: answers with the last message's first words."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, messages, *, max_tokens):
        self.calls += 1
        return " ".join(messages[-1]["content"].split()[:max_tokens]) + " [1]"


def ticking_clock(step: float):
    ticks = itertools.count()
    return lambda: next(ticks) * step


MESSAGES = [{"role": "system", "content": "cite"}, {"role": "user", "content": "why is the sky"}]


def test_records_then_replays_with_the_recorded_latency(tmp_path):
    path = tmp_path / "answers.json"
    live = []

    def start():
        live.append(EchoGenerator())
        return live[-1]

    first = RecordedGenerator(start, path, "model-sha", clock=ticking_clock(2.5))
    text = first.generate(MESSAGES, max_tokens=2)
    assert text == "why is [1]"
    assert first.calls == [(2.5, False)] and live[0].calls == 1

    again = RecordedGenerator(start, path, "model-sha", clock=ticking_clock(100.0))
    assert again.generate(MESSAGES, max_tokens=2) == text
    assert again.calls == [(2.5, True)]  # the latency measured when it was generated
    assert again.inner is None and len(live) == 1  # no model was started for a replay


def test_any_change_of_model_prompt_or_settings_is_a_miss(tmp_path):
    path = tmp_path / "answers.json"
    RecordedGenerator(EchoGenerator, path, "model-sha").generate(MESSAGES, max_tokens=2)
    other = [{"role": "user", "content": "why is the sea"}]
    for fingerprint, messages, max_tokens in (
        ("other-model-sha", MESSAGES, 2),
        ("model-sha", other, 2),
        ("model-sha", MESSAGES, 3),
    ):
        gen = RecordedGenerator(EchoGenerator, path, fingerprint)
        gen.generate(messages, max_tokens=max_tokens)
        assert gen.calls[0][1] is False


def test_a_corrupt_record_is_thrown_away_not_fatal(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text("{not json")
    gen = RecordedGenerator(EchoGenerator, path, "model-sha")
    assert gen.generate(MESSAGES, max_tokens=1) == "why [1]"
    assert RecordedGenerator(EchoGenerator, path, "model-sha").store  # rewritten, readable


def test_two_runs_sharing_the_record_keep_each_others_answers(tmp_path):
    # Run A reads answers.json to merge, run B records an answer and replaces the file, then A
    # replaces it with what it read plus its own: B's answer was lost (no lock spanned A's
    # read-merge-replace). B runs in a thread: the lock is a flock, which separates threads too.
    path = tmp_path / "answers.json"
    other = [{"role": "user", "content": "why is the sea"}]
    run_b = RecordedGenerator(EchoGenerator, path, "model-sha")

    class RunA(RecordedGenerator):
        def _read(self):
            seen = super()._read()
            if self.calls:  # the merge in generate(), not the read in __init__
                b = threading.Thread(target=run_b.generate, args=(other,), kwargs={"max_tokens": 2})
                b.start()
                b.join(timeout=2.0)  # old code: B replaced the file meanwhile; new: B waits
                self.b = b
            return seen

    run_a = RunA(EchoGenerator, path, "model-sha")
    run_a.generate(MESSAGES, max_tokens=2)
    run_a.b.join()
    stored = RecordedGenerator(EchoGenerator, path, "model-sha").store
    assert set(stored) == {run_a.key(MESSAGES, 2), run_b.key(other, 2)}


def test_a_record_that_cannot_be_written_is_a_warning_not_fatal(tmp_path, caplog):
    # the write raised after the model had answered (FileExistsError for a cache folder that is
    # a file), and the benchmark lost the run; the embedding and reranker caches only warn
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    path = not_a_folder / "rag" / "answers.json"
    gen = RecordedGenerator(EchoGenerator, path, "model-sha")
    with caplog.at_level("WARNING", logger="benchmarks.rag_answers"):
        assert gen.generate(MESSAGES, max_tokens=2) == "why is [1]"
    assert f"answer record {path} not written" in caplog.text
    assert gen.generate(MESSAGES, max_tokens=2) == "why is [1]"  # kept for this run
    assert [replayed for _, replayed in gen.calls] == [False, True]
