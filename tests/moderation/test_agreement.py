"""Leave-one-annotator-out agreement: hand-worked confusions and F1 parity with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score

from moderation.agreement import f1_from_confusion, leave_one_out_confusion, own_vote_confusion
from moderation.errors import ConfigError


def test_a_worked_example_with_a_tie():
    # three annotators: one says hate, two say offensive
    votes = np.array([[1, 2, 0]])
    # the hate voter (1/3) faces two offensive votes; an offensive voter (2/3) faces a 1-1 tie,
    # which splits its weight between the hate row and the offensive row
    expected = np.array([[0, 1 / 3, 0], [1 / 3, 1 / 3, 0], [0, 0, 0]])
    np.testing.assert_allclose(leave_one_out_confusion(votes), expected)
    # a model that says offensive is scored against the same three references
    model = np.array([[0, 1 / 3, 0], [0, 2 / 3, 0], [0, 0, 0]])
    np.testing.assert_allclose(leave_one_out_confusion(votes, np.array([1])), model)


def test_own_vote_agreement_counts_the_annotator_in_the_majority():
    votes = np.array([[1, 2, 0], [0, 0, 3]])
    expected = np.array([[0, 0, 0], [1 / 3, 2 / 3, 0], [0, 0, 1]])
    np.testing.assert_allclose(own_vote_confusion(votes, np.array([1, 2])), expected)
    # flattered: on the tie-prone first row the held-out figure is lower
    assert (
        f1_from_confusion(expected)["weighted"]
        > f1_from_confusion(leave_one_out_confusion(votes))["weighted"]
    )
    with pytest.raises(ConfigError, match="released"):
        own_vote_confusion(votes, np.array([1]))


def test_unanimous_votes_agree_perfectly_and_each_row_weighs_one():
    votes = np.array([[3, 0, 0], [0, 6, 0], [0, 0, 4]])
    confusion = leave_one_out_confusion(votes)
    np.testing.assert_allclose(confusion, np.eye(3))
    assert f1_from_confusion(confusion)["weighted"] == 1.0
    mixed = np.random.default_rng(0).integers(0, 4, size=(50, 3)) + np.array([2, 0, 0])
    assert leave_one_out_confusion(mixed).sum() == pytest.approx(50)
    assert leave_one_out_confusion(mixed, np.zeros(50, int)).sum() == pytest.approx(50)


def test_f1_from_confusion_matches_scikit_learn():
    rng = np.random.default_rng(1)
    truth = rng.choice(3, size=400, p=[0.1, 0.6, 0.3])
    guess = np.where(rng.random(400) < 0.7, truth, rng.choice(3, size=400))
    guess[guess == 0] = 1  # class 0 never predicted: its F1 is 0, as zero_division=0
    scores = f1_from_confusion(confusion_matrix(truth, guess, labels=[0, 1, 2]))
    np.testing.assert_allclose(
        scores["per_class"], f1_score(truth, guess, labels=[0, 1, 2], average=None)
    )
    assert scores["weighted"] == pytest.approx(f1_score(truth, guess, average="weighted"))


@pytest.mark.parametrize(
    ("votes", "predicted", "message"),
    [
        (np.array([[1, 0, 0]]), None, "at least two annotators"),
        (np.zeros((0, 3), int), None, "non-empty"),
        (np.array([[2, -1, 0]]), None, "count matrix"),
        (np.array([[2, 1, 0]]), np.array([0, 1]), "shape"),
    ],
)
def test_bad_input_is_a_clear_error(votes, predicted, message):
    with pytest.raises(ConfigError, match=message):
        leave_one_out_confusion(votes, predicted)
