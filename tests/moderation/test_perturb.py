import re

import pytest

from moderation.normalise import normalise
from moderation.perturb import ATTACKS, DEFENDED, Perturber


def test_same_seed_same_perturbations():
    texts = ["you are a terrible person", "what a lovely morning with friends"]
    assert Perturber(seed=3).perturb_all(texts) == Perturber(seed=3).perturb_all(texts)
    assert Perturber(seed=3).perturb_all(texts) != Perturber(seed=4).perturb_all(texts)


@pytest.mark.parametrize("attack", sorted(DEFENDED - {"repeat", "spacing"}))
def test_defended_attacks_on_one_word_are_undone_by_the_normaliser(attack):
    p = Perturber(seed=0, word_rate=1.0, attacks=(attack,))
    for word in ["terrible", "person", "horrible", "awful"]:
        attacked = p.perturb(f"you {word}")
        assert attacked != f"you {word}"
        assert normalise(attacked) == f"you {word}"


def test_spacing_and_repeats_are_undone_in_isolation():
    spaced = Perturber(seed=0, word_rate=1.0, attacks=("spacing",)).perturb("terrible")
    assert spaced == "t e r r i b l e" and normalise(spaced) == "terrible"
    repeated = Perturber(seed=0, word_rate=1.0, attacks=("repeat",)).perturb("terrible")
    # repeats shrink to two: at most one extra letter remains, and the same letters in order
    squeeze = lambda s: re.sub(r"(.)\1+", r"\1", s)  # noqa: E731
    assert len(repeated) >= len("terrible") + 3
    assert len(normalise(repeated)) <= len("terrible") + 1
    assert squeeze(normalise(repeated)) == squeeze("terrible")


def test_links_and_mentions_are_obfuscated_not_attacked_as_words():
    out = Perturber(seed=0, word_rate=1.0, attacks=("typo",)).perturb("see http://t.co/abc")
    assert "hxxp://t[.]co/abc" in out
    assert normalise(out).endswith("<url>")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown attacks"):
        Perturber(attacks=("nope",))
    with pytest.raises(ValueError, match="word_rate"):
        Perturber(word_rate=2.0)
    assert "typo" in ATTACKS and "typo" not in DEFENDED


def test_a_mention_is_spaced_out_on_some_seeds_and_still_normalises_to_the_user_token():
    # the mention rewrite (@bob -> "@ bob") fires with probability 0.5 per mention, so over ten
    # seeds it must fire at least once (all ten missing it has probability 2**-10 with a fair
    # coin, and the seeds are fixed, so this is deterministic)
    outs = [Perturber(seed=s, word_rate=0.0).perturb("hey @bob look") for s in range(10)]
    assert any("@ bob" in out for out in outs)
    assert any("@bob" in out for out in outs)  # ... and it is a coin, not always applied
    for out in outs:
        assert normalise(out) == "hey <user> look"
