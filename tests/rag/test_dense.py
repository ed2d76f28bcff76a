import io
import re
import threading

import numpy as np
import pytest

from rag.dense import DenseIndex
from rag.embedding_cache import EmbeddingCache, texts_checksum
from rag.errors import ConfigError


def unit(rng, n, d):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_search_is_exact_inner_product():
    rng = np.random.default_rng(0)
    vecs, q = unit(rng, 200, 16), unit(rng, 3, 16)
    idx = DenseIndex(16)
    idx.add([f"v{i}" for i in range(200)], vecs)
    for qi, res in zip(q, idx.search(q, 5), strict=True):
        expected = np.argsort(-(vecs @ qi))[:5]
        assert res.ids == [f"v{i}" for i in expected]
        np.testing.assert_allclose(res.scores, (vecs @ qi)[expected], rtol=1e-5)


def test_remove_and_replace_are_exact():
    rng = np.random.default_rng(1)
    vecs = unit(rng, 10, 8)
    idx = DenseIndex(8)
    idx.add([str(i) for i in range(10)], vecs)
    idx.search(vecs[:1], 3)  # build the FAISS index, which the changes must invalidate
    idx.remove(["0"])
    assert "0" not in idx.search(vecs[:1], 10)[0].ids
    idx.add(["1"], vecs[:1])  # id 1 now holds vector 0
    assert idx.search(vecs[:1], 1)[0].ids == ["1"]
    assert len(idx) == 9
    assert idx.scores_for(vecs[0], ["1", "0"])[1] == -1.0


def test_hnsw_recall_against_exact_is_high_on_random_data():
    rng = np.random.default_rng(2)
    vecs, q = unit(rng, 2000, 32), unit(rng, 20, 32)
    flat, hnsw = DenseIndex(32), DenseIndex(32, "hnsw")
    ids = [str(i) for i in range(2000)]
    flat.add(ids, vecs)
    hnsw.add(ids, vecs)
    recall = np.mean(
        [
            len(set(a.ids) & set(b.ids)) / 10
            for a, b in zip(flat.search(q, 10), hnsw.search(q, 10), strict=True)
        ]
    )
    assert recall >= 0.9


def test_shape_errors_are_clear():
    idx = DenseIndex(4)
    with pytest.raises(ConfigError, match=r"shape \(2, 4\)"):
        idx.add(["a", "b"], np.zeros((2, 3)))
    with pytest.raises(ConfigError):
        DenseIndex(4, "ivf-pq")
    assert idx.search(np.zeros((1, 4)), 3)[0].ids == []


def test_embedding_cache_hits_and_recovers_from_corruption(tmp_path, embedder):
    cache = EmbeddingCache(tmp_path)
    key = EmbeddingCache.key(embedder.model_id, "document", "abc123")
    texts = ["alpha beta", "gamma"]
    first = cache.get_or_compute(key, texts, embedder)
    second = cache.get_or_compute(key, texts, embedder)
    assert embedder.calls == 1
    np.testing.assert_array_equal(first, second)
    assert key != EmbeddingCache.key(embedder.model_id, "sentences-128", "abc123")
    cache.path(key).write_bytes(b"not a numpy file")
    third = cache.get_or_compute(key, texts, embedder)
    assert embedder.calls == 2
    np.testing.assert_array_equal(first, third)


def npy_bytes(array, **save):
    buffer = io.BytesIO()
    np.save(buffer, array, **save)
    return buffer.getvalue()


