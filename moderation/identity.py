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
"""

from __future__ import annotations

__all__ = ["IDENTITY_TERMS", "TEMPLATES", "benign_identity_sentences"]

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
