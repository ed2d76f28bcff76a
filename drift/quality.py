"""Data-quality checks, run before any drift test and reported separately from drift.

When a model "degrades", the cause is more often the pipeline than the world: a renamed column, a
join that produced nulls, a sensor switched to Celsius. A drift test would flag those too, but
calling them drift sends people to retrain a model on broken data. So quality is checked first and
a window with a quality incident is quarantined: the policies do not retrain or roll back on it.

Checks (each yields a :class:`QualityFinding`):

- ``too_few_rows``: the window has fewer than ``min_window_rows`` rows (an empty window included).
  Too few rows to judge drift is itself a pipeline symptom (an upstream outage, a filter gone
  wrong), so it is reported rather than passed as healthy; the monitor skips its drift detectors;
- ``missing_column`` / ``unexpected_column``: schema change against the feature list;
- ``wrong_type``: a column that is not numeric;
- ``null_burst``: share of nulls above ``max_null_share``;
- ``out_of_range``: share of values outside the documented range above ``max_out_of_range_share``;
- ``unit_change``: the column's typical magnitude moved by 5x or more against the reference (a
  Celsius/normalised mix-up multiplies temperature by 41), which a range check alone can miss.

The model's own outputs of the window (``outputs``: its predictions, its interval width) get the
null check too: a model emitting NaN or infinity is as broken as an input column full of nulls,
and no drift test can see it, because a drift test drops non-finite values.

Malformed arguments (not a DataFrame, outputs of the wrong length) raise
:class:`~drift.errors.SchemaError`: they are caller bugs, not properties of the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from drift.config import MonitorConfig
from drift.errors import SchemaError
from drift.features import FEATURES, RANGES, check_frame

__all__ = [
    "QualityFinding",
    "QualityReport",
    "check_output",
    "check_output_pair",
    "check_quality",
]

_UNIT_FACTOR = 5.0
# Columns measured in a physical unit; a magnitude jump in a 0/1 flag is drift, not a unit change.
UNIT_COLUMNS = ("temp", "atemp", "hum", "windspeed")


@dataclass(frozen=True)
class QualityFinding:
    """One data-quality problem: ``kind`` (see module docstring), ``column``, a readable ``detail``
    and the measured ``value`` (a share or a ratio; None for a check that measures nothing, such
    as ``unexpected_column`` or ``wrong_type``: NaN there made triage.json invalid JSON)."""

    kind: str
    column: str
    detail: str
    value: float | None = None


@dataclass(frozen=True)
class QualityReport:
    """All findings of one window; ``ok`` when there are none."""

    findings: tuple[QualityFinding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {"ok": self.ok, "findings": [f.__dict__ for f in self.findings]}


def check_quality(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    features: tuple[str, ...] = FEATURES,
    config: MonitorConfig | None = None,
    outputs: Mapping[str, np.ndarray] | None = None,
) -> QualityReport:
    """Check one window of inputs against the schema, the documented ranges and the reference.

    ``outputs`` maps a model-output name ("prediction", "uncertainty") to its values on the rows
    of ``current`` (same length, else SchemaError).
    """
    config = config or MonitorConfig()
    check_frame(current, name="current")
    check_frame(reference, name="reference")
    findings: list[QualityFinding] = []
    if len(current) < config.min_window_rows:
        findings.append(
            QualityFinding(
                "too_few_rows",
                "*",
                f"window has {len(current)} rows; at least {config.min_window_rows} are needed "
                "to judge drift",
                float(len(current)),
            )
        )
    for column in features:
        if column not in current.columns:
            findings.append(
                QualityFinding("missing_column", column, f"column {column!r} is absent", 1.0)
            )
    for column in current.columns:
        if column not in features:
            findings.append(
                QualityFinding("unexpected_column", column, f"column {column!r} is not a feature")
            )
    for column in (c for c in features if c in current.columns):
        values = current[column]
        if not pd.api.types.is_numeric_dtype(values):
            findings.append(
                QualityFinding("wrong_type", column, f"dtype {values.dtype}, expected numeric")
            )
            continue
        if len(values) == 0:
            continue
        null_share = float(values.isna().mean())
        if null_share > config.max_null_share:
            findings.append(
                QualityFinding(
                    "null_burst",
                    column,
                    f"{null_share:.1%} nulls (max {config.max_null_share:.0%})",
                    null_share,
                )
            )
        present = values.dropna().to_numpy(dtype=float)
        if len(present) == 0:
            continue
        low, high = RANGES.get(column, (-np.inf, np.inf))
        outside = float(np.mean((present < low) | (present > high)))
        if outside > config.max_out_of_range_share:
            findings.append(
                QualityFinding(
                    "out_of_range",
                    column,
                    f"{outside:.1%} of values outside [{low}, {high}]",
                    outside,
                )
            )
        if column in UNIT_COLUMNS and column in reference.columns:
            ratio = _magnitude_ratio(present, reference[column].dropna().to_numpy(dtype=float))
            if ratio >= _UNIT_FACTOR or ratio <= 1 / _UNIT_FACTOR:
                findings.append(
                    QualityFinding(
                        "unit_change",
                        column,
                        f"typical magnitude is {ratio:.1f}x the reference (unit change?)",
                        ratio,
                    )
                )
    for name, values in (outputs or {}).items():
        findings.extend(_output_findings(name, values, len(current), config))
    return QualityReport(tuple(findings))


def _output_findings(
    name: str, values: np.ndarray, n_rows: int, config: MonitorConfig
) -> list[QualityFinding]:
    """A ``null_burst`` when too many of a model output's values are NaN or infinite."""
    array = check_output(name, values, n_rows)
    if n_rows == 0:
        return []  # already reported as too_few_rows
    bad_share = float(np.mean(~np.isfinite(array)))
    if bad_share <= config.max_null_share:
        return []
    detail = f"{bad_share:.1%} of {name} values NaN or infinite (max {config.max_null_share:.0%})"
    return [QualityFinding("null_burst", name, detail, bad_share)]


def check_output(name: str, values: np.ndarray, n_rows: int) -> np.ndarray:
    """``values`` as a float array with one value per row (``n_rows``), else SchemaError.

    A length mismatch means the outputs belong to other rows, so no verdict on them can be right.
    """
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name}: expected numbers, got {type(values).__name__}") from exc
    if array.ndim != 1 or len(array) != n_rows:
        raise SchemaError(
            f"{name}: expected one value per row ({n_rows}), got shape {array.shape}",
            columns=(name,),
        )
    return array


def check_output_pair(
    name: str, pair: object, n_reference: int, n_current: int
) -> tuple[np.ndarray, np.ndarray]:
    """A ``(reference, current)`` pair of model outputs, each checked by :func:`check_output`."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise SchemaError(
            f"{name}: expected a (reference, current) pair of arrays, got {type(pair).__name__}"
        )
    return (
        check_output(f"reference {name}", pair[0], n_reference),
        check_output(f"current {name}", pair[1], n_current),
    )


def _magnitude_ratio(current: np.ndarray, reference: np.ndarray) -> float:
    """Ratio of mean absolute values; 1.0 when either side is (near) zero."""
    ref_scale = float(np.mean(np.abs(reference))) if len(reference) else 0.0
    cur_scale = float(np.mean(np.abs(current)))
    if ref_scale < 1e-9 or cur_scale < 1e-9:
        return 1.0
    return cur_scale / ref_scale
