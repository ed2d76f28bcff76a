"""The prediction log: every served (and shadow) prediction in SQLite, labels joined when they come.

Production labels arrive late (here: the rentals of an hour are known a window later), so the log
stores predictions first and labels separately, keyed by the same ``row_key``; performance is a
join. Three tables::

    predictions(row_key, window, role, model_version, prediction, low, high, features, logged_at)
    labels(row_key PRIMARY KEY, label, arrived_at)
    decisions(window, rule, action, reasons, evidence, decided_at)

Durability: every ``log_*`` call is one transaction committed before it returns, in WAL mode, so a
process that dies after a call returns loses nothing; re-opening the file sees every committed row
(tested by closing and re-opening). A label is written once per row: a re-delivered label with
the same value is harmless (skipped), but a *different* value for a labelled row is an error, never
silently dropped. That is what a second run in the same database looks like (its row keys repeat),
and keeping the old label there would score the new run against the old run's ground truth. A
label for a row never predicted is an error too, rather than a silent orphan.

Concurrent deliveries get the same answers. ``log_labels`` inserts with ``INSERT OR IGNORE`` and
compares the stored values with its own *inside the same transaction*, under SQLite's write lock,
so no other writer can land between the check and the write: two processes delivering the same
label at once both succeed (each new label counted once), and two delivering different values
for one row leave exactly one batch written, whole, while the other raises and writes nothing.
Threads of one process (a server's request threads) may share one ``PredictionLog``: a lock runs
one call at a time on its one connection, so each call is still a transaction of its own.

Every SQLite failure is a PredictionLogError naming the file and SQLite's reason: a file that is
not a SQLite database (refused when the log is opened, and left as it is), a write that SQLite
refuses, e.g. another process holding the write lock for longer than the 5 s busy timeout, or a
read that fails, e.g. a file damaged since it was opened ("database disk image is malformed"). A
refused write rolls its whole transaction back, so the error also means nothing was stored.
"""

from __future__ import annotations

import json
import math
import numbers
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift.errors import PredictionLogError
from drift.model import Prediction

