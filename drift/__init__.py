"""drift: a model monitor that detects data and concept drift and acts on it.

Serve a demand model in windows, log every prediction to SQLite, test each window for data-quality
problems, data drift (Evidently's tests) and sustained drift (CUSUM), compare the error with its
baseline when labels arrive, and let small policies with hysteresis and a cool-down roll back,
retrain, or promote a shadow model through an on-disk registry. See README.md.
"""

from drift.config import MonitorConfig
from drift.data_drift import ColumnDrift, DriftVerdict, detect_drift, evidently_drift
from drift.errors import DriftError
from drift.features import BikeData, split_reference
from drift.model import DemandModel, Prediction
from drift.monitor import DETECTORS, Monitor, WindowReport
from drift.policy import Decision, Evidence, PolicyEngine
from drift.prediction_log import PredictionLog
from drift.quality import QualityReport, check_quality
from drift.registry import ModelRegistry
from drift.scenarios import SCENARIOS, Scenario, build_scenario
from drift.sequential import Cusum, PageHinkley
from drift.timeline import Timeline, run_scenario, train_models

__all__ = [
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
