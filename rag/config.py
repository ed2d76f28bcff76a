"""Configuration of the RAG system: one frozen dataclass with every default in one place.

The defaults were chosen by principle or on SciFact's *train* queries (never its test queries);
each comment says which. ``RagConfig.replace(**changes)`` returns a validated copy.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from rag.errors import ConfigError

CHUNKERS = ("document", "tokens", "sentences", "recursive")
FUSIONS = ("rrf", "minmax", "zscore")
BM25_METHODS = ("lucene", "okapi")
ENCODERS = ("onnx", "torch")
# counts and sizes, checked to be ints (not bools) before any range check
INT_FIELDS = ("batch_size", "encoder_threads", "hnsw_m", "hnsw_ef_search", "chunk_tokens")
INT_FIELDS += ("chunk_overlap", "sentence_chunk_tokens", "rrf_k", "candidates", "rerank_depth")
INT_FIELDS += ("context_tokens", "answer_tokens", "top_chunks", "source_tokens")
REAL_FIELDS = ("bm25_k1", "bm25_b", "dense_weight")  # finite numbers; ranges checked after


@dataclass(frozen=True)
class RagConfig:
    # --- embedding / dense retrieval -------------------------------------------------------
    model: str = "all-MiniLM-L6-v2"  # name or path; the packaged copy is used when offline
    batch_size: int = 32  # embedding batch size (CPU: larger batches pad more, gain little)
    # "onnx": onnxruntime, same vectors, faster queries (README, latency table); "torch": plain
    encoder: str = "onnx"
    # onnxruntime threads for query-sized requests; 0 = one per core (the default). Workers never
    # spin (README, latency): two non-spinning threads took a hybrid query from 13.9 to 11.3 ms
    # p50 vs one thread. Bulk requests go to PyTorch anyway.
    encoder_threads: int = 0
    dense_index: str = "flat"  # "flat" = exact inner product; "hnsw" = approximate graph index
    hnsw_m: int = 32  # HNSW graph degree (faiss default 32; FAISS crashes below 2)
    hnsw_ef_search: int = 128  # HNSW search beam; recall vs exact is measured in the benchmark

    # --- chunking ------------------------------------------------------------------------------
    chunker: str = (
        "document"  # one chunk per document, truncated by the model (see README ablation)
    )
    chunk_tokens: int = 254  # window size: the model's 256 positions minus [CLS] and [SEP]
    chunk_overlap: int = 32  # token-window overlap (about one sentence)
    sentence_chunk_tokens: int = 128  # budget for sentence packing and recursive splitting

    # --- sparse retrieval ----------------------------------------------------------------------
    bm25_method: str = "lucene"  # idf = ln(1 + (N - df + .5)/(df + .5)); "okapi" = rank_bm25's
    # k1 chosen on SciFact *train* for the hybrid (README: 0.7357 vs 0.7312 for bm25s' 1.5, which
    # scores BM25 alone marginally better); 0.9 is also Anserini's default
    bm25_k1: float = 0.9
    bm25_b: float = 0.75  # length normalisation, standard value

    # --- fusion and reranking -------------------------------------------------------------------
    fusion: str = "zscore"  # convex combination of z-scored scores (README: why not RRF)
    dense_weight: float = (
        0.5  # weight of dense in convex fusion; `train-reranker` tunes it on train
    )
    rrf_k: int = 60  # Cormack et al. 2009
    candidates: int = 100  # first-stage depth per retriever before fusion
    rerank_depth: int = 100  # how many fused candidates the reranker rescored

    # --- answers ---------------------------------------------------------------------------------
    context_tokens: int = 2048  # the LLM's context window (llama.cpp server default n_ctx)
    answer_tokens: int = 160  # reserved for the answer (sent as max_tokens)
    top_chunks: int = 5  # at most this many chunks go into the prompt (RagPipeline's default)
    # longer chunks are condensed to the sentences nearest the question (rag.prompt, "Focus");
    # 0 = whole chunks. ~120 model tokens: a 135M model on CPU reads ~150 prompt tokens/s
    source_tokens: int = 160
    # RagPipeline abstains when the best chunk's dense cosine is below this; None = never abstain
    # (the CLI's `ask` then uses the threshold `train-reranker` calibrated, if there is one)
    abstain_threshold: float | None = None

    def __post_init__(self) -> None:
        # Types first: a comparison below would otherwise raise a bare TypeError for "32", and a
        # float count (candidates=10.5) or an infinite rrf_k (every RRF score 0.0) would pass.
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"{name} must be a whole number (an int), got {value!r}")
        for name in REAL_FIELDS:
            value = getattr(self, name)
            # NaN must be refused here: it passes every range check below (`nan < 0` is False),
            # and a NaN k1 made BM25 score every document NaN, so it silently found nothing
            real = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not real or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if self.chunker not in CHUNKERS:
            raise ConfigError(f"chunker must be one of {CHUNKERS}, got {self.chunker!r}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.bm25_method not in BM25_METHODS:
            raise ConfigError(
                f"bm25_method must be one of {BM25_METHODS}, got {self.bm25_method!r}"
            )
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.encoder_threads < 0:
            raise ConfigError(f"encoder_threads must be >= 0, got {self.encoder_threads}")
        if self.dense_index not in ("flat", "hnsw"):
            raise ConfigError(f"dense_index must be 'flat' or 'hnsw', got {self.dense_index!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        if self.bm25_k1 < 0:  # k1 = 0 is valid: binary term frequency
            raise ConfigError(f"bm25_k1 must be a finite number >= 0, got {self.bm25_k1}")
        if not 0.0 <= self.bm25_b <= 1.0:
            raise ConfigError(f"bm25_b must be in [0, 1], got {self.bm25_b}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError(
                f"chunk_overlap must be in [0, chunk_tokens={self.chunk_tokens}), "
                f"got {self.chunk_overlap}"
            )
        if self.source_tokens < 0:
            raise ConfigError(f"source_tokens must be >= 0, got {self.source_tokens}")
        positive = ("batch_size", "candidates", "rerank_depth", "top_chunks", "rrf_k")
        positive += ("context_tokens", "answer_tokens", "sentence_chunk_tokens", "hnsw_ef_search")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hnsw_m < 2:  # a graph with one neighbour per node: FAISS segfaults building it
            raise ConfigError(f"hnsw_m must be >= 2, got {self.hnsw_m}")
        if self.answer_tokens >= self.context_tokens:
            raise ConfigError("answer_tokens must be smaller than context_tokens")
        check_threshold(self.abstain_threshold)

    def replace(self, **changes: object) -> RagConfig:
        """Return a validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def check_threshold(value: object, name: str = "abstain_threshold") -> None:
    """An abstention threshold is ``None`` (never abstain) or a finite number.

    NaN has to be refused explicitly: ``score < nan`` is False for every score, so a NaN
    threshold would never abstain, silently.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(
            f"{name} must be a finite number (a dense cosine, so in [-1, 1] to mean anything) "
            f"or None, got {value!r}"
        )
