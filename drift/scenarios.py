"""Serving timelines with known ground truth, built from the real bike-sharing rows.

Every scenario is a list of windows served one after another; the incident (if any) starts at
``onset`` and the scenario says which actions a good monitor must take (``required``) and must not
take (``forbidden``). All rows are real hours; only their *selection* or one documented column is
changed, so the ground truth is known by construction:

- ``stationary``: nothing changes; every window is a bootstrap resample of the 2011 holdout.
  Must not: any model action or quarantine.
- ``covariate_shift``: rows are re-sampled with exponential tilting so mean temperature rises by
  ``shift_sd`` standard deviations; P(cnt | inputs) is untouched (true covariate shift). An
  equivalent retrained model is deployed at the onset: a *benign* deployment. Must not: rollback.
- ``concept_drift``: inputs unchanged, demand x1.6 on working days and x0.7 on days off (a
  commuting boom), invisible to input drift tests. Must: retrain. Must not: rollback.
- ``data_quality``: temperature arrives in Celsius (x41) instead of normalised. Must: quarantine.
  Must not: rollback or retrain (retraining on broken inputs bakes the bug in).
- ``bad_deployment``: a model that ignores the hour of day is deployed. Must: rollback.
- ``real_2011_2012``: the real 2012, week by week; demand grew ~60% year on year. Each week is
  compared with the same weeks of 2011 (a seasonal reference), so calendar seasonality is not
  reported as drift. Must: retrain. Must not: rollback.

Stationary windows of 10k rows are necessarily *resampled* (with replacement) from the ~3,500-hour
2011 holdout: hour.csv has only 17,379 rows in all.

Exponential tilting: weights w_i proportional to exp(lambda z_i), z the standardised temperature;
lambda is solved by bisection so the weighted mean of z equals ``shift_sd`` (Efron 1981's tilting
used as a data generator; for a Gaussian it is exactly a mean shift).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from drift.config import MIN_WINDOW_ROWS, check_seed
from drift.errors import ScenarioError
from drift.features import FEATURES, TARGET, BikeData

__all__ = ["PARAMETERS", "SCENARIOS", "Scenario", "Window", "build_scenario", "tilt_weights"]

SCENARIOS = (
    "stationary",
    "covariate_shift",
    "concept_drift",
    "data_quality",
    "bad_deployment",
    "real_2011_2012",
)

# The build_scenario parameters each scenario reads (``seed`` aside). The real year has its own
# 53 weekly windows and no onset, so it reads none of them; the CLI refuses a flag that a scenario
# would silently ignore.
_SYNTHETIC = frozenset({"n_windows", "window_rows", "onset"})
PARAMETERS: dict[str, frozenset[str]] = {
    "stationary": frozenset({"n_windows", "window_rows"}),
    "covariate_shift": _SYNTHETIC | {"shift_sd"},
    "concept_drift": _SYNTHETIC,
    "data_quality": _SYNTHETIC,
    "bad_deployment": _SYNTHETIC,
    "real_2011_2012": frozenset(),
}


@dataclass(frozen=True)
class Window:
    """One serving window: the ``features`` as received, the true ``labels`` (rentals, shape (n,)),
    the drift ``reference`` to compare against, and ``deploy`` ("bad"/"benign") when the scenario
    pushes a new model at this window."""

    index: int
    features: pd.DataFrame
    labels: np.ndarray
    reference: pd.DataFrame
    deploy: str | None = None
    label: str = ""


@dataclass(frozen=True)
class Scenario:
    """A timeline with its ground truth (see module docstring)."""

    name: str
    windows: tuple[Window, ...]
    onset: int | None
    incident: str
    required: frozenset[str]
    forbidden: frozenset[str]
    description: str


def tilt_weights(values: np.ndarray, shift_sd: float) -> np.ndarray:
    """Sampling probabilities that move the mean of ``values`` by ``shift_sd`` std deviations."""
    z = (values - values.mean()) / values.std()
    if shift_sd == 0:
        return np.full(len(z), 1 / len(z))
    if not z.min() < shift_sd < z.max():
        raise ScenarioError(f"shift of {shift_sd} sd is outside the data's range")

    def tilted_mean(lam: float) -> float:
        w = np.exp(lam * z - np.max(lam * z))
        return float(np.sum(w * z) / np.sum(w))

    low, high = (0.0, 50.0) if shift_sd > 0 else (-50.0, 0.0)
    for _ in range(100):  # the tilted mean is increasing in lambda
        mid = (low + high) / 2
        if tilted_mean(mid) < shift_sd:
            low = mid
        else:
            high = mid
    w = np.exp(high * z - np.max(high * z))
    return w / w.sum()


def build_scenario(
    name: str,
    data: BikeData,
    *,
    n_windows: int = 16,
    window_rows: int = 1000,
    onset: int = 6,
    shift_sd: float = 0.5,
    seed: int = 0,
) -> Scenario:
    """Build scenario ``name`` (one of :data:`SCENARIOS`) from the split data.

    A scenario ignores the parameters it does not read (:data:`PARAMETERS`); ``real_2011_2012``
    reads none of them. ScenarioError for an impossible parameter, ConfigError for a ``seed``
    that is not a whole number from 0 to 2**32 - 1 (:func:`drift.config.check_seed`).
    """
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}")
    if name == "real_2011_2012":
        return _real(data)
    if n_windows < 2:
        raise ScenarioError(f"n_windows must be >= 2, got {n_windows}")
    if "onset" in PARAMETERS[name] and not 0 < onset < n_windows:
        raise ScenarioError(f"onset must be in 1..{n_windows - 1}, got {onset}")
    if window_rows < MIN_WINDOW_ROWS:  # smaller windows are too small for the monitor to judge
        raise ScenarioError(f"window_rows must be >= {MIN_WINDOW_ROWS}, got {window_rows}")
    rng = np.random.default_rng(check_seed(seed))
    pool = data.holdout
    reference = pool.iloc[rng.integers(0, len(pool), window_rows)][list(FEATURES)]
    reference = reference.reset_index(drop=True)
    tilted = (
        tilt_weights(pool["temp"].to_numpy(float), shift_sd) if name == "covariate_shift" else None
    )
    windows = []
    for index in range(n_windows):
        after = index >= onset
        p = tilted if (name == "covariate_shift" and after) else None
        rows = pool.iloc[rng.choice(len(pool), size=window_rows, replace=True, p=p)]
        features = rows[list(FEATURES)].reset_index(drop=True)
        labels = rows[TARGET].to_numpy(dtype=float)
        if name == "concept_drift" and after:
            factor = np.where(features["workingday"].to_numpy() == 1, 1.6, 0.7)
            labels = np.round(labels * factor)
        if name == "data_quality" and after:
            features = features.assign(temp=features["temp"] * 41.0)
        deploy = None
        if index == onset and name == "bad_deployment":
            deploy = "bad"
        elif index == onset and name == "covariate_shift":
            deploy = "benign"
        windows.append(Window(index, features, labels, reference, deploy, f"w{index:02d}"))
    truth = {
        "stationary": ("none", set(), {"rollback", "retrain", "promote", "quarantine"}),
        "covariate_shift": ("covariate", set(), {"rollback", "quarantine"}),
        "concept_drift": ("concept", {"retrain"}, {"rollback", "quarantine"}),
        "data_quality": ("quality", {"quarantine"}, {"rollback", "retrain"}),
        "bad_deployment": ("deployment", {"rollback"}, {"quarantine"}),
    }[name]
    return Scenario(
        name=name,
        windows=tuple(windows),
        onset=None if name == "stationary" else onset,
        incident=truth[0],
        required=frozenset(truth[1]),
        forbidden=frozenset(truth[2]),
        description=f"{n_windows} windows x {window_rows} rows, seed {seed}"
        + (f", temperature {shift_sd:+g} sd" if name == "covariate_shift" else ""),
    )


def _real(data: BikeData) -> Scenario:
    """2012 week by week; each week's reference is the same +-2 weeks of 2011."""
    year_2011 = pd.concat([data.train, data.holdout], ignore_index=True)
    doy_2011 = year_2011["dteday"].dt.dayofyear.to_numpy()
    future = data.future
    week = ((future["dteday"] - future["dteday"].min()).dt.days // 7).to_numpy()
    windows = []
    for index in np.unique(week):
        rows = future[week == index]
        center = int(rows["dteday"].dt.dayofyear.median())
        gap = np.minimum(np.abs(doy_2011 - center), 365 - np.abs(doy_2011 - center))
        reference = year_2011.loc[gap <= 14, list(FEATURES)].reset_index(drop=True)
        windows.append(
            Window(
                int(index),
                rows[list(FEATURES)].reset_index(drop=True),
                rows[TARGET].to_numpy(dtype=float),
                reference,
                None,
                str(rows["dteday"].min().date()),
            )
        )
    return Scenario(
        name="real_2011_2012",
        windows=tuple(windows),
        onset=0,
        incident="real",
        required=frozenset({"retrain"}),
        forbidden=frozenset({"rollback", "quarantine"}),
        description=f"{len(windows)} weekly windows of 2012, seasonal 2011 reference",
    )
