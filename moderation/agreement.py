"""How well the annotators agree with each other, and a model judged by the same yardstick.

Davidson et al. had each tweet labelled by three or more crowd workers; the released class is
their majority. Agreement between people bounds how meaningful a model's F1 against that
majority is, so we measure it. The obvious figure, one annotator against the released class,
is flattered: the annotator's own vote is part of the majority it is scored against. The honest
one holds the annotator out (leave one annotator out)::

    for each tweet with votes v = (h, o, n) from N annotators, and each annotator (vote c):
        reference = argmax of the other N - 1 votes, v - e_c   (a tie splits the weight evenly)
        confusion[reference, c] += 1 / N                       (every tweet weighs 1 in total)

Per-class and weighted F1 follow from that expected confusion matrix (:func:`f1_from_confusion`).
A model is scored against *the same* leave-one-out references, its prediction in place of the
held-out vote, so the two figures compare like with like; against the released class the model
would be scored on a majority of N votes, the annotator on one of N - 1.
:func:`own_vote_confusion` gives the flattered figure for comparison. The measured figures on
Davidson's test splits are in the README and the benchmark's ``agreement`` table.
"""

from __future__ import annotations

import numpy as np

from moderation.errors import ConfigError

__all__ = ["f1_from_confusion", "leave_one_out_confusion", "own_vote_confusion"]


def leave_one_out_confusion(votes: np.ndarray, predicted: np.ndarray | None = None) -> np.ndarray:
    """Expected ``(k, k)`` confusion: rows the other annotators' majority, columns the prediction.

    ``votes``: int ``(n, k)``, each row the annotators' votes per class (at least two
    annotators). ``predicted``: int ``(n,)`` class per row, or None to score the held-out
    annotator's own vote. Every row contributes a total weight of 1.
    """
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[0] == 0 or (votes < 0).any():
        raise ConfigError(f"votes must be a non-empty (n, classes) count matrix, got {votes.shape}")
    totals = votes.sum(axis=1)
    if (totals < 2).any():
        raise ConfigError("every row needs at least two annotators to hold one out")
    if predicted is not None:
        predicted = np.asarray(predicted)
        if predicted.shape != (len(votes),):
            raise ConfigError(f"predicted must have shape ({len(votes)},), got {predicted.shape}")
    k = votes.shape[1]
    confusion = np.zeros((k, k))
    for i, (row, total) in enumerate(zip(votes, totals, strict=True)):
        for held_out in np.flatnonzero(row):
            others = row.copy()
            others[held_out] -= 1
            majority = np.flatnonzero(others == others.max())
            column = held_out if predicted is None else predicted[i]
            confusion[majority, column] += row[held_out] / total / len(majority)
    return confusion


def own_vote_confusion(votes: np.ndarray, released: np.ndarray) -> np.ndarray:
    """Expected confusion of one annotator against the released majority, own vote included.

    The flattered figure (rows ``released`` classes, columns votes, each row weighing 1),
    kept to show how far it sits from :func:`leave_one_out_confusion`.
    """
    votes = np.asarray(votes, dtype=float)
    released = np.asarray(released)
    if votes.ndim != 2 or released.shape != (len(votes),) or (votes.sum(axis=1) < 1).any():
        raise ConfigError("votes must be (n, classes) with a vote in every row, released (n,)")
    confusion = np.zeros((votes.shape[1],) * 2)
    np.add.at(confusion, released, votes / votes.sum(axis=1, keepdims=True))
    return confusion


def f1_from_confusion(confusion: np.ndarray) -> dict[str, object]:
    """Per-class F1 ``(k,)`` and their support-weighted mean, from rows = truth, columns = guess.

    A class never predicted (or never true) gets F1 0, as scikit-learn's ``zero_division=0``.
    """
    confusion = np.asarray(confusion, dtype=float)
    tp = np.diag(confusion)
    guessed, true = confusion.sum(axis=0), confusion.sum(axis=1)
    denominator = guessed + true
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"per_class": f1, "weighted": float(f1 @ true / true.sum())}
