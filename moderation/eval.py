"""Evaluation on Davidson et al.: train per split seed, then measure every figure the README shows.

One function per question the issue asks, each returning plain dicts or named results:

* :func:`train` fits a model on a seeded split, tunes the 3-class hate cut and the routing
  thresholds on validation (never on test; importance-weighted to ``config.deployment_prior``
  when the config names one).
* :func:`evaluate_seed` scores the test split: the paper's 3-class weighted and per-class
  P/R/F1 (decoded with the tuned hate cut, and with argmax-like 0.5 cuts for reference), per-label
  PR-AUC / ROC-AUC on the multi-label view, ECE before/after calibration with the reliability
  curve, routing shares and per-path errors, and the policy trade-off curve.
* :func:`robustness`: weighted and hate F1 on clean vs perturbed test text, for a model trained
  without the normaliser and one with it.
* :func:`identity_false_positives`: how often benign identity sentences are flagged.
* :func:`new_category_curve`: a "new" label learnt from k examples on frozen features, its PR-AUC
  against the fully trained head, and proof that no other head changed.
* :func:`sync_latency`, :func:`batch_throughput`, :func:`queue_throughput`: speed.

Metrics come from :mod:`evals.classification` (parity-tested against scikit-learn).
"""

from __future__ import annotations

import copy
import hashlib
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from evals.classification import (
    classification_report,
    expected_calibration_error,
    pr_auc,
    reliability_curve,
    roc_auc,
)
from evals.timing import latency_summary
from moderation.agreement import (
    f1_from_confusion,
    leave_one_out_confusion,
    own_vote_confusion,
)
from moderation.classifier import ModerationModel, three_class, tune_hate_threshold
from moderation.config import ModerationConfig
from moderation.errors import ConfigError
from moderation.features import Embedder, default_model_path
from moderation.finetune import (
    CachedPredictions,
    FineTunedEnsemble,
    FineTuneSettings,
    fine_tune_cached,
)
from moderation.identity import benign_identity_sentences
from moderation.labels import CLASS_NAMES, LABELS, LabelledData, Split, stratified_split
from moderation.perturb import Perturber
from moderation.pipeline import Moderator
from moderation.policy import (
    ALLOW,
    LabelThresholds,
    PathErrors,
    TradeoffPoint,
    choose_thresholds,
    path_errors,
    route,
    tradeoff_curve,
)
from moderation.prior import importance_weights
from moderation.queue import ReviewQueue
from moderation.stacking import (
    PAIR_GRID,
    StackedModel,
    cross_fitted_f1,
    finetune_scores,
    soft_three_class,
    weight_grid,
)

__all__ = [
    "SeedEvaluation",
    "Trained",
    "agreement_f1",
    "batch_throughput",
    "cross_fitted_validation_f1",
    "evaluate_seed",
    "identity_false_positives",
    "new_category_curve",
    "queue_throughput",
    "robustness",
    "sync_latency",
    "train",
    "train_stacked",
    "validation_f1",
    "with_deployment_prior",
    "with_identity_guard",
]

MEMBER_SEED_STRIDE = 100  # ensemble member k of split seed s fine-tunes with seed s + 100 k


@dataclass
class Trained:
    """A fitted model, its validation-tuned thresholds, and the split it was trained on."""

    model: ModerationModel | StackedModel
    thresholds: dict[str, LabelThresholds]
    split: Split
    val_probs: dict[str, np.ndarray]
    identity_guard: bool = False  # serve with Moderator(identity_guard=True)
    require_parent: bool = False  # serve with Moderator(require_parent=True)

    def moderator(self) -> Moderator:
        return Moderator(
            self.model,
            self.thresholds,
            identity_guard=self.identity_guard,
            require_parent=self.require_parent,
        )


