import copy
import sys
import unicodedata
from dataclasses import replace

import numpy as np
import pytest
import regex

from moderation.errors import BinaryContentError, EncodingError, TextTooLongError
from moderation.pipeline import (
    EMPTY_REASON,
    REJECTED,
    Moderator,
    is_blank,
    is_invisible,
    validate_text,
)
from moderation.policy import ALLOW

from .conftest import make_corpus


@pytest.fixture(scope="module")
def moderator(trained_model):
    return Moderator(trained_model)


def test_sync_verdicts(moderator):
    hate = moderator.moderate("zorg blarg walk park")
    calm = moderator.moderate("sunny day walk park")
    assert hate.path != ALLOW and hate.label == "hate"
    assert calm.path == ALLOW and calm.label == ""
    assert set(hate.scores) == {"hate", "offensive"}
    assert hate.latency_ms > 0


def test_evasions_are_undone_and_reported(moderator):
    verdict = moderator.moderate("z0rg b l a r g walk park")
    assert verdict.label == "hate"
    assert set(verdict.evasions) >= {"leetspeak", "spacing"}


def test_evasion_signal_can_force_review(trained_model):
    strict = Moderator(trained_model, review_evasions=True)
    verdict = strict.moderate("sunny d\u200bay walk")
    assert verdict.path == "review" and "invisible" in verdict.reason


def test_empty_text_is_allowed_with_a_reason(moderator):
    # invisible-only text (zero-width space, soft hyphen, a lone combining mark) is empty too:
    # it normalises to "", so a score would only be the model's bias
    for text in ("", "   \n", b"", "\u200b", "\u00ad", " \u200d\ufeff ", "\u0301"):
        verdict = moderator.moderate(text)
        assert verdict.path == ALLOW and "empty" in verdict.reason
        assert moderator.moderate_batch([text])[0].path == ALLOW


BRAILLE_BLANK = 0x2800  # not Default_Ignorable, but it draws blank


def test_invisible_is_unicodes_default_ignorable_set_plus_spaces_controls_and_braille_blank():
    """Parity over every code point: Default_Ignorable_Code_Point from the ``regex`` module's own
    copy of Unicode's DerivedCoreProperties.txt, the categories from ``unicodedata``."""
    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    default_ignorable = []
    for cp in range(sys.maxunicode + 1):
        char = chr(cp)
        default = ignorable.match(char) is not None
        if default:
            default_ignorable.append(char)
        space_or_control = char.isspace() or unicodedata.category(char) in ("Cc", "Cf")
        expected = default or cp == BRAILLE_BLANK or space_or_control
        assert is_invisible(char) == expected, f"U+{cp:04X}"
    assert len(default_ignorable) > 4000  # the property, not an empty match
    for char in [*default_ignorable, chr(BRAILLE_BLANK)]:
        assert is_blank(char * 3) and is_blank(f" {char}\u200b "), f"U+{ord(char):04X}"
    # combining marks are not invisible in general: they carry meaning in many scripts
    assert not is_invisible("\u0301") and not is_invisible("\u0e31") and not is_invisible("a")


@pytest.mark.parametrize(
    "text",
    [
        "\u00b4",  # a spacing accent: the normaliser turns it into nothing
        "\u00a8\u00af",
        "\u3164",  # Hangul filler, a letter (Lo) that draws blank; NFKC keeps a filler
        "\u2800\u2800",  # Braille pattern blank
        "\u034f\ufe0f",  # combining grapheme joiner, variation selector
        "&#8203;",  # an entity for a zero-width space: nothing visible once decoded
    ],
)
def test_text_with_nothing_visible_left_is_empty_not_scored(moderator, text):
    assert is_blank(text)
    for verdict in (moderator.moderate(text), moderator.moderate_batch([text])[0]):
        assert verdict.path == ALLOW and verdict.reason == EMPTY_REASON and verdict.scores == {}


