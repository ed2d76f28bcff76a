"""Data-quality checks, run before any drift test and reported separately from drift.

When a model "degrades", the cause is more often the pipeline than the world: a renamed column, a
join that produced nulls, a sensor switched to Celsius. A drift test would flag those too, but
calling them drift sends people to retrain a model on broken data. So quality is checked first and
a window with a quality incident is quarantined: the policies do not retrain or roll back on it.

Checks (each yields a :class:`QualityFinding`):

- ``missing_column`` / ``unexpected_column``: schema change against the feature list;
- ``wrong_type``: a column that is not numeric;
- ``null_burst``: share of nulls above ``max_null_share``;
- ``out_of_range``: share of values outside the documented range above ``max_out_of_range_share``;
- ``unit_change``: the column's typical magnitude moved by 5x or more against the reference (a
  Celsius/normalised mix-up multiplies temperature by 41), which a range check alone can miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from drift.config import MonitorConfig
from drift.features import FEATURES, RANGES

__all__ = ["QualityFinding", "QualityReport", "check_quality"]

_UNIT_FACTOR = 5.0
# Columns measured in a physical unit; a magnitude jump in a 0/1 flag is drift, not a unit change.
UNIT_COLUMNS = ("temp", "atemp", "hum", "windspeed")


@dataclass(frozen=True)
class QualityFinding:
    """One data-quality problem: ``kind`` (see module docstring), ``column``, a readable ``detail``
    and the measured ``value`` (a share or a ratio)."""

    kind: str
    column: str
    detail: str
    value: float = float("nan")


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
) -> QualityReport:
    """Check one window of inputs against the schema, the documented ranges and the reference."""
    config = config or MonitorConfig()
    findings: list[QualityFinding] = []
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
    return QualityReport(tuple(findings))


def _magnitude_ratio(current: np.ndarray, reference: np.ndarray) -> float:
    """Ratio of mean absolute values; 1.0 when either side is (near) zero."""
    ref_scale = float(np.mean(np.abs(reference))) if len(reference) else 0.0
    cur_scale = float(np.mean(np.abs(current)))
    if ref_scale < 1e-9 or cur_scale < 1e-9:
        return 1.0
    return cur_scale / ref_scale
