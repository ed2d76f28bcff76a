"""The per-window monitor: data quality first, then data drift, prediction drift and CUSUM.

For every served window the monitor answers, in triage order:

1. Is the data broken? (:func:`drift.quality.check_quality`) - reported as a quality incident.
2. Did the inputs move? Evidently's per-feature tests and the dataset drift share
   (:func:`drift.data_drift.detect_drift`), under the configured method, plus the same tests with
   plain p-values and with a Bonferroni correction so detectors can be compared on the same windows.
3. Did the model's outputs move? The same test on the serving model's predictions (a label-free
   early signal of a bad deployment), and on its uncertainty (the width of its 80% interval:
   a model growing unsure of itself is the regression analogue of falling confidence).
4. Is the drift *sustained*? A CUSUM over the largest per-feature drift distance
   (:mod:`drift.sequential`).

Each detector's verdict lands in ``WindowReport.alarms`` under a stable name (the benchmark's rows):

=====================  ===========================================================================
``evidently_default``  Evidently's dataset drift: >= 50% of features drift under its default tests
``evidently_column``   any single feature drifts under Evidently's default tests
``pvalue``             any feature with KS / chi-squared / z p < 0.05, at every sample size
``bonferroni``         alibi-detect's recipe: KS / two-sample chi-squared / z, p < 0.05 / n_feat.
``cusum``              the sequential detector on the largest drift distance
``page_hinkley``       Page-Hinkley on the same statistic (running-mean reference)
``prediction``         the serving model's predictions drift (Evidently default test)
``uncertainty``        the width of the model's 80% interval drifts (same test)
``quality``            a data-quality incident
=====================  ===========================================================================

Windows too small to judge. A window with fewer than ``config.min_window_rows`` rows (30 by
default; an empty window included) gets the quality finding ``too_few_rows`` and so a ``quality``
alarm, and nothing else: every drift detector stays False, ``drift`` is an empty verdict, and the
CUSUM and Page-Hinkley state is left as it was, because one row's "distance" is noise large
enough to fire the CUSUM alone (about 1.6 against an allowance of 0.15) and would carry into later
windows. A window with none of the feature columns (all renamed upstream, say) is treated the
same way: the quality check reports each ``missing_column``, and there is nothing to test for
drift. The reference is the operator's baseline, not traffic, so a reference with all the
features and at least ``min_window_rows`` rows is a precondition (SchemaError otherwise).

Model outputs. ``predictions`` and ``uncertainty`` must hold one value per row of their frame
(SchemaError otherwise). NaN or infinite current outputs above ``max_null_share`` are a
``null_burst`` quality finding on "prediction" / "uncertainty": a model emitting NaN is a
quality incident, not a quiet window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from drift.config import MonitorConfig
from drift.data_drift import DriftVerdict, detect_drift, empty_verdict
from drift.errors import SchemaError
from drift.features import FEATURES, check_columns, check_frame
from drift.quality import QualityFinding, QualityReport, check_output_pair, check_quality
from drift.sequential import Cusum, PageHinkley

__all__ = ["DETECTORS", "Monitor", "WindowReport"]

DETECTORS = (
    "evidently_default",
    "evidently_column",
    "pvalue",
    "bonferroni",
    "cusum",
    "page_hinkley",
    "prediction",
    "uncertainty",
    "quality",
)


@dataclass(frozen=True)
class WindowReport:
    """What the monitor saw in one window.

    ``drift`` is the verdict under the configured method (what triage shows); whatever the
    method, its ``prediction`` is the predictions' drift under that method's test when
    ``predictions`` were given (None otherwise). ``alarms`` maps every name in
    :data:`DETECTORS` to a bool, each from its own fixed test (the module docstring's table),
    not from the configured method; ``cusum_statistic`` is S_t after this window; ``seconds`` is
    the wall time of the whole check.
    """

    window: int
    n_rows: int
    quality: QualityReport
    drift: DriftVerdict
    alarms: dict[str, bool]
    cusum_statistic: float
    seconds: float

    def to_dict(self) -> dict:
        return {
            "window": self.window,
            "n_rows": self.n_rows,
            "quality": self.quality.to_dict(),
            "drift": self.drift.to_dict(),
            "alarms": dict(self.alarms),
            "cusum_statistic": self.cusum_statistic,
            "seconds": self.seconds,
        }


class Monitor:
    """Stateful (the CUSUM remembers) window-by-window checker; one instance per model stream."""

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config or MonitorConfig()
        self.timer = timer
        self.cusum = Cusum(self.config.cusum_allowance, self.config.cusum_threshold)
        self.page_hinkley = PageHinkley(self.config.ph_delta, self.config.ph_threshold)
        evidently = {"correction": "none", "chi_squared": "goodness_of_fit", "engine": "numpy"}
        self._default = replace(self.config, method="evidently_default", **evidently)
        self._pvalue = replace(self.config, method="pvalue", **evidently)
        self._alibi = replace(self._pvalue, correction="bonferroni", chi_squared="two_sample")

    def observe(
        self,
        window: int,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        predictions: tuple[np.ndarray, np.ndarray] | None = None,
        uncertainty: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> WindowReport:
        """Check ``current`` against ``reference``.

        ``predictions`` and ``uncertainty`` are (reference, current) pairs of the model's output
        and interval width, one value per row; either may be None (its detector then stays
        quiet). See the module docstring for windows too small to judge and for bad outputs.
        """
        start = self.timer()
        outputs = self._check_inputs(reference, current, predictions, uncertainty)
        quality = check_quality(current, reference, config=self.config, outputs=outputs)
        # Nothing to judge, so state stays untouched: too few rows, or no feature column at all
        # (every column renamed upstream). The quality check has already reported why.
        no_features = not any(column in current.columns for column in FEATURES)
        if len(current) < self.config.min_window_rows or no_features:
            alarms = dict.fromkeys(DETECTORS, False)
            alarms["quality"] = True
            return WindowReport(
                window=window,
                n_rows=len(current),
                quality=quality,
                drift=empty_verdict(self.config, self.config.engine),
                alarms=alarms,
                cusum_statistic=self.cusum.value,
                seconds=self.timer() - start,
            )
        cache: dict = {}  # each statistic is computed once, whichever verdicts need it
        default = detect_drift(
            reference, current, config=self._default, prediction=predictions, cache=cache
        )
        pvalue = detect_drift(reference, current, config=self._pvalue, cache=cache)
        alibi = detect_drift(reference, current, config=self._alibi, cache=cache)
        if self.config == self._default:  # the default verdict already carries the prediction
            configured = default
        else:
            # Recomputed, not reused, even when it matches the p-value or alibi verdict: those two
            # feed only feature alarms and carry no prediction drift, while triage's ``3_drift``
            # shows the prediction drift under the configured method. The ``prediction`` alarm
            # below comes from the default test whatever the method, so under ``pvalue`` the two
            # can disagree (an alert raised by the default test beside a prediction this test
            # finds stable). The cache makes the recomputation cheap.
            configured = detect_drift(
                reference, current, config=self.config, prediction=predictions, cache=cache
            )
        state = self.cusum.update(default.max_distance)
        ph_state = self.page_hinkley.update(default.max_distance)
        alarms = {
            "evidently_default": default.dataset_drift,
            "evidently_column": default.any_drift,
            "pvalue": pvalue.any_drift,
            "bonferroni": alibi.any_drift,
            "cusum": state.alarm,
            "page_hinkley": ph_state.alarm,
            "prediction": bool(default.prediction and default.prediction.drifted),
            "uncertainty": uncertainty is not None
            and _output_drift("uncertainty", uncertainty, self._default, cache),
            "quality": not quality.ok,
        }
        return WindowReport(
            window=window,
            n_rows=len(current),
            quality=quality,
            drift=configured,
            alarms=alarms,
            cusum_statistic=state.statistic,
            seconds=self.timer() - start,
        )

    def malformed(self, window: int, n_rows: int, error: SchemaError) -> WindowReport:
        """The report of a window whose frame cannot be read at all (it repeats a column name):
        one ``malformed`` quality finding carrying ``error``'s message, every drift detector
        False and the CUSUM / Page-Hinkley state untouched, as for a window with no feature.

        :meth:`observe` refuses such a frame with SchemaError (a caller handing the monitor a
        broken frame has a bug); a loop serving traffic quarantines the window with this report
        instead and goes on (:func:`drift.timeline.run_scenario`).
        """
        columns = ", ".join(error.columns) or "*"
        finding = QualityFinding("malformed", columns, str(error))
        alarms = dict.fromkeys(DETECTORS, False)
        alarms["quality"] = True
        return WindowReport(
            window=window,
            n_rows=n_rows,
            quality=QualityReport((finding,)),
            drift=empty_verdict(self.config, self.config.engine),
            alarms=alarms,
            cusum_statistic=self.cusum.value,
            seconds=0.0,
        )

    def _check_inputs(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        predictions: tuple[np.ndarray, np.ndarray] | None,
        uncertainty: tuple[np.ndarray, np.ndarray] | None,
    ) -> dict[str, np.ndarray]:
        """Refuse malformed arguments with SchemaError; return the current model outputs."""
        check_frame(current, name="current")
        check_columns(reference, FEATURES, name="reference")
        if len(reference) < self.config.min_window_rows:
            raise SchemaError(
                f"reference has {len(reference)} rows; at least "
                f"{self.config.min_window_rows} (min_window_rows) are needed to compare against"
            )
        outputs = {}
        for name, pair in (("prediction", predictions), ("uncertainty", uncertainty)):
            if pair is not None:
                outputs[name] = check_output_pair(name, pair, len(reference), len(current))[1]
        return outputs


def _output_drift(
    name: str, values: tuple[np.ndarray, np.ndarray], config: MonitorConfig, cache: dict
) -> bool:
    """Drift of a model-output column (same test choice as a numerical feature)."""
    frames = [pd.DataFrame({name: np.asarray(v, dtype=float)}) for v in values]
    verdict = detect_drift(
        frames[0], frames[1], config=config, numerical=(name,), categorical=(), cache=cache
    )
    return bool(verdict.features and verdict.features[0].drifted)
