"""Labels from the Davidson et al. annotator votes: the paper's 3 classes and a multi-label view.

Davidson et al. (ICWSM 2017, "Automated Hate Speech Detection and the Problem of Offensive
Language") had each tweet coded by at least three CrowdFlower annotators as *hate speech*,
*offensive language* or *neither*; the released ``class`` is the majority vote. We keep that label
for comparison with the paper and derive a second, multi-label view that a moderation policy needs.

The multi-label rule (n = annotators, h / o = votes for hate / offensive)::

    hate_share      = h / n                 soft label of "hate"
    offensive_share = (h + o) / n           soft label of "offensive" (hate speech is offensive too)
    hate      = 1  if hate_share      >= 0.5
    offensive = 1  if offensive_share >= 0.5

So ``offensive`` means "at least offensive" and ``hate`` is (almost always) a subset of it, which
matches how actions escalate: offensive content may be hidden, hate speech is removed. The shares
are kept as soft targets for training (a 2-of-3 item is learnt as 0.67, not as 1.0) and say which
items are genuinely ambiguous: ``ambiguous`` marks items whose hate share is strictly between 0 and
1 and whose majority is not unanimous.

Splits are stratified by the 3-class label and seeded (train / validation / test), so every class
keeps its share in each part; the test share defaults to the paper's 10 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from moderation.config import check_seed

__all__ = [
    "CLASS_NAMES",
    "LABELS",
    "LabelledData",
    "Split",
    "from_davidson",
    "stratified_split",
]

CLASS_NAMES = ("hate", "offensive", "neither")  # Davidson's class 0, 1, 2
LABELS = ("hate", "offensive")  # the multi-label view the policy acts on


@dataclass(frozen=True)
class LabelledData:
    """Texts with both label views. Arrays are aligned, length ``n``.

    ``y3``: int (n,) in {0, 1, 2} (``CLASS_NAMES``); ``hard``/``soft``: {label: (n,) array}, hard in
    {0, 1}, soft in [0, 1]; ``ambiguous``: bool (n,); ``votes``: int (n, 3) annotator votes per
    class in ``CLASS_NAMES`` order, or None when the source has no votes.
    """

    texts: list[str]
    y3: np.ndarray
    hard: dict[str, np.ndarray]
    soft: dict[str, np.ndarray]
    ambiguous: np.ndarray
    votes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray) -> LabelledData:
        """The rows at ``index`` (a new object; this one is not modified)."""
        return LabelledData(
            texts=[self.texts[i] for i in index],
            y3=self.y3[index],
            hard={k: v[index] for k, v in self.hard.items()},
            soft={k: v[index] for k, v in self.soft.items()},
            ambiguous=self.ambiguous[index],
            votes=None if self.votes is None else self.votes[index],
        )


def from_davidson(frame: pd.DataFrame) -> LabelledData:
    """Build both label views from the columns of :func:`evals.datasets.load_davidson`."""
    n = frame["count"].to_numpy(dtype=float)
    hate_share = frame["hate_speech"].to_numpy(dtype=float) / n
    offensive_share = (
        frame["hate_speech"].to_numpy(dtype=float) + frame["offensive_language"].to_numpy()
    ) / n
    soft = {"hate": hate_share, "offensive": offensive_share}
    hard = {label: (share >= 0.5).astype(np.int64) for label, share in soft.items()}
    votes = frame[["hate_speech", "offensive_language", "neither"]].to_numpy(dtype=np.int64)
    majority = votes.max(axis=1)
    ambiguous = (hate_share > 0) & (hate_share < 1) & (majority < n)
    return LabelledData(
        texts=frame["tweet"].astype(str).tolist(),
        y3=frame["class"].to_numpy(dtype=np.int64),
        hard=hard,
        soft=soft,
        ambiguous=ambiguous,
        votes=votes,
    )


@dataclass(frozen=True)
class Split:
    """Row indices of each part (disjoint, together all rows)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int


def stratified_split(y: np.ndarray, seed: int, test: float = 0.1, val: float = 0.1) -> Split:
    """Stratified (by ``y``) seeded split into train / validation / test shares.

    ``seed`` is a whole number from 0 to ``config.MAX_SEED`` (ConfigError otherwise)."""
    seed = check_seed(seed)
    index = np.arange(len(y))
    rest, test_idx = train_test_split(index, test_size=test, stratify=y, random_state=seed)
    train_idx, val_idx = train_test_split(
        rest, test_size=val / (1 - test), stratify=y[rest], random_state=seed
    )
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx), seed)