__all__ = ["LabelledRows", "PredictionLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    row_key TEXT NOT NULL,
    window INTEGER NOT NULL,
    role TEXT NOT NULL,              -- 'serving' or 'shadow:<why>'
    model_version TEXT NOT NULL,
    prediction REAL NOT NULL,
    low REAL NOT NULL,
    high REAL NOT NULL,
    features TEXT NOT NULL,          -- JSON object of the inputs as received
    logged_at REAL NOT NULL,
    PRIMARY KEY (row_key, model_version)
);
CREATE INDEX IF NOT EXISTS predictions_window ON predictions(window);
CREATE TABLE IF NOT EXISTS labels (
    row_key TEXT PRIMARY KEY,
    label REAL NOT NULL,
    arrived_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    window INTEGER NOT NULL,
    rule TEXT NOT NULL,
    action TEXT NOT NULL,
    reasons TEXT NOT NULL,
    evidence TEXT NOT NULL,
    decided_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class LabelledRows:
    """Joined rows of one model version: arrays of shape (n,) plus the inputs as a DataFrame."""

    row_keys: list[str]
    prediction: np.ndarray
    label: np.ndarray
    features: pd.DataFrame


class PredictionLog:
    """SQLite-backed log; ``path=":memory:"`` works for experiments but is not durable.

    One ``PredictionLog`` may be shared by threads (a lock runs one call at a time) and closed
    from any of them; each process opens its own. A call after ``close`` is a PredictionLogError.
    """

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        """Open (or create) the log at ``path``. PredictionLogError if the file is not a SQLite
        database, or SQLite cannot open it or create the tables (a folder, a locked file)."""
        self.path = str(path)
        self.clock = clock
        # One connection, shared by the threads that use this object: the lock runs one call at
        # a time, so no transaction takes in another thread's statements. Processes use their own.
        self._lock = threading.RLock()
        self._closed = False
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
        except sqlite3.Error as exc:
            raise PredictionLogError(f"cannot open the prediction log {self.path}: {exc}") from exc
        try:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError):  # locked, a folder, no permission
                reason = f"cannot open the prediction log {self.path}: {exc}"
            else:  # "file is not a database": someone else's file, or a damaged one
                reason = f"{self.path} is not a prediction log database ({exc}); it was left as is"
            raise PredictionLogError(reason) from exc

    def close(self) -> None:
        """Close the log, from any thread; closing it again does nothing."""
        with self._lock:
            self._closed = True
            self._db.close()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes -------------------------------------------------------------------------------
    def log_predictions(
        self,
        window: int,
        row_keys: Sequence[str],
        features: pd.DataFrame,
        prediction: Prediction,
        *,
        model_version: str,
        role: str = "serving",
    ) -> int:
        """Store one prediction per row; returns the number of rows written.

        Raises PredictionLogError, and writes nothing, if the lengths differ, a value, low or high
        is NaN or infinite (leave unanswered rows out), or a row key is already logged for
        ``model_version``.
        """
        window, row_keys = _window(window), _row_keys(row_keys)
        n = len(row_keys)
        if not (len(features) == n == len(prediction.value)):
            raise PredictionLogError(
                f"row_keys ({n}), features ({len(features)}) and predictions "
                f"({len(prediction.value)}) must have the same length"
            )
        # SQLite stores NaN as NULL, so a non-finite prediction cannot be stored as a number. The
        # caller decides what an unanswered row means (the timeline leaves it out of the log and
        # the monitor reports it as a null_burst); the log only says which rows they are.
        finite = prediction.finite_rows
        if not finite.all():
            bad = [key for key, ok in zip(row_keys, finite, strict=True) if not ok]
            raise PredictionLogError(
                f"{len(bad)} predictions of model {model_version} in window {window} are NaN or "
                f"infinite (value, low or high), e.g. rows {bad[:3]}; the log stores finite "
                "predictions only: leave those rows out"
            )
        payloads = [_json_record(r) for r in features.to_dict(orient="records")] if n else []
        now = self.clock()
        rows = [
            (key, window, role, model_version, float(v), float(lo), float(hi), payload, now)
            for key, v, lo, hi, payload in zip(
                row_keys, prediction.value, prediction.low, prediction.high, payloads, strict=True
            )
        ]
        try:
            with self._locked(), self._db:
                self._db.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?)", rows)
        except sqlite3.IntegrityError as exc:  # every value is checked above: a repeated key
            raise PredictionLogError(
                f"duplicate prediction for model {model_version} in window {window}: {exc}; "
                "a row key is logged once per model version"
            ) from exc
        except sqlite3.DatabaseError as exc:  # e.g. locked by a writer for the whole timeout
            raise self._not_written("predictions", exc) from exc
        return n

    def log_labels(self, row_keys: Sequence[str], labels: Sequence[float]) -> int:
        """Store ground truth for predicted rows; returns the number of new labels.

        Raises PredictionLogError, and writes nothing, if a key was never predicted or already has
        a different label (in the log or earlier in the same batch). A label already stored with
        the same value is skipped, also when another writer stores it at the same moment.
        """
        if len(row_keys) != len(labels):
            raise PredictionLogError(f"{len(row_keys)} row keys but {len(labels)} labels")
        keys = _row_keys(row_keys)
        new: dict[str, float] = {}
        conflicts = []
        for key, label in zip(keys, labels, strict=True):
            try:
                value = float(label)
            except (TypeError, ValueError):
                raise PredictionLogError(
                    f"label for {key} is {label!r}: labels must be numbers"
                ) from None
            if not math.isfinite(value):
                raise PredictionLogError(f"label for {key} is {label!r}: labels must be finite")
            if new.setdefault(key, value) != value:
                conflicts.append(f"{key}: {new[key]:g} then {value:g}")
        if conflicts:
            raise PredictionLogError(_conflict_message(conflicts))
        with self._reading("predictions"):
            known = self._lookup("SELECT DISTINCT row_key, 1 FROM predictions", keys)
        unknown = [key for key in keys if key not in known]
        if unknown:
            raise PredictionLogError(
                f"{len(unknown)} labels for rows never predicted, e.g. {unknown[:3]}"
            )
        # Insert first, compare after, in one transaction. A check made before the insert can be
        # overtaken by another writer (two deliveries of the same labels at the same moment), so
        # the insert skips every row already labelled, whoever labelled it and when, and then the
        # stored values, read under the same write lock, are compared with ours: an equal one is
        # a re-delivery (skipped), a different one rolls the whole batch back.
        now = self.clock()
        try:
            with self._locked(), self._db:
                written = self._db.executemany(
                    "INSERT OR IGNORE INTO labels VALUES (?,?,?)",
                    [(k, v, now) for k, v in new.items()],
                ).rowcount
                stored = self._lookup("SELECT row_key, label FROM labels", list(new))
                conflicts = [
                    f"{key}: {stored[key]:g} then {value:g}"
                    for key, value in new.items()
                    if stored[key] != value
                ]
                if conflicts:
                    raise PredictionLogError(_conflict_message(conflicts))  # rolls back
        except sqlite3.DatabaseError as exc:  # e.g. locked by a writer for the whole timeout
            raise self._not_written("labels", exc) from exc
        return max(written, 0)

    def log_decision(
        self, window: int, rule: str, action: str, reasons: list[str], evidence: dict[str, Any]
    ) -> None:
        """Record a policy decision with its reasons and the numbers it was based on."""
        row = (
            _window(window),
            rule,
            action,
            json.dumps(reasons),
            json.dumps(evidence, default=float),
            self.clock(),
        )
        try:
            with self._locked(), self._db:
                self._db.execute(
                    "INSERT INTO decisions (window, rule, action, reasons, evidence, decided_at) "
                    "VALUES (?,?,?,?,?,?)",
                    row,
                )
        except sqlite3.DatabaseError as exc:  # e.g. locked by a writer for the whole timeout
            raise self._not_written("decision", exc) from exc

    # ---- reads --------------------------------------------------------------------------------
    def count(self, table: str = "predictions") -> int:
        """Rows in ``table``. Every read raises PredictionLogError if SQLite cannot read the file
        (a page damaged on disk, a lock held past the busy timeout); it changes nothing."""
        if table not in ("predictions", "labels", "decisions"):
            raise PredictionLogError(f"unknown table {table!r}")
        with self._reading(table):
            return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def labelled(
        self, windows: Sequence[int], model_version: str, *, with_features: bool = False
    ) -> LabelledRows:
        """Joined (prediction, label) rows of ``model_version`` in ``windows``."""
        windows = [_window(w) for w in windows]
        marks = ",".join("?" * len(windows))
        with self._reading("labelled predictions"):
            rows = self._db.execute(
                "SELECT p.row_key, p.prediction, l.label, p.features FROM predictions p "
                f"JOIN labels l ON l.row_key = p.row_key WHERE p.window IN ({marks}) "
                "AND p.model_version = ? ORDER BY p.rowid",
                (*windows, model_version),
            ).fetchall()
        features = (
            pd.DataFrame([json.loads(r[3]) for r in rows]) if with_features else pd.DataFrame()
        )
        return LabelledRows(
            row_keys=[r[0] for r in rows],
            prediction=np.array([r[1] for r in rows], dtype=float),
            label=np.array([r[2] for r in rows], dtype=float),
            features=features,
        )

    def decisions(self) -> list[dict[str, Any]]:
        """Every recorded decision, oldest first."""
        with self._reading("decisions"):
            rows = self._db.execute(
                "SELECT window, rule, action, reasons, evidence, decided_at FROM decisions "
                "ORDER BY id"
            ).fetchall()
        return [
            {
                "window": w,
                "rule": r,
                "action": a,
                "reasons": json.loads(rs),
                "evidence": json.loads(ev),
                "decided_at": t,
            }
            for w, r, a, rs, ev, t in rows
        ]

    def _not_written(self, what: str, exc: sqlite3.DatabaseError) -> PredictionLogError:
        """The error for a write SQLite refused; its transaction was rolled back whole."""
        return PredictionLogError(f"{what} not written to {self.path} ({exc}); nothing was stored")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The connection, to one thread at a time; PredictionLogError once the log is closed."""
        with self._lock:
            if self._closed:
                raise PredictionLogError(f"the prediction log {self.path} is closed; reopen it")
            yield

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn a read that SQLite refuses (locked, a damaged page) into a PredictionLogError."""
        with self._locked():
            try:
                yield
            except sqlite3.DatabaseError as exc:
                raise PredictionLogError(f"cannot read {what} from {self.path} ({exc})") from exc

    def _lookup(self, select: str, keys: list[str]) -> dict[str, Any]:
        """``{row_key: value}`` from ``select`` (two columns) for the keys in ``keys``."""
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 900):  # SQLite's host-parameter limit
            chunk = keys[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"{select} WHERE row_key IN ({marks})", chunk))
        return found


