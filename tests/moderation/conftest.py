"""Tiny synthetic corpora with a known answer, shared by the moderation tests.

Texts are made of neutral filler words plus marker words: "zorg" marks hate (always inside an
offensive text), "blarg" marks offensive. A working model must separate them almost perfectly.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from moderation.config import ModerationConfig

NEUTRAL = [
    *("the", "a", "sunny", "day", "walk", "park", "coffee"),
    *("friend", "music", "book", "game", "team", "city", "river"),
]


def make_corpus(n: int, seed: int) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """``n`` texts, hard labels {hate, offensive}, 3-class label (0 hate, 1 offense, 2 neither)."""
    rng = np.random.default_rng(seed)
    texts, y3 = [], []
    for _ in range(n):
        words = list(rng.choice(NEUTRAL, size=6))
        cls = int(rng.choice([0, 1, 2], p=[0.2, 0.4, 0.4]))
        if cls == 0:
            words += ["zorg", "blarg"]
        elif cls == 1:
            words += ["blarg"]
        rng.shuffle(words)
        texts.append(" ".join(words))
        y3.append(cls)
    y3 = np.array(y3)
    labels = {"hate": (y3 == 0).astype(int), "offensive": (y3 <= 1).astype(int)}
    return texts, labels, y3


def damage_sqlite_file(path: Path) -> None:
    """Overwrite part of every third page after the first two, as a torn write or a bad copy
    would: the file still opens (its header and schema are intact), reading the rows fails."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    db.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(2 * page, len(data), 3 * page):
        data[offset : offset + 64] = bytes(range(64, 128))
    path.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def small_config() -> ModerationConfig:
    return ModerationConfig(min_df=1, max_features=5_000, min_auto_support=5)


@pytest.fixture(scope="session")
def trained_model(small_config):
    from moderation.classifier import ModerationModel
    from moderation.policy import choose_thresholds

    texts, labels, _ = make_corpus(400, seed=1)
    val_texts, val_labels, _ = make_corpus(600, seed=2)  # enough for a confident auto cut
    model = ModerationModel(small_config).fit(
        texts, {k: v.astype(float) for k, v in labels.items()}, val_texts, val_labels
    )
    model.thresholds = choose_thresholds(model.predict_proba(val_texts), val_labels, small_config)
    return model
