import importlib
import random
import re
import sys
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from moderation.normalise import (
    STEPS,
    URL_TOKEN,
    normalise,
    normalise_with_signals,
    unicode_overflow,
)

# the module itself (the package exports its function of the same name)
normalise_module = importlib.import_module("moderation.normalise")


@pytest.mark.parametrize(
    ("evasion", "expected", "signal"),
    [
        ("h4t3", "hate", "leetspeak"),
        ("$h!t happens", "shit happens", "leetspeak"),
        ("h a t e you", "hate you", "spacing"),
        ("h.a.t.e", "hate", "separators"),
        ("h-a-t-e", "hate", "separators"),
        ("h\u200bate", "hate", "invisible"),
        ("h\ufeffa\u200dte", "hate", "invisible"),
        ("hаtе", "hate", "homoglyphs"),  # Cyrillic а and е
        ("ｈａｔｅ", "hate", "unicode"),  # full-width
        ("𝐡𝐚𝐭𝐞", "hate", "unicode"),  # mathematical bold
        ("hâte", "hate", "unicode"),
        # the same evasions written as HTML entities, which are decoded after the steps above
        ("ha&#8203;te", "hate", "encoded"),  # zero-width space
        ("h&#1072;te", "hate", "encoded"),  # Cyrillic а
        ("&#65352;ate", "hate", "encoded"),  # full-width ｈ
        ("&#x1D421;ate", "hate", "encoded"),  # mathematical bold 𝐡
        ("&#9431;ate", "hate", "encoded"),  # circled ⓗ
        ("h&#x1D6C2;te", "hate", "encoded"),  # mathematical bold Greek 𝛂, as "h𝛂te" folds
    ],
)
def test_each_evasion_maps_back_and_is_reported(evasion, expected, signal):
    result = normalise_with_signals(evasion)
    assert result.text == expected
    assert signal in result.evasions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see hxxp://evil[.]com/x now", "see <url> now"),
        ("see https://t.co/abc now", "see <url> now"),
        ("visit evil dot com today", "visit <url> today"),
        ("visit evil(dot)com today", "visit <url> today"),
        ("@ bob hi", "<user> hi"),
        ("RT @bob_1: hi", "rt <user> : hi"),
        # where a link starts inside a run of dots and dashes (the link patterns start a domain
        # only at a chain's first letter; these pin that they match what the plain patterns did)
        ("--a.com", "-- <url>"),
        ("a..b.com", "a.. <url>"),
        ("-.www.x.org y", "-. <url> y"),
        ("a.com-x.y", "<url> -x.y"),
        ("x-a.b.com/p?q=1 ok", "<url> ok"),
        ("a.com.b.org!", "<url> !"),
        ("see a . b [dot] com", "see a . <url>"),
    ],
)
def test_links_and_mentions_become_placeholders(text, expected):
    assert normalise(text) == expected


# The link patterns before they were rewritten to run in linear time (commit c284590): the
# reference the rewrite must match. Quadratic on long runs, so they only see short strings here.
_OLD_URL = re.compile(
    r"(?:h[tx]{2}ps?\s*:\s*/\s*/\S*|www\s*\.\S+"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|ly|co|io|me|info|biz|gl|tv|us|uk)\b(?:/\S*)?)",
    re.IGNORECASE,
)
_OLD_DOT = re.compile(
    r"\s*(?:\[\.\]|\(\.\)|\[dot\]|\(dot\)|\{dot\})\s*|\s+dot\s+(?=(?:com|net|org|ly|co|io)\b)",
    re.IGNORECASE,
)
_LINK_PIECES = ["a", "-", ".", "..", " ", "\t", "com", "www", "http://", "[.]", " dot ", "/x", "_"]
_TRICKY = [
    " " * 60 + "a",
    "a-" * 30,
    ".".join(["ab"] * 20) + ".com",
    "a.-" * 20 + "com",
    "-.www.x.org y",
    "a.com-x.y",
    "x-a.b.com/p?q=1 ok",
    "a.com.b.org!",
    "see a . b [dot] com",
    "a..b.com",
    "..-.a.com",
    "a . dot com",
    "a   dot   com",
    "a [.] [.] com",
    "hxxp : / / x",
    "www . x . com",
    "_a.com",
]


