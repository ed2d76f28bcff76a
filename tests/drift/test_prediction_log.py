"""Prediction log on a real SQLite file: late labels, joins, decisions, nothing lost on restart."""

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

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
        # the inputs as received, to the last bit (to_json kept 10 decimals: 1/3 came back as
        # 0.3333333333; found by a review)
        pd.testing.assert_frame_equal(rows.features, features.iloc[:3], check_exact=True)
        np.testing.assert_array_equal(log.labelled([0], "v0002").prediction, [10.0, 11.0, 12.0])


def test_logged_inputs_round_trip_exactly(tmp_path):
    """Small and long floats were rounded to 10 decimals (2.5e-11 became 0.0), and a retrain
    learned from the rounded copy (found by a review)."""
    features = pd.DataFrame(
        {"temp": [1 / 3, 0.1 + 0.2, np.nan], "dose": [2.5e-11, 7e-12, 1e300], "hr": [1, 2, 3]}
    )
    value = np.array([1.0, 2.0, 3.0])
    keys = ["0:0", "0:1", "0:2"]
    with PredictionLog(tmp_path / "log.sqlite") as log:
        log.log_predictions(0, keys, features, Prediction(value, value, value), model_version="v1")
        log.log_labels(keys, [1.0, 2.0, 3.0])
        back = log.labelled([0], "v1", with_features=True).features
    # NaN is stored as JSON null and read back as NaN
    pd.testing.assert_frame_equal(back, features, check_exact=True)


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


_DELIVER = """
import json, sys, time
from pathlib import Path
from drift.errors import PredictionLogError
from drift.prediction_log import PredictionLog

path, name, value, batches = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
log = PredictionLog(path)
(path.parent / f"ready-{name}").touch()
while not (path.parent / "go").exists():  # start together, so the deliveries really overlap
    time.sleep(0.0005)
results = []
for batch in range(batches):
    # every batch: labels the other deliverer sends too, and labels only this one sends
    keys = [f"{batch}:shared{i}" for i in range(10)] + [f"{batch}:{name}{i}" for i in range(10)]
    try:
        results.append(log.log_labels(keys, [value] * len(keys)))
    except PredictionLogError as exc:
        results.append(str(exc))
print(json.dumps(results))
"""


def _deliver_at_once(path, values, batches=100):
    """Two processes deliver labels into one SQLite file at the same moment, batch by batch; each
    process's per-batch result: the number of new labels, or the PredictionLogError's message."""
    names = ("a", "b")
    keys = [
        f"{batch}:{who}{i}"
        for batch in range(batches)
        for who in ("shared", *names)
        for i in range(10)
    ]
    features, pred = _batch(len(keys))
    with PredictionLog(path) as log:
        log.log_predictions(0, keys, features, pred, model_version="v1")
    repo = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _DELIVER, str(path), name, str(value), str(batches)],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, value in zip(names, values, strict=True)
    ]
    while len(list(path.parent.glob("ready-*"))) < len(workers):
        assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
        time.sleep(0.01)
    (path.parent / "go").touch()
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    return [json.loads(stdout) for stdout, _ in outputs]


def test_two_processes_delivering_the_same_labels_at_once_lose_nothing(tmp_path):
    """A same-value race behaves like a sequential re-delivery: skipped. The comparison runs
    after the insert, under the write lock, so the slower delivery cannot mistake the faster
    one's label for a conflict and lose its batch's other new labels."""
    path = tmp_path / "log.sqlite"
    a, b = _deliver_at_once(path, (5.0, 5.0))
    errors = [r for r in a + b if isinstance(r, str)]
    assert errors == []
    # each batch: 10 own labels per process plus the 10 shared ones, each new to exactly one
    assert [x + y for x, y in zip(a, b, strict=True)] == [30] * 100
    with PredictionLog(path) as log:
        assert log.count("labels") == 3000
        assert set(log.labelled(range(1), "v1").label) == {5.0}


