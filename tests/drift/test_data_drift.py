"""Drift verdicts: Evidently's test choice, detection of a known shift, the Evidently engine."""

import numpy as np
import pandas as pd
import pytest

from drift.config import MonitorConfig
from drift.data_drift import choose_test, detect_drift, evidently_drift
from drift.errors import ConfigError, SchemaError
from drift.features import FEATURES
from tests.drift.conftest import synthetic_hours


@pytest.mark.parametrize(
    ("kind", "n_ref", "distinct", "method", "expected"),
    [
        ("numerical", 1000, 50, "evidently_default", "ks"),
        ("numerical", 1001, 50, "evidently_default", "wasserstein"),
        ("numerical", 5000, 4, "evidently_default", "jensenshannon"),
        ("numerical", 500, 4, "evidently_default", "chisquare"),
        ("categorical", 500, 2, "evidently_default", "z"),
        ("categorical", 5000, 12, "evidently_default", "jensenshannon"),
        ("categorical", 5000, 12, "pvalue", "chisquare"),
        ("numerical", 10000, 50, "pvalue", "ks"),
    ],
)
def test_choose_test_follows_evidently(kind, n_ref, distinct, method, expected):
    assert choose_test(kind, n_ref, distinct, MonitorConfig(method=method)) == expected


def _frames(n_days=50):
    ref = synthetic_hours(n_days, seed=10)[list(FEATURES)]
    cur = synthetic_hours(n_days, seed=11)[list(FEATURES)]
    return ref, cur


def test_shift_in_one_feature_is_found_and_ranked_first():
    ref, cur = _frames()
    cur = cur.assign(hum=np.clip(cur["hum"] + 0.5 * ref["hum"].std(), 0, 1))
    verdict = detect_drift(ref, cur)  # 1,200 rows -> distances
    assert verdict.ranked()[0].column == "hum"
    hum = next(c for c in verdict.features if c.column == "hum")
    assert hum.test == "wasserstein" and hum.drifted and hum.distance > 0.4
    assert not verdict.dataset_drift  # one of 11 features is below the 0.5 share


def test_bonferroni_lowers_the_threshold():
    ref, cur = _frames(30)
    verdict = detect_drift(ref, cur, config=MonitorConfig(method="pvalue", correction="bonferroni"))
    assert all(c.threshold == pytest.approx(0.05 / 11) for c in verdict.features)


def test_prediction_drift_is_separate_from_the_share():
    ref, cur = _frames(30)
    preds = (np.linspace(0, 100, len(ref)), np.linspace(50, 150, len(cur)))
    verdict = detect_drift(ref, cur, prediction=preds)
    assert verdict.prediction is not None and verdict.prediction.drifted
    assert len(verdict.features) == len(FEATURES)


def test_missing_column_is_skipped_not_crashed():
    ref, cur = _frames(10)
    verdict = detect_drift(ref, cur.drop(columns=["temp"]))
    assert "temp" not in {c.column for c in verdict.features}
    with pytest.raises(SchemaError, match="no feature columns"):
        detect_drift(ref, pd.DataFrame({"x": [1]}))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="method"):
        MonitorConfig(method="magic")
    with pytest.raises(ConfigError, match="drift_share"):
        MonitorConfig(drift_share=1.5)
    with pytest.raises(ConfigError, match="Evidently has no two-sample"):
        MonitorConfig(engine="evidently", chi_squared="two_sample")


@pytest.mark.parametrize("method", ["evidently_default", "pvalue"])
def test_numpy_engine_matches_evidently_report(method):
    """Column by column: same test, same statistic, same verdict as Evidently's own Report."""
    ref, cur = _frames(30)
    ref, cur = ref.iloc[:700], cur.iloc[:600].assign(temp=cur["temp"].iloc[:600] * 0.8)
    config = MonitorConfig(method=method)
    ours = detect_drift(ref, cur, config=config, prediction=(ref["hr"] * 2.0, cur["hr"] * 2.1))
    theirs = evidently_drift(ref, cur, config=config, prediction=(ref["hr"] * 2.0, cur["hr"] * 2.1))
    assert theirs.engine == "evidently"
    for a, b in zip(ours.features, theirs.features, strict=True):
        assert (a.column, a.test, a.drifted) == (b.column, b.test, b.drifted)
        assert a.statistic == pytest.approx(b.statistic, rel=1e-9, abs=1e-12)
    assert ours.prediction.statistic == pytest.approx(theirs.prediction.statistic, rel=1e-9)


def _same_verdict(ours, theirs):
    assert [(c.column, c.test, c.drifted) for c in ours.features] == [
        (c.column, c.test, c.drifted) for c in theirs.features
    ]
    for a, b in zip(ours.features, theirs.features, strict=True):
        assert a.statistic == pytest.approx(b.statistic, rel=1e-9, abs=1e-12)
    assert (ours.prediction is None) == (theirs.prediction is None)
    if ours.prediction is not None:
        assert ours.prediction.drifted == theirs.prediction.drifted
        assert ours.prediction.statistic == pytest.approx(theirs.prediction.statistic, rel=1e-9)
    assert ours.drifted_share == pytest.approx(theirs.drifted_share)


def test_evidently_engine_leaves_out_an_all_null_column_or_prediction():
    """Evidently raised a bare ValueError for an empty column, so ``engine="evidently"`` crashed on
    exactly the windows the quality gate quarantines (found by a review)."""
    ref, cur = _frames(30)
    ref, cur = ref.iloc[:300], cur.iloc[:300]
    nulls = cur.assign(hum=np.nan)
    nan_out = (ref["hr"] * 2.0, np.full(len(cur), np.nan))
    for current, prediction in ((nulls, (ref["hr"] * 2.0, cur["hr"] * 2.0)), (cur, nan_out)):
        ours = detect_drift(ref, current, prediction=prediction)
        theirs = evidently_drift(ref, current, prediction=prediction)
        _same_verdict(ours, theirs)
    assert "hum" not in {c.column for c in evidently_drift(ref, nulls).features}
    assert evidently_drift(ref, cur, prediction=nan_out).prediction is None
    text = cur.assign(hum=cur["hum"].astype(object))
    text.loc[text.index[:5], "hum"] = "n/a"  # text is missing, as in the numpy engine
    _same_verdict(detect_drift(ref, text), evidently_drift(ref, text))


def test_evidently_engine_reads_predictions_by_position():
    """A window sliced from a stream keeps its index; predictions made fresh do not. Evidently's
    engine assigned them into the frame by index label: other rows' predictions, or none at all
    (found by a review)."""
    ref, cur = _frames(30)
    ref, cur = ref.iloc[:300], cur.iloc[300:600]  # index 300..599
    out = cur["hr"].to_numpy() * 2.0
    out[:150] *= 3  # half the window: a bad model
    prediction = (pd.Series(ref["hr"].to_numpy() * 2.0), pd.Series(out))  # index 0..299
    ours = detect_drift(ref, cur, prediction=prediction)
    theirs = evidently_drift(ref, cur, prediction=prediction)
    assert ours.prediction.drifted
    _same_verdict(ours, theirs)
