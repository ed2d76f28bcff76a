"""Tiny synthetic bike-sharing data with a known demand formula, shared by the drift tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drift.features import BikeData


def synthetic_hours(n_days: int = 40, *, seed: int = 0, year: int = 2011) -> pd.DataFrame:
    """Hourly rows shaped like hour.csv; cnt rises with temperature and at commuting hours."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(f"{year}-01-01", periods=n_days, freq="D")
    frame = pd.DataFrame({"dteday": np.repeat(days, 24), "hr": np.tile(np.arange(24), n_days)})
    n = len(frame)
    frame["mnth"] = frame["dteday"].dt.month
    frame["season"] = (frame["mnth"] % 12) // 3 + 1
    frame["weekday"] = frame["dteday"].dt.dayofweek
    frame["workingday"] = (frame["weekday"] < 5).astype(int)
    frame["holiday"] = 0
    frame["weathersit"] = rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1])
    day_temp = rng.uniform(0.1, 0.9, n_days)
    frame["temp"] = np.clip(np.repeat(day_temp, 24) + rng.normal(0, 0.03, n), 0, 1).round(2)
    frame["atemp"] = np.clip(frame["temp"] * 0.9 + rng.normal(0, 0.02, n), 0, 1).round(4)
    frame["hum"] = rng.uniform(0.2, 1.0, n).round(2)
    frame["windspeed"] = rng.uniform(0, 0.5, n).round(4)
    peak = np.isin(frame["hr"], [8, 17, 18]).astype(float)
    rate = 10 + 150 * frame["temp"] + 200 * peak * frame["workingday"] + 30 * (frame["hr"] > 9)
    frame["cnt"] = rng.poisson(rate)
    frame["yr"] = year - 2011
    return frame


@pytest.fixture(scope="session")
def bike_data() -> BikeData:
    train = synthetic_hours(30, seed=1)
    holdout = synthetic_hours(20, seed=2)
    future = synthetic_hours(20, seed=3, year=2012)
    future["cnt"] = (future["cnt"] * 1.6).round()
    return BikeData(train=train, holdout=holdout, future=future)


@pytest.fixture(scope="session")
def models(bike_data):
    from drift.timeline import train_models

    return train_models(bike_data, seed=0)


@pytest.fixture(scope="session")
def hour_csv() -> pd.DataFrame:
    """A synthetic stand-in for the whole of hour.csv: 50 days of 2011 and 20 of 2012."""
    year_2012 = synthetic_hours(20, seed=3, year=2012)
    year_2012["cnt"] = (year_2012["cnt"] * 1.6).round()
    return pd.concat([synthetic_hours(50, seed=1), year_2012], ignore_index=True)