def npz_bytes(array):
    buffer = io.BytesIO()
    np.savez(buffer, a=array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),  # np.load raises EOFError
        pytest.param(npy_bytes(np.ones((2, 64), np.float32))[:20], id="truncated-header"),
        pytest.param(npz_bytes(np.ones((2, 64), np.float32)), id="npz"),  # loads as an NpzFile
        pytest.param(npy_bytes(np.array([{"a": 1}, None]), allow_pickle=True), id="pickled"),
        pytest.param(npy_bytes(np.ones((3, 64), np.float32)), id="wrong-rows"),
        pytest.param(npy_bytes(np.ones(2 * 64, np.float32)), id="1-d"),
        pytest.param(npy_bytes(np.array([["a"] * 64] * 2)), id="strings"),
    ],
)
def test_an_unusable_embedding_cache_file_is_a_miss_and_is_rewritten(tmp_path, embedder, content):
    cache = EmbeddingCache(tmp_path)
    texts = ["alpha beta", "gamma"]
    cache.path("k").write_bytes(content)
    assert cache.get("k", 2) is None
    vecs = cache.get_or_compute("k", texts, embedder)
    assert embedder.calls == 1 and vecs.shape == (2, 64)
    np.testing.assert_array_equal(cache.get("k", 2), vecs)  # the entry was rewritten


