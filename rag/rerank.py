"""Rerankers: a cross-encoder, and a LambdaRank model trained here on SciFact's train qrels.

Both implement the :class:`~rag.retrieval.Reranker` seam: ``rerank(query, candidates) -> hits``.

**Cross-encoder** (Nogueira & Cho 2019, arXiv:1901.04085): reads (query, passage) jointly and
outputs a relevance score. Any sentence-transformers ``CrossEncoder`` name or path works, e.g.
``cross-encoder/ms-marco-MiniLM-L-6-v2`` when you have internet. None ships offline here, and
fine-tuning one from MiniLM on CPU was measured before this code was written at ~0.8 s per pair
and 0.30-0.44 nDCG@10 after 22 minutes, so it is not the default.

**Learning to rank** (LambdaMART: Burges 2010, "From RankNet to LambdaRank to LambdaMART", MSR-TR-
2010-82; LightGBM's ``lambdarank`` objective, Ke et al. 2017): gradient-boosted trees over the
retrieval features of :mod:`rag.features`, optimising nDCG directly. Training data: for each train
query, the first stage's top ``depth`` fused candidates, labelled 1 if the qrels list them
(negatives are therefore *hard*: they are what the retrievers confused with the answer). It
trains in seconds on two cores. The number of trees is chosen by early stopping on a held-out
fifth of the *train* queries; test queries are never seen.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evals.files import written_atomically
from evals.progress import quiet_model_load
from rag.errors import RerankerError
from rag.features import FEATURE_NAMES
from rag.hits import Candidate, Hit

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """Scores ``(query, title + chunk text)`` pairs with a sentence-transformers CrossEncoder."""

    def __init__(self, model: str, *, batch_size: int = 32, max_length: int = 512) -> None:
        from sentence_transformers import CrossEncoder

        with quiet_model_load():  # no "Loading weights" bar from a library call
            self.model = CrossEncoder(model, max_length=max_length, device="cpu")
        self.batch_size = batch_size

    def rerank(self, query: str, candidates: Sequence[Candidate]) -> list[Hit]:
        if not candidates:
            return []
        pairs = [
            (
                query,
                f"{c.title}\n\n{c.text}" if c.title and not c.text.startswith(c.title) else c.text,
            )
            for c in candidates
        ]
        scores = np.asarray(self.model.predict(pairs, batch_size=self.batch_size), np.float64)
        order = np.argsort(-scores, kind="stable")
        return [Hit(candidates[i].doc_id, float(scores[i]), candidates[i].chunk_id) for i in order]


@dataclass(frozen=True)
class LTRSettings:
    """Hyper-parameters of the LambdaRank model (LightGBM names)."""

    n_estimators: int = 500  # upper bound; early stopping picks the number actually used
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 20
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 50
    depth: int = 100  # candidates per training query (= rerank depth used when training)
    holdout: float = 0.2  # share of train queries used for early stopping
    seed: int = 0


class LTRReranker:
    """A trained LightGBM LambdaRank model over :data:`rag.features.FEATURE_NAMES`."""

    def __init__(
        self, booster, feature_names: Sequence[str] = FEATURE_NAMES, meta: Mapping | None = None
    ) -> None:
        self.booster = booster
        self.feature_names = tuple(feature_names)
        self.meta = dict(meta or {})

    def matrix(self, candidates: Sequence[Candidate]) -> np.ndarray:
        try:
            return np.array([[c.features[f] for f in self.feature_names] for c in candidates])
        except KeyError as exc:
            raise RerankerError(
                f"candidate lacks feature {exc}; the model needs {self.feature_names}"
            ) from exc

    def rerank(self, query: str, candidates: Sequence[Candidate]) -> list[Hit]:
        if not candidates:
            return []
        scores = self.booster.predict(self.matrix(candidates))
        order = np.argsort(-scores, kind="stable")
        return [Hit(candidates[i].doc_id, float(scores[i]), candidates[i].chunk_id) for i in order]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": "rag-ltr",
            "format_version": 1,
            "features": list(self.feature_names),
            "meta": self.meta,
            "model": self.booster.model_to_string(),
        }
        with written_atomically(path) as tmp:  # the benchmark caches rerankers: shared
            tmp.write_text(json.dumps(payload))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LTRReranker:
        """Read a model written by :meth:`save`; :class:`~rag.errors.RerankerError` if the file
        is missing or is anything else (the file sits in the index folder with no checksum, so
        this is its only check: a damaged file is a clear error, never a stray TypeError)."""
        import lightgbm as lgb

        path = Path(path)
        if not path.exists():
            raise RerankerError(
                f"no trained reranker at {path}; run `python -m rag train-reranker`"
            )
        unreadable = f"{path} is not a readable rag-ltr model; run `python -m rag train-reranker`"
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RerankerError(f"{unreadable} ({type(exc).__name__}: {exc})") from exc
        if not isinstance(payload, dict):
            raise RerankerError(f"{unreadable} (it holds a JSON {type(payload).__name__})")
        if payload.get("format") != "rag-ltr" or payload.get("format_version") != 1:
            raise RerankerError(
                f"{path}: unsupported format {payload.get('format')!r} "
                f"v{payload.get('format_version')}"
            )
        model, features, meta = payload.get("model"), payload.get("features"), payload.get("meta")
        if not isinstance(model, str):
            raise RerankerError(f"{unreadable} (its model is a {type(model).__name__})")
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise RerankerError(f"{unreadable} (its features are not a list of names)")
        if not isinstance(meta, dict | None):
            raise RerankerError(f"{unreadable} (its meta is a {type(meta).__name__})")
        try:
            booster = lgb.Booster(model_str=model)
        except lgb.basic.LightGBMError as exc:
            raise RerankerError(f"{unreadable} ({exc})") from exc
        if booster.num_feature() != len(features):
            raise RerankerError(
                f"{unreadable} (the model reads {booster.num_feature()} features, "
                f"the file names {len(features)})"
            )
        return cls(booster, features, meta)


def training_groups(
    candidates: Mapping[str, Sequence[Candidate]], qrels: Mapping[str, Mapping[str, int]]
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Stack per-query candidate features into ``(qids, X, y, group_sizes)``.

    Queries with no relevant document among their candidates are dropped: LambdaRank gets no
    gradient from them (every permutation has nDCG 0).
    """
    qids, rows, labels, sizes = [], [], [], []
    for qid, cands in candidates.items():
        rel = qrels.get(qid, {})
        y = [1.0 if rel.get(c.doc_id, 0) > 0 else 0.0 for c in cands]
        if not any(y):
            continue
        qids.append(qid)
        rows.extend([c.features[f] for f in FEATURE_NAMES] for c in cands)
        labels.extend(y)
        sizes.append(len(cands))
    return qids, np.array(rows), np.array(labels), np.array(sizes)


