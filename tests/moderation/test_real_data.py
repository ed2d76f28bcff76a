"""Real-data checks on Davidson et al. (marked slow; CI runs them). Aggregates only: no tweet text
is printed, not even in assertion messages."""

import numpy as np
import pytest

from evals.classification import pr_auc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def davidson():
    from evals.datasets import load_davidson
    from moderation.labels import from_davidson

    return from_davidson(load_davidson())


def test_label_views_match_the_published_counts(davidson):
    counts = np.bincount(davidson.y3)
    assert counts.tolist() == [1430, 19190, 4163]  # SOURCE.md
    assert int(davidson.hard["hate"].sum()) == 1429  # hate share >= 0.5
    assert int(davidson.hard["offensive"].sum()) == 20637
    # hate is (almost) a subset of offensive in the multi-label view
    assert int((davidson.hard["hate"] & (1 - davidson.hard["offensive"])).sum()) == 0


def test_a_small_model_ranks_hate_far_above_chance(davidson):
    from moderation.config import ModerationConfig
    from moderation.eval import train
    from moderation.labels import stratified_split

    rng = np.random.default_rng(0)
    small = davidson.subset(np.sort(rng.choice(len(davidson), 4000, replace=False)))
    split = stratified_split(small.y3, seed=0, test=0.25, val=0.25)
    trained = train(small, 0, ModerationConfig(max_features=20_000), split=split)
    test = small.subset(split.test)
    p = trained.model.predict_proba(test.texts)
    base_rate = test.hard["hate"].mean()
    assert pr_auc(test.hard["hate"], p["hate"]) > 3 * base_rate
    assert pr_auc(test.hard["offensive"], p["offensive"]) > 0.95


def test_the_encoded_step_changes_no_tweet(davidson):
    """``encoded`` folds evasions that arrive as HTML entities; the record's canonical text was
    built without it, so it must leave every Davidson tweet (and its evasion signals) as it was:
    the tweets' own entities (emoji, ``&#8230;``, accents) are ordinary use, not evasions."""
    from moderation.normalise import STEPS

    at = [step.name for step in STEPS].index("encoded")
    assert STEPS[at - 1].name == "entities"  # it folds what that step decoded
    changed = 0
    for text in davidson.texts:
        for step in STEPS[:at]:
            text = step.fn(text)
        changed += STEPS[at].fn(text) != text  # a no-op here leaves every later step's input as is
    assert changed == 0
