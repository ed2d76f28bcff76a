"""The human review queue: durable, risk-prioritised, leased, audited, with appeals. On SQLite.

**Durability.** Every operation is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) on a
write-ahead-log database with ``synchronous=FULL``: when a method returns, its effect is on disk,
and a crash mid-operation rolls the whole operation back. Nothing is held only in memory. If the
file is deleted or replaced while the queue is open, the next call raises :class:`QueueError`
instead of writing into a file nobody can reopen (a relative path is resolved once, when the
queue is opened, so a later ``os.chdir`` does not point it at another file). One
``ReviewQueue`` may be shared by threads (a lock runs one operation at a time); each process
opens its own.

**Priority, not FIFO.** Items are claimed in descending risk::

    priority = S(label) * p * (1 + U) * R
    S = ModerationConfig.severity[label]          (hate 1.0, offensive 0.3, spam 0.2)
    p = the model's calibrated probability of the label
    U = 1 - |2p - 1|                              (model uncertainty: 1 at p = 0.5, 0 at 0 or 1)
    R = log10(10 + reach)                         (reach = audience, e.g. followers; log so one
                                                   celebrity does not starve the queue; R >= 1)

``S * p * R`` is the expected harm of leaving the item up; the ``(1 + U)`` factor lifts the items
the model is least sure about (where a human label teaches the model most) to rank with sure ones.
Appeals get ``2 * S * R`` (``p = 1``, ``U = 1``): a contested decision is maximally uncertain.

**Leases.** ``claim`` atomically gives the top item to one reviewer until ``now + lease_seconds``
(finite, at most ``config.MAX_LEASE_SECONDS``: a day); nobody else can claim it meanwhile, an
expired lease returns the item to the queue, and ``decide`` requires the caller's live lease.
**No double decisions**: ``decisions.item_id`` is a primary key, so even a bug in the checks
above cannot store two decisions for one item.

**Appeals.** A decided item can be appealed once. The appeal is a new queue item that the original
reviewer can never claim (``excluded_reviewer``); its claim carries the user's reason and the
original outcome. If the appeal's outcome differs from the original decision it is an
*overturn*; :meth:`ReviewQueue.overturns` exports those as training labels.

**Who is who.** Reviewer and user ids are account names: NFKC-normalised, invisible characters
dropped (:func:`moderation.pipeline.is_invisible`: zero-width spaces and joiners, variation
selectors, the combining grapheme joiner, Hangul fillers, ...), surrounding space stripped and
case folded (``" Alice"``, ``"ALICE\\u200b"``, ``"ali\\u034fce"`` and ``"alice"`` are one
reviewer), so a reviewer cannot take the appeal of their own decision by spelling their name
differently. Other combining marks are kept: they carry meaning in many scripts. An id with
nothing visible in it is refused. A queue file of an older schema (``PRAGMA user_version`` 0:
ids as spelled; 1: only format characters dropped) has its routing fields (lease owners,
appeals' excluded reviewers) folded again when it is opened; decisions and the audit log keep
the names as they were written, and an appeal folds the decider's name it copies from them. A
file written by a newer schema version is refused rather than guessed at, and so is another
application's database (any table that is not the queue's, or a queue table of other columns),
before anything is written to it.

**Bad input is refused before anything is written**: a label outside the severity table, a score
that is not a probability in [0, 1] (a bool or a string is not one), a negative or out-of-range
reach, empty, binary, wrongly encoded or over-long text (the checks of
:func:`moderation.pipeline.validate_text`), text or an id with nothing visible in it
(:func:`moderation.pipeline.is_blank`), a severity that is not a finite number >= 0, and an
appeal of an item whose label this queue's severity table does not hold.
A file that is not a SQLite database is refused with :class:`QueueError` and left untouched.
So is any later operation on a file SQLite cannot use: one another connection keeps locked past
``timeout`` (30 s), or one damaged after it was opened (a torn write, a bad copy); the error
names the file and the cause, and the operation's transaction is rolled back.

**Audit trail.** Every state change appends a row to ``audit_log`` (event, actor, time, details).
An appeal's creation (``appealed``) and outcome (``upheld`` / ``overturned``) are logged under the
appealed item; :meth:`ReviewQueue.audit_trail` shows them in both the item's and the appeal's
trail.

**Portability to Postgres.** Only standard SQL types (TEXT, BIGINT, DOUBLE PRECISION), ids made in
Python (uuid4 hex, no AUTOINCREMENT), times as epoch seconds from the injected clock. To move:
replace ``?`` placeholders with ``%s``, ``BEGIN IMMEDIATE`` with ``BEGIN``, and add ``FOR UPDATE
SKIP LOCKED`` to the claim's inner SELECT so concurrent reviewers skip each other's rows. The
schema version lives in SQLite's ``PRAGMA user_version``; Postgres needs a one-row
``schema_version`` table read and updated in the same transaction as the migration.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from moderation.config import MAX_LEASE_SECONDS, ModerationConfig
from moderation.errors import (
    AlreadyDecidedError,
    AppealError,
    InvalidTextError,
    ItemNotFoundError,
    LeaseError,
    QueueError,
)
from moderation.pipeline import is_blank, is_invisible, validate_text

__all__ = [
    "OUTCOMES",
    "SCHEMA",
    "Claim",
    "ReviewQueue",
    "TrainingLabel",
    "appeal_priority",
    "risk_priority",
]

OUTCOMES = ("violation", "no_violation")
MAX_REACH = 2**63 - 1  # BIGINT, in SQLite and Postgres alike
MAX_ID_CHARS = 200
# An id is refused unread past this many characters as typed: a cheap cap on input before any
# per-character work (folding, the blank check), so that work stays bounded whatever a caller
# sends; and NFKC rarely lengthens a name's characters.
MAX_RAW_ID_CHARS = 4 * MAX_ID_CHARS
_DEFAULTS = ModerationConfig()  # severity, lease and text limit when the caller gives none

# PRAGMA user_version (see "Who is who"): 0 = ids as spelled; 1 = ids in the routing fields
# folded with format characters dropped; 2 = folded with every invisible character dropped.
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    item_id           TEXT PRIMARY KEY,
    content_id        TEXT NOT NULL,
    text              TEXT NOT NULL,
    label             TEXT NOT NULL,
    score             DOUBLE PRECISION NOT NULL,
    reach             BIGINT NOT NULL,
    priority          DOUBLE PRECISION NOT NULL,
    kind              TEXT NOT NULL,              -- 'review' | 'appeal'
    status            TEXT NOT NULL,              -- 'pending' | 'decided'
    lease_owner       TEXT,
    lease_expires_at  DOUBLE PRECISION,
    excluded_reviewer TEXT,                       -- appeals: the original decider
    parent_item_id    TEXT REFERENCES review_items (item_id),
    appeal_reason     TEXT,
    created_at        DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS review_items_pending ON review_items (status, priority);
CREATE UNIQUE INDEX IF NOT EXISTS one_appeal_per_item ON review_items (parent_item_id);
CREATE TABLE IF NOT EXISTS decisions (
    item_id    TEXT PRIMARY KEY REFERENCES review_items (item_id),
    reviewer   TEXT NOT NULL,
    outcome    TEXT NOT NULL,                     -- 'violation' | 'no_violation'
    note       TEXT NOT NULL,
    decided_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    event_id TEXT PRIMARY KEY,
    seq      BIGINT NOT NULL UNIQUE,
    item_id  TEXT NOT NULL,
    event    TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       DOUBLE PRECISION NOT NULL,
    details  TEXT NOT NULL
);
"""


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM pragma_table_info(?)", (table,))}


