import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.errors import ConfigError
from rag.prompt import MESSAGE_OVERHEAD, PromptBuilder, edge_order, estimate_tokens


def chunk(i, words=20):
    return (f"d{i}", f"d{i}@1#0", f"Title {i}", " ".join(f"w{i}x{j}" for j in range(words)))


def test_everything_fits_and_is_numbered_by_rank():
    packed = PromptBuilder(2048, 100).build("Why?", [chunk(i) for i in range(3)])
    assert [s.number for s in packed.sources] == [1, 2, 3]
    assert [s.doc_id for s in packed.sources] == ["d0", "d1", "d2"]
    assert packed.dropped == [] and not any(s.truncated for s in packed.sources)
    user = packed.messages[1]["content"]
    assert "[1] Title 0" in user and user.rstrip().endswith("Answer (cite sources like [1]):")


def test_edges_placement_puts_the_best_chunks_first_and_last():
    assert edge_order(5) == [0, 2, 4, 3, 1]
    assert edge_order(1) == [0] and edge_order(0) == []
    user = PromptBuilder(4096, 100).build("q", [chunk(i) for i in range(4)]).messages[1]["content"]
    order = [user.index(f"[{n}] ") for n in (1, 3, 4, 2)]
    assert order == sorted(order)  # [1] first, then [3], [4], and [2] last


def test_overflow_truncates_one_chunk_and_reports_the_rest():
    builder = PromptBuilder(400, 100, min_chunk_tokens=10)
    packed = builder.build("q", [chunk(i, words=60) for i in range(6)])
    assert packed.sources and packed.sources[-1].truncated
    assert packed.sources[-1].text.endswith(" ...")
    n = len(packed.sources)
    assert packed.dropped == [f"d{i}@1#0" for i in range(n, 6)]
    assert packed.prompt_tokens + builder.answer_tokens <= builder.context_tokens


@settings(max_examples=60, deadline=None)
@given(st.integers(250, 3000), st.integers(10, 200), st.lists(st.integers(1, 300), max_size=12))
def test_the_prompt_never_overflows_the_window(window, answer, lengths):
    if answer >= window:
        return
    builder = PromptBuilder(window, answer)
    try:
        packed = builder.build("what is it?", [chunk(i, n) for i, n in enumerate(lengths)])
    except ConfigError:
        return  # the question alone does not fit: refused up front
    assert packed.prompt_tokens + answer <= window
    assert len(packed.sources) + len(packed.dropped) == len(lengths)


def test_question_too_long_is_a_clear_error():
    with pytest.raises(ConfigError, match="does not fit"):
        PromptBuilder(300, 100).build("why " * 400, [chunk(0)])
    with pytest.raises(ConfigError):
        PromptBuilder(100, 100)


def test_token_estimate_is_conservative_for_english():
    text = "The quick brown fox jumps over the lazy dog. " * 10
    assert estimate_tokens(text) >= len(text.split()) * 1.3
    assert MESSAGE_OVERHEAD > 0
