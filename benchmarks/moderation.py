"""Benchmark of the moderation pipeline on Davidson et al. 2017 (24,783 labelled tweets).

Tables (``table`` names in the record):

* ``classifiers``: per feature variant, the paper's 3-class weighted and hate-class P/R/F1
  (stratified 10 % test, mean over split seeds with the [min, max] spread), the hate F1 without the
  tuned cut, per-label PR-AUC / ROC-AUC on the multi-label view, ECE after calibration.
  Variants: ``tfidf`` (default: word+char TF-IDF, soft labels, hate under offensive),
  ``tfidf-flat`` (no hierarchy), ``tfidf-hard`` (majority labels instead of vote shares),
  ``embedding`` (MiniLM + linear heads), ``tfidf+embedding`` (both blocks), ``tfidf+prior``
  (the ``tfidf`` models served at ``DEPLOYMENT_PRIOR``: 10 % offensive, 1 % hate; its test
  figures are on Davidson's own 83 % offensive test split, where the correction must cost F1),
  ``finetuned`` (MiniLM fine-tuned as a 3-class classifier on vote shares, ``finetune.py``) and
  ``tfidf+finetuned`` (its scores stacked with the ``tfidf`` heads, ``moderation/stacking.py``),
  ``tfidf+finetuned-x2`` (the same with two fine-tunes per split averaged),
  ``tfidf+finetuned+smollm`` (MiniLM's fine-tune averaged with one of SmolLM2-135M, the
  packaged GGUF decoder, before stacking; ~30 min more per split to train with two threads,
  the default, about an hour with one), ``tfidf+finetuned-x2+smollm-x2`` (the batch path: two
  fine-tunes of each, SmolLM2's with mean and with position-weighted pooling; another SmolLM2
  fine-tune per split),
  ``tfidf+guard`` / ``tfidf+prior+guard`` (the identity guard, ``moderation/identity.py``).
* ``calibration``: ECE before/after isotonic calibration per label, reliability bins in ``extra``.
* ``routing``: the policy (auto-action at validation precision >= 0.95, review budget 20 %) on test:
  path shares, auto precision, positives among reviewed and allowed items, recall caught.
* ``tradeoff``: the same for other precision and recall targets (seed 0, review budget 20 %).
* ``robustness``: weighted / hate F1 clean vs perturbed test, without and with the normaliser
  (mean over the split seeds, [min, max] in ``ci``).
* ``identity``: share of 240 benign identity-term sentences flagged (auto or review), for
  every serving variant (seed 0); ``+parent`` adds the hierarchy rule to the guard.
* ``new_category``: "hate" re-learnt as a new label from k positives on frozen features.
* ``speed``: sync latency, batch throughput, review-queue throughput on SQLite.
* ``agreement``: 3-class F1 against the *other* annotators' majority on the test splits (leave
  one annotator out, ``moderation/agreement.py``) for one annotator and for ``tfidf``,
  ``tfidf+finetuned`` and the batch path; and one annotator against the released class, own
  vote included (the flattered figure).

Quick mode: a stratified half of the tweets, one seed, the ``tfidf`` variant only (no
fine-tuning), fewer latency calls. The ablations (flat, hard) run on one seed; the others on
three. Fine-tuned weights and their predictions are cached in ``ctx.cache_dir`` keyed by base
model, training data checksum, split seed and settings, so only the first full run trains.
No tweet text is ever written to the record or the logs: aggregates only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, replace

import numpy as np

from benchmarks.record import Anchor, BenchContext, BenchResult, Row
from evals.datasets import dataset_summary, load_davidson
from llm_client.local_server import gguf_model_path
from moderation import eval as ev
from moderation.config import DEPLOYMENT_PRIOR, ModerationConfig
from moderation.features import CachedEmbedder, MiniLMEmbedder
from moderation.finetune import FineTuneSettings, uncached
from moderation.labels import LabelledData, from_davidson, stratified_split
from moderation.pipeline import Moderator

DESCRIPTION = (
    "Content moderation on Davidson et al. 2017: TF-IDF and MiniLM heads, calibration, "
    "routing policy, adversarial robustness, identity false positives, review queue"
)

log = logging.getLogger(__name__)

DAVIDSON = "Davidson et al., ICWSM 2017, Table/Fig. 1 (logistic regression, L2, one-vs-rest)"
PROTOCOL = "10% held-out test split, 3-class weighted average / hate class"
PRIOR_VARIANT = "tfidf+prior"  # the tfidf models served at moderation.config.DEPLOYMENT_PRIOR
# fine-tuned variants: name -> (fixed blend weight or None: chosen on validation, MiniLM
# fine-tunes averaged, the poolings of the SmolLM2-135M fine-tunes that join the average).
# "-x2" averages two MiniLM fine-tunes per split (seeds s and s + 100); "+smollm" adds one of
# SmolLM2 (session 16), "+smollm-x2" two: mean and position-weighted pooling (session 18).
FINETUNED = {
    "finetuned": (1.0, 1, ()),
    "tfidf+finetuned": (None, 1, ()),
    "tfidf+finetuned-x2": (None, 2, ()),
    "tfidf+finetuned+smollm": (None, 1, ("mean",)),
    "tfidf+finetuned-x2+smollm-x2": (None, 2, ("mean", "weighted-mean")),
}
# The batch path, on which the issue's accuracy targets are judged: since session 18 two
# fine-tunes of each encoder (out-of-fold validation weighted F1 0.9139 against 0.9120 for one
# of each, higher on every seed; EXPERIMENTS.md), at half the throughput of one of each and a
# twentieth of MiniLM's; "tfidf+finetuned" is the choice when volume matters more.
BATCH_PATH = "tfidf+finetuned-x2+smollm-x2"
# scored against the other annotators' majority too (the ``agreement`` table)
AGREEMENT_VARIANTS = ("tfidf", "tfidf+finetuned", BATCH_PATH)
THREADS_ENV = "AIS_FINETUNE_THREADS"
# The threads the record's SmolLM2 fine-tunes were trained with (each member's
# ``trained_threads``; its MiniLM ones used one). A rebuild from an empty cache matches the record
# to the last digit only with the same counts on the same kind of CPU: seed 0's mean-pooled
# SmolLM2 fine-tune trained with one thread instead of two moved that seed's
# ``tfidf+finetuned+smollm`` hate F1 by 0.003 (moderation/EXPERIMENTS.md, session 29).
SMOLLM_TRAIN_THREADS = 2


def finetune_threads(environ: Mapping[str, str] = os.environ) -> int | None:
    """Torch threads for the fine-tuned encoders: ``AIS_FINETUNE_THREADS``, or None when unset.

    Unset, the record's recipe: MiniLM trains with one thread, SmolLM2 with
    ``SMOLLM_TRAIN_THREADS``, and every fine-tune predicts with one, so a run from an empty cache
    on the record's kind of CPU (an Intel Xeon) rebuilds the record's fine-tunes (shown for
    seed 0's two), and its ``speed`` rows compare with the record's. Two threads also halve a
    SmolLM2 fine-tune on a quiet machine (26-35 min instead of about an hour; they are most of a
    run from an empty cache). Set it to N to train and predict every fine-tune with N: 1 is the
    safe choice on a 2-core machine that runs anything else, where two threads were 3-4x slower
    (``moderation/finetune.py``). Threads are not in the cache key: a model trained with two is
    reused by a run with one. They set the fine-tuned models' rows of the ``speed`` table, so
    the record's config names them.
    """
    raw = environ.get(THREADS_ENV)
    if raw is None:
        return None
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be a whole number of threads >= 1, got {raw!r}")
    return threads


def _variants(quick: bool) -> dict[str, tuple[ModerationConfig, int]]:
    """Variant name -> (config, number of split seeds it runs on)."""
    base = ModerationConfig()
    variants = {"tfidf": (base, 3)}
    if not quick:
        variants |= {
            # ablations of the default, one seed each (CPU is shared; the spread is in tfidf's row)
            "tfidf-flat": (replace(base, parents={}), 1),
            "tfidf-hard": (replace(base, soft_labels=False), 1),
            # embedding variants last: their vectors come from the on-disk cache when warm
            "embedding": (replace(base, features="embedding", C=16.0, child_C=16.0), 3),
            "tfidf+embedding": (replace(base, features="tfidf+embedding"), 3),
        }
    return variants


def _summary(per_seed: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, list[float]]]:
    keys = per_seed[0].keys()
    mean = {k: float(np.mean([s[k] for s in per_seed])) for k in keys}
    spread = {
        k: [float(min(s[k] for s in per_seed)), float(max(s[k] for s in per_seed))] for k in keys
    }
    return mean, spread


def _classifier_metrics(report: ev.SeedEvaluation) -> dict[str, float]:
    c, d = report.three_class, report.three_class_default
    return {
        "weighted_p": c["weighted"]["precision"],
        "weighted_r": c["weighted"]["recall"],
        "weighted_f1": c["weighted"]["f1"],
        "hate_p": c["per_class"][0]["precision"],
        "hate_r": c["per_class"][0]["recall"],
        "hate_f1": c["per_class"][0]["f1"],
        "hate_f1_cut0.5": d["per_class"][0]["f1"],
        "offensive_f1": c["per_class"][1]["f1"],
        "neither_f1": c["per_class"][2]["f1"],
        "hate_pr_auc": report.labels["hate"]["pr_auc"],
        "hate_roc_auc": report.labels["hate"]["roc_auc"],
        "offensive_pr_auc": report.labels["offensive"]["pr_auc"],
        "offensive_roc_auc": report.labels["offensive"]["roc_auc"],
        "hate_ece": report.labels["hate"]["ece_calibrated"],
    }


def _classifier_row(
    name: str, reports: list[ev.SeedEvaluation], extra: dict, timings: dict | None = None
) -> Row:
    per_seed = [_classifier_metrics(r) for r in reports]
    mean, spread = _summary(per_seed)
    return Row(
        variant=name,
        table="classifiers",
        metrics=mean,
        ci={k: spread[k] for k in ("weighted_f1", "hate_f1", "hate_pr_auc")},
        timings=timings or {},
        extra={
            "seeds": [r.seed for r in reports],
            "per_seed": per_seed,
            "hate_threshold": [r.hate_threshold for r in reports],
            **extra,
        },
    )


def _routing_row(name: str, reports: list[ev.SeedEvaluation], extra: dict) -> Row:
    mean, spread = _summary([_routing_metrics(r) for r in reports])
    thresholds = {r.seed: {k: asdict(v) for k, v in r.thresholds.items()} for r in reports}
    return Row(
        variant=f"{name}@p0.95,review<=0.20",
        table="routing",
        metrics=mean,
        ci={k: spread[k] for k in ("auto_precision", "review_share")},
        extra={"thresholds": thresholds, **extra},
    )


def _routing_metrics(report: ev.SeedEvaluation) -> dict[str, float]:
    r = report.routing
    return {
        "auto_share": r.shares["auto_action"],
        "review_share": r.shares["review"],
        "allow_share": r.shares["allow"],
        "auto_precision": r.auto_precision,
        "review_positive_rate": r.review_positive_rate,
        "allow_miss_rate": r.allow_miss_rate,
        "hate_caught": r.recall_caught["hate"],
        "offensive_caught": r.recall_caught["offensive"],
    }


def _latency_row(variant: str, moderator, texts: list[str], warmup: int = 20) -> Row:
    """p50/p95/p99 of ``moderator.moderate`` called one text at a time (the blocking path)."""
    latency = ev.sync_latency(moderator, texts, warmup=warmup)
    return Row(
        variant=variant,
        table="speed",
        metrics={k: latency[k] for k in ("p50_ms", "p95_ms", "p99_ms")},
    )


def _agreement_rows(
    data: LabelledData,
    default: dict[int, tuple[ev.Trained, ev.SeedEvaluation]],
    by_variant: dict[str, list[dict[str, float]]],
) -> list[Row]:
    """One annotator and the models, each against the other annotators' majority (test splits)."""
    held_out = "one annotator (held out)"
    flattered = "one annotator vs released class (own vote in)"
    people = {held_out: [], flattered: []}
    for trained, _ in default.values():
        te = data.subset(trained.split.test)
        people[held_out].append(ev.agreement_f1(te.votes))
        people[flattered].append(ev.agreement_f1(te.votes, released=te.y3))
    rows = []
    for name, per_seed in (people | by_variant).items():
        mean, spread = _summary(per_seed)
        ci = {k: spread[k] for k in ("weighted_f1", "hate_f1")}
        rows.append(Row(variant=name, table="agreement", metrics=mean, ci=ci))
    return rows


def _robustness_rows(data: LabelledData, by_seed: dict[int, ev.Trained]) -> list[Row]:
    """The ``robustness`` table on every split seed, as the issue judges its targets.

    Each seed's model (normaliser on) is compared with one trained without the normaliser on the
    same split, both attacked with the same perturbed test texts (the perturbation seed is the
    split seed); each row is the mean over seeds, [min, max] in ``ci``.
    """
    per_seed: dict[str, list[dict[str, float]]] = {}
    for seed, trained in by_seed.items():
        config = ev.with_normaliser(trained.model.config, False)
        undefended = ev.train(data, seed, config, split=trained.split)
        for name, m in ev.robustness(data, trained, undefended, seed=seed).items():
            per_seed.setdefault(name, []).append(m)
    rows = []
    for name, figures in per_seed.items():
        mean, spread = _summary(figures)
        rows.append(Row(variant=name, table="robustness", metrics=mean, ci=spread))
    return rows


def run(ctx: BenchContext) -> BenchResult:
    threads = finetune_threads()  # checked first: a bad value must not wait for hours of work
    smollm_threads = {"threads": threads or 1, "train_threads": threads or SMOLLM_TRAIN_THREADS}
    data = from_davidson(load_davidson(ctx.data_dir))
    if ctx.quick:  # a stratified half of the tweets keeps the smoke run short
        data = data.subset(np.sort(stratified_split(data.y3, ctx.seed, test=0.5, val=0.25).test))
    all_seeds = [ctx.seed] if ctx.quick else [ctx.seed, ctx.seed + 1, ctx.seed + 2]
    embedder = CachedEmbedder(MiniLMEmbedder(), ctx.cache_dir)
    rows: list[Row] = []
    notes: list[str] = []
    default: dict[int, tuple[ev.Trained, ev.SeedEvaluation]] = {}
    agreement: dict[str, list[dict[str, float]]] = {}  # variant -> per seed, leave-one-out F1
    variants = _variants(ctx.quick)
    bar = _progress(ctx, total=sum(min(n, len(all_seeds)) for _, n in variants.values()))

    for name, (config, n_seeds) in variants.items():
        seeds = all_seeds[:n_seeds]
        reports, train_s = [], []
        for seed in seeds:
            start = time.perf_counter()
            uses_embedding = "embedding" in config.features
            trained = ev.train(data, seed, config, embedder if uses_embedding else None)
            train_s.append(time.perf_counter() - start)
            report = ev.evaluate_seed(trained, data, with_tradeoff=name == "tfidf" and seed == 0)
            reports.append(report)
            if name == "tfidf":
                default[seed] = (trained, report)
            bar.update(1)
        rows.append(_classifier_row(name, reports, {}, {"train_s": float(np.mean(train_s))}))
        if name in AGREEMENT_VARIANTS:
            agreement[name] = [r.agreement for r in reports]
    bar.close()

    # The same fitted models served at a deployment prior (moderation.prior): nothing refitted;
    # probabilities shifted, hate cut and routing thresholds re-chosen on re-weighted validation.
    corrected = {
        s: ev.with_deployment_prior(t, data, DEPLOYMENT_PRIOR) for s, (t, _) in default.items()
    }
    corrected_reports = {
        s: ev.evaluate_seed(t, data, with_tradeoff=False) for s, t in corrected.items()
    }
    rows.append(
        _classifier_row(
            PRIOR_VARIANT, list(corrected_reports.values()), {"deployment_prior": DEPLOYMENT_PRIOR}
        )
    )

    # Fine-tuned MiniLM alone and stacked with the tfidf heads (full runs only: minutes per seed).
    tuned: dict[str, dict[int, ev.Trained]] = (
        {name: {} for name in FINETUNED} if not ctx.quick else {}
    )
    for name in tuned:
        reports, extra = [], {"weights": [], "finetune": []}
        weight, members, poolings = FINETUNED[name]
        extra_models = tuple(
            (str(gguf_model_path()), FineTuneSettings(pooling=pooling, **smollm_threads))
            for pooling in poolings
        )
        for seed, (trained, _) in default.items():
            t = ev.train_stacked(
                trained,
                data,
                ctx.cache_dir,
                FineTuneSettings(seed=seed, threads=threads or 1),
                weight=weight,
                members=members,
                extra_models=extra_models,
            )
            tuned[name][seed] = t
            reports.append(ev.evaluate_seed(t, data, with_tradeoff=False))
            extra["weights"].append(t.model.weights["hate"])
            fitted = uncached(t.model.transformer)
            extra["finetune"].append(  # per seed, one entry per fine-tuned member
                [
                    {
                        "base_model": m.base_model,
                        "settings": asdict(m.settings),
                        "train_s": m.train_seconds,
                        "trained_threads": m.trained_threads,
                        "history": m.history,
                    }
                    for m in getattr(fitted, "members", [fitted])
                ]
            )
        train_s = float(np.mean([sum(m["train_s"] for m in f) for f in extra["finetune"]]))
        rows.append(_classifier_row(name, reports, extra, {"train_s": train_s}))
        rows.append(_routing_row(name, reports, {}))
        if name in AGREEMENT_VARIANTS:
            agreement[name] = [r.agreement for r in reports]

    # The identity guard (moderation/identity.py) on the tfidf models, at both priors; the
    # classifier rows show what blindness to identity terms costs in F1 (the hierarchy rule
    # changes routing only, so "+parent" variants get routing rows).
    guarded: dict[str, dict[int, ev.Trained]] = {}
    for name, source in (
        ("tfidf", {s: t for s, (t, _) in default.items()}),
        (PRIOR_VARIANT, corrected),
    ):
        for parent in (False, True):
            variant = f"{name}+guard" + ("+parent" if parent else "")
            guarded[variant] = {
                s: ev.with_identity_guard(t, data, require_parent=parent) for s, t in source.items()
            }
            reports = [
                ev.evaluate_seed(t, data, with_tradeoff=False) for t in guarded[variant].values()
            ]
            if not parent:
                rows.append(_classifier_row(variant, reports, {}))
            rows.append(_routing_row(variant, reports, {}))

    seeds = all_seeds
    trained0, report0 = default[seeds[0]]
    rows += _agreement_rows(data, default, agreement)
    for label, m in report0.labels.items():
        rows.append(
            Row(
                variant=label,
                table="calibration",
                metrics={k: m[k] for k in ("ece_raw", "ece_calibrated", "positive_share")},
                extra={"reliability_bins": report0.reliability[label], "seed": seeds[0]},
            )
        )

    missed_by_seed = {s: r.routing.missed for s, (_, r) in default.items()}
    rows.append(_routing_row("tfidf", [r for _, r in default.values()], {"missed": missed_by_seed}))
    rows.append(
        _routing_row(
            PRIOR_VARIANT, list(corrected_reports.values()), {"deployment_prior": DEPLOYMENT_PRIOR}
        )
    )
    for point in report0.tradeoff:
        e = point.errors
        rows.append(
            Row(
                variant=f"p>={point.target_precision:.2f},recall>={point.target_recall:.2f}",
                table="tradeoff",
                metrics={
                    "auto_share": e.shares["auto_action"],
                    "review_share": e.shares["review"],
                    "auto_precision": e.auto_precision,
                    "allow_miss_rate": e.allow_miss_rate,
                    "hate_caught": e.recall_caught["hate"],
                    "offensive_caught": e.recall_caught["offensive"],
                },
            )
        )

    start = time.perf_counter()
    rows += _robustness_rows(data, {seed: trained for seed, (trained, _) in default.items()})
    notes.append(
        f"robustness: seeds {list(default)}, word_rate 0.5, {time.perf_counter() - start:.0f}s"
    )

    moderator = trained0.moderator()
    serving = {"tfidf": trained0, PRIOR_VARIANT: corrected[seeds[0]]}
    serving |= {name: by_seed[seeds[0]] for name, by_seed in (guarded | tuned).items()}
    for name, candidate in serving.items():
        identity = ev.identity_false_positives(candidate.moderator())
        rows.append(
            Row(
                variant=name,
                table="identity",
                metrics={k: identity[k] for k in ("fpr", "auto_fpr", "hate_fpr")},
                extra={"per_term": identity["per_term"], "n": identity["n"], "seed": seeds[0]},
            )
        )

    for r in ev.new_category_curve(data, trained0, sizes=(16, 64, 256), seed=seeds[0]):
        rows.append(
            Row(
                variant=f"k={r['k_positive']}",
                table="new_category",
                metrics={k: r[k] for k in ("pr_auc", "roc_auc", "full_pr_auc")},
                extra={"k_total": r["k_total"], "others_unchanged": r["others_unchanged"]},
            )
        )

    test_texts = data.subset(trained0.split.test).texts
    n_latency = 300 if ctx.quick else 1000
    rows.append(_latency_row("moderate() sync", moderator, test_texts[:n_latency]))
    rows.append(
        Row(
            variant="moderate_batch()",
            table="speed",
            metrics={"items_per_s": ev.batch_throughput(moderator, test_texts)},
        )
    )
    guard_moderator = guarded[f"{PRIOR_VARIANT}+guard+parent"][seeds[0]].moderator()
    rows.append(
        _latency_row(
            "moderate() sync, tfidf+prior+guard+parent", guard_moderator, test_texts[:n_latency]
        )
    )
    for name, by_seed in tuned.items():  # the fine-tuned models serve the batch path
        model = by_seed[seeds[0]].model.serving()  # no prediction cache: real encoder calls
        stacked = Moderator(model, by_seed[seeds[0]].thresholds)
        rows.append(
            _latency_row(f"moderate() one at a time, {name}", stacked, test_texts[:100], warmup=5)
        )
        rows.append(
            Row(
                variant=f"moderate_batch(), {name}",
                table="speed",
                metrics={"items_per_s": ev.batch_throughput(stacked, test_texts[:1000])},
            )
        )
    queue = ev.queue_throughput(n_items=500 if ctx.quick else 2000)
    rows.append(
        Row(
            variant="review queue (SQLite WAL, synchronous=FULL)",
            table="speed",
            metrics={
                "enqueue_per_s": queue["enqueue_per_s"],
                "claim_decide_per_s": queue["claim_decide_per_s"],
            },
        )
    )

    anchors = [
        Anchor("Davidson et al. LR", metric, value, PROTOCOL, DAVIDSON, "tfidf", "classifiers")
        for metric, value in (
            ("weighted_p", 0.91),
            ("weighted_r", 0.90),
            ("weighted_f1", 0.90),
            ("hate_p", 0.44),
            ("hate_r", 0.59),
            ("hate_f1", 0.51),
        )
    ]
    # The issue's targets, each beside the variant it is judged on (the batch path for accuracy).
    anchors += [
        Anchor("issue 6 target", metric, value, protocol, "issue 6", variant, table)
        for metric, value, protocol, variant, table in (
            ("weighted_f1", 0.91, ">= 0.91, mean of 3 seeds", BATCH_PATH, "classifiers"),
            ("hate_f1", 0.55, ">= 0.55, mean of 3 seeds", BATCH_PATH, "classifiers"),
            ("auto_precision", 0.95, ">= 0.95", "tfidf@p0.95,review<=0.20", "routing"),
            ("review_share", 0.20, "<= 0.20", "tfidf@p0.95,review<=0.20", "routing"),
            ("drop_weighted_f1", 0.02, "<= 0.02 with defences", "normaliser", "robustness"),
            ("p99_ms", 10.0, "<= 10 ms per item, 2 cores", "moderate() sync", "speed"),
        )
    ]
    notes += [
        "split: stratified by class, 80/10/10 train/validation/test per seed; thresholds and "
        "calibration fitted on validation only",
        "Davidson's published figures come from a model whose L1 feature selection saw all data "
        "before the split and from an unstratified split; see moderation/README.md",
    ]
    config = {
        "seeds": seeds,
        "variants": {k: {**v.to_dict(), "n_seeds": n} for k, (v, n) in variants.items()},
        "quick_subsample": 0.5 if ctx.quick else None,
        # None: the record's recipe (finetune_threads); quick runs fine-tune nothing
        "finetune_threads": None if ctx.quick else threads,
        "smollm_train_threads": None if ctx.quick else smollm_threads["train_threads"],
    }
    return BenchResult(
        dataset=dataset_summary("davidson-hate-offensive", ctx.data_dir),
        config=config,
        rows=rows,
        anchors=anchors,
        notes=notes,
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(ctx: BenchContext, total: int):
    if not ctx.progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="moderation train+eval", unit="fit")
