import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import (
    DocumentChunker,
    RecursiveChunker,
    SentenceChunker,
    TokenWindowChunker,
    WhitespaceSpans,
    make_chunker,
    split_sentences,
)
from rag.documents import Document
from rag.errors import ConfigError

WS = WhitespaceSpans()
DOC = Document(
    "d1",
    "# Intro\nCats purr. Dogs bark loudly at night.\n\nFish swim. Birds fly south in winter, "
    "e.g. swallows. Dr. Smith et al. studied them in Fig. 2 of the paper.\n\n# Methods\n"
    + " ".join(f"word{i}" for i in range(40)),
    title="Animals",
)


def all_chunkers():
    return [
        DocumentChunker(),
        TokenWindowChunker(WS, 8, 2),
        SentenceChunker(WS, 10),
        RecursiveChunker(WS, 10),
    ]


@pytest.mark.parametrize("chunker", all_chunkers(), ids=lambda c: c.name)
def test_offsets_point_at_the_chunk_text(chunker):
    chunks = chunker.chunk(DOC)
    assert chunks and [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert DOC.content[c.start : c.end] == c.text
        assert c.doc_id == "d1" and c.chunk_id == f"d1@1#{c.index}"
        assert c.text == c.text.strip()


@pytest.mark.parametrize("chunker", all_chunkers()[1:], ids=lambda c: c.name)
def test_chunks_respect_the_token_budget(chunker):
    limit = 8 if isinstance(chunker, TokenWindowChunker) else 10
    assert all(len(WS(c.text)) <= limit for c in chunker.chunk(DOC))


@pytest.mark.parametrize("chunker", all_chunkers(), ids=lambda c: c.name)
def test_every_word_is_covered(chunker):
    covered = set()
    for c in chunker.chunk(DOC):
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(DOC.content) if not ch.isspace())


def test_token_windows_overlap_by_the_requested_amount():
    doc = Document("w", " ".join(str(i) for i in range(20)))
    chunks = TokenWindowChunker(WS, size=8, overlap=3).chunk(doc)
    assert [c.text.split()[0] for c in chunks] == ["0", "5", "10", "15"]
    assert chunks[0].text.split()[-3:] == chunks[1].text.split()[:3]
    assert chunks[-1].text.split()[-1] == "19"


def test_sentence_splitter_keeps_abbreviations_and_initials():
    text = "Dr. Smith et al. showed it, e.g. in Fig. 2. J. Doe agreed. Then it rained!"
    sents = [text[s:e].strip() for s, e in split_sentences(text)]
    assert sents == [
        "Dr. Smith et al. showed it, e.g. in Fig. 2.",
        "J. Doe agreed.",
        "Then it rained!",
    ]


def test_a_blank_line_after_punctuation_follows_the_sentence_rules():
    # the docstring said blank lines always end a sentence; after a period they do only where
    # the next word would start one anyway (the splitter is kept: it shapes the chunks)
    def sentences(text):
        return [text[s:e].strip() for s, e in split_sentences(text)]

    assert sentences("Heading\n\nlowercase text") == ["Heading", "lowercase text"]
    assert sentences("End.\n\nUpper start") == ["End.", "Upper start"]
    assert sentences("End.\n\nlowercase start") == ["End.\n\nlowercase start"]


def test_sentence_chunker_never_cuts_inside_a_sentence_when_it_fits():
    chunks = SentenceChunker(WS, 12).chunk(DOC)
    for c in chunks[:2]:
        assert c.text.endswith((".", "!", "?")) or c.text.startswith("Animals")