def train(
    data: LabelledData,
    seed: int,
    config: ModerationConfig,
    embedder: Embedder | None = None,
    split: Split | None = None,
) -> Trained:
    """Fit on the seed's train split; tune the hate cut and routing thresholds on validation.

    With ``config.deployment_prior`` the probabilities are shifted to it and the thresholds
    chosen on validation importance-weighted to it, exactly as :func:`with_deployment_prior`
    chooses them. (The shift alone is monotone, so unweighted thresholds would pick the same
    items as at Davidson's prior and auto-action text the model scores a few percent.)
    """
    split = split or stratified_split(data.y3, seed)
    tr, va = data.subset(split.train), data.subset(split.val)
    targets = tr.soft if config.soft_labels else {k: v.astype(float) for k, v in tr.hard.items()}
    model = ModerationModel(config, embedder)
    model.fit(tr.texts, {k: targets[k] for k in LABELS}, va.texts, va.hard)
    val_probs = model.predict_proba(va.texts)
    model.hate_threshold = tune_hate_threshold(val_probs["hate"], val_probs["offensive"], va.y3)
    thresholds = _thresholds_at_prior(model, val_probs, va)
    model.thresholds = thresholds
    return Trained(model, thresholds, split, val_probs)


def train_stacked(
    trained: Trained,
    data: LabelledData,
    cache_dir: Path,
    settings: FineTuneSettings | None = None,
    base_model: str | None = None,
    progress=None,
    weight: float | None = None,
    members: int = 1,
    extra_models: tuple[str | tuple[str, FineTuneSettings], ...] = (),
) -> Trained:
    """Fine-tune MiniLM on the same train split (cached), stack it with ``trained``'s heads.

    With ``members > 1`` that many fine-tunes (seeds ``settings.seed + 100 k``) are averaged
    (:class:`~moderation.finetune.FineTunedEnsemble`); ``extra_models`` adds one fine-tune per
    entry to that average, e.g. the packaged SmolLM2 GGUF beside MiniLM. An entry is a base
    model, trained with ``settings``, or a ``(base model, settings)`` pair whose seed is
    replaced by ``settings.seed`` (so one pair serves every split): the batch path names the
    same GGUF twice, with mean and position-weighted pooling. The blend weight (unless
    ``weight`` fixes it), calibrators, hate cut and routing thresholds are all chosen on
    validation; a base served at a deployment prior (:func:`with_deployment_prior`) passes it on:
    the blend's probabilities are shifted to it and the thresholds chosen importance-weighted.
    A base served with the identity guard or the parent rule (``trained``'s flags, or the
    ``serving_options`` saved on its model) passes those on too: the hate cut and thresholds are
    chosen on guarded validation scores (as :func:`with_identity_guard` chooses them), and the
    result serves under the same options whichever way it is served (its ``moderator()``, or
    ``Moderator(result.model)`` reading ``model.serving_options``), because thresholds fit only
    the scores they were chosen on.
    Predictions are cached on disk for evaluation; use ``model.serving()`` for timing.
    """
    split = trained.split
    settings = settings or FineTuneSettings(seed=split.seed)
    tr, va = data.subset(split.train), data.subset(split.val)
    texts = trained.model.prepare(tr.texts)
    base = base_model or default_model_path()
    runs = [
        (base, replace(settings, seed=settings.seed + MEMBER_SEED_STRIDE * k))
        for k in range(members)
    ]
    for entry in extra_models:
        path, own = (entry, settings) if isinstance(entry, str) else entry
        runs.append((path, replace(own, seed=settings.seed)))
    cached = []
    for path, member in runs:
        tuned = fine_tune_cached(path, texts, soft_three_class(tr), member, cache_dir, progress)
        cached.append(CachedPredictions(tuned, tuned.directory))
    transformer = cached[0] if len(cached) == 1 else FineTunedEnsemble(cached)
    model = StackedModel(trained.model, transformer).fit(va.texts, va.hard, va.y3, weight)
    options = _serving_options(trained)
    model.serving_options = options
    # scores() does not route: the base's thresholds only satisfy the constructor
    guard = options["identity_guard"]
    val_probs = Moderator(model, trained.thresholds, identity_guard=guard).scores(va.texts)
    model.hate_threshold = tune_hate_threshold(val_probs["hate"], val_probs["offensive"], va.y3)
    model.thresholds = _thresholds_at_prior(model, val_probs, va)
    return Trained(model, model.thresholds, split, val_probs, guard, options["require_parent"])


