"""The same sentence embeddings, computed by onnxruntime instead of PyTorch.

Why: a hybrid query spends ~80% of its time in one MiniLM forward pass for a ~15-word query,
and at batch size 1 PyTorch's per-operator dispatch, not arithmetic, dominates that pass.
onnxruntime runs the same graph with fused kernels and no Python per layer, so the query embeds
faster (README: latency table) with the *same* embeddings: the exported graph is the model's
own Transformer + Pooling (+ Dense) modules traced once, so the vectors agree with
sentence-transformers to float32 round-off (~1e-7; ``tests/rag/test_onnx_embedder.py`` holds
the parity test on real text). No quantisation: int8 was measured at cosine 0.90 to fp32.

How::

    SentenceTransformer(path) ──torch.onnx.export (once, cached on disk)──► model.onnx
    texts ─► model's own tokenizer ─► onnxruntime session ─► sentence_embedding ─► L2-normalise

The export is cached under ``cache_dir`` keyed by a checksum of the model's files and the
torch / export settings, so it happens once per model (a few seconds). When anything in that
chain is unavailable (onnxruntime not installed, a model whose modules do not trace, a parity
probe that disagrees) :func:`make_embedder` logs why and falls back to the plain
:class:`~rag.dense.SentenceTransformerEmbedder`: "any model name or path" keeps working.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evals.files import written_atomically
from evals.progress import quiet_model_load
from rag.dense import (
    DEFAULT_MODEL,
    Embedder,
    SentenceTransformerEmbedder,
    embedding_dimension,
    encode_normalised,
    model_fingerprint,
    resolve_model,
)

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the export code below changes what the file holds
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PARITY_TOLERANCE = 1e-4  # max |onnx - torch| on the probe texts before we trust the export
PROBE = ["A short query.", "Vitamin D deficiency is associated with a higher risk of cancer."]


def default_cache_dir() -> Path:
    """``$AIS_CACHE_DIR/rag`` (default ``~/.cache/ais/rag``), the CLI's cache: exports go there."""
    return Path(os.environ.get("AIS_CACHE_DIR", Path.home() / ".cache" / "ais")) / "rag"