def test_recursive_splits_on_sections_and_paragraphs_first():
    doc = Document("r", "# A\none two three\n\nfour five six\n\n# B\nseven eight")
    texts = [c.text for c in RecursiveChunker(WS, 8).chunk(doc)]
    assert texts == ["# A\none two three\n\nfour five six", "# B\nseven eight"]
    # One token less: section A no longer fits and is cut at its paragraph break.
    texts = [c.text for c in RecursiveChunker(WS, 7).chunk(doc)]
    assert texts[0] == "# A\none two three"


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="ab .\n", min_size=1, max_size=200), st.integers(1, 12))
def test_offsets_hold_for_arbitrary_text(text, budget):
    if not text.strip():
        return
    doc = Document("p", text)
    for chunker in (
        SentenceChunker(WS, budget),
        RecursiveChunker(WS, budget),
        TokenWindowChunker(WS, budget + 1, budget // 2),
    ):
        for c in chunker.chunk(doc):
            assert doc.content[c.start : c.end] == c.text and c.text.strip()


def test_bad_parameters_are_rejected():
    with pytest.raises(ConfigError):
        TokenWindowChunker(WS, 4, 4)
    with pytest.raises(ConfigError):
        make_chunker("paragraphs")


@pytest.mark.slow
def test_model_tokenizer_windows_fit_the_model(minilm):
    from rag.chunking import HFTokenSpans

    spans = HFTokenSpans(minilm.path)
    doc = Document("long", "Vitamin D supplementation reduces fracture risk. " * 60)
    chunks = TokenWindowChunker(spans, 254, 32).chunk(doc)
    assert len(chunks) > 1
    assert all(len(spans(c.text)) <= 254 for c in chunks)
    assert all(doc.content[c.start : c.end] == c.text for c in chunks)


# --- token windows start and end between words ---------------------------------------------


class PieceSpans:
    """A WordPiece stand-in: each whitespace word cut into pieces of at most 3 characters."""

    def __call__(self, text):
        return [(i, min(i + 3, e)) for s, e in WS(text) for i in range(s, e, 3)]


def inside_a_word(text, at):
    """Would a cut at character ``at`` split a word (alphanumeric on both sides)?"""
    return 0 < at < len(text) and text[at - 1].isalnum() and text[at].isalnum()


def token_ranges(text, spans, size, overlap):
    """The windows as token ranges ``[first, end)``, after checking what holds for every text.

    Each window holds 1 to ``size`` tokens; windows start and end later than the one before and
    leave no gap, so together they hold every token; a window ends inside a word only when it
    holds no word boundary (a word longer than ``size`` tokens), and starts inside one only
    right after such a window.
    """
    chunks = TokenWindowChunker(spans, size, overlap).chunk(Document("t", text))
    tokens = spans(text)
    first_of = {s: i for i, (s, _) in enumerate(tokens)}
    end_of = {e: i + 1 for i, (_, e) in enumerate(tokens)}
    ranges = [(first_of[c.start], end_of[c.end]) for c in chunks]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(tokens)
    for first, end in ranges:
        assert 1 <= end - first <= size
    for (a, b), (c, d) in itertools.pairwise(ranges):
        assert a < c <= b < d  # advances, and no token is skipped
    for k, (c, d) in enumerate(zip(chunks, ranges, strict=True)):
        if inside_a_word(text, c.end):
            cuts_inside = [
                i for i in range(d[0] + 1, d[1]) if not inside_a_word(text, tokens[i][0])
            ]
            assert d[1] - d[0] == size and not cuts_inside, c.text[-40:]
        if inside_a_word(text, c.start):
            assert k > 0 and inside_a_word(text, chunks[k - 1].end), c.text[:40]
    return ranges


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="ab1 .-\n", min_size=1, max_size=200),
    st.integers(1, 12),
    st.integers(0, 11),
)
def test_token_windows_cut_between_words_and_cover_every_token(text, size, overlap):
    if not text.strip():
        return
    token_ranges(text, PieceSpans(), size, overlap % size)


@pytest.fixture(scope="module")
def wordpiece():
    """The real MiniLM WordPiece tokenizer (its files only, no model weights loaded)."""
    from rag.chunking import HFTokenSpans
    from rag.dense import resolve_model

    return HFTokenSpans(resolve_model("all-MiniLM-L6-v2"))


# Most of these words are several WordPiece pieces (vitamin ##s, im ##mun ##og ##lo ##bu ##lins).
WORDS = ["vitamins", "immunoglobulins", "antibodies", "reduce", "cholecalciferol", "in", "mice"]


@pytest.mark.slow
@pytest.mark.parametrize(("size", "overlap"), [(7, 0), (8, 3), (13, 5), (254, 32)])
def test_wordpiece_windows_never_split_a_word(wordpiece, size, overlap):
    assert len(wordpiece("immunoglobulins")) == 6  # the pieces a window must not split
    text = " ".join(WORDS[i % len(WORDS)] for i in range(300))
    ranges = token_ranges(text, wordpiece, size, overlap)
    assert len(ranges) > 1
    for c in TokenWindowChunker(wordpiece, size, overlap).chunk(Document("t", text)):
        assert c.text.split()[0] in WORDS and c.text.split()[-1] in WORDS


@pytest.mark.slow
def test_a_word_longer_than_the_window_is_cut_inside_it(wordpiece):
    # "immunoglobulins" is 6 pieces: no 4-token window can hold it, so it is cut at 4 tokens;
    # the window before it shrinks to "The" rather than end on "im".
    text = "The immunoglobulins bind antigens"
    chunks = TokenWindowChunker(wordpiece, 4, 1).chunk(Document("t", text))
    assert [c.text for c in chunks] == ["The", "immunoglo", "lobulins bind", "bind antigens"]
    token_ranges(text, wordpiece, 4, 1)


@pytest.mark.slow
def test_text_without_spaces_is_cut_at_size_tokens(wordpiece):
    # Chinese has no spaces and its characters are alphanumeric to Python, so no window holds a
    # word boundary until the English words: those windows are cut at ``size`` tokens, as before,
    # and so is "immunoglobulins" (6 pieces). The window that reaches "vitamins" ends after it.
    text = "维生素D可以降低骨折风险 vitamins immunoglobulins"
    chunks = TokenWindowChunker(wordpiece, 5, 2).chunk(Document("t", text))
    assert [c.text for c in chunks] == [
        "维生素D可",
        "D可以降低",
        "降低骨折风",
        "折风险 vitamins",
        "immunoglobu",
        "lobulins",
    ]
    for overlap in range(5):
        token_ranges(text, wordpiece, 5, overlap)
