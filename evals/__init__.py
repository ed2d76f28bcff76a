"""Shared evaluation infrastructure: datasets, ranking/classification metrics, statistics, timing.

Every system in this repository is measured with these pieces, so a figure in one system's table
means the same thing as the same figure in another's. Map of the package:

    sources.py         where the datasets come from: registry, resolution, download, sha256 checks
    datasets.py        the loaders that parse them into typed structures (BEIR dicts, DataFrames)
    metrics.py         ranking metrics on BEIR qrels/run dicts (trec_eval semantics)
    classification.py  precision/recall/F1, PR-AUC, ROC-AUC, calibration error
    stats.py           bootstrap confidence intervals, paired randomisation test
    timing.py          latency percentiles, stopwatch, peak memory
    pickles.py         the restricted unpickler the systems read their saved models with
    files.py           atomic writes into shared caches, locks, a writable-folder check
    cli.py             what every command line shares: Ctrl-C and a closed pipe without a
                       traceback, the --seed type, outside text printed escaped
    progress.py        a model load without transformers' progress bar (library calls)
    errors.py          the exception tree
"""

from evals.classification import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    pr_auc,
    reliability_curve,
    roc_auc,
)
from evals.datasets import (
    load_beir,
    load_bike_sharing,
    load_davidson,
    load_movielens_100k,
)
from evals.errors import (
    DatasetError,
    DatasetIntegrityError,
    DatasetNotFoundError,
    EvalsError,
    MetricError,
)
from evals.metrics import evaluate, evaluate_per_query
from evals.stats import bootstrap_ci, paired_test
from evals.timing import Stopwatch, latency_summary, peak_rss_mb

__all__ = [
    "DatasetError",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "EvalsError",
    "MetricError",
    "Stopwatch",
    "bootstrap_ci",
    "classification_report",
    "confusion_matrix",
    "evaluate",
    "evaluate_per_query",
    "expected_calibration_error",
    "latency_summary",
    "load_beir",
    "load_bike_sharing",
    "load_davidson",
    "load_movielens_100k",
    "paired_test",
    "peak_rss_mb",
    "pr_auc",
    "reliability_curve",
    "roc_auc",
]
