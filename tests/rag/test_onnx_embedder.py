"""The onnxruntime encoder: same vectors as sentence-transformers, and a safe fallback."""

import logging
import sys

import numpy as np
import pytest

from rag.config import RagConfig
from rag.dense import SentenceTransformerEmbedder
from rag.errors import ConfigError
from rag.onnx_embedder import OnnxEmbedder, make_embedder


@pytest.fixture(scope="module")
def onnx_minilm(tmp_path_factory):
    return OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path_factory.mktemp("onnx-cache"))


@pytest.fixture(scope="module")
def scifact_texts():
    from evals.datasets import load_beir

    data = load_beir("scifact", split="test")
    queries = list(data.queries.values())[:16]
    corpus = list(data.corpus.values())
    # the 8 longest abstracts (past the model's 256 word pieces: truncation must agree too)
    # and 8 ordinary ones, so one batch mixes lengths and the length sort must be undone
    by_length = sorted(corpus, key=lambda d: -len(d["text"]))
    docs = [f"{d['title']}\n\n{d['text']}" for d in by_length[:8] + corpus[:8]]
    return queries, docs


@pytest.mark.slow
def test_onnx_matches_sentence_transformers_on_real_text(onnx_minilm, minilm, scifact_texts):
    queries, docs = scifact_texts
    for texts in (queries, docs):
        fast, ref = onnx_minilm.encode(texts), minilm.encode(texts)
        assert fast.shape == ref.shape == (len(texts), 384) and fast.dtype == np.float32
        assert np.abs(fast - ref).max() < 1e-5  # measured ~2e-7: float32 round-off
        np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, rtol=1e-5)
    bulk = onnx_minilm.encode(docs * 5)  # more than bulk_from texts: the PyTorch path
    assert np.abs(bulk[: len(docs)] - onnx_minilm.encode(docs)).max() < 1e-5
    one_by_one = np.vstack([onnx_minilm.encode([q]) for q in queries[:4]])
    assert np.abs(one_by_one - onnx_minilm.encode(queries[:4])).max() < 1e-5  # padding-free


@pytest.mark.slow
def test_export_is_cached_and_identity_kept(onnx_minilm, caplog):
    assert onnx_minilm.model_id == "all-MiniLM-L6-v2"  # same cache keys as the torch encoder
    assert onnx_minilm.encode([]).shape == (0, 384)
    stamp = onnx_minilm.onnx_path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="rag.onnx_embedder"):
        again = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_minilm.onnx_path.parent.parent)
    assert again.onnx_path == onnx_minilm.onnx_path
    assert again.onnx_path.stat().st_mtime_ns == stamp
    assert "export cache hit" in caplog.text


@pytest.mark.slow
def test_loading_draws_no_progress_bar(onnx_minilm, bars_on_for_transformers, capfd):
    capfd.readouterr()  # the fixture's export (once per module) is not what is checked here
    again = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_minilm.onnx_path.parent.parent)
    assert again.encode(["cats purr"]).shape == (1, 384)
    assert capfd.readouterr().err == ""  # transformers 5 drew "Loading weights" here


def test_falls_back_to_sentence_transformers_without_onnxruntime(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with caplog.at_level(logging.WARNING, logger="rag.onnx_embedder"):
        emb = make_embedder("some/model-name", backend="onnx")
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert emb.model_id == "some/model-name"
    assert "using sentence-transformers" in caplog.text


def test_torch_backend_and_bad_backend():
    assert isinstance(make_embedder("m", backend="torch"), SentenceTransformerEmbedder)
    with pytest.raises(ConfigError, match="'onnx' or 'torch'"):
        make_embedder("m", backend="tensorrt")
    with pytest.raises(ConfigError, match="encoder must be one of"):
        RagConfig(encoder="tensorrt")
    with pytest.raises(ConfigError, match="encoder_threads"):
        RagConfig(encoder_threads=-1)


@pytest.mark.slow
def test_an_export_that_disagrees_with_torch_is_refused(onnx_minilm, monkeypatch, caplog):
    import rag.onnx_embedder as module

    monkeypatch.setattr(module, "PARITY_TOLERANCE", -1.0)  # no export can pass: must fall back
    with caplog.at_level(logging.WARNING, logger="rag.onnx_embedder"):
        emb = make_embedder("all-MiniLM-L6-v2", cache_dir=onnx_minilm.onnx_path.parent.parent)
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert "differ from torch" in caplog.text