def _serving_options(trained: Trained) -> dict[str, bool]:
    """How ``trained`` is served: a rule is on if its flag on ``trained`` or the
    ``serving_options`` saved on its model (as `python -m moderation train` saves them) turn it on.
    """
    saved = getattr(trained.model, "serving_options", {})
    return {
        name: bool(getattr(trained, name) or saved.get(name, False))
        for name in ("identity_guard", "require_parent")
    }


def _thresholds_at_prior(
    model: ModerationModel | StackedModel, val_probs: dict[str, np.ndarray], va: LabelledData
) -> dict[str, LabelThresholds]:
    """Routing thresholds on validation; with a deployment prior on the model, validation items
    are importance-weighted to it (each label by its own weights; the review share by the root
    label's, ``offensive``, which every other label is nested in). Without one, unweighted."""
    prior = model.config.deployment_prior or {}
    weights = {k: importance_weights(va.hard[k], model.train_prior[k], prior[k]) for k in prior}
    return choose_thresholds(
        val_probs, va.hard, model.config, weights or None, traffic_weight=weights.get("offensive")
    )


@dataclass
class SeedEvaluation:
    """Everything measured on one split seed's test part (shapes documented per field)."""

    seed: int
    three_class: dict  # evals.classification.classification_report, labels 0/1/2, tuned hate cut
    three_class_default: dict  # the same with a 0.5 hate cut (no tuning)
    hate_threshold: float
    labels: dict[str, dict[str, float]]  # label -> pr_auc, roc_auc, ece_raw, ece_calibrated
    reliability: dict[str, list[dict]]  # label -> bins (low, high, count, mean_prob, frac_pos)
    thresholds: dict[str, LabelThresholds]
    routing: PathErrors
    tradeoff: list[TradeoffPoint]
    # F1 against the other annotators' majority, leave one out (moderation/agreement.py):
    # weighted, hate, offensive, neither; empty when the data has no votes
    agreement: dict[str, float] = field(default_factory=dict)


def evaluate_seed(
    trained: Trained, data: LabelledData, with_tradeoff: bool = True
) -> SeedEvaluation:
    model, config = trained.model, trained.model.config
    te = data.subset(trained.split.test)
    raw = model.raw_scores(te.texts)
    probs = trained.moderator().scores(te.texts) if trained.identity_guard else model.calibrate(raw)
    labels = {}
    reliability = {}
    for name in LABELS:
        y = te.hard[name]
        labels[name] = {
            "pr_auc": pr_auc(y, probs[name]),
            "roc_auc": roc_auc(y, probs[name]),
            "ece_raw": expected_calibration_error(y, raw[name]),
            "ece_calibrated": expected_calibration_error(y, probs[name]),
            "positive_share": float(y.mean()),
        }
        reliability[name] = [b.__dict__ for b in reliability_curve(y, probs[name], n_bins=10)]
    tuned = three_class(probs["hate"], probs["offensive"], model.hate_threshold)
    default = three_class(probs["hate"], probs["offensive"], 0.5)
    routing = route(probs, trained.thresholds, config.severity, trained.moderator().requires)
    curve = []
    if with_tradeoff:
        va = data.subset(trained.split.val)
        curve = tradeoff_curve(trained.val_probs, va.hard, probs, te.hard, config)
    return SeedEvaluation(
        seed=trained.split.seed,
        three_class=classification_report(te.y3, tuned, labels=[0, 1, 2]),
        three_class_default=classification_report(te.y3, default, labels=[0, 1, 2]),
        hate_threshold=model.hate_threshold,
        labels=labels,
        reliability=reliability,
        thresholds=trained.thresholds,
        routing=path_errors(routing, te.hard),
        tradeoff=curve,
        agreement={} if te.votes is None else agreement_f1(te.votes, tuned),
    )


