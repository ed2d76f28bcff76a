"""The embedding cache: vectors on disk, so a corpus is embedded once per model and chunking.

:class:`EmbeddingCache` stores one ``.npy`` per (model, sha256 of the exact texts embedded), a
local model folder named by its contents: embedding SciFact takes minutes on two CPU cores,
reading it back takes milliseconds. :meth:`~rag.index.HybridIndex.upsert` reads and fills it for
the chunks it indexes, and the benchmark for its queries too.

It is its own module because it is storage, not retrieval: :mod:`rag.dense` turns texts into
vectors and searches them, and none of that needs to know whether the vectors were computed
now or read back from disk. Entries may be deleted at any time; a file that cannot be used is a
miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evals.files import written_atomically
from rag.dense import Embedder, model_fingerprint, resolve_model

log = logging.getLogger(__name__)


def texts_checksum(texts: Sequence[str]) -> str:
    """SHA-256 over ``texts`` in order, each prefixed by its length (so no two lists collide).

    The embedding cache's content key: the vectors are a function of the model and of exactly
    these strings, so any change to what is embedded (a document edited, a chunker that cuts
    elsewhere under the same name) is another entry.
    """
    h = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


class EmbeddingCache:
    """Embeddings on disk, keyed by (model, a label, a checksum of the texts embedded).

    :meth:`HybridIndex.upsert <rag.index.HybridIndex.upsert>` passes the chunker's name as the
    label (it names the file) and :func:`texts_checksum` of the chunk texts it embeds. Keyed by
    the chunker's name and the documents instead, a re-index after the ``tokens`` chunker began
    cutting elsewhere under the same name (session 32) was served the old windows' vectors
    whenever the chunk count was unchanged: the only check on a hit is the row count.

    A model that is a local folder (the packaged MiniLM included) is keyed by its files'
    contents as well as its name (:func:`~rag.dense.model_fingerprint`): new weights saved into
    the same folder must not be served the old weights' vectors, or documents would be searched
    with vectors from one model and queries from another. A hub name with no local folder is
    keyed by the name alone. A file that fails to load or has the wrong shape is treated as a
    miss and recomputed (a cache may always be thrown away); the reason is logged.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(model_id: str, chunker: str, content_checksum: str) -> str:
        """The entry for vectors of ``model_id`` over the texts whose checksum is given.

        ``content_checksum`` must change whenever the texts do: :func:`texts_checksum` of them.
        ``chunker`` is a label: it names the file, and a different one is a different entry.
        """
        parts = [model_id, chunker, content_checksum]
        path = resolve_model(model_id)
        if Path(path).is_dir():  # what SentenceTransformer(path) would load: its weights count
            parts.append(model_fingerprint(path))
        raw = json.dumps(parts)
        slug = "".join(c if c.isalnum() else "-" for c in model_id.split("/")[-1])[:40]
        return f"{slug}__{chunker}__{hashlib.sha256(raw.encode()).hexdigest()[:16]}"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npy"

    def get(self, key: str, n_rows: int, *, dim: int | None = None) -> np.ndarray | None:
        """The cached ``(n_rows, dim)`` float vectors, or None (a miss) if absent or unusable.

        ``dim`` is the width the caller needs (an index's dimension), or None when any will do.
        """
        path = self.path(key)
        if not path.exists():
            return None
        try:
            vecs = np.load(path)
        except Exception as exc:  # empty (EOFError), truncated, pickled, not .npy: all a miss
            log.warning("embedding cache %s unreadable (%r); recomputing", path, exc)
            return None
        if not isinstance(vecs, np.ndarray):  # an .npz archive loads as an NpzFile
            vecs.close()
            problem = f"holds a {type(vecs).__name__}, not one array"
        elif vecs.ndim != 2 or not np.issubdtype(vecs.dtype, np.floating):
            problem = f"holds a {vecs.dtype} array of shape {vecs.shape}, not a 2-D float array"
        elif vecs.shape[0] != n_rows or dim not in (None, vecs.shape[1]):
            problem = f"has shape {vecs.shape}, expected ({n_rows}, {dim or 'any'})"
        else:
            log.info("embedding cache hit: %s", path.name)
            return vecs
        log.warning("embedding cache %s %s; recomputing", path, problem)
        return None

    def put(self, key: str, vecs: np.ndarray) -> bool:
        """Store ``vecs`` under ``key``; False and a warning if the cache cannot be written (a
        folder that is a file, read-only or full costs the cache, not the embedding work)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # atomic, and safe beside another process filling the same entry: caches are shared
            with written_atomically(self.path(key), ".tmp.npy") as tmp:
                np.save(tmp, vecs)
        except OSError as exc:
            log.warning("embedding cache %s not written (%s); going on", self.directory, exc)
            return False
        return True

    def get_or_compute(
        self,
        key: str,
        texts: Sequence[str],
        embedder: Embedder,
        *,
        dim: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        vecs = self.get(key, len(texts), dim=dim)
        if vecs is None:
            vecs = embedder.encode(texts, progress=progress)
            self.put(key, vecs)
        return vecs
