import pytest

from moderation.errors import BinaryContentError, EncodingError, TextTooLongError
from moderation.pipeline import REJECTED, Moderator, validate_text
from moderation.policy import ALLOW


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


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"caf\xe9 au lait", EncodingError, "not valid UTF-8 .*offset 3"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", EncodingError, "not valid UTF-8"),
        ("abc\x00def", BinaryContentError, "NUL"),
        ("\x01\x02\x03\x04abc", BinaryContentError, "control characters"),
        ("x" * 5001, TextTooLongError, "5001 characters; the limit is 5000"),
        ("bad \udc80 surrogate", EncodingError, "surrogates"),
    ],
)
def test_bad_input_gets_a_specific_error(moderator, raw, error, message):
    with pytest.raises(error, match=message):
        moderator.moderate(raw)


def test_utf8_bytes_are_accepted():
    assert validate_text("héllo 😂".encode(), 100) == "héllo 😂"


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
