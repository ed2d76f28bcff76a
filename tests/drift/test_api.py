"""The public surface of the drift package is pinned."""

import drift


def test_public_all_is_pinned():
    assert sorted(drift.__all__) == sorted(
        [
            "DETECTORS",
            "SCENARIOS",
            "BikeData",
            "ColumnDrift",
            "Cusum",
            "Decision",
            "DemandModel",
            "DriftError",
            "DriftVerdict",
            "Evidence",
            "ModelRegistry",
            "Monitor",
            "MonitorConfig",
            "PageHinkley",
            "PolicyEngine",
            "Prediction",
            "PredictionLog",
            "QualityReport",
            "Scenario",
            "Timeline",
            "WindowReport",
            "build_scenario",
            "check_quality",
            "detect_drift",
            "evidently_drift",
            "run_scenario",
            "split_reference",
            "train_models",
        ]
    )
    for name in drift.__all__:
        assert getattr(drift, name) is not None