def _schema_columns() -> dict[str, set[str]]:
    """Table name -> column names, as :data:`SCHEMA` creates them (read from a scratch copy)."""
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.executescript(SCHEMA)
        tables = [
            row[0] for row in scratch.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {t: _columns(scratch, t) for t in tables}
    finally:
        scratch.close()


def risk_priority(severity: float, p: float, reach: int = 0) -> float:
    """``S * p * (1 + U) * R`` from the module docstring."""
    p = min(max(float(p), 0.0), 1.0)
    uncertainty = 1.0 - abs(2.0 * p - 1.0)
    return severity * p * (1.0 + uncertainty) * _reach_factor(reach)


def appeal_priority(severity: float, reach: int = 0) -> float:
    """``2 * S * R``: an appeal ranks as an item with ``p = 1`` and ``U = 1``."""
    return 2.0 * severity * _reach_factor(reach)


def _reach_factor(reach: int) -> float:
    return math.log10(10 + max(int(reach), 0))


def _fold(name: str | None) -> str | None:
    """An id as :func:`_account` stores it; also applied to names read from older-schema rows.

    NFKC (full-width ``"ａｌｉｃｅ"`` is ``"alice"``), invisible characters dropped
    (:func:`~moderation.pipeline.is_invisible`: a zero-width space, variation selector or Hangul
    filler would make ``"alice\\u200b"`` a second account that looks the same), outer space
    stripped, case folded. Space inside a name stays: ``"a b"`` and ``"ab"`` look different.
    """
    if name is None:
        return None
    folded = unicodedata.normalize("NFKC", name)
    folded = "".join(c for c in folded if c.isspace() or not is_invisible(c))
    return folded.strip().casefold()


def _account(value: object, what: str) -> str:
    """A reviewer or user id, folded (:func:`_fold`) and held to :func:`_free_text`'s rules:
    binary or badly encoded as typed (folding drops control characters, NUL among them), within
    ``MAX_ID_CHARS`` once folded (so the stored id is: ``"ß"`` folds to ``"ss"``). An id longer
    than ``MAX_RAW_ID_CHARS`` as typed is refused before it is read any further."""
    if not isinstance(value, str):
        raise QueueError(f"{what} must be a non-empty name, got {value!r}")
    if len(value) > MAX_RAW_ID_CHARS:
        raise QueueError(
            f"{what} has {len(value)} characters; the limit is {MAX_RAW_ID_CHARS} as typed "
            f"and {MAX_ID_CHARS} once folded (queue.MAX_ID_CHARS)"
        )
    _free_text(value, what, limit=None)  # as typed: binary or badly encoded; length once folded
    folded = _fold(value)
    if not folded or is_blank(value):  # nothing visible: an empty name, however it is spelt
        raise QueueError(f"{what} must be a non-empty name, got {value!r}")
    return _free_text(folded, what, MAX_ID_CHARS, limit_name=_ID_LIMIT)


_ID_LIMIT = "queue.MAX_ID_CHARS"  # the setting an over-long id's error names
_TEXT_LIMIT = "ReviewQueue max_chars"  # ... and an over-long text, note or reason's


def _free_text(
    value: object,
    what: str,
    limit: int | None,
    *,
    limit_name: str = _TEXT_LIMIT,
    required: bool = False,
) -> str:
    """Text a reviewer reads (an item, id, note or reason): the classifier's input rules apply,
    with at most ``limit`` characters (None: no length check), the setting ``limit_name``."""
    if not isinstance(value, str):
        raise QueueError(f"{what} must be a string, got {type(value).__name__}")
    try:
        value = validate_text(value, limit, limit_name=limit_name)
    except InvalidTextError as exc:
        raise QueueError(f"{what}: {exc}") from None
    if required and is_blank(value):
        raise QueueError(f"{what} must not be empty")
    return value


def _probability(score: object) -> float:
    # a bool or a string would convert (True -> 1.0, "0.5" -> 0.5): a caller that passes one has
    # passed the wrong thing, which is better said than stored as a probability
    if isinstance(score, bool | str | bytes | bytearray):
        raise QueueError(f"score must be a probability in [0, 1], got {score!r}")
    try:
        value = float(score)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QueueError(f"score must be a probability in [0, 1], got {score!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan, for which every comparison is false
        raise QueueError(f"score must be a probability in [0, 1], got {score!r}")
    return value


def _severity(severity: dict[str, float]) -> dict[str, float]:
    """A copy of a severity table, every value a finite number >= 0 (NaN would reach SQLite's
    NOT NULL priority column as NULL; a negative severity would rank an item below every other).
    """
    if not isinstance(severity, dict):
        raise QueueError(f"severity must be a dict of label -> number, got {severity!r}")
    for label, value in severity.items():
        number = not isinstance(value, bool) and isinstance(value, int | float)
        if not (number and math.isfinite(value) and value >= 0):
            raise QueueError(f"severity[{label!r}] must be a finite number >= 0, got {value!r}")
    return dict(severity)


def _reach(reach: object) -> int:
    if isinstance(reach, bool) or not isinstance(reach, int) or not 0 <= reach <= MAX_REACH:
        raise QueueError(f"reach must be a whole number from 0 to {MAX_REACH}, got {reach!r}")
    return reach


@dataclass(frozen=True)
class Claim:
    """A leased item: decide it before ``lease_expires_at`` or it returns to the queue."""

    item_id: str
    content_id: str
    text: str
    label: str
    score: float
    priority: float
    kind: str
    lease_expires_at: float
    parent_item_id: str | None = None  # appeals: the decided item under appeal
    appeal_reason: str | None = None  # appeals: what the user said
    original_outcome: str | None = None  # appeals: the decision being appealed


@dataclass(frozen=True)
class TrainingLabel:
    """A human label to train on: ``value`` 1 if ``label`` applies to ``text``, else 0."""

    content_id: str
    text: str
    label: str
    value: int


class ReviewQueue:
    """A review queue in one SQLite file (``":memory:"`` works for throwaway use).

    ``severity`` and ``lease_seconds`` default to :class:`~moderation.config.ModerationConfig`'s.
    ``timeout`` is how long an operation waits for another connection's write lock before it
    gives up with :class:`QueueError`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        severity: dict[str, float] | None = None,
        lease_seconds: float = _DEFAULTS.lease_seconds,
        max_chars: int = _DEFAULTS.max_chars,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        # also refuses nan (every comparison is false) and inf (the item would never come back)
        if not 0 < lease_seconds <= MAX_LEASE_SECONDS:
            raise QueueError(
                f"lease_seconds must be > 0 and at most MAX_LEASE_SECONDS ({MAX_LEASE_SECONDS:g}, "
                f"one day), got {lease_seconds!r}"
            )
        whole = isinstance(max_chars, int) and not isinstance(max_chars, bool)
        if not (whole and max_chars >= 1):
            raise QueueError(f"max_chars must be a whole number >= 1, got {max_chars!r}")
        number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if not (number and 0 <= timeout < math.inf):  # also refuses nan
            raise QueueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
        self.path = str(path)
        if self.path not in ("", ":memory:"):  # "" is SQLite's private temporary database
            # resolved once: a relative path re-read after os.chdir would name another file
            self.path = os.path.abspath(self.path)
        self.severity = _severity(severity or _DEFAULTS.severity)
        self.lease_seconds = lease_seconds
        self.max_chars = max_chars
        self.timeout = timeout
        self.clock = clock
        self.new_id = new_id
        # One connection, shared by the threads that use this object: the lock runs one
        # operation at a time (SQLite allows one writer anyway); other processes use their own.
        self._lock = threading.RLock()
        self._file: tuple[int, int] | None = None  # (device, inode) of the file we opened
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=timeout, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open review queue {self.path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            # Refusals come before WAL mode rewrites the file's header: a newer schema, or
            # another application's database (a mistyped --db) that must be left as it was.
            self._schema_version()
            self._check_tables()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._tx():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._migrate()
        except sqlite3.DatabaseError as exc:  # not a database, unreadable, or not ours
            self._db.close()
            raise QueueError(f"cannot open review queue {self.path}: {exc}") from None
        except QueueError:  # a schema version this code does not know
            self._db.close()
            raise
        if self.path not in ("", ":memory:"):
            stat = os.stat(self.path)
            self._file = (stat.st_dev, stat.st_ino)

    def _schema_version(self) -> int:
        """The file's ``PRAGMA user_version``; QueueError if a newer schema wrote it."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise QueueError(
                f"review queue {self.path} has schema version {version}, newer than this "
                f"code's {SCHEMA_VERSION}: open it with the version that wrote it"
            )
        return version

    def _check_tables(self) -> None:
        """QueueError unless every table in the file is one of the queue's, with its columns.

        An empty file becomes a queue; one that holds anything else is some other application's
        database, and creating the queue's tables in it (or failing half-way, on a
        ``review_items`` of its own) would change a file that is not ours.
        """
        found = {
            name: _columns(self._db, name)
            for (name,) in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        expected = _schema_columns()
        foreign = sorted(name for name in found if name not in expected)
        changed = sorted(
            name for name in found if name in expected and found[name] != expected[name]
        )
        if foreign or changed:
            what = [f"table(s) {', '.join(foreign)} that are not the queue's"] if foreign else []
            what += [f"a {name} table whose columns are not the queue's" for name in changed]
            raise QueueError(
                f"cannot open review queue {self.path}: the database holds {'; '.join(what)} "
                f"(the queue's tables are {', '.join(expected)}). Is it another application's "
                "file? It was left unchanged"
            )

    def _migrate(self) -> None:
        """Bring a file written by an older schema version up to ``SCHEMA_VERSION``."""
        version = self._schema_version()  # read again under the write lock: another may migrate
        if version == SCHEMA_VERSION:
            return  # nothing to write: an up-to-date file is opened without touching its header
        if version < 2:  # 0: ids stored as spelled; 1: folded without dropping every invisible
            # character (is_invisible). _fold of an old fold is the new fold, so one pass serves
            # both: the names that route items (lease owners, excluded reviewers) are re-folded.
            rows = self._db.execute(
                "SELECT item_id, lease_owner, excluded_reviewer FROM review_items "
                "WHERE lease_owner IS NOT NULL OR excluded_reviewer IS NOT NULL"
            ).fetchall()
            self._db.executemany(
                "UPDATE review_items SET lease_owner = ?, excluded_reviewer = ? WHERE item_id = ?",
                [
                    (_fold(r["lease_owner"]), _fold(r["excluded_reviewer"]), r["item_id"])
                    for r in rows
                ],
            )
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReviewQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of the block is written, or (on any error) none of it."""
        with self._read():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (a damaged file)
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One operation at a time, on the file this queue opened (see :meth:`_check_file`).

        SQLite's own errors become :class:`QueueError` naming the file (:meth:`_unusable`); the
        IntegrityErrors that ``decide`` and ``appeal`` turn into their own answers, and the
        ProgrammingError of a closed queue, are left as they are.
        """
        with self._lock:
            self._check_file()
            try:
                yield self._db
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
                raise
            except sqlite3.DatabaseError as exc:  # OperationalError is one too
                raise self._unusable(exc) from exc

    def _unusable(self, exc: sqlite3.DatabaseError) -> QueueError:
        """The QueueError for a queue file SQLite cannot use now: locked, damaged, or I/O.

        A write lock held past ``timeout`` (a backup, an admin's ``sqlite3`` shell, a suspended
        writer) is worth retrying; a damaged file (a torn write, a bad copy) is not. Either way
        the operation was rolled back, so nothing of it was written.
        """
        code = getattr(exc, "sqlite_errorname", "")
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            why = (
                f"is locked by another connection (waited {self.timeout:g} s); nothing was "
                "written. Retry, or end the process that holds it"
            )
        elif code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            why = f"is damaged ({exc}); nothing was written. Restore it from a backup"
        else:  # disk full, read-only, an I/O error
            why = f"cannot be used ({exc}); nothing was written"
        return QueueError(f"review queue {self.path} {why}")

    def _check_file(self) -> None:
        """Refuse to go on if the database file was deleted or replaced under us.

        SQLite keeps writing to a deleted file's inode, so every later "durable" write would be
        lost when the connection closes; an error at the next call loses nothing silently.
        """
        if self._file is None:
            return
        try:
            stat = os.stat(self.path)
        except OSError:
            stat = None
        if stat is None or (stat.st_dev, stat.st_ino) != self._file:
            raise QueueError(
                f"the review queue file {self.path} was deleted or replaced while open; "
                "nothing more is written to it. Restore it from a backup and reopen the queue."
            )

    def _audit(self, item_id: str, event: str, actor: str, **details: object) -> None:
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log").fetchone()[0]
        self._db.execute(
            "INSERT INTO audit_log (event_id, seq, item_id, event, actor, at, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.new_id(), seq, item_id, event, actor, self.clock(), json.dumps(details)),
        )

    def _item(self, item_id: str) -> sqlite3.Row:
        row = self._db.execute(
            "SELECT * FROM review_items WHERE item_id = ?", (item_id,)
        ).fetchone()
        if row is None:
            raise ItemNotFoundError(f"no review item {item_id!r}", item_id=item_id)
        return row

    # --- producer side -------------------------------------------------------------------------

    def enqueue(
        self, content_id: str, text: str, label: str, score: float, *, reach: int = 0
    ) -> str:
        """Add an item for review; returns its ``item_id``. Bad arguments raise QueueError."""
        if label not in self.severity:
            raise QueueError(f"unknown label {label!r}; known: {sorted(self.severity)}")
        content_id = _free_text(
            content_id, "content_id", MAX_ID_CHARS, limit_name=_ID_LIMIT, required=True
        )
        text = _free_text(text, "text", self.max_chars)
        if is_blank(text):  # as Moderator does: invisible-only text is empty too
            raise QueueError("cannot queue empty text: there is nothing to review")
        score, reach = _probability(score), _reach(reach)
        item_id = self.new_id()
        priority = risk_priority(self.severity[label], score, reach)
        with self._tx():
            self._db.execute(
                "INSERT INTO review_items (item_id, content_id, text, label, score, reach, "
                "priority, kind, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'review', "
                "'pending', ?)",
                (
                    item_id,
                    content_id,
                    text,
                    label,
                    score,
                    reach,
                    priority,
                    self.clock(),
                ),
            )
            self._audit(item_id, "enqueued", "system", label=label, score=score, priority=priority)
        return item_id

    # --- reviewer side -------------------------------------------------------------------------

    def claim(self, reviewer: str) -> Claim | None:
        """Lease the highest-priority item ``reviewer`` may take; None if there is none.

        None does not mean the queue is empty: the pending items may all be leased to others,
        or be appeals of this reviewer's own decisions (:meth:`pending` counts them all).
        """
        reviewer = _account(reviewer, "reviewer")
        now = self.clock()
        with self._tx():
            row = self._db.execute(
                "SELECT * FROM review_items WHERE status = 'pending' "
                "AND (lease_owner IS NULL OR lease_expires_at <= ?) "
                "AND (excluded_reviewer IS NULL OR excluded_reviewer <> ?) "
                "ORDER BY priority DESC, created_at, item_id LIMIT 1",
                (now, reviewer),
            ).fetchone()
            if row is None:
                return None
            expires = now + self.lease_seconds
            self._db.execute(
                "UPDATE review_items SET lease_owner = ?, lease_expires_at = ? WHERE item_id = ?",
                (reviewer, expires, row["item_id"]),
            )
            if row["lease_owner"] is not None:
                self._audit(row["item_id"], "lease_expired", str(row["lease_owner"]))
            self._audit(row["item_id"], "claimed", reviewer, lease_expires_at=expires)
            original = self._decision(row["parent_item_id"]) if row["kind"] == "appeal" else None
        return Claim(
            row["item_id"], row["content_id"], row["text"], row["label"], row["score"],
            row["priority"], row["kind"], expires, row["parent_item_id"], row["appeal_reason"],
            original["outcome"] if original else None,
        )  # fmt: skip

    def decide(self, item_id: str, reviewer: str, outcome: str, note: str = "") -> None:
        """Record ``reviewer``'s decision; needs their live lease; refuses a second decision."""
        if outcome not in OUTCOMES:
            raise QueueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}", item_id=item_id)
        reviewer = _account(reviewer, "reviewer")
        note = _free_text(note, "note", self.max_chars)
        now = self.clock()
        with self._tx():
            row = self._item(item_id)
            if row["status"] == "decided":
                raise AlreadyDecidedError(f"item {item_id} is already decided", item_id=item_id)
            if row["lease_owner"] != reviewer or row["lease_expires_at"] <= now:
                raise LeaseError(
                    f"{reviewer!r} holds no live lease on {item_id} (owner "
                    f"{row['lease_owner']!r}); claim it first",
                    item_id=item_id,
                )
            try:
                self._db.execute(
                    "INSERT INTO decisions (item_id, reviewer, outcome, note, decided_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (item_id, reviewer, outcome, note, now),
                )
            except sqlite3.IntegrityError as exc:  # the primary key is the last line of defence
                if self._db.execute(
                    "SELECT 1 FROM decisions WHERE item_id = ?", (item_id,)
                ).fetchone():
                    raise AlreadyDecidedError(
                        f"item {item_id} is already decided", item_id=item_id
                    ) from None
                raise QueueError(
                    f"decision refused by the database: {exc}", item_id=item_id
                ) from exc
            self._db.execute(
                "UPDATE review_items SET status = 'decided', lease_owner = NULL, "
                "lease_expires_at = NULL WHERE item_id = ?",
                (item_id,),
            )
            self._audit(item_id, "decided", reviewer, outcome=outcome)
            if row["kind"] == "appeal":
                original = self._decision(row["parent_item_id"])
                event = "overturned" if original["outcome"] != outcome else "upheld"
                self._audit(row["parent_item_id"], event, reviewer, appeal_item_id=item_id)

    def _decision(self, item_id: str) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM decisions WHERE item_id = ?", (item_id,)).fetchone()
        if row is None:
            raise AppealError(f"item {item_id} has no decision yet", item_id=item_id)
        return row

    # --- appeals -------------------------------------------------------------------------------

    def appeal(self, item_id: str, user: str, reason: str = "") -> str:
        """Appeal a decided review item; returns the appeal's ``item_id``."""
        user = _account(user, "user")
        reason = _free_text(reason, "reason", self.max_chars)
        with self._tx():
            row = self._item(item_id)
            if row["kind"] != "review":
                raise AppealError(
                    f"{item_id} is an appeal; appeals cannot be appealed", item_id=item_id
                )
            decision = self._decision(item_id)
            if row["label"] not in self.severity:  # enqueued by a queue with another table
                raise QueueError(
                    f"item {item_id} has label {row['label']!r}, which this queue has no "
                    f"severity for (known: {sorted(self.severity)}); open the queue with the "
                    "severity table the item was enqueued with",
                    item_id=item_id,
                )
            appeal_id = self.new_id()
            priority = appeal_priority(self.severity[row["label"]], row["reach"])
            try:
                self._db.execute(
                    "INSERT INTO review_items (item_id, content_id, text, label, score, reach, "
                    "priority, kind, status, excluded_reviewer, parent_item_id, appeal_reason, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'appeal', 'pending', ?, ?, ?, ?)",
                    (appeal_id, row["content_id"], row["text"], row["label"], row["score"],
                     row["reach"], priority, _fold(decision["reviewer"]), item_id, reason,
                     self.clock()),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise AppealError(f"{item_id} has already been appealed", item_id=item_id) from None
            self._audit(item_id, "appealed", user, appeal_item_id=appeal_id, reason=reason)
        return appeal_id

    # --- read side -----------------------------------------------------------------------------

    def item(self, item_id: str) -> dict:
        """One item's row (state, lease, appeal fields); ItemNotFoundError if there is none."""
        with self._read():
            return dict(self._item(item_id))

    def pending(self) -> int:
        q = "SELECT COUNT(*) FROM review_items WHERE status = 'pending'"
        with self._read() as db:
            return int(db.execute(q).fetchone()[0])

    def leased_to(self, reviewer: str) -> int:
        """How many pending items ``reviewer`` holds a live lease on (claimed, not yet decided):
        :meth:`claim` never hands them out again, to this reviewer or anyone else."""
        reviewer = _account(reviewer, "reviewer")
        q = (
            "SELECT COUNT(*) FROM review_items WHERE status = 'pending' "
            "AND lease_owner = ? AND lease_expires_at > ?"
        )
        with self._read() as db:
            return int(db.execute(q, (reviewer, self.clock())).fetchone()[0])

    def decision(self, item_id: str) -> dict | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM decisions WHERE item_id = ?", (item_id,)).fetchone()
        return dict(row) if row else None

    def audit_trail(self, item_id: str) -> list[dict]:
        """Every event for ``item_id``, oldest first.

        A review item's trail includes its appeal's events; an appeal's trail includes its own
        creation (``appealed``) and outcome (``upheld`` / ``overturned``), which are logged
        under the appealed item (an item has at most one appeal, so they are this appeal's).
        """
        with self._read() as db:
            rows = db.execute(
                "SELECT a.* FROM audit_log a WHERE a.item_id = ? "
                "OR a.item_id IN (SELECT item_id FROM review_items WHERE parent_item_id = ?) "
                "OR (a.event IN ('appealed', 'upheld', 'overturned') AND a.item_id = "
                "(SELECT parent_item_id FROM review_items WHERE item_id = ?)) ORDER BY a.seq",
                (item_id, item_id, item_id),
            ).fetchall()
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    def overturns(self) -> list[TrainingLabel]:
        """Appeals whose outcome differs from the original decision, as training labels."""
        with self._read() as db:
            rows = db.execute(
                "SELECT a.content_id, a.text, a.label, d.outcome FROM review_items a "
                "JOIN decisions d ON d.item_id = a.item_id "
                "JOIN decisions o ON o.item_id = a.parent_item_id "
                "WHERE a.kind = 'appeal' AND d.outcome <> o.outcome ORDER BY d.decided_at"
            ).fetchall()
        return [
            TrainingLabel(r["content_id"], r["text"], r["label"], int(r["outcome"] == "violation"))
            for r in rows
        ]
