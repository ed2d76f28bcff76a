"""Fixtures for the rag tests: tiny synthetic corpora with known answers, and embedders.

``HashingEmbedder`` is a real (if weak) embedder, not a mock: a bag of hashed word counts,
L2-normalised, so documents that share words with the query score higher. It makes index tests
fast and deterministic; the real MiniLM model is exercised by the tests marked ``slow``.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from rag.documents import Document


class HashingEmbedder:
    def __init__(self, dim: int = 64, model_id: str = "hashing-64") -> None:
        self.dim, self.model_id = dim, model_id
        self.calls = 0  # number of encode calls (the cache tests count them)

    def encode(self, texts, *, progress=False):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for w in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


@pytest.fixture
def embedder():
    return HashingEmbedder()


@pytest.fixture
def make_embedder():
    """The HashingEmbedder class, for tests that need a second instance or a subclass."""
    return HashingEmbedder


@pytest.fixture
def docs():
    return [
        Document(
            "cats",
            "Cats purr when they are content. A cat sleeps most of the day.",
            title="Domestic cats",
        ),
        Document("dogs", "Dogs bark at strangers. A dog needs daily walks.", title="Dogs"),
        Document("fish", "Goldfish live in water and breathe with gills.", title="Goldfish"),
        Document("birds", "Parrots can imitate speech. Birds lay eggs.", title="Parrots"),
        Document(
            "vitd",
            "Vitamin D deficiency is associated with higher cancer risk in observational studies.",
            title="Vitamin D and cancer",
        ),
    ]


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2 (loaded once per session)."""
    from rag.dense import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    emb.encode(["warm up"])
    return emb


@pytest.fixture
def bars_on_for_transformers():
    """transformers' progress bars on and huggingface_hub's off (a caller's own setting), restored.

    A test that asserts "no bar" must start with the bars on, or it would pass whatever the code.
    """
    from huggingface_hub import utils as hub
    from transformers.utils import logging as transformers_logging

    was_on, hub_was_off = (
        transformers_logging.is_progress_bar_enabled(),
        hub.are_progress_bars_disabled(),
    )
    transformers_logging.enable_progress_bar()
    hub.disable_progress_bars()
    yield
    (
        transformers_logging.enable_progress_bar
        if was_on
        else transformers_logging.disable_progress_bar
    )()
    (hub.disable_progress_bars if hub_was_off else hub.enable_progress_bars)()
