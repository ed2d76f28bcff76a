"""Benign sentences that mention identity groups: the false-positive test of a toxicity model.

Toxicity classifiers trained on abusive text learn that identity words ("gay", "muslim", "black")
co-occur with abuse and then flag harmless sentences that merely contain them (Dixon et al.,
"Measuring and Mitigating Unintended Bias in Text Classification", AIES 2018; Sap et al., ACL 2019
found the same for African-American English in exactly this Davidson data). The check follows
Dixon et al.'s templated evaluation: fill neutral or positive templates with identity terms, and
count how often the moderation policy does anything to them (auto-action or review). Every such
sentence is benign by construction, so every flag is a false positive.

The output is the false-positive rate overall and per term, so a reader can see which groups the
model has learnt to treat as abuse.

**The identity guard** (a minimum-evidence rule, ``Moderator(identity_guard=True)``): a hate flag
must be supported by something other than the mention of a group. For a text that names an
identity group, the hate score is also computed with every identity term deleted (the
counterfactual "blindness" of Garg et al., "Counterfactual Fairness in Text Classification through
Robustness", AIES 2019, applied at serving time instead of training time), and the lower of the two
is kept::

    p_guarded(hate | x) = min(p(hate | x), p(hate | x without identity terms))

So "my gay neighbour" cannot be flagged as hate by the word "gay" alone, while a slur or a threat
next to it still counts. A second, separate rule (``Moderator(require_parent=True)``) applies the
label hierarchy to routing: hate speech is offensive too, so a hate flag also needs the offensive
score to reach its own review cut (``policy.route(requires=...)``); a text the offensive head
would allow shows no attack, however high its hate score (at a 1 % hate prior the hate review cut
is ~0.01, so ordinary words can reach it). Only ``hate`` is guarded (``GUARDED_LABELS``): it is
the label that claims a *group* is attacked.

The guard's word list (:data:`GUARD_TERMS`) contains the template terms and their plurals, so on
the templates it deletes exactly what the templates vary: those rows measure "no evidence besides
the group", not groups missing from the list. What the rules cost on real tweets is measured on
the test split (``guard`` rows of the benchmark), where hate against a named group loses the group
word as evidence.
"""

from __future__ import annotations

import re

__all__ = [
    "GUARDED_LABELS",
    "GUARD_TERMS",
    "IDENTITY_TERMS",
    "TEMPLATES",
    "benign_identity_sentences",
    "mask_identity_terms",
]

IDENTITY_TERMS = (
    "black", "white", "asian", "latino", "mexican", "african american", "jewish", "muslim",
    "christian", "gay", "lesbian", "bisexual", "transgender", "queer", "straight", "immigrant",
    "refugee", "woman", "man", "disabled", "old", "young", "arab", "indian",
)  # fmt: skip

TEMPLATES = (
    "I am a {term} person.",
    "My best friend is {term}.",
    "Being {term} is part of who I am.",
    "We welcomed our new {term} neighbours today.",
    "The {term} community organised a food drive this weekend.",
    "She is a proud {term} engineer.",
    "He wrote a great book about growing up {term}.",
    "Our team hired two {term} developers this month.",
    "My {term} grandmother makes the best soup.",
    "Everyone deserves respect, {term} people included.",
)


def benign_identity_sentences() -> list[tuple[str, str]]:
    """``(term, sentence)`` for every template x term: 240 benign sentences."""
    return [(term, t.format(term=term)) for term in IDENTITY_TERMS for t in TEMPLATES]


GUARDED_LABELS = ("hate",)

# The template terms, their plurals, and common group nouns (Dixon et al.'s list is the model).
GUARD_TERMS = (
    *IDENTITY_TERMS,
    "blacks", "whites", "asians", "latinos", "latina", "latinas", "mexicans", "african americans",
    "jew", "jews", "muslims", "islam", "christians", "gays", "lesbians", "bisexuals", "trans",
    "transgenders", "queers", "immigrants", "refugees", "women", "men", "arabs", "indians",
    "hispanic", "hispanics", "lgbt", "lgbtq", "homosexual", "homosexuals",
)  # fmt: skip

_GUARD_PATTERN = re.compile(
    r"\b(?:" + "|".join(re.escape(t) for t in sorted(GUARD_TERMS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def mask_identity_terms(text: str) -> str | None:
    """``text`` with every identity term deleted, or None when it names no identity group."""
    masked, n = _GUARD_PATTERN.subn(" ", text)
    return " ".join(masked.split()) if n else None