def _window(window: Any) -> int:
    """``window`` as a Python int. sqlite3 binds a numpy integer as an 8-byte BLOB, which no
    ``window IN (...)`` query ever matches, so a numpy window is converted at every entry point."""
    is_number = isinstance(window, numbers.Real) and not isinstance(window, (bool, np.bool_))
    # 2.0 (from a float column, say) is a window too; 2.5 and NaN are not
    if is_number and (isinstance(window, numbers.Integral) or float(window).is_integer()):
        return int(window)
    raise PredictionLogError(
        f"window {window!r} is not an integer; a window is an integer index (numpy integers and "
        "integral floats are accepted)"
    )


def _row_keys(row_keys: Sequence[str]) -> list[str]:
    """The keys as a list of str. The row_key column is TEXT, so SQLite would store 10 as "10"
    and a later lookup by the integer 10 would miss it: any other type is refused."""
    keys = list(row_keys)
    wrong = [key for key in keys if not isinstance(key, str)]
    if wrong:
        raise PredictionLogError(
            f"{len(wrong)} row keys are not strings, e.g. {wrong[:3]!r} "
            f'({type(wrong[0]).__name__}); row keys are str, e.g. "3:17" (window:row)'
        )
    return [str(key) for key in keys]  # np.str_ -> str


def _json_record(record: dict[Any, Any]) -> str:
    """One row of inputs as a strict JSON object that reads back exactly.

    ``DataFrame.to_json`` keeps 10 decimals (``double_precision=10``): 1/3 came back as
    0.3333333333 and 2.5e-11 as 0.0, and a retrain learned from the rounded copy. ``json.dumps``
    writes a float's shortest repr, which round-trips to the same bits. A missing value (NaN, None,
    ``pd.NA``) or an infinity is written as ``null``, as ``to_json`` wrote it; a numpy scalar as
    the Python number it holds; anything else that JSON has no type for (a timestamp) as its str.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value is None or value is pd.NA or value is pd.NaT:
            return None
        return value

    return json.dumps({str(k): plain(v) for k, v in record.items()}, default=str, allow_nan=False)


def _conflict_message(conflicts: list[str]) -> str:
    return (
        f"{len(conflicts)} rows already have a different label, e.g. {conflicts[:3]}; "
        "labels are final (a second run in the same log repeats row keys)"
    )