def agreement_f1(
    votes: np.ndarray, predicted: np.ndarray | None = None, released: np.ndarray | None = None
) -> dict[str, float]:
    """F1 against the leave-one-annotator-out majority, for a model (``predicted``) or, with
    None, for the held-out annotator. With ``released`` (the classes the data ships) instead,
    the annotator is scored against those, own vote included: the flattered figure.
    Keys: ``weighted_f1`` and ``<class>_f1`` per class.
    """
    if released is not None:
        if predicted is not None:
            raise ConfigError("score a model (predicted) or the flattered annotator, not both")
        confusion = own_vote_confusion(votes, released)
    else:
        confusion = leave_one_out_confusion(votes, predicted)
    scores = f1_from_confusion(confusion)
    names = (f"{c}_f1" for c in CLASS_NAMES)
    per_class = dict(zip(names, scores["per_class"], strict=True))
    return {"weighted_f1": scores["weighted"], **{k: float(v) for k, v in per_class.items()}}


def validation_f1(trained: Trained, data: LabelledData) -> dict[str, float]:
    """3-class weighted and hate F1 on the validation split, from the stored ``val_probs``.

    What the fine-tuning rounds (EXPERIMENTS.md) compared before any test figure (e.g. one fine-tune
    against two: ``validation_f1(train_stacked(t, data, cache, members=m), data)``). The hate cut
    was tuned on these same items, so the figures are optimistic, equally for every variant.
    """
    va = data.subset(trained.split.val)
    return _three_class_f1s(trained.val_probs, trained.model.hate_threshold, va.y3)


def cross_fitted_validation_f1(
    trained: Trained,
    data: LabelledData,
    per_model: bool = False,
    step: float = 0.05,
    folds: int = 5,
    repeats: int = 5,
) -> dict[str, float]:
    """Validation F1 of a stacked model's blend with no item scoring a blend fitted on itself.

    :func:`validation_f1` reads the same items the blend weight, the calibrators and the hate
    cut were chosen on, which flatters a blend with more freedom. Here each validation fold is
    predicted by a blend re-chosen on the other folds (:func:`moderation.stacking.cross_fitted_f1`).
    ``per_model=False`` re-chooses the served blend (one weight, the fine-tunes' probabilities
    averaged); ``per_model=True`` gives the TF-IDF heads and each fine-tune of the ensemble its
    own weight, on a simplex grid of ``step`` (the session-17 round of EXPERIMENTS.md).
    """
    model = trained.model
    if not isinstance(model, StackedModel):
        raise ConfigError("cross-fitting re-chooses a stacked blend: pass train_stacked's result")
    va = data.subset(trained.split.val)
    texts = model.prepare(va.texts)
    raw = model.base.raw_scores(texts, prepared=True)
    members = getattr(model.transformer, "members", [model.transformer])
    if per_model:
        parts = [raw, *(finetune_scores(m.predict_proba(texts)) for m in members)]
        grid = weight_grid(len(parts), step)
    else:
        parts = [raw, finetune_scores(model.transformer.predict_proba(texts))]
        grid = PAIR_GRID
    parts = [{k: part[k] for k in LABELS} for part in parts]
    return cross_fitted_f1(
        parts, va.hard, va.y3, grid, model.config.calibration, folds=folds, repeats=repeats
    )


def _f1s(model: ModerationModel, texts: list[str], y3: np.ndarray) -> dict[str, float]:
    return _three_class_f1s(model.predict_proba(texts), model.hate_threshold, y3)


def _three_class_f1s(
    probs: dict[str, np.ndarray], hate_cut: float, y3: np.ndarray
) -> dict[str, float]:
    predicted = three_class(probs["hate"], probs["offensive"], hate_cut)
    report = classification_report(y3, predicted, labels=[0, 1, 2])
    return {"weighted_f1": report["weighted"]["f1"], "hate_f1": report["per_class"][0]["f1"]}


