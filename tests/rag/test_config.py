"""RagConfig's validation: every default is valid, every bad value is named with its range."""

import math

import numpy as np
import pytest

from rag.config import RagConfig
from rag.errors import ConfigError


def test_the_defaults_are_valid_including_every_newly_checked_field():
    config = RagConfig()  # raises ConfigError if a default broke its own check
    assert config.answer_tokens >= 1 and config.context_tokens >= 1
    assert config.hnsw_m >= 2 and config.hnsw_ef_search >= 1
    assert config.abstain_threshold is None or math.isfinite(config.abstain_threshold)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("answer_tokens", 0, "answer_tokens must be >= 1"),
        ("answer_tokens", -500, "answer_tokens must be >= 1"),
        ("context_tokens", -100, "context_tokens must be >= 1"),
        ("sentence_chunk_tokens", 0, "sentence_chunk_tokens must be >= 1"),
        ("abstain_threshold", math.nan, "abstain_threshold must be a finite number"),
        ("abstain_threshold", math.inf, "abstain_threshold must be a finite number"),
        ("abstain_threshold", "0.5", "abstain_threshold must be a finite number"),
        ("hnsw_m", 0, "hnsw_m must be >= 2"),
        ("hnsw_m", 1, "hnsw_m must be >= 2"),  # FAISS's HNSW crashed the process at M = 1
        ("hnsw_ef_search", 0, "hnsw_ef_search must be >= 1"),
        # BM25's parameters: a NaN k1 was accepted and BM25 then silently found nothing
        ("bm25_k1", math.nan, "bm25_k1 must be a finite number"),
        ("bm25_k1", math.inf, "bm25_k1 must be a finite number"),
        ("bm25_k1", -1.0, "bm25_k1 must be a finite number >= 0"),
        ("bm25_k1", "1", "bm25_k1 must be a finite number"),
        ("bm25_b", 2.0, r"bm25_b must be in \[0, 1\]"),
        ("bm25_b", -0.1, r"bm25_b must be in \[0, 1\]"),
        ("bm25_b", math.nan, "bm25_b must be a finite number"),
        ("dense_weight", math.nan, "dense_weight must be a finite number"),
        # wrong types were a bare TypeError from a comparison, float counts and inf passed
        ("dense_weight", "0.5", "dense_weight must be a finite number"),
        ("batch_size", "32", "batch_size must be a whole number"),
        ("candidates", 10.5, "candidates must be a whole number"),
        ("top_chunks", 2.5, "top_chunks must be a whole number"),
        ("hnsw_m", 2.5, "hnsw_m must be a whole number"),
        ("encoder_threads", 1.5, "encoder_threads must be a whole number"),
        ("rrf_k", math.inf, "rrf_k must be a whole number"),
        ("context_tokens", math.nan, "context_tokens must be a whole number"),
        ("rerank_depth", True, "rerank_depth must be a whole number"),
    ],
)
def test_bad_values_are_refused_with_their_field_and_range(field, value, message):
    with pytest.raises(ConfigError, match=message):
        RagConfig(**{field: value})


def test_bm25_edges_and_numpy_numbers_are_accepted():
    config = RagConfig(bm25_k1=0, bm25_b=1, candidates=np.int64(50), dense_weight=np.float32(0.5))
    assert (config.bm25_k1, config.bm25_b, config.candidates) == (0, 1, 50)
    assert RagConfig().replace(bm25_k1=1.2, bm25_b=0.0).bm25_k1 == 1.2


def test_replace_validates_bm25_fields_too():
    with pytest.raises(ConfigError, match="bm25_k1 must be a finite number"):
        RagConfig().replace(bm25_k1=math.nan)


def test_a_finite_threshold_and_none_are_accepted():
    assert RagConfig(abstain_threshold=0.25).abstain_threshold == 0.25
    assert RagConfig(abstain_threshold=None).abstain_threshold is None