class OnnxEmbedder:
    """A sentence-transformers model run by onnxruntime; same ``model_id`` and same vectors.

    ``threads`` is onnxruntime's intra-op thread count (``None``: its default, one per core);
    idle workers park instead of spinning.
    Texts are sorted by length before batching, as sentence-transformers does, so a batch pads
    to similar lengths.

    Requests of more than ``bulk_from`` texts (indexing documents) go to the PyTorch model
    instead: the vectors are the same, and at 32 texts x 256 word pieces PyTorch's attention
    kernel was measured faster than the exported graph (README, build table), while at batch 1
    onnxruntime is faster (README, latency table). ``bulk_from=None`` sends everything to
    onnxruntime.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 32,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        bulk_from: int | None = 64,
    ) -> None:
        import onnxruntime as ort  # ImportError here is the caller's cue to fall back
        from sentence_transformers import SentenceTransformer

        self.model_id = model  # same name as the torch embedder: same caches, same manifests
        self.path = resolve_model(model)
        self.batch_size, self.bulk_from = batch_size, bulk_from
        with quiet_model_load():  # no "Loading weights" bar from a library call
            st = SentenceTransformer(self.path, device="cpu")
        self.tokenizer = st.tokenizer
        self.max_tokens = int(st.max_seq_length)
        self.dim = embedding_dimension(st)
        self.onnx_path = self._export(st, Path(cache_dir or default_cache_dir()))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Worker threads that spin (busy-wait) between operators are onnxruntime's default; at
        # batch 1 they kept both cores busy after each call and slowed the BM25 and numpy work
        # that follows 3-6x. Parked workers cost a wake-up per operator and nothing afterwards.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._check_parity(st)
        self.torch_model = st

    # ---- export (once per model) ---------------------------------------------------------------
    def _export(self, st, cache_dir: Path) -> Path:
        import torch

        key = json.dumps(
            [model_fingerprint(self.path), torch.__version__, EXPORT_VERSION, self.max_tokens]
        )
        slug = "".join(c if c.isalnum() else "-" for c in self.model_id.split("/")[-1])[:40]
        target = cache_dir / "onnx" / f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"
        if target.exists():
            log.info("onnx export cache hit: %s", target.name)
            return target
        log.info("exporting %s to ONNX (once): %s", self.model_id, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        features = self.tokenizer(PROBE, padding=True, return_tensors="pt")
        names = [n for n in INPUTS if n in features]
        graph = _sentence_graph(st, names)
        # The tracer warns about Python conditions on tensor shapes inside the model (padding and
        # mask-size checks): they hold for every input, and the parity check below confirms it.
        # Written atomically: a crash, or another process exporting too, never leaves half a graph.
        with (
            written_atomically(target, ".tmp.onnx") as tmp,
            torch.no_grad(),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                tuple(features[n] for n in names),
                str(tmp),
                input_names=names,
                output_names=["sentence_embedding"],
                # batch and sequence length stay free: one graph serves every input shape
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names}
                | {"sentence_embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,  # the TorchScript tracer: needs only the `onnx` package
            )
        return target

    def _check_parity(self, st) -> None:
        """Refuse an export whose vectors differ from sentence-transformers' (caller falls back)."""
        ref = st.encode(PROBE, normalize_embeddings=True, convert_to_numpy=True)
        gap = float(np.abs(self.encode(PROBE) - ref).max())
        if not gap <= PARITY_TOLERANCE:
            raise ValueError(f"onnx embeddings differ from torch by {gap:.2e} on the probe")

    # ---- the Embedder contract ------------------------------------------------------------------
    def _run(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np"
        )
        feed = {n: np.asarray(enc[n], dtype=np.int64) for n in self._inputs}
        return self.session.run(None, feed)[0]

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors of shape ``(len(texts), dim)``, in input order."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        texts = list(texts)
        if self.bulk_from is not None and len(texts) > self.bulk_from:
            return self.encode_torch(texts, progress=progress)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first, like ST
        starts = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="embedding", unit="batch")
        out = np.empty((len(texts), self.dim), np.float32)
        for s in starts:
            rows = order[s : s + self.batch_size]
            out[rows] = self._run([texts[i] for i in rows])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def encode_torch(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """The same vectors from the PyTorch model (bulk requests)."""
        return encode_normalised(self.torch_model, texts, self.batch_size, progress=progress)


def _sentence_graph(st, names: list[str]):
    """``SentenceTransformer`` as a function of positional tensors, which the tracer needs.

    Built inside a function so that importing this module does not import torch.
    """
    import torch

    class SentenceGraph(torch.nn.Module):
        def __init__(self, st, names: list[str]) -> None:
            super().__init__()
            self.st, self.names = st, names

        def forward(self, *tensors):
            return self.st(dict(zip(self.names, tensors, strict=True)))["sentence_embedding"]

    return SentenceGraph(st, names).eval()


def make_embedder(
    model: str = DEFAULT_MODEL,
    *,
    backend: str = "onnx",
    batch_size: int = 32,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
) -> Embedder:
    """The embedder for ``model``: onnxruntime when ``backend == "onnx"`` and it can be built
    (and agrees with PyTorch), else sentence-transformers. The reason for a fallback is logged."""
    if backend not in ("onnx", "torch"):
        from rag.errors import ConfigError

        raise ConfigError(f"encoder backend must be 'onnx' or 'torch', got {backend!r}")
    if backend == "onnx":
        try:
            return OnnxEmbedder(model, batch_size=batch_size, threads=threads, cache_dir=cache_dir)
        except Exception as exc:  # any failure to build the fast path: the plain one still works
            log.warning(
                "onnx encoder unavailable for %s (%s); using sentence-transformers", model, exc
            )
    return SentenceTransformerEmbedder(model, batch_size=batch_size)