def test_an_embedding_cache_file_of_another_width_is_a_miss_when_the_width_is_known(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("k", np.ones((2, 7)))
    assert cache.get("k", 2, dim=64) is None
    assert cache.get("k", 2, dim=7).shape == (2, 7)


def test_an_index_update_misses_a_cache_entry_of_another_width(tmp_path, docs, embedder):
    from rag.chunking import make_chunker
    from rag.config import RagConfig
    from rag.index import HybridIndex

    index = HybridIndex(embedder, make_chunker("document"), RagConfig(chunker="document"))
    index.upsert(docs[:2])
    cache = EmbeddingCache(tmp_path)
    texts = [d.content for d in docs[2:]]  # the document chunker's chunks
    key = EmbeddingCache.key(embedder.model_id, "document", texts_checksum(texts))
    cache.put(key, np.ones((3, 7), np.float32))  # rows match, width does not (another model)
    index.upsert(docs[2:], cache=cache)
    assert embedder.calls == 2 and index.dense.vectors.shape == (5, 64)


def test_new_weights_in_the_same_model_folder_miss_the_embedding_cache(
    tmp_path, docs, make_embedder
):
    # the cache was keyed by the model's name: after new weights were saved into the model's
    # folder, re-indexing served the old weights' vectors, and queries embedded by the new
    # weights were compared with them
    from rag.chunking import DocumentChunker
    from rag.index import HybridIndex

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x01")

    class FolderModel(make_embedder):
        """Hashed bags of words rotated by the folder's weights: other weights, other vectors."""

        def encode(self, texts, *, progress=False):
            shift = (folder / "weights.bin").read_bytes()[0]
            return np.roll(super().encode(texts), shift, axis=1)

    model, cache = FolderModel(model_id=str(folder)), EmbeddingCache(tmp_path / "cache")
    HybridIndex(model, DocumentChunker()).upsert(docs, cache=cache)
    HybridIndex(model, DocumentChunker()).upsert(docs, cache=cache)
    assert model.calls == 1  # same weights: a hit
    (folder / "weights.bin").write_bytes(b"\x07")  # retrained: same folder, same size
    index = HybridIndex(model, DocumentChunker())
    index.upsert(docs, cache=cache)
    assert model.calls == 2  # a miss: embedded by the new weights
    np.testing.assert_array_equal(index.dense.vectors, model.encode([d.content for d in docs]))


def test_texts_checksum_tells_apart_lists_that_join_to_the_same_string():
    lists = [["ab"], ["a", "b"], ["b", "a"], ["a\nb"], ["a", "", "b"], [], [""]]
    assert len({texts_checksum(texts) for texts in lists}) == len(lists)


class LongWordsInPieces:
    """Token spans in which a word longer than 12 characters is four pieces, as WordPiece cuts
    a rare word: another tokenizer than WhitespaceSpans, under the same chunker name."""

    def __call__(self, text):
        spans = []
        for match in re.finditer(r"\S+", text):
            start, end = match.span()
            if end - start <= 12:
                spans.append((start, end))
                continue
            q = (end - start) // 4
            spans += [(start + i * q, start + (i + 1) * q) for i in range(3)] + [
                (start + 3 * q, end)
            ]
        return spans


def test_a_chunker_that_cuts_elsewhere_under_the_same_name_misses_the_embedding_cache(
    tmp_path, embedder
):
    # the cache was keyed by (model, chunker name, documents): session 32 moved the tokens
    # chunker's cuts without renaming it, and a re-index with the same number of chunks was
    # served the old chunks' vectors for its new chunk texts
    from rag.chunking import SentenceChunker, WhitespaceSpans
    from rag.config import RagConfig
    from rag.documents import Document
    from rag.index import HybridIndex

    doc = Document("d", "Pneumonoultramicroscopic. Cats purr. Dogs bark loudly.")
    cache, config = EmbeddingCache(tmp_path), RagConfig(chunker="sentences")
    before = HybridIndex(embedder, SentenceChunker(WhitespaceSpans(), 5), config)
    before.upsert([doc], cache=cache)
    after = HybridIndex(embedder, SentenceChunker(LongWordsInPieces(), 5), config)
    after.upsert([doc], cache=cache)
    assert before.chunker.name == after.chunker.name and len(after.chunks) == len(before.chunks)
    texts = [c.text for c in after.chunks.values()]
    assert texts != [c.text for c in before.chunks.values()]  # the same count, cut elsewhere
    np.testing.assert_array_equal(after.dense.vectors, embedder.encode(texts))
    again = HybridIndex(embedder, SentenceChunker(LongWordsInPieces(), 5), config)
    calls = embedder.calls
    again.upsert([doc], cache=cache)
    assert embedder.calls == calls  # the same texts again: a hit


def test_a_cache_that_cannot_be_written_costs_the_cache_not_the_index(
    embedder, docs, tmp_path, caplog
):
    # put raised FileExistsError out of upsert, after every chunk was embedded: nothing was saved
    from rag.chunking import DocumentChunker
    from rag.config import RagConfig
    from rag.index import HybridIndex

    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")
    cache = EmbeddingCache(not_a_folder)
    assert (
        cache.put(EmbeddingCache.key("m", "document", "abc"), np.ones((1, 4), np.float32)) is False
    )
    index = HybridIndex(embedder, DocumentChunker(), RagConfig(chunker="document"))
    with caplog.at_level("WARNING", logger="rag.embedding_cache"):
        index.upsert(docs, cache=cache)
    assert f"embedding cache {not_a_folder} not written" in caplog.text
    assert len(index.chunks) == len(docs)
    index.save(tmp_path / "idx")
    assert (tmp_path / "idx" / "manifest.json").exists()


@pytest.mark.slow
def test_minilm_embeddings_are_normalised_and_semantic(minilm):
    v = minilm.encode(["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_two_writers_filling_one_cache_entry_at_once_leave_one_whole_file(tmp_path):
    """Two processes sharing a cache may embed the same corpus at once. With one fixed temporary
    name they wrote into the same file: a rename could fail, or move half a file into place."""
    cache = EmbeddingCache(tmp_path)
    key = EmbeddingCache.key("model", "document", "abc123")
    rows = 2000
    errors: list[BaseException] = []

    def write(value: float) -> None:
        vecs = np.full((rows, 384), value, dtype=np.float32)
        try:
            for _ in range(25):
                cache.put(key, vecs)
        except BaseException as exc:  # the test reports whatever a writer hit
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(value,)) for value in (1.0, 2.0)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert errors == []
    vecs = cache.get(key, rows)
    assert vecs is not None and len(np.unique(vecs)) == 1  # all of one writer's array
    assert [p.name for p in tmp_path.iterdir()] == [cache.path(key).name]  # nothing left behind


@pytest.mark.slow
def test_loading_the_model_draws_no_progress_bar_and_keeps_the_callers_setting(
    bars_on_for_transformers, capfd
):
    # transformers 5 drew a "Loading weights" tqdm bar on stderr from encode(progress=False)
    from huggingface_hub import utils as hub
    from transformers.utils import logging as transformers_logging

    from rag.dense import SentenceTransformerEmbedder

    assert SentenceTransformerEmbedder().encode(["cats purr"], progress=False).shape == (1, 384)
    assert capfd.readouterr().err == ""
    assert transformers_logging.is_progress_bar_enabled()  # the caller's setting is back
    assert hub.are_progress_bars_disabled()
