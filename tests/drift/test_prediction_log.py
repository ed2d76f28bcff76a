"""Prediction log on a real SQLite file: late labels, joins, decisions, nothing lost on restart."""

import numpy as np
import pandas as pd
import pytest

from drift.errors import PredictionLogError
from drift.model import Prediction
from drift.prediction_log import PredictionLog


def _batch(n, offset=0.0):
    features = pd.DataFrame({"temp": np.linspace(0, 1, n), "hr": np.arange(n) % 24})
    value = np.arange(n, dtype=float) + offset
    return features, Prediction(value=value, low=value - 1, high=value + 1)


def test_labels_arrive_later_and_join(tmp_path):
    with PredictionLog(tmp_path / "log.sqlite", clock=lambda: 5.0) as log:
        features, pred = _batch(4)
        keys = [f"0:{i}" for i in range(4)]
        log.log_predictions(0, keys, features, pred, model_version="v0001")
        log.log_predictions(
            0, keys, features, _batch(4, 10.0)[1], model_version="v0002", role="shadow:candidate"
        )
        assert log.labelled([0], "v0001").label.size == 0  # no labels yet
        assert log.log_labels(keys[:3], [1.0, 2.0, 3.0]) == 3
        rows = log.labelled([0], "v0001", with_features=True)
        np.testing.assert_array_equal(rows.prediction, [0.0, 1.0, 2.0])
        np.testing.assert_array_equal(rows.label, [1.0, 2.0, 3.0])
        assert list(rows.features.columns) == ["temp", "hr"]
        np.testing.assert_array_equal(log.labelled([0], "v0002").prediction, [10.0, 11.0, 12.0])


def test_nothing_lost_across_restart(tmp_path):
    path = tmp_path / "log.sqlite"
    log = PredictionLog(path)
    features, pred = _batch(100)
    keys = [f"3:{i}" for i in range(100)]
    log.log_predictions(3, keys, features, pred, model_version="v0001")
    log.log_labels(keys[:50], np.ones(50))
    log.log_decision(3, "rollback", "rollback", ["worse"], {"mae": 3.5})
    # no close(): simulate the process dying; a new process opens the same file
    reopened = PredictionLog(path)
    assert reopened.count("predictions") == 100
    assert reopened.count("labels") == 50
    assert reopened.decisions()[0]["evidence"] == {"mae": 3.5}
    reopened.log_labels(keys[50:], np.zeros(50))  # the rest arrive after the restart
    assert len(reopened.labelled([3], "v0001").label) == 100
    reopened.close()
    log.close()


def test_redelivered_label_is_skipped_but_a_different_one_is_an_error(tmp_path):
    with PredictionLog(tmp_path / "log.sqlite") as log:
        features, pred = _batch(3)
        log.log_predictions(0, ["a", "b", "c"], features, pred, model_version="v1")
        assert log.log_labels(["a"], [5.0]) == 1
        assert log.log_labels(["a", "b"], [5.0, 7.0]) == 1  # "a" re-delivered unchanged
        with pytest.raises(PredictionLogError, match=r"different label.*a: 5 then 6"):
            log.log_labels(["c", "a"], [1.0, 6.0])
        with pytest.raises(PredictionLogError, match="c: 1 then 2"):
            log.log_labels(["c", "c"], [1.0, 2.0])  # a conflict inside one batch
        assert log.labelled([0], "v1").label.tolist() == [5.0, 7.0]  # nothing half-written
        for bad in (float("nan"), float("inf")):
            with pytest.raises(PredictionLogError, match="labels must be finite"):
                log.log_labels(["c"], [bad])
        for bad in ("many", None, [1.0]):  # was a bare ValueError / TypeError from float()
            with pytest.raises(PredictionLogError, match="labels must be numbers"):
                log.log_labels(["b", "c"], [7.0, bad])
        assert log.labelled([0], "v1").label.tolist() == [5.0, 7.0]


def test_a_label_written_by_another_writer_meanwhile_is_a_prediction_log_error(tmp_path):
    path = tmp_path / "log.sqlite"
    with PredictionLog(path) as first, PredictionLog(path) as second:
        features, pred = _batch(2)
        first.log_predictions(0, ["a", "b"], features, pred, model_version="v1")
        lookup = first._lookup

        def racing(select, keys):  # the other writer lands between the lookup and the insert
            found = lookup(select, keys)
            if "FROM labels" in select:
                second.log_labels(["a"], [5.0])
            return found

        first._lookup = racing
        with pytest.raises(PredictionLogError, match="another writer labelled"):
            first.log_labels(["a", "b"], [5.0, 7.0])
        assert second.labelled([0], "v1").label.tolist() == [5.0]  # "b" was not half-written


def test_bad_writes_are_rejected_with_reasons(tmp_path):
    with PredictionLog(tmp_path / "log.sqlite") as log:
        features, pred = _batch(3)
        with pytest.raises(PredictionLogError, match="same length"):
            log.log_predictions(0, ["a", "b"], features, pred, model_version="v1")
        log.log_predictions(0, ["a", "b", "c"], features, pred, model_version="v1")
        with pytest.raises(PredictionLogError, match="duplicate prediction"):
            log.log_predictions(0, ["a", "b", "c"], features, pred, model_version="v1")
        with pytest.raises(PredictionLogError, match="never predicted"):
            log.log_labels(["zzz"], [1.0])
        with pytest.raises(PredictionLogError, match="unknown table"):
            log.count("users; DROP TABLE labels")
        assert log.count("predictions") == 3  # the failed batch left nothing half-written
