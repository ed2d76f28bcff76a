"""Pin the public API: a change to ``evals.__all__`` must be deliberate."""

import evals


def test_public_api_is_pinned():
    assert sorted(evals.__all__) == sorted(
        [
            "DatasetError", "DatasetIntegrityError", "DatasetNotFoundError", "EvalsError",
            "MetricError", "Stopwatch", "bootstrap_ci", "classification_report",
            "confusion_matrix", "evaluate", "evaluate_per_query", "expected_calibration_error",
            "latency_summary", "load_beir", "load_bike_sharing", "load_davidson",
            "load_movielens_100k", "paired_test", "peak_rss_mb", "pr_auc", "reliability_curve",
            "roc_auc",
        ]
    )  # fmt: skip
    assert all(hasattr(evals, name) for name in evals.__all__)