@pytest.mark.parametrize("text", ["a", "3pm", "caf\u00e9", "\u00b4a", "\u3164 hi", "\u0e01\u0e31"])
def test_text_with_something_visible_is_not_blank(text):
    assert not is_blank(text)


def test_a_moderator_refuses_a_model_whose_labels_changed(trained_model):
    from moderation.errors import ConfigError
    from moderation.policy import LabelThresholds

    model = copy.deepcopy(trained_model)
    stale = Moderator(model)
    spam, ham = ["buy now cheap pills"] * 6, ["sunny day walk park"] * 6
    model.add_category("spam", spam + ham, [1] * 6 + [0] * 6)
    for call in (
        lambda: stale.moderate("buy now cheap pills"),
        lambda: stale.moderate_batch(["buy now cheap pills", "sunny day"]),
        lambda: stale.scores(["buy now cheap pills"]),
    ):
        with pytest.raises(ConfigError, match="labels changed after this Moderator was built"):
            call()
    # a Moderator built now, with thresholds for the new label, serves it on both paths
    thresholds = {**model.thresholds, "spam": LabelThresholds("spam", 0.99, 0.5)}
    fresh = Moderator(model, thresholds)
    texts = ["buy now cheap pills", "sunny day walk park"]
    sync = [(v.path, v.label, v.scores) for v in map(fresh.moderate, texts)]
    batch = [(v.path, v.label, v.scores) for v in fresh.moderate_batch(texts)]
    assert sync == batch and "spam" in sync[0][2]


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"caf\xe9 au lait", EncodingError, "not valid UTF-8 .*offset 3"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", EncodingError, "not valid UTF-8"),
        ("abc\x00def", BinaryContentError, "NUL"),
        ("\x01\x02\x03\x04abc", BinaryContentError, "control characters"),
        ("x" * 5001, TextTooLongError, "5001 characters; the limit is 5000"),
        # U+FDFA decomposes into 18 characters: 300 of them are 5,400 for the normaliser
        ("\ufdfa" * 300, TextTooLongError, "300 characters, but the normaliser's first step"),
        ("bad \udc80 surrogate", EncodingError, "surrogates"),
    ],
)
def test_bad_input_gets_a_specific_error(moderator, raw, error, message):
    with pytest.raises(error, match=message):
        moderator.moderate(raw)


def test_utf8_bytes_are_accepted():
    assert validate_text("héllo 😂".encode(), 100) == "héllo 😂"


def test_no_length_limit_skips_only_the_length_check():
    assert validate_text("x" * 6000, None) == "x" * 6000
    with pytest.raises(BinaryContentError, match="NUL"):
        validate_text("x" * 6000 + "\x00", None)


def test_a_nan_length_limit_refuses_rather_than_lets_everything_through():
    with pytest.raises(TextTooLongError, match="the limit is nan"):
        validate_text("x" * 100_000, float("nan"))


def test_a_too_long_text_names_the_limit_it_broke():
    with pytest.raises(TextTooLongError, match=r"limit is 5 \(ModerationConfig.max_chars\)"):
        validate_text("x" * 6, 5)
    with pytest.raises(TextTooLongError, match=r"limit is 5 \(queue.MAX_ID_CHARS\)"):
        validate_text("x" * 6, 5, limit_name="queue.MAX_ID_CHARS")


def test_the_limit_holds_for_the_text_the_normaliser_makes():
    # 5,000 characters that would be 90,000 for every step after the first (0.1-0.2 s)
    with pytest.raises(TextTooLongError, match=r"makes at least [0-9]+ of them; the limit is 5000"):
        validate_text("\ufdfa" * 5_000, 5_000)
    assert validate_text("\ufb03" * 1_666, 5_000)  # "ffi" x 1,666 = 4,998: within the limit
    with pytest.raises(TextTooLongError, match="makes at least 5001"):
        validate_text("\ufb03" * 1_667, 5_000)
    # accents decompose into a letter and a mark, and the normaliser drops the mark: 5,000
    assert validate_text("\u00e9" * 5_000, 5_000)