def robustness(
    data: LabelledData,
    defended: Trained,
    undefended: Trained,
    *,
    seed: int = 0,
    word_rate: float = 0.5,
    limit: int | None = None,
) -> dict[str, dict[str, float]]:
    """F1 on clean vs perturbed test text for the undefended and the defended model.

    Returns ``{"no_defence": {...}, "normaliser": {...}}`` with ``clean_*``, ``perturbed_*`` and
    ``drop_*`` for weighted and hate F1.
    """
    te = data.subset(defended.split.test[:limit] if limit else defended.split.test)
    attacked = Perturber(seed=seed, word_rate=word_rate).perturb_all(te.texts)
    out = {}
    for name, trained in (("no_defence", undefended), ("normaliser", defended)):
        clean = _f1s(trained.model, te.texts, te.y3)
        perturbed = _f1s(trained.model, attacked, te.y3)
        out[name] = {
            **{f"clean_{k}": v for k, v in clean.items()},
            **{f"perturbed_{k}": v for k, v in perturbed.items()},
            **{f"drop_{k}": clean[k] - perturbed[k] for k in clean},
        }
    return out


def identity_false_positives(moderator: Moderator) -> dict:
    """Share of benign identity sentences sent to auto-action or review, overall and per term.

    ``hate_fpr`` counts only those flagged *as hate*: the identity bias Dixon et al. measure, as
    distinct from this data's prior that almost any tweet is offensive.
    """
    pairs = benign_identity_sentences()
    verdicts = moderator.moderate_batch([s for _, s in pairs])
    flagged = np.array([v.path != ALLOW for v in verdicts])
    auto = np.array([v.path == "auto_action" for v in verdicts])
    as_hate = np.array([v.path != ALLOW and v.label == "hate" for v in verdicts])
    terms = [t for t, _ in pairs]
    per_term = {t: float(flagged[[i for i, x in enumerate(terms) if x == t]].mean()) for t in terms}
    return {
        "fpr": float(flagged.mean()),
        "auto_fpr": float(auto.mean()),
        "hate_fpr": float(as_hate.mean()),  # flagged as hate (not just "offensive")
        "n": len(pairs),
        "per_term": dict(sorted(per_term.items(), key=lambda kv: -kv[1])),
    }


def _coef_digest(model: ModerationModel, label: str) -> str:
    head = model.heads[label]
    return hashlib.sha256(head.coef_.tobytes() + head.intercept_.tobytes()).hexdigest()[:16]


def new_category_curve(
    data: LabelledData, trained: Trained, sizes: tuple[int, ...] = (16, 64, 256), seed: int = 0
) -> list[dict]:
    """Learn "hate" again as if it were a brand-new category, from ``k`` positives (+ 4k negatives).

    The copy keeps the frozen features and the ``offensive`` head; only the new head is fitted.
    Each row reports the new head's test PR-AUC / ROC-AUC next to the fully trained head's, and
    whether the ``offensive`` head is bit-for-bit unchanged.
    """
    rng = np.random.default_rng(seed)
    tr, te = data.subset(trained.split.train), data.subset(trained.split.test)
    y_test = te.hard["hate"]
    full = trained.model.predict_proba(te.texts)["hate"]
    rows = []
    for k in sizes:
        pos = rng.choice(np.flatnonzero(tr.hard["hate"] == 1), size=k, replace=False)
        neg = rng.choice(np.flatnonzero(tr.hard["hate"] == 0), size=4 * k, replace=False)
        index = np.r_[pos, neg]
        model = copy.copy(trained.model)
        model.heads = {"offensive": trained.model.heads["offensive"]}
        model.calibrators = {"offensive": trained.model.calibrators["offensive"]}
        before = _coef_digest(model, "offensive")
        model.add_category("hate_new", [tr.texts[i] for i in index], tr.hard["hate"][index])
        p = model.predict_proba(te.texts)["hate_new"]
        rows.append(
            {
                "k_positive": k,
                "k_total": len(index),
                "pr_auc": pr_auc(y_test, p),
                "roc_auc": roc_auc(y_test, p),
                "full_pr_auc": pr_auc(y_test, full),
                "others_unchanged": _coef_digest(model, "offensive") == before,
            }
        )
    return rows


