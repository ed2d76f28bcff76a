"""rag's public API: what ``from rag import ...`` offers is pinned; dropping a name fails here."""

import rag


def test_public_api_is_pinned():
    assert sorted(rag.__all__) == sorted(
        [
            "Answer", "BM25Index", "Candidate", "Chunk", "ConfigError", "CrossEncoderReranker",
            "DenseIndex", "Document", "DocumentChunker", "DocumentError", "EmbeddingCache",
            "GenerationError", "Generator", "Hit", "HybridIndex", "HybridRetriever",
            "IndexCorruptError", "IndexMismatchError", "IndexNotFoundError", "IndexOverwriteError",
            "IndexVersionError", "IndexWriteError", "LLMClientGenerator", "LTRReranker",
            "PackedPrompt", "PromptBuilder", "RagConfig", "RagError", "RagPipeline",
            "RankBM25Index", "RecursiveChunker", "Reranker", "RerankerError", "Retriever",
            "SentenceChunker", "SentenceTransformerEmbedder", "Source", "TokenWindowChunker",
            "Tokenizer", "calibrate_threshold", "convex_fusion", "documents_from_beir",
            "documents_from_folder", "make_chunker", "reciprocal_rank_fusion", "train_ltr",
            "writer_lock",
        ]
    )  # fmt: skip
    for name in rag.__all__:
        assert getattr(rag, name) is not None, name


def test_every_error_derives_from_the_root():
    errors = [getattr(rag, n) for n in rag.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, rag.RagError) for e in errors)
