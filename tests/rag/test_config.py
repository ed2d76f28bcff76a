"""RagConfig's validation: every default is valid, every bad value is named with its range."""

import math

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
    ],
)
def test_bad_values_are_refused_with_their_field_and_range(field, value, message):
    with pytest.raises(ConfigError, match=message):
        RagConfig(**{field: value})


def test_a_finite_threshold_and_none_are_accepted():
    assert RagConfig(abstain_threshold=0.25).abstain_threshold == 0.25
    assert RagConfig(abstain_threshold=None).abstain_threshold is None