def test_batch_path_matches_sync_and_isolates_bad_items(moderator):
    texts = ["zorg blarg walk park", b"\xff\xfe", "sunny day walk park", "", "x" * 6000]
    verdicts = moderator.moderate_batch(texts)
    assert [v.path for v in verdicts][1] == REJECTED and "encoding" in verdicts[1].reason
    assert verdicts[4].path == REJECTED and "too_long" in verdicts[4].reason
    assert verdicts[3].path == ALLOW
    for i in (0, 2):
        sync = moderator.moderate(texts[i])
        assert (verdicts[i].path, verdicts[i].label) == (sync.path, sync.label)
        assert verdicts[i].scores == sync.scores


def test_a_batch_gives_one_verdict_per_input_in_order(moderator):
    texts = ["zorg blarg walk", None, "sunny day walk"]
    for batch_size in (1, 2, 1024):
        verdicts = moderator.moderate_batch(texts, batch_size=batch_size)
        assert len(verdicts) == 3 and verdicts[1].path == REJECTED
    from_generator = moderator.moderate_batch(t for t in texts)
    assert [v.path for v in from_generator] == [v.path for v in verdicts]


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_a_bad_batch_size_is_an_error_not_lost_items(moderator, batch_size):
    from moderation.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        moderator.moderate_batch(["a b", "c d"], batch_size=batch_size)


@pytest.mark.parametrize("texts", ["hello", b"hello", None])
def test_one_text_is_not_a_batch(moderator, texts):
    from moderation.errors import InvalidTextError

    with pytest.raises(InvalidTextError, match="sequence of texts"):
        moderator.moderate_batch(texts)
    # found by a review: scores() (and the model's predict_proba) scored a str per character
    with pytest.raises(InvalidTextError, match=r"Moderator\.scores takes a sequence of texts"):
        moderator.scores(texts)


@pytest.mark.parametrize("guard", [False, True])
def test_scores_of_no_texts_are_empty_arrays(trained_model, guard):
    scores = Moderator(trained_model, identity_guard=guard).scores([])
    assert {k: v.shape for k, v in scores.items()} == {k: (0,) for k in trained_model.labels}
    assert Moderator(trained_model).moderate_batch([]) == []


class _RecordingEmbedder:
    """A tiny deterministic ``Embedder`` that remembers every text it was given."""

    def __init__(self):
        self.seen = []

    def encode(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t) % 7, t.count("o")] for t in texts], dtype=float) / 10


@pytest.mark.parametrize("identity_guard", [False, True])
def test_sync_matches_batch_on_a_model_the_compiled_scorer_cannot_handle(
    small_config, identity_guard
):
    # Found by a review: moderate() passed already-normalised text to predict_proba, which
    # normalised it again; "z.0.r.g" is "z.o.r.g" after one pass and "zorg" after a second.
    from moderation.classifier import ModerationModel
    from moderation.pipeline import Moderator
    from moderation.policy import choose_thresholds

    config = replace(small_config, features="tfidf+embedding")
    embedder = _RecordingEmbedder()
    texts, labels, _ = make_corpus(400, seed=1)
    val_texts, val_labels, _ = make_corpus(600, seed=2)
    model = ModerationModel(config, embedder)
    model.fit(texts, {k: v.astype(float) for k, v in labels.items()}, val_texts, val_labels)
    model.thresholds = choose_thresholds(model.predict_proba(val_texts), val_labels, config)
    moderator = Moderator(model, identity_guard=identity_guard)
    assert not moderator.scorer.compiled

    text = "z.0.r.g blarg park"
    embedder.seen.clear()
    sync = moderator.moderate(text)
    assert embedder.seen[0] == model.prepare([text])[0]  # normalised once, as in training
    batch = moderator.moderate_batch([text, "sunny day walk park"])[0]
    assert (sync.path, sync.label, sync.scores) == (batch.path, batch.label, batch.scores)
