"""The feature schema of the bike-demand model and the reference/serving split of the data.

UCI Bike Sharing (Fanaee-T & Gama 2013) has one row per hour of 2011-2012 with calendar and weather
columns and the rental count ``cnt``. The publisher normalised the weather columns (temp/41,
atemp/50, hum/100, windspeed/67), so every weather value lies in [0, 1]: that is what makes a
"temperature sent in Celsius" bug detectable as a data-quality incident rather than as drift.

The reference period is 2011. Its *days* are split at random into a training part (the model
learns from it) and a holdout part (the monitor's reference sample, the baseline error, and the
pool that stationary serving windows are resampled from). Splitting by day rather than by hour keeps
the 24 correlated hours of a day on one side.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from drift.config import check_seed
from drift.errors import ConfigError, SchemaError

__all__ = [
    "CATEGORICAL",
    "FEATURES",
    "NUMERICAL",
    "RANGES",
    "TARGET",
    "BikeData",
    "check_columns",
    "check_frame",
    "split_reference",
]

NUMERICAL: tuple[str, ...] = ("temp", "atemp", "hum", "windspeed", "hr")
CATEGORICAL: tuple[str, ...] = (
    "season",
    "mnth",
    "weekday",
    "workingday",
    "holiday",
    "weathersit",
)
FEATURES: tuple[str, ...] = NUMERICAL + CATEGORICAL
TARGET = "cnt"

# Valid ranges from the publisher's Readme; a value outside them is a data-quality finding.
RANGES: dict[str, tuple[float, float]] = {
    "temp": (0.0, 1.0),
    "atemp": (0.0, 1.0),
    "hum": (0.0, 1.0),
    "windspeed": (0.0, 1.0),
    "hr": (0, 23),
    "season": (1, 4),
    "mnth": (1, 12),
    "weekday": (0, 6),
    "workingday": (0, 1),
    "holiday": (0, 1),
    "weathersit": (1, 4),
}


@dataclass(frozen=True)
class BikeData:
    """The three parts every scenario draws from.

    ``train``: 2011 training days (model fitting). ``holdout``: the other 2011 days (reference
    sample, baseline error, stationary pool). ``future``: all of 2012 (the real yearly change).
    Each frame keeps ``dteday`` and ``cnt`` next to the features.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    future: pd.DataFrame


def split_reference(frame: pd.DataFrame, *, holdout_share: float = 0.4, seed: int = 0) -> BikeData:
    """Split hour.csv into 2011 train/holdout days and the 2012 future (see module docstring).

    ConfigError if ``holdout_share`` is not a number strictly between 0 and 1, or rounds to no
    holdout day or no training day, or if ``seed`` is not a valid seed
    (:func:`drift.config.check_seed`).
    """
    if (
        isinstance(holdout_share, bool)
        or not isinstance(holdout_share, numbers.Real)
        or not 0 < holdout_share < 1  # NaN fails this too
    ):
        raise ConfigError(
            "holdout_share", f"must be a number strictly between 0 and 1, got {holdout_share!r}"
        )
    seed = check_seed(seed)
    check_columns(frame, (*FEATURES, TARGET, "dteday", "yr"))
    year_2011 = frame[frame["yr"] == 0]
    days = np.array(sorted(year_2011["dteday"].unique()))
    rng = np.random.default_rng(seed)
    size = round(len(days) * holdout_share)
    if not 0 < size < len(days):
        raise ConfigError(
            "holdout_share",
            f"{holdout_share!r} of the {len(days)} days of 2011 in the frame is {size} holdout "
            "days; the holdout and the training part need at least one day each",
        )
    holdout_days = set(rng.choice(days, size=size, replace=False))
    in_holdout = year_2011["dteday"].isin(holdout_days)
    keep = [*FEATURES, TARGET, "dteday"]
    return BikeData(
        train=year_2011.loc[~in_holdout, keep].reset_index(drop=True),
        holdout=year_2011.loc[in_holdout, keep].reset_index(drop=True),
        future=frame.loc[frame["yr"] == 1, keep].reset_index(drop=True),
    )


def check_columns(
    frame: pd.DataFrame, required: tuple[str, ...] = FEATURES, *, name: str | None = None
) -> None:
    """Raise SchemaError naming every required column the frame lacks; ``name`` (e.g.
    "reference") prefixes the message."""
    check_frame(frame, name=name)
    missing = tuple(column for column in required if column not in frame.columns)
    if missing:
        raise SchemaError(
            f"{_prefix(name)}missing columns {list(missing)}; required: {list(required)}",
            columns=missing,
        )


def check_frame(frame: pd.DataFrame, *, name: str | None = None) -> None:
    """Raise SchemaError unless ``frame`` is a pandas DataFrame with unique column names: a dict
    or an array has no column names to check, and a repeated name makes ``frame[name]`` a
    DataFrame instead of a column, so both are refused here rather than failing inside pandas."""
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"{_prefix(name)}expected a pandas DataFrame, got {type(frame).__name__}")
    repeated = tuple(dict.fromkeys(frame.columns[frame.columns.duplicated()]))
    if repeated:
        raise SchemaError(
            f"{_prefix(name)}columns {list(repeated)} appear more than once; each column name "
            "must be unique",
            columns=repeated,
        )


def _prefix(name: str | None) -> str:
    return f"{name}: " if name else ""