def train_ltr(
    candidates: Mapping[str, Sequence[Candidate]],
    qrels: Mapping[str, Mapping[str, int]],
    settings: LTRSettings = LTRSettings(),
) -> LTRReranker:
    """Train LambdaRank on ``candidates`` (train queries only!) and return the reranker.

    A seeded ``holdout`` share of the queries is used for early stopping; the model is then
    refitted on all queries with the chosen number of trees.
    """
    import lightgbm as lgb

    qids = sorted(candidates)
    rng = random.Random(settings.seed)
    rng.shuffle(qids)
    n_hold = max(1, int(len(qids) * settings.holdout))
    hold, fit = set(qids[:n_hold]), qids[n_hold:]
    if not fit:
        raise RerankerError(f"need more than {n_hold} training queries, got {len(qids)}")

    def subset(keys):
        return training_groups({q: candidates[q] for q in keys}, qrels)

    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_child_samples,
        "bagging_fraction": settings.subsample,
        "bagging_freq": 1,
        "feature_fraction": settings.colsample_bytree,
        "seed": settings.seed,
        "num_threads": 2,
        "verbose": -1,
    }
    _, x_fit, y_fit, g_fit = subset(fit)
    _, x_hold, y_hold, g_hold = subset(sorted(hold))
    if not len(g_fit) or not len(g_hold):
        raise RerankerError(
            f"too few of the {len(qids)} training queries have a relevant document among their "
            f"candidates ({len(g_fit)} to fit, {len(g_hold)} held out): are the qrels for "
            "this index's corpus?"
        )
    fit_set = lgb.Dataset(x_fit, y_fit, group=g_fit, feature_name=list(FEATURE_NAMES))
    hold_set = lgb.Dataset(x_hold, y_hold, group=g_hold, reference=fit_set)
    first = lgb.train(
        params,
        fit_set,
        num_boost_round=settings.n_estimators,
        valid_sets=[hold_set],
        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
    )
    best = int(first.best_iteration or settings.n_estimators)
    holdout_ndcg = float(first.best_score["valid_0"]["ndcg@10"])
    log.info("LambdaRank early stopping: %d trees, holdout nDCG@10 %.4f", best, holdout_ndcg)
    _, x_all, y_all, g_all = subset(qids)
    all_set = lgb.Dataset(x_all, y_all, group=g_all, feature_name=list(FEATURE_NAMES))
    booster = lgb.train(params, all_set, num_boost_round=best)
    meta = {
        "settings": asdict(settings),
        "n_trees": best,
        "holdout_ndcg@10": holdout_ndcg,
        "train_queries": len(g_all),
        "train_pairs": len(y_all),
        "feature_importance": dict(
            zip(FEATURE_NAMES, map(round, booster.feature_importance("gain")), strict=True)
        ),
    }
    return LTRReranker(booster, FEATURE_NAMES, meta)
