"""Adversarial versions of a text: the evasions a motivated poster uses, applied at random.

The generator rewrites a share of the words of each text (``word_rate``, default 0.5 of the words
with three or more letters), choosing an attack per word. The goal is a test set that looks like
what a filter meets once people learn it exists, so the benchmark can report F1 clean vs perturbed,
with and without the normaliser (:mod:`moderation.normalise`).

Attacks (``ATTACKS``), and whether the normaliser is designed to undo them::

    leet        h4t3, $h!t              undone (leetspeak step)
    homoglyph   Cyrillic а/е/о/р/с      undone (homoglyphs step)
    zero_width  U+200B inside a word    undone (invisible step)
    spacing     h a t e                 undone (spacing step; adjacent spaced words merge)
    separator   h.a.t.e / h-a-t-e       undone (separators step)
    repeat      haaaate                 reduced to "haate" (repeats step)
    fullwidth   ｈａｔｅ                  undone (unicode step, NFKC)
    typo        hte (adjacent swap)     NOT undone: only character n-grams absorb it

Links and mentions are obfuscated too (``hxxp://site[.]com``, ``@ user``) when a text has them.
Randomness comes from an injected seed, so a perturbed test set is reproducible.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

__all__ = ["ATTACKS", "DEFENDED", "Perturber"]

_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "$", "t": "7"}
_HOMO = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}


def _leet(word: str, rng: random.Random) -> str:
    out = [(_LEET[c] if c in _LEET and rng.random() < 0.7 else c) for c in word]
    return "".join(out)


def _homoglyph(word: str, rng: random.Random) -> str:
    return "".join(_HOMO[c] if c in _HOMO and rng.random() < 0.7 else c for c in word)


def _zero_width(word: str, rng: random.Random) -> str:
    cut = rng.randrange(1, len(word))
    return word[:cut] + "\u200b" + word[cut:]


def _spacing(word: str, rng: random.Random) -> str:
    return " ".join(word)


def _separator(word: str, rng: random.Random) -> str:
    return rng.choice(".-_").join(word)


def _repeat(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    return word[: i + 1] + word[i] * rng.randint(3, 5) + word[i + 1 :]


def _fullwidth(word: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


ATTACKS: dict[str, Callable[[str, random.Random], str]] = {
    "leet": _leet,
    "homoglyph": _homoglyph,
    "zero_width": _zero_width,
    "spacing": _spacing,
    "separator": _separator,
    "repeat": _repeat,
    "fullwidth": _fullwidth,
    "typo": _typo,
}
DEFENDED = frozenset(ATTACKS) - {"typo"}

# links, mentions and hashtags are skipped whole; group 1 is a plain word of 3+ letters
_TOKEN = re.compile(r"https?://\S+|[@#]\w+|(?<!\w)([A-Za-z]{3,})(?!\w)")
_URL = re.compile(r"https?://(\S+)")
_MENTION = re.compile(r"@(\w+)")


class Perturber:
    """Rewrites ``word_rate`` of the eligible words of a text with randomly chosen attacks."""

    def __init__(
        self, seed: int = 0, word_rate: float = 0.5, attacks: tuple[str, ...] | None = None
    ) -> None:
        unknown = set(attacks or ()) - set(ATTACKS)
        if unknown:
            raise ValueError(f"unknown attacks {sorted(unknown)}; valid: {sorted(ATTACKS)}")
        if not 0.0 <= word_rate <= 1.0:
            raise ValueError(f"word_rate must be in [0, 1], got {word_rate}")
        self.rng = random.Random(seed)
        self.word_rate = word_rate
        self.attacks = tuple(attacks or ATTACKS)

    def perturb(self, text: str) -> str:
        """One adversarial version of ``text`` (the random state advances)."""
        rng = self.rng

        def attack(match: re.Match) -> str:
            if match.group(1) is None or rng.random() >= self.word_rate:
                return match.group()
            return ATTACKS[rng.choice(self.attacks)](match.group(), rng)

        text = _TOKEN.sub(attack, text)
        text = _URL.sub(lambda m: "hxxp://" + m.group(1).replace(".", "[.]"), text)
        return _MENTION.sub(lambda m: "@ " + m.group(1) if rng.random() < 0.5 else m.group(), text)

    def perturb_all(self, texts: list[str]) -> list[str]:
        return [self.perturb(t) for t in texts]