def _old_urls(text: str) -> str:
    return _OLD_URL.sub(f" {URL_TOKEN} ", _OLD_DOT.sub(".", text))


def test_the_linear_link_patterns_match_the_old_quadratic_ones():
    rng = random.Random(0)
    randoms = ["".join(rng.choices(_LINK_PIECES, k=rng.randint(1, 30))) for _ in range(3000)]
    for text in _TRICKY + randoms:
        assert normalise_module._urls(text) == _old_urls(text), text


def test_unicode_overflow_agrees_with_the_unicode_step():
    """It says a text overflows exactly when the unicode step's output is longer than the limit,
    and its count is a lower bound past the limit: on every code point and on seeded random
    text of any script (marks, Hangul, ligatures) at limits around its real length."""
    points = [chr(i) for i in range(0x20, 0x30000) if not 0xD800 <= i < 0xE000]
    for c in points:
        assert (unicode_overflow(c, 0) is not None) == (len(normalise_module._unicode(c)) > 0)
    rng = random.Random(0)
    for _ in range(300):
        text = "".join(rng.choices(points, k=rng.randint(0, 1500)))
        n = len(normalise_module._unicode(text))
        for limit in (0, n // 2, n - 1, n, 10 * n + 10):
            counted = unicode_overflow(text, limit)
            if n > limit:
                assert counted is not None and limit < counted <= n
            else:
                assert counted is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I was born in 1990.", "i was born in 1990."),  # pure numbers are not leetspeak
        ("that costs $100!", "that costs $100!"),
        ("what an idiot!", "what an idiot!"),  # sentence punctuation is not a letter
        ("sooooo goooood", "soo good"),
        ("Tom &amp; Jerry", "tom & jerry"),
        # entities in ordinary use keep their form: only styled letters and digits are folded
        ("caf&#233; &#8230; &#128514; &#8482;", "caf\u00e9 \u2026 \U0001f602 \u2122"),
        ("a nice day", "a nice day"),  # fewer than three single letters: left alone
    ],
)
def test_ordinary_text_is_not_mangled(text, expected):
    assert normalise(text) == expected
    assert normalise_with_signals(text).evasions == ()


def test_a_character_written_as_an_entity_folds_as_it_does_raw():
    # every code point the unicode, invisible and homoglyph steps fold to one ASCII letter or
    # digit, or drop, folds the same way written as &#N; (accents excepted: those are kept)
    raw_steps = [step.fn for step in STEPS if step.name in ("unicode", "invisible", "homoglyphs")]
    missed = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) == "Cs":
            continue
        raw = char
        for fn in raw_steps:
            raw = fn(raw)
        if len(raw) > 1 or (raw and not (raw.isascii() and raw.isalnum())):
            continue
        plain = unicodedata.normalize("NFKC", char)
        if any(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", plain)):
            continue  # an accent written as an entity is kept (see the module docstring)
        if normalise(f"x&#{code};x") != normalise(f"x{char}x"):
            missed.append(f"U+{code:04X}")
    assert missed == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
@example("You ARE a Terrible PERSON")  # always run: random text need not hold a capital
@example("İSTANBUL Ǆ ᾈ")  # capitals whose lower() is longer, or a digraph or iota subscript
def test_any_text_normalises_without_error_to_lowercase_visible_text(text):
    out = normalise(text)
    assert isinstance(out, str)
    assert not any(unicodedata.category(c) == "Cf" for c in out)
    assert out == out.strip()
    assert "  " not in out
    assert out == out.lower()  # no step after "lowercase" brings a capital back
