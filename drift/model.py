"""The monitored demand model: gradient-boosted trees on log1p(cnt) with an 80% interval.

Three LightGBM boosters share the features: a point model trained with squared error on
``log1p(cnt)`` (counts are skewed; the log makes an hour with 5 and an hour with 500 rentals matter
alike), and two quantile models (alpha 0.1 and 0.9) whose gap is the logged uncertainty. Quantile
regression for intervals: Koenker & Bassett (1978); LightGBM's ``objective="quantile"``.

Models are saved as LightGBM's text format (no pickle), so a registry directory can be read by any
LightGBM and diffed by a person.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from drift.config import check_seed
from drift.features import FEATURES, TARGET, check_columns, check_frame

__all__ = ["DemandModel", "Prediction", "mean_absolute_error"]

_FILES = {"point": "point.txt", "low": "q10.txt", "high": "q90.txt"}


@dataclass(frozen=True)
class Prediction:
    """Predictions for n rows: ``value``, ``low``, ``high`` are arrays of shape (n,), in rentals."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def uncertainty(self) -> np.ndarray:
        """Width of the 80% interval, shape (n,)."""
        return self.high - self.low

    @property
    def finite_rows(self) -> np.ndarray:
        """Rows whose value, low and high are all finite numbers, bool shape (n,): the rows the
        prediction log can store (SQLite turns NaN into NULL)."""
        return np.isfinite(np.asarray([self.value, self.low, self.high], dtype=float)).all(axis=0)


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """MAE in rentals per hour; the monitor's error measure (robust and easy to explain)."""
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


class DemandModel:
    """Predict hourly rentals from calendar and weather features.

    ``features`` is the list of columns the model uses (the "bad deployment" scenario trains one
    that forgets ``hr``). Missing or NaN inputs are passed to LightGBM as NaN, never imputed here,
    and so is a value that is not a number (a sensor that sent ``"n/a"``): spotting them is the
    data-quality checker's job (``wrong_type``), and serving must not crash before it can run.
    """

    def __init__(self, boosters: dict[str, lgb.Booster], features: tuple[str, ...]) -> None:
        self.boosters = boosters
        self.features = tuple(features)

    @classmethod
    def train(
        cls,
        frame: pd.DataFrame,
        *,
        features: tuple[str, ...] = FEATURES,
        n_estimators: int = 150,
        seed: int = 0,
        sample_weight: np.ndarray | None = None,
    ) -> DemandModel:
        """Fit the point and interval boosters on ``frame`` (features + ``cnt``).

        ConfigError if ``seed`` is not a whole number from 0 to 2**32 - 1 (LightGBM itself
        refuses a float or a bool only after building its dataset).
        """
        seed = check_seed(seed)
        check_columns(frame, (*features, TARGET))
        x = frame[list(features)].astype(float)
        y = np.log1p(frame[TARGET].to_numpy(dtype=float))
        common = dict(
            n_estimators=n_estimators,
            learning_rate=0.08,
            num_leaves=31,
            min_child_samples=10,
            subsample=0.8,
            subsample_freq=1,
            random_state=seed,
            n_jobs=1,  # OpenMP threads spin under CPU contention: 1 thread is ~20x faster here
            verbose=-1,
        )
        objectives = {
            "point": {"objective": "regression"},
            "low": {"objective": "quantile", "alpha": 0.1},
            "high": {"objective": "quantile", "alpha": 0.9},
        }
        boosters = {}
        for name, objective in objectives.items():
            regressor = lgb.LGBMRegressor(**common, **objective)
            regressor.fit(x, y, sample_weight=sample_weight)
            boosters[name] = regressor.booster_
        return cls(boosters, features)

    def predict(self, frame: pd.DataFrame) -> Prediction:
        """Predict every row; columns the frame lacks, and values that are not numbers, are
        treated as missing (NaN). SchemaError if ``frame`` is not a DataFrame or repeats a column
        name (which of the two columns is the input?)."""
        check_frame(frame, name="model input")
        inputs = frame.reindex(columns=list(self.features))
        x = np.column_stack(
            [
                pd.to_numeric(inputs[f], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                for f in self.features
            ]
        )
        out = {
            name: np.expm1(booster.predict(x, num_threads=1))
            for name, booster in self.boosters.items()
        }
        value = np.clip(out["point"], 0.0, None)
        low = np.clip(np.minimum(out["low"], value), 0.0, None)
        high = np.maximum(out["high"], value)
        return Prediction(value=value, low=low, high=high)

    def save(self, directory: Path) -> None:
        """Write the boosters as LightGBM text files plus ``features.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, filename in _FILES.items():
            self.boosters[name].save_model(str(directory / filename))
        (directory / "features.json").write_text(json.dumps(list(self.features)))

    @classmethod
    def load(cls, directory: Path) -> DemandModel:
        """Read a model written by :meth:`save`."""
        features = tuple(json.loads((directory / "features.json").read_text()))
        boosters = {
            name: lgb.Booster(model_file=str(directory / filename))
            for name, filename in _FILES.items()
        }
        return cls(boosters, features)
