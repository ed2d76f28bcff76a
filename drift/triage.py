"""The triage report for an alert: what an on-call engineer reads first, in the order to check it.

"The model degraded in production, what do you do?" The report follows the standard answer:
rule out the pipeline before blaming the model.

1. **Data quality** findings of the alert window (schema, nulls, ranges, units).
2. **Recent deployments**: every registry switch so far (a deployment just before an alert is the
   first suspect).
3. **Drifted features, ranked** by effect size, with the test, statistic and threshold used, and
   the drift of the model's predictions.
4. **Performance trend**: the serving model's error against its baseline, window by window.
5. **Action** taken (or recommended) and the reasons and evidence recorded for it.

Written as ``triage.json`` plus Evidently's own interactive HTML drift report of the alert window
(``evidently_drift.html``) beside it. The JSON is strict (a NaN or infinite number is written as
``null``), so any JSON reader, an on-call tool's included, can parse it.

The folder may be reused from an earlier run. Its ``evidently_drift.html`` is deleted before this
run's files are written, so the folder holds only this run's report: a run with no alert writes
``triage.json`` alone, and an earlier incident's HTML left beside it would be read as this run's.
:attr:`TriageReport.removed` names the file so a caller can say so. :func:`report_folder` checks
that the folder can be written; a caller with slow work before the report calls it first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.data_drift import save_evidently_html
from drift.errors import ReportError
from drift.prediction_log import PredictionLog
from drift.registry import ModelRegistry
from drift.timeline import Timeline
from evals.files import writable_folder

__all__ = ["HTML_NAME", "TriageReport", "alert_window", "report_folder", "write_triage"]

HTML_NAME = "evidently_drift.html"


@dataclass(frozen=True)
class TriageReport:
    """Paths of the written files and the JSON ``summary`` itself.

    ``removed`` is an earlier run's ``evidently_drift.html`` that this run deleted and did not
    replace (no alert, or ``html=False``); None if there was none or this run wrote its own.
    """

    json_path: Path
    html_path: Path | None
    summary: dict
    removed: Path | None = None


def alert_window(timeline: Timeline) -> int | None:
    """The first window with a decision (an alert or an action, executed or only recommended)."""
    for step in timeline.steps:
        if step.decisions:
            return step.window
    for step in timeline.steps:  # no decision anywhere: the first drift or quality alarm
        if step.report.alarms["quality"] or step.report.drift.dataset_drift:
            return step.window
    return None


def write_triage(
    timeline: Timeline, out_dir: Path, *, window: int | None = None, html: bool = True
) -> TriageReport:
    """Write the triage JSON (and Evidently HTML) for ``window`` (default: the first alert).

    ``out_dir`` is created if needed (ReportError if it cannot be, see :func:`report_folder`); an
    earlier run's HTML in it is deleted first (see the module docstring).
    """
    report_folder(out_dir)
    stale_html = out_dir / HTML_NAME
    removed = stale_html if stale_html.is_file() else None
    stale_html.unlink(missing_ok=True)  # before triage.json: never this run's JSON, another's HTML
    window = alert_window(timeline) if window is None else window
    steps = {s.window: s for s in timeline.steps}
    if window is None or window not in steps:
        summary = {
            "scenario": timeline.scenario.name,
            "alert": None,
            "message": "no alert in this timeline: nothing to triage",
        }
        path = out_dir / "triage.json"
        path.write_text(json.dumps(summary, indent=2))
        return TriageReport(path, None, summary, removed)
    step = steps[window]
    registry = ModelRegistry(timeline.registry_root)
    with PredictionLog(timeline.log_path) as pred_log:
        decisions = [d for d in pred_log.decisions() if d["window"] >= window][:10]
    trend = [
        {
            "labelled_window": s.performance.window,
            "model": s.performance.model_version,
            "mae": round(s.performance.error, 2),
            "baseline_mae": round(s.performance.baseline, 2),
            "ratio": round(s.performance.ratio, 3),
        }
        for s in timeline.steps
        if s.performance is not None and s.window <= window + 6
    ]
    summary = {
        "scenario": timeline.scenario.name,
        "alert_window": window,
        "alert_window_label": step.label,
        "serving_model": step.serving,
        "1_data_quality": step.report.quality.to_dict(),
        "2_deployments": [e.__dict__ for e in registry.events()],
        "3_drift": step.report.drift.to_dict(),
        "4_performance_trend": trend,
        "5_actions": decisions,
        "detector_alarms": step.report.alarms,
    }
    json_path = out_dir / "triage.json"
    json_path.write_text(json.dumps(_strict(summary), indent=2, default=float, allow_nan=False))
    html_path = None
    if html:
        scenario_window = timeline.scenario.windows[
            [w.index for w in timeline.scenario.windows].index(window)
        ]
        html_path = out_dir / HTML_NAME
        save_evidently_html(scenario_window.reference, scenario_window.features, html_path)
        removed = None  # replaced by this run's
    return TriageReport(json_path, html_path, summary, removed)


def report_folder(out_dir: Path) -> Path:
    """Create ``out_dir`` (and its parents) and prove a file can be written in it; return it.

    ReportError names the folder and why not: the file in its way (``out_dir`` itself or a
    parent) or the operating system's reason (permission denied, a read-only file system). A probe
    file is written and deleted because a permission check answers wrongly for root.
    """
    out_dir = Path(out_dir)
    try:
        return writable_folder(out_dir)
    except OSError as exc:
        blocker = next((p for p in (out_dir, *out_dir.parents) if p.is_file()), None)
        why = f"{blocker} is a file" if blocker else exc.strerror or str(exc)
        raise ReportError(
            f"report folder {out_dir} cannot be written: {why}; pass a directory you can write "
            "to, new or existing",
            out_dir,
        ) from exc


def _strict(value: Any) -> Any:
    """``value`` with every NaN or infinite number (numpy's included) replaced by None, in nested
    dicts, lists and tuples: ``json.dumps`` writes them as the tokens NaN and Infinity, which are
    not JSON."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value