def sync_latency(moderator: Moderator, texts: list[str], warmup: int = 20) -> dict[str, float]:
    """p50/p95/p99/mean of :meth:`Moderator.moderate`, one text per call."""
    for t in texts[:warmup]:
        moderator.moderate(t)
    seconds = []
    for t in texts:
        start = time.perf_counter()
        moderator.moderate(t)
        seconds.append(time.perf_counter() - start)
    return latency_summary(seconds)


def batch_throughput(moderator: Moderator, texts: list[str]) -> float:
    """Items per second through :meth:`Moderator.moderate_batch`."""
    start = time.perf_counter()
    moderator.moderate_batch(texts)
    return len(texts) / (time.perf_counter() - start)


def queue_throughput(n_items: int = 1000, path: Path | None = None) -> dict[str, float]:
    """Enqueues/s and claim+decide pairs/s on a real SQLite file (WAL, synchronous=FULL)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(path or Path(tmp) / "queue.sqlite")
        rng = np.random.default_rng(0)
        with ReviewQueue(db) as queue:
            start = time.perf_counter()
            for i in range(n_items):
                label = "hate" if rng.random() < 0.3 else "offensive"
                queue.enqueue(f"c{i}", "synthetic text", label, float(rng.random()))
            enqueue_s = time.perf_counter() - start
            start = time.perf_counter()
            decided = 0
            while (claim := queue.claim(f"r{decided % 5}")) is not None:
                queue.decide(claim.item_id, f"r{decided % 5}", "violation")
                decided += 1
            decide_s = time.perf_counter() - start
    return {
        "enqueue_per_s": n_items / enqueue_s,
        "claim_decide_per_s": decided / decide_s,
        "n_items": n_items,
    }


def with_deployment_prior(trained: Trained, data: LabelledData, prior: dict[str, float]) -> Trained:
    """The same fitted heads and calibrators served at a deployment prior (moderation.prior).

    Nothing is refitted: the calibrated probabilities are shifted (Saerens et al. 2002), the
    3-class hate cut is re-tuned and the routing thresholds re-chosen on validation, with
    validation items importance-weighted to ``prior`` (each label by its own weights; the review
    share by the root label's, ``offensive``, which every other label is nested in).
    """
    model = copy.copy(trained.model)
    model.config = replace(model.config, deployment_prior=dict(prior))
    va = data.subset(trained.split.val)
    val_probs = model.calibrate(model.raw_scores(va.texts))
    model.hate_threshold = tune_hate_threshold(val_probs["hate"], val_probs["offensive"], va.y3)
    thresholds = _thresholds_at_prior(model, val_probs, va)
    model.thresholds = thresholds
    return Trained(model, thresholds, trained.split, val_probs)


def with_identity_guard(
    trained: Trained, data: LabelledData, *, require_parent: bool = False
) -> Trained:
    """The same model served with the identity guard; hate cut and thresholds re-chosen on it.

    Guarded validation probabilities replace the plain ones, so the policy's validation estimates
    describe the guarded scores; a deployment prior on the model keeps its importance weights.
    """
    model = copy.copy(trained.model)
    va = data.subset(trained.split.val)
    val_probs = Moderator(model, trained.thresholds, identity_guard=True).scores(va.texts)
    model.hate_threshold = tune_hate_threshold(val_probs["hate"], val_probs["offensive"], va.y3)
    thresholds = _thresholds_at_prior(model, val_probs, va)
    model.thresholds = thresholds
    return Trained(model, thresholds, trained.split, val_probs, True, require_parent)


def with_normaliser(config: ModerationConfig, on: bool) -> ModerationConfig:
    return replace(config, normalise=on)
