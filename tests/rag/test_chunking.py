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
