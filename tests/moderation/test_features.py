"""The embedding cache the benchmark encodes 25k tweets through once (``CachedEmbedder``)."""

from __future__ import annotations

import io

import numpy as np
import pytest

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


class TinyEmbedder:
    """Deterministic 4-d vectors from the text's hash, counting what it encodes."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += list(texts)
        seeds = [int.from_bytes(t.encode()[:4].ljust(4, b"\0"), "little") for t in texts]
        return np.array([np.random.default_rng(s).random(4) for s in seeds], np.float32)


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a numpy file", id="garbage"),
        pytest.param(_npz(keys=np.array(["k"])), id="no-vectors"),
        pytest.param(_npz(keys=np.array(["k", "j"]), vectors=np.ones((1, 4))), id="unpaired"),
        pytest.param(_npz(keys=np.array(["k"]), vectors=np.ones((1, 7))), id="other-width"),
        pytest.param(_npz(keys=np.array(["k"]), vectors=np.array([["x"] * 4])), id="strings"),
    ],
)
def test_an_unusable_cache_file_is_a_miss_and_is_replaced(tmp_path, content):
    model = TinyEmbedder()
    cache = CachedEmbedder(model, tmp_path)
    expected = cache.encode(["seen"])
    cache.path.write_bytes(content)  # another process (or a crash) leaves this file behind
    out = cache.encode(["seen", "new"])  # "new" is missing, so the file is read
    np.testing.assert_array_equal(out, np.vstack([expected, model.encode(["new"])]))
    restarted = CachedEmbedder(model, tmp_path)
    model.encoded.clear()
    restarted.encode(["seen", "new"])
    assert model.encoded == []  # the file was rewritten whole


def test_a_cache_file_from_another_model_is_dropped_not_mixed_in(tmp_path):
    model = TinyEmbedder()
    cache = CachedEmbedder(model, tmp_path)
    cache.path.write_bytes(_npz(keys=np.array([cache._key("seen")]), vectors=np.ones((1, 7))))
    out = cache.encode(["seen", "new"])  # a fresh instance cannot know the width beforehand
    assert model.encoded == ["new", "seen"]  # each text once: "new" is kept, not encoded again
    np.testing.assert_array_equal(out, model.encode(["seen", "new"]))
    assert out.shape == (2, 4)


@pytest.mark.parametrize("bars_on", [True, False])
def test_loading_the_model_draws_no_progress_bar_and_keeps_the_setting(capfd, bars_on):
    # found by a review: transformers drew a "Loading weights" tqdm bar on stderr on every load
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if bars_on else hf_logging.disable_progress_bar)()
    try:
        assert MiniLMEmbedder().encode(["a first text", "a second"]).shape == (2, 384)
        assert "Loading weights" not in capfd.readouterr().err
        assert hf_logging.is_progress_bar_enabled() is bars_on  # put back as it was
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def test_loading_the_model_keeps_the_callers_hub_bars_off():
    # the switch turned huggingface_hub's bars back on as it restored transformers' (re-read)
    from huggingface_hub import utils as hub
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    hub.disable_progress_bars()
    try:
        MiniLMEmbedder().encode(["a text"])
        assert hf_logging.is_progress_bar_enabled() and hub.are_progress_bars_disabled()
    finally:
        hub.enable_progress_bars()