def test_two_processes_delivering_different_labels_at_once_write_one_batch_whole(tmp_path):
    """A value race is still an error: per batch exactly one delivery wins and the other is
    refused with nothing written, so a batch's labels never come from both deliverers."""
    path = tmp_path / "log.sqlite"
    a, b = _deliver_at_once(path, (1.0, 2.0))
    for x, y in zip(a, b, strict=True):
        assert {type(x), type(y)} == {int, str}, (x, y)  # one wins, one is refused
        assert (x if isinstance(x, int) else y) == 20
        assert "different label" in (x if isinstance(x, str) else y)
    with PredictionLog(path) as log:
        rows = log.labelled(range(1), "v1")
        assert log.count("labels") == 2000  # the winners' batches, whole; no loser's own keys
    by_batch: dict[str, set[float]] = {}
    for key, label in zip(rows.row_keys, rows.label, strict=True):
        by_batch.setdefault(key.split(":")[0], set()).add(label)
    assert all(len(values) == 1 for values in by_batch.values())


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


@pytest.mark.parametrize("column", ["value", "low", "high"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_prediction_is_refused_as_such_not_as_a_duplicate(tmp_path, column, bad):
    """SQLite stores NaN as NULL, so a NaN prediction used to fail the NOT NULL constraint and
    was reported as a "duplicate prediction"."""
    features, pred = _batch(3)
    values = {"value": pred.value.copy(), "low": pred.low.copy(), "high": pred.high.copy()}
    values[column][1] = bad
    with PredictionLog(tmp_path / "log.sqlite") as log:
        with pytest.raises(PredictionLogError, match="NaN or infinite") as refused:
            log.log_predictions(0, list("abc"), features, Prediction(**values), model_version="v1")
        assert "duplicate" not in str(refused.value) and "['b']" in str(refused.value)
        assert log.count() == 0


@pytest.mark.parametrize("window", [np.int64(2), np.int32(2), 2.0])
def test_a_numpy_window_is_stored_as_an_integer_and_found_again(tmp_path, window):
    """sqlite3 stored np.int64(2) as an 8-byte BLOB: labelled([2]) then found nothing, and a
    decision's window read back as bytes."""
    features, pred = _batch(3)
    with PredictionLog(tmp_path / "log.sqlite") as log:
        log.log_predictions(window, ["a", "b", "c"], features, pred, model_version="v1")
        log.log_labels(["a", "b", "c"], [1.0, 2.0, 3.0])
        log.log_decision(window, "rule", "action", [], {})
        for windows in ([2], np.arange(3), np.array([2]), [window]):
            assert len(log.labelled(windows, "v1").row_keys) == 3
        assert log.decisions()[0]["window"] == 2 and type(log.decisions()[0]["window"]) is int


@pytest.mark.parametrize("window", [2.5, np.nan, "2", None, True])
def test_a_window_that_is_not_an_integer_is_refused(tmp_path, window):
    features, pred = _batch(3)
    with PredictionLog(tmp_path / "log.sqlite") as log:
        with pytest.raises(PredictionLogError, match="not an integer"):
            log.log_predictions(window, ["a", "b", "c"], features, pred, model_version="v1")
        with pytest.raises(PredictionLogError, match="not an integer"):
            log.log_decision(window, "rule", "action", [], {})
        with pytest.raises(PredictionLogError, match="not an integer"):
            log.labelled([window], "v1")
        assert log.count() == 0 and log.count("decisions") == 0


def test_row_keys_that_are_not_strings_are_refused(tmp_path):
    """Integer keys were stored as text, and log_labels([10, 11]) then claimed the rows were
    never predicted. Row keys are strings; anything else is refused where it enters."""
    features, pred = _batch(3)
    with PredictionLog(tmp_path / "log.sqlite") as log:
        with pytest.raises(PredictionLogError, match="row keys are str"):
            log.log_predictions(1, [10, 11, 12], features, pred, model_version="v1")
        log.log_predictions(1, np.array(["10", "11", "12"]), features, pred, model_version="v1")
        with pytest.raises(PredictionLogError, match=r"not strings, e.g. \[10, 11\]"):
            log.log_labels([10, 11], [1.0, 2.0])
        assert log.log_labels(["10", "11"], [1.0, 2.0]) == 2
        assert log.labelled([1], "v1").row_keys == ["10", "11"]


def test_labelled_returns_only_the_requested_windows(tmp_path):
    with PredictionLog(tmp_path / "log.sqlite") as log:
        for window in (0, 1):
            features, pred = _batch(2, offset=10.0 * window)
            keys = [f"{window}:{i}" for i in range(2)]
            log.log_predictions(window, keys, features, pred, model_version="v1")
            log.log_labels(keys, [1.0, 2.0])
        rows = log.labelled([1], "v1")
        assert rows.row_keys == ["1:0", "1:1"]
        np.testing.assert_array_equal(rows.prediction, [10.0, 11.0])
        assert log.labelled([0], "v1").row_keys == ["0:0", "0:1"]
        assert log.labelled([0, 1], "v1").row_keys == ["0:0", "0:1", "1:0", "1:1"]


# ---- SQLite failures are PredictionLogErrors ---------------------------------------------------


def test_a_file_that_is_not_a_database_is_refused_and_left_as_it_is(tmp_path):
    """It escaped as a bare sqlite3.DatabaseError (found by a review)."""
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"my own notes, not SQLite\n" * 200)
    with pytest.raises(
        PredictionLogError, match=f"{re.escape(str(path))} is not a prediction log database"
    ):
        PredictionLog(path)
    assert path.read_bytes() == b"my own notes, not SQLite\n" * 200


def test_a_folder_is_refused_naming_it(tmp_path):
    with pytest.raises(
        PredictionLogError, match=f"cannot open the prediction log {re.escape(str(tmp_path))}"
    ):
        PredictionLog(tmp_path)


_HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # SQLite's write lock, held until killed
print("locked", flush=True)
time.sleep(60)
"""


def test_every_write_refused_by_a_lock_is_a_prediction_log_error_storing_nothing(tmp_path):
    """Another process holds the write lock past the busy timeout. log_labels said so; a
    prediction or a decision write let sqlite3.OperationalError out bare (found by a review)."""
    path = tmp_path / "log.sqlite"
    features, pred = _batch(2)
    with PredictionLog(path) as log:
        log.log_predictions(0, ["0:0", "0:1"], features, pred, model_version="v1")
        # The default 5 s busy timeout, cut so the test does not wait it out three times.
        log._db.execute("PRAGMA busy_timeout = 50")
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout.readline() == "locked\n"
            writes = {
                "predictions": lambda: log.log_predictions(
                    1, ["1:0", "1:1"], features, pred, model_version="v1"
                ),
                "labels": lambda: log.log_labels(["0:0"], [3.0]),
                "decision": lambda: log.log_decision(1, "rule", "observe", ["why"], {}),
            }
            for what, write in writes.items():
                with pytest.raises(PredictionLogError) as info:
                    write()
                assert str(info.value) == (
                    f"{what} not written to {path} (database is locked); nothing was stored"
                )
        finally:
            holder.kill()
            holder.wait()
        assert [log.count(t) for t in ("predictions", "labels", "decisions")] == [2, 0, 0]


def test_every_read_of_a_damaged_log_is_a_prediction_log_error(tmp_path):
    """The file is damaged after its header (the schema still reads, so it opens): count,
    labelled, decisions and log_labels' check of the predicted rows let sqlite3.DatabaseError
    out bare, where the writes already said which file (found by a review)."""
    path = tmp_path / "log.sqlite"
    features, pred = _batch(300)
    keys = [f"0:{i}" for i in range(300)]
    with PredictionLog(path) as log:
        log.log_predictions(0, keys, features, pred, model_version="v1")
        log.log_labels(keys, pred.value)
        log.log_decision(0, "rule", "observe", ["why"], {})
        log._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row into the main file
    data = path.read_bytes()
    page = 4096  # SQLite's default page size; page 1 holds the header and the schema
    assert len(data) > 4 * page
    path.write_bytes(data[:page] + b"\xff" * (len(data) - page))
    with PredictionLog(path) as log:
        reads = [
            ("predictions", lambda: log.count()),
            ("decisions", lambda: log.count("decisions")),
            ("labelled predictions", lambda: log.labelled([0], "v1")),
            ("decisions", lambda: log.decisions()),
            ("predictions", lambda: log.log_labels(["0:1"], [1.0])),  # which rows were predicted
        ]
        for what, read in reads:
            with pytest.raises(PredictionLogError) as info:
                read()
            assert str(info.value) == (
                f"cannot read {what} from {path} (database disk image is malformed)"
            )


def test_one_log_shared_by_threads_logs_every_row_once(tmp_path):
    """A model server opens the log once and logs from its request threads. Every call from a
    thread other than the opener raised "predictions not written ... (SQLite objects created in
    a thread can only be used in that same thread ...)", so nothing was logged (found by a
    review). Eight threads interleave writes and reads; switching threads every microsecond
    makes them land inside each other's calls."""
    threads, calls = 8, 100
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def serve(log: PredictionLog, window: int) -> None:
        try:
            start.wait()
            for j in range(calls):
                key = f"{window}:{j}"
                features, pred = _batch(1, offset=float(j))
                assert log.log_predictions(window, [key], features, pred, model_version="v1") == 1
                assert log.log_labels([key], [j + 0.5]) == 1
                rows = log.labelled([window], "v1")  # this thread's window: its rows so far
                assert rows.row_keys == [f"{window}:{i}" for i in range(j + 1)]
                np.testing.assert_array_equal(rows.label, np.arange(j + 1) + 0.5)
                if j % 25 == 0:
                    log.log_decision(window, "rule", "observe", [key], {"j": j})
                    assert log.count("predictions") >= j + 1
        except BaseException as exc:  # collected: an exception in a thread fails nothing
            errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with PredictionLog(tmp_path / "log.sqlite") as log:
            workers = [threading.Thread(target=serve, args=(log, w)) for w in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            assert errors == []
            rows = log.labelled(range(threads), "v1")
            expected = [f"{w}:{j}" for w in range(threads) for j in range(calls)]
            assert sorted(rows.row_keys) == sorted(expected)  # every row once
            by_key = dict(zip(rows.row_keys, rows.label, strict=True))
            assert all(by_key[f"{w}:{j}"] == j + 0.5 for w in range(threads) for j in range(calls))
            counts = [log.count(t) for t in ("predictions", "labels", "decisions")]
            assert counts == [threads * calls, threads * calls, threads * calls // 25]
    finally:
        sys.setswitchinterval(switch)


def test_a_log_closes_from_another_thread_and_refuses_calls_after(tmp_path):
    """A shutdown hook on another thread closes the shared log. close() raised a bare
    sqlite3.ProgrammingError there, and a call after close() blamed SQLite: "cannot read
    predictions from PATH (Cannot operate on a closed database.)" (found by a review)."""
    path = tmp_path / "log.sqlite"
    log = PredictionLog(path)
    features, pred = _batch(2)
    log.log_predictions(0, ["0:0", "0:1"], features, pred, model_version="v1")
    errors: list[BaseException] = []

    def close() -> None:
        try:
            log.close()
            log.close()  # a second close does nothing
        except BaseException as exc:
            errors.append(exc)

    closer = threading.Thread(target=close)
    closer.start()
    closer.join()
    assert errors == []
    calls = [
        lambda: log.count(),
        lambda: log.labelled([0], "v1"),
        lambda: log.decisions(),
        lambda: log.log_predictions(1, ["1:0", "1:1"], features, pred, model_version="v1"),
        lambda: log.log_labels(["0:0"], [1.0]),
        lambda: log.log_decision(1, "rule", "observe", ["why"], {}),
    ]
    for call in calls:
        with pytest.raises(PredictionLogError) as info:
            call()
        assert str(info.value) == f"the prediction log {path} is closed; reopen it"
    with PredictionLog(path) as reopened:  # closed, not lost
        assert reopened.count() == 2
