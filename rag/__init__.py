"""rag: hybrid BM25 + dense retrieval with reranking, grounded answers, and BEIR evaluation.

See README.md for the file map, the measured results and the design choices.
"""

from rag.answer import Answer, Generator, LLMClientGenerator, RagPipeline, calibrate_threshold
from rag.bm25 import BM25Index, RankBM25Index, Tokenizer
from rag.chunking import (
    Chunk,
    DocumentChunker,
    RecursiveChunker,
    SentenceChunker,
    TokenWindowChunker,
    make_chunker,
)
from rag.config import RagConfig
from rag.dense import DenseIndex, SentenceTransformerEmbedder
from rag.documents import Document, documents_from_beir, documents_from_folder
from rag.embedding_cache import EmbeddingCache
from rag.errors import (
    ConfigError,
    DocumentError,
    GenerationError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexOverwriteError,
    IndexVersionError,
    IndexWriteError,
    RagError,
    RerankerError,
)
from rag.fusion import convex_fusion, reciprocal_rank_fusion
from rag.hits import Candidate, Hit
from rag.index import HybridIndex
from rag.prompt import PackedPrompt, PromptBuilder, Source
from rag.rerank import CrossEncoderReranker, LTRReranker, train_ltr
from rag.retrieval import HybridRetriever, Reranker, Retriever
from rag.store import writer_lock

__all__ = [
    "Answer",
    "BM25Index",
    "Candidate",
    "Chunk",
    "ConfigError",
    "CrossEncoderReranker",
    "DenseIndex",
    "Document",
    "DocumentChunker",
    "DocumentError",
    "EmbeddingCache",
    "GenerationError",
    "Generator",
    "Hit",
    "HybridIndex",
    "HybridRetriever",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexOverwriteError",
    "IndexVersionError",
    "IndexWriteError",
    "LLMClientGenerator",
    "LTRReranker",
    "PackedPrompt",
    "PromptBuilder",
    "RagConfig",
    "RagError",
    "RagPipeline",
    "RankBM25Index",
    "RecursiveChunker",
    "Reranker",
    "RerankerError",
    "Retriever",
    "SentenceChunker",
    "SentenceTransformerEmbedder",
    "Source",
    "TokenWindowChunker",
    "Tokenizer",
    "calibrate_threshold",
    "convex_fusion",
    "documents_from_beir",
    "documents_from_folder",
    "make_chunker",
    "reciprocal_rank_fusion",
    "train_ltr",
    "writer_lock",
]
