"""The identity guard: term masking, the min-evidence rules in routing and in the Moderator."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.classifier import ModerationModel
from moderation.identity import (
    GUARD_TERMS,
    IDENTITY_TERMS,
    benign_identity_sentences,
    mask_identity_terms,
)
from moderation.pipeline import Moderator
from moderation.policy import ALLOW, LabelThresholds, choose_thresholds, route

from .conftest import NEUTRAL


def test_mask_deletes_whole_terms_only():
    assert mask_identity_terms("I am a Black person.") == "I am a person."
    assert mask_identity_terms("my african american neighbours") == "my neighbours"
    assert mask_identity_terms("Muslims and Jews, together") == "and , together"
    assert mask_identity_terms("a blackboard in the mansion") is None  # no partial words
    assert mask_identity_terms("") is None


def test_every_template_term_is_guarded():
    assert set(IDENTITY_TERMS) <= set(GUARD_TERMS)
    for term, sentence in benign_identity_sentences():
        masked = mask_identity_terms(sentence)
        assert masked is not None and term not in masked.lower().split()


def test_route_requires_the_parent_in_review():
    thresholds = {
        "hate": LabelThresholds("hate", auto=0.9, review=0.1),
        "offensive": LabelThresholds("offensive", auto=0.9, review=0.5),
    }
    probs = {"hate": np.array([0.3, 0.3, 0.95]), "offensive": np.array([0.2, 0.6, 0.1])}
    severity = {"hate": 1.0, "offensive": 0.3}
    plain = route(probs, thresholds, severity)
    guarded = route(probs, thresholds, severity, requires={"hate": "offensive"})
    assert plain.path.tolist() == ["review", "review", "auto_action"]
    assert guarded.path.tolist() == [ALLOW, "review", ALLOW]  # no offensive evidence, no hate
    assert guarded.label.tolist() == ["", "hate", ""]


@pytest.fixture(scope="module")
def biased_model(small_config):
    """Hate examples always name a group ("muslim"); a benign mention then scores as hate."""
    rng = np.random.default_rng(7)
    texts, hate, off = [], [], []
    for i in range(600):
        words = list(rng.choice(NEUTRAL, size=5))
        kind = i % 3
        if kind == 0:
            words += ["muslim", "zorg", "blarg"]
        elif kind == 1:
            words += ["blarg"]
        rng.shuffle(words)
        texts.append(" ".join(words))
        hate.append(int(kind == 0))
        off.append(int(kind <= 1))
    labels = {"hate": np.array(hate), "offensive": np.array(off)}
    model = ModerationModel(small_config).fit(
        texts[:400], {k: v[:400].astype(float) for k, v in labels.items()},
        texts[400:], {k: v[400:] for k, v in labels.items()},
    )  # fmt: skip
    model.thresholds = choose_thresholds(
        model.predict_proba(texts[400:]), {k: v[400:] for k, v in labels.items()}, small_config
    )
    return model


def test_guard_takes_the_lower_of_plain_and_masked_hate_scores(biased_model):
    texts = ["muslim sunny park walk coffee", "zorg blarg muslim park", "sunny park walk coffee"]
    plain = Moderator(biased_model).scores(texts)
    guarded = Moderator(biased_model, identity_guard=True).scores(texts)
    masks = [mask_identity_terms(t) for t in texts]
    masked_texts = [t if m is None else m for t, m in zip(texts, masks, strict=True)]
    masked = Moderator(biased_model).scores(masked_texts)
    np.testing.assert_allclose(guarded["hate"], np.minimum(plain["hate"], masked["hate"]))
    np.testing.assert_allclose(guarded["offensive"], plain["offensive"])  # only hate is guarded
    assert guarded["hate"][0] < plain["hate"][0]  # the group word alone was the evidence
    assert guarded["hate"][2] == plain["hate"][2]  # no identity term: untouched


def test_a_post_that_is_only_identity_terms_is_guarded_too(biased_model):
    # Masking leaves "" (or only punctuation): "a group's name alone is no evidence of an attack
    # on it", so the hate score is capped by the score of what is left, as for any other post.
    texts = ["muslim", "Muslims!", "muslim muslim"]
    assert [mask_identity_terms(t) for t in texts] == ["", "!", ""]
    plain = Moderator(biased_model).scores(texts)
    empty = Moderator(biased_model).scores(["", "!", ""])
    moderator = Moderator(biased_model, identity_guard=True)
    guarded = moderator.scores(texts)
    np.testing.assert_allclose(guarded["hate"], np.minimum(plain["hate"], empty["hate"]))
    assert guarded["hate"][0] < plain["hate"][0]  # the group word was the only evidence
    one = moderator.moderate("muslim")  # the sync path takes the same branch
    assert one.scores["hate"] == pytest.approx(guarded["hate"][0], abs=1e-4)


def test_guard_is_the_same_on_the_sync_and_batch_paths(biased_model):
    moderator = Moderator(biased_model, identity_guard=True, require_parent=True)
    texts = ["muslim sunny park walk coffee", "zorg blarg muslim park", "sunny walk"]
    batch = moderator.moderate_batch(texts)
    for text, verdict in zip(texts, batch, strict=True):
        one = moderator.moderate(text)
        assert (one.path, one.label) == (verdict.path, verdict.label)
        assert one.scores == pytest.approx(verdict.scores, abs=1e-4)
    assert moderator.requires == {"hate": "offensive"}
    assert Moderator(biased_model).requires == {}


def test_a_model_saved_with_serving_options_is_served_with_them(biased_model, tmp_path):
    import copy

    from moderation.classifier import ModerationModel

    model = copy.copy(biased_model)
    model.serving_options = {"identity_guard": True, "require_parent": True}
    model.save(tmp_path / "guarded.pkl")
    loaded = ModerationModel.load(tmp_path / "guarded.pkl")
    served = Moderator(loaded)  # the README's snippet: no flags repeated by hand
    assert served.identity_guard and served.requires == {"hate": "offensive"}
    texts = ["muslim sunny park walk coffee", "zorg blarg muslim park"]
    guarded = Moderator(biased_model, identity_guard=True, require_parent=True).scores(texts)
    np.testing.assert_allclose(served.scores(texts)["hate"], guarded["hate"])
    plain = Moderator(loaded, identity_guard=False, require_parent=False)  # explicit wins
    assert not plain.identity_guard and plain.requires == {}
