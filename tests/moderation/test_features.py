"""The embedding cache the benchmark encodes 25k tweets through once (``CachedEmbedder``)."""

from __future__ import annotations

import numpy as np

from moderation.features import CachedEmbedder, MiniLMEmbedder


class CountingMiniLM(MiniLMEmbedder):
    """The real packaged MiniLM, counting the texts it is asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += list(texts)
        return super().encode(texts)


def test_vectors_are_encoded_once_whatever_the_order_and_survive_a_restart(tmp_path):
    texts = ["the first tweet", "a second one", "and a third"]
    model = CountingMiniLM()
    cache = CachedEmbedder(model, tmp_path)
    first = cache.encode(texts)
    assert first.shape == (3, 384)
    np.testing.assert_allclose(cache.encode(texts[::-1]), first[::-1])  # a hit, in any order
    assert model.encoded == texts

    restarted = CachedEmbedder(model, tmp_path)  # a new process reading the same file
    np.testing.assert_array_equal(restarted.encode(texts[1:]), first[1:])
    assert model.encoded == texts  # nothing encoded again
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings-minilm.npz"]


def test_two_instances_sharing_a_folder_pick_up_each_others_vectors(tmp_path):
    model = CountingMiniLM()
    left, right = CachedEmbedder(model, tmp_path), CachedEmbedder(model, tmp_path)
    left.encode(["only the left one saw this"])
    right.encode(["only the right one saw this"])
    model.encoded.clear()
    both = ["only the left one saw this", "only the right one saw this"]
    left.encode(both)  # the right one's vector is read from the file, not encoded again
    assert model.encoded == []
    restarted = CachedEmbedder(model, tmp_path)
    restarted.encode(both)
    assert model.encoded == []  # the last save holds both
