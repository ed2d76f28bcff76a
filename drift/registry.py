"""A versioned model registry on disk with an atomic switch of the serving version.

Layout::

    root/
      versions/v0001/{point.txt, q10.txt, q90.txt, features.json, meta.json}
      versions/v0002/...
      SERVING            {"version": "v0002", "history": ["v0001", "v0002"], "last_switch": {...}}
      events.jsonl       one line per activate / rollback, with the reason
      registry.lock      empty; locked by every register / activate / rollback (and history)

Why it is safe: a version directory is written completely under a temporary name and then
renamed into place, and the ``SERVING`` pointer is replaced with ``os.replace``, which POSIX makes
atomic. A reader (or a crash) sees either the old pointer or the new one, never half a file. This
is the same trick as a blue/green "symlink flip". A rename is atomic but not durable by itself:
after a power cut the disk holds only what was fsynced. So ``register`` fsyncs every file of the
new version (``meta.json`` included) and its folder before the rename into ``versions/``, and
``versions/`` after it, before it returns: a pointer written later never names a version whose
files or whose rename a power cut could lose.

The pointer and the event log agree after any crash, a power cut included. A switch touches two
files, and no ``os.replace`` covers both, so one of them has to be the record of truth: the
pointer. It carries the switch that produced it (``last_switch``: kind, versions, reason, time),
so replacing it commits the switch *and* its event in one atomic step. Appending that event to
``events.jsonl`` comes after, as a copy, and is fsynced. Before every commit, under the lock, the
log is made complete and durable up to the pointer's ``last_switch``: the line is appended if it
is missing, and the file and its folder are fsynced either way (the previous append may have
stopped between its write and its fsync). So whenever a switch commits, the log is durable up to
the switch before it, and however the new one is interrupted (a crash, a failed write, a power
cut before the kernel wrote the log back) the log is one line short at most, and only ever the
last line: ``events()`` shows that line from the pointer at once, and the next ``activate`` /
``rollback`` appends it before making its own switch. A last line cut off half-written (power
loss during the append) is dropped and re-written the same way. Because two consecutive switches
never have the same (kind, from, to), "the log's last line equals ``last_switch``" is an
unambiguous test of whether the copy was made. The alternative, writing the event first and
counting it only once the pointer agrees, needs a rule to discard orphaned lines; this design
never writes a line for a switch that did not happen.

The order of the fsyncs is what makes that hold across a power cut: the new pointer's bytes are
fsynced before the rename, and the directory (the rename itself) before the event is appended,
so the log never holds a switch that the pointer on disk lacks. The guarantee is as good as the
file system's fsync: where fsync on a directory is refused (EINVAL on some file systems) the
failure is logged and the rename is only as durable as the file system makes it.

Errors follow from that: an exception from ``activate`` or ``rollback`` means nothing changed,
because everything that can fail (reading the log, repairing it and making it durable, writing
the new pointer) runs before the commit. The steps after it, the directory fsync and the append,
cannot undo a committed switch. Each is tried on its own, so one failing never skips the other; a
failure is logged as a warning, the pointer keeps the event for the next write, and the caller
gets the switch.

Every writer of one registry must run this code. A writer that does not know ``last_switch``
rewrites the pointer keeping the one it read, by then stale, and appends its own event; the next
writer here would take the stale ``last_switch`` for a missing line and append it again, as a
duplicate out of order. So a rolling upgrade stops the old writers before new ones write to the
same registry (readers of either kind are safe: they ignore the key or use it).

Several writers (processes, threads, or registry objects on one folder) are safe too. Every
read-modify-write holds an exclusive lock on ``registry.lock`` (:func:`evals.files.exclusive_lock`:
``flock`` on POSIX, the ``filelock`` package on Windows): the next version number is allocated
under it, and so is the read of ``SERVING`` that an activation extends, so no two writers get the
same number and no switch is lost. Temporary names carry the pid and a uuid, so writers never
share a scratch file. On a network file system the lock is only as good as the server's lock
support. ``events`` takes the shared lock (exclusive on Windows), so it never reads a line a
writer is still appending; ``serving`` and ``load`` take no lock: they rely on the atomic
renames.

A version id is ``v`` plus at least four digits (``v0001``), and only registered ids are
accepted: a path such as ``"../other/v0001"`` is refused, not served. ``meta.json`` holds the
caller's metadata plus ``version`` and ``registered_at``, which the registry writes; a caller's
key of either name is refused (RegistryError) rather than silently overwritten or, worse, allowed
to contradict the folder it is stored in.

``history`` is the stack of versions that have served, so a rollback pops back to whatever served
before the current one, not merely to the highest older version number.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from drift.errors import NoPreviousVersionError, RegistryError
from drift.model import DemandModel
from evals.files import exclusive_lock, shared_lock

__all__ = ["ModelRegistry", "Switch"]

log = logging.getLogger(__name__)

# The names the registry writes; drift.timeline.run_state lists exactly these, nothing else.
VERSION_ID = re.compile(r"v\d{4,}")  # a version folder (it also holds meta.json)
STAGING_NAME = re.compile(r"\.staging-\d+-[0-9a-f]{32}")  # a version being written
POINTER_TMP_NAME = re.compile(r"SERVING\.\d+\.[0-9a-f]{32}\.tmp")  # a pointer being replaced
# meta.json keys the registry writes; a caller's meta may not use them.
RESERVED_META = frozenset({"version", "registered_at"})


@dataclass(frozen=True)
class Switch:
    """One change of the serving version: ``kind`` is "activate" or "rollback"."""

    kind: str
    from_version: str | None
    to_version: str
    reason: str
    at: float


SWITCH_KEYS = frozenset(f.name for f in fields(Switch))  # an event line's (and last_switch's) keys


class ModelRegistry:
    """Store model versions under ``root`` and choose which one serves.

    A tiny model (one feature, two trees) is enough to show the calls:

    >>> import tempfile, pandas as pd
    >>> frame = pd.DataFrame({"temp": [0.1, 0.5, 0.9] * 10, "cnt": [10, 50, 90] * 10})
    >>> model = DemandModel.train(frame, features=("temp",), n_estimators=2)
    >>> root = tempfile.TemporaryDirectory()
    >>> registry = ModelRegistry(root.name)
    >>> v1 = registry.register(model, {"trained_on": "2011"})
    >>> v1
    'v0001'
    >>> switch = registry.activate(v1, reason="first deployment")  # a Switch, also in events()
    >>> switch.kind, switch.from_version, switch.to_version
    ('activate', None, 'v0001')
    >>> registry.serving(), registry.meta(v1)["trained_on"]
    ('v0001', '2011')
    >>> root.cleanup()
    """

    def __init__(self, root: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.clock = clock
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, DemandModel] = {}

    # ---- versions ---------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """All registered versions, oldest first."""
        names = (p.name for p in (self.root / "versions").iterdir())
        return sorted((n for n in names if VERSION_ID.fullmatch(n)), key=lambda n: int(n[1:]))

    def register(self, model: DemandModel, meta: dict[str, Any] | None = None) -> str:
        """Save ``model`` as the next version and return its name (e.g. ``"v0003"``).

        ``meta`` is stored in the version's ``meta.json`` beside the registry's own keys
        (:data:`RESERVED_META`); RegistryError if it uses one of them. Its values must be JSON
        values (numbers, strings, bools, None, lists and dicts of them); a numpy scalar or array
        is stored as the Python number or list it holds, so :meth:`meta` returns it as a number,
        and anything else is a RegistryError (``str`` of it was stored before, and read back as a
        string).
        """
        clash = sorted(RESERVED_META & set(meta or {}))
        if clash:
            raise RegistryError(
                f"meta keys {clash} are written by the registry itself (reserved: "
                f"{sorted(RESERVED_META)}); rename them, e.g. 'source_{clash[0]}'"
            )
        meta = json.loads(json.dumps(meta or {}, default=_json_value))  # checked before any write
        # The slow part (writing the boosters) runs outside the lock, in a folder no other
        # writer can pick; only numbering and the rename into place are serialised.
        staging = self.root / "versions" / f".staging-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            model.save(staging)
            with self._locked():
                existing = self.versions()
                version = f"v{int(existing[-1][1:]) + 1 if existing else 1:04d}"
                record = {"version": version, "registered_at": self.clock(), **meta}
                (staging / "meta.json").write_text(json.dumps(record, indent=2))
                # A power cut keeps only what was fsynced: without this, a pointer written later
                # could durably name a version whose files are empty or whose rename was lost.
                for path in sorted(staging.rglob("*")):
                    if path.is_file():
                        _fsync(path)  # raises: nothing is registered, the staging folder goes
                _fsync_dir(staging, f"the files of {version}")
                os.replace(staging, self.root / "versions" / version)
                _fsync_dir(self.root / "versions", f"the new version {version}")  # the rename
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # only left over if something failed
        log.info("registered model %s", version)
        return version

    def meta(self, version: str) -> dict[str, Any]:
        """The metadata stored with ``version``."""
        return json.loads((self._dir(version) / "meta.json").read_text())

    def load(self, version: str) -> DemandModel:
        """Load (and cache) the model of ``version``."""
        if version not in self._cache:
            self._cache[version] = DemandModel.load(self._dir(version))
        return self._cache[version]

    # ---- serving pointer ----------------------------------------------------------------------
    def serving(self) -> str | None:
        """The version currently serving, or None before the first activation."""
        state = self._read_state()
        return state["history"][-1] if state["history"] else None

    def previous(self) -> str | None:
        """The version that served before the current one, if any."""
        history = self._read_state()["history"]
        return history[-2] if len(history) >= 2 else None

    def activate(self, version: str, *, reason: str) -> Switch:
        """Make ``version`` the serving version (atomic pointer switch).

        If this raises, nothing changed: the same version serves and no event was added.
        """
        with self._locked():
            self._dir(version)  # raises if not a registered version id
            state = self._read_state()
            self._repair_events(state)
            current = state["history"][-1] if state["history"] else None
            if version == current:
                raise RegistryError(f"{version} is already serving", version=version)
            state["history"].append(version)
            return self._switch("activate", current, version, reason, state)

    def rollback(self, *, reason: str) -> Switch:
        """Return to the version that served before the current one.

        If this raises, nothing changed, as for :meth:`activate`.
        """
        with self._locked():
            state = self._read_state()
            if len(state["history"]) < 2:
                raise NoPreviousVersionError(
                    "nothing served before the current version; cannot roll back",
                    version=state["history"][-1] if state["history"] else None,
                )
            self._repair_events(state)
            current = state["history"].pop()
            return self._switch("rollback", current, state["history"][-1], reason, state)

    def events(self) -> list[Switch]:
        """Every switch so far, oldest first.

        Read from ``events.jsonl`` plus, if a crash cut the log short, the last switch as the
        pointer records it (see the module docstring); the file itself is repaired by the next
        write.
        """
        with self._locked(shared=True):  # never read a line a writer is still appending
            state = self._read_state()
            lines, _ = self._read_events()
        missing = _missing_switch(lines, state)
        return [Switch(**line) for line in lines] + ([Switch(**missing)] if missing else [])

    # ---- internals ----------------------------------------------------------------------------
    @contextmanager
    def _locked(self, *, shared: bool = False) -> Iterator[None]:
        """Hold ``registry.lock`` (:func:`evals.files.exclusive_lock`, or its ``shared_lock`` for
        a read). Each call opens its own file description, so the lock also separates threads of
        one process and two registry objects on the same folder."""
        take = shared_lock if shared else exclusive_lock
        with take(self.root / "registry.lock", f"another writer of the registry at {self.root}"):
            yield

    def _dir(self, version: str) -> Path:
        """The folder of a registered ``version``; RegistryError for anything else (a path, a
        malformed id, None), so a caller can never point the registry outside ``versions/``."""
        if not isinstance(version, str) or not VERSION_ID.fullmatch(version):
            raise RegistryError(
                f"not a version id: {version!r} (expected 'v' and 4+ digits, e.g. 'v0001'); "
                f"registered: {self.versions()}",
                version=version if isinstance(version, str) else None,
            )
        path = self.root / "versions" / version
        if not (path / "meta.json").exists():
            raise RegistryError(
                f"unknown model version {version!r}; registered: {self.versions()}", version=version
            )
        return path

    def _read_state(self) -> dict[str, Any]:
        """The ``SERVING`` pointer as a dict; RegistryError naming the file if it is not UTF-8
        JSON of the shape the registry writes (an object whose ``history`` is a list of version
        ids, with a ``last_switch`` event or none). The registry itself never writes anything
        else (see the module docstring), so this is a hand edit or a damaged disk."""
        path = self.root / "SERVING"
        if not path.exists():
            return {"version": None, "history": []}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
            raise RegistryError(f"corrupt serving pointer {path}: {exc}") from exc
        history = state.get("history") if isinstance(state, dict) else None
        if not (isinstance(history, list) and all(isinstance(v, str) for v in history)):
            raise RegistryError(
                f"corrupt serving pointer {path}: expected a JSON object whose 'history' is a "
                f"list of version ids, got {_excerpt(state)}"
            )
        if state.get("last_switch") is not None and not _is_switch(state["last_switch"]):
            raise RegistryError(
                f"corrupt serving pointer {path}: 'last_switch' is not a switch event "
                f"(keys {sorted(SWITCH_KEYS)}), got {_excerpt(state['last_switch'])}"
            )
        return state

    def _read_events(self) -> tuple[list[dict[str, Any]], int]:
        """The complete lines of ``events.jsonl`` as dicts, and the byte length they fill.

        Bytes after the last newline are an append cut off by a crash: not an event, and not
        counted in the length, so a repair can truncate them.
        """
        path = self.root / "events.jsonl"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return [], 0
        except OSError as exc:  # a directory, no permission: the log cannot be read or repaired
            raise RegistryError(f"cannot read the event log {path}: {exc}") from exc
        complete = data[: data.rfind(b"\n") + 1]
        lines = []
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError as exc:  # not JSON, or not UTF-8
                raise RegistryError(f"corrupt event log {path}, line {number}: {exc}") from exc
            if not _is_switch(event):
                raise RegistryError(
                    f"corrupt event log {path}, line {number}: expected a switch event, a JSON "
                    f"object with keys {sorted(SWITCH_KEYS)}, got {_excerpt(event)}"
                )
            lines.append(event)
        return lines, len(complete)

    def _repair_events(self, state: dict[str, Any]) -> None:
        """Make ``events.jsonl`` complete and durable up to the pointer's ``last_switch``.

        Appends that switch if the log does not end with it (dropping a half-written last line
        first), then fsyncs the log whether or not it appended, and the folder: the previous
        switch's own append may have been written but not yet fsynced (or have created the file
        with no directory fsync since), and the commit that follows must not leave it to a power
        cut. Runs under the exclusive lock, before a new switch, so a failure here raises while
        nothing has changed yet.
        """
        lines, length = self._read_events()
        missing = _missing_switch(lines, state)
        path = self.root / "events.jsonl"
        try:
            if missing is not None:
                log.warning("event log is missing the last switch %s; re-appending it", missing)
                _append_event(path, missing, keep=length)
            elif path.exists():
                _fsync(path)
        except OSError as exc:
            raise RegistryError(f"cannot repair the event log {path}: {exc}") from exc
        _fsync_dir(self.root, "a newly created event log")

    def _switch(
        self, kind: str, current: str | None, target: str, reason: str, state: dict[str, Any]
    ) -> Switch:
        switch = Switch(kind, current, target, reason, self.clock())
        state["version"] = target
        state["last_switch"] = asdict(switch)  # the event commits with the pointer
        pointer = self.root / "SERVING"
        tmp = pointer.with_name(f"SERVING.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(json.dumps(state))
            with open(tmp, "rb+") as handle:  # make the bytes durable before the rename
                os.fsync(handle.fileno())
            os.replace(tmp, pointer)  # the atomic switch: from here on it has happened
        finally:
            tmp.unlink(missing_ok=True)  # only still there if the switch failed
        # Committed: nothing below may raise, or a caller would take a switch that happened for
        # one that did not. The pointer holds the event until the copy below is made. The two
        # steps fail separately, so a file system that refuses a directory fsync still gets its
        # events appended; the directory goes first, so that after a power cut the log never
        # holds a switch the pointer on disk lacks.
        _fsync_dir(self.root, f"the {kind} {current} -> {target}")  # the rename itself
        try:
            _append_event(self.root / "events.jsonl", state["last_switch"])
        except OSError as exc:
            log.warning(
                "%s %s -> %s committed, but its events.jsonl line may not be on disk (%s); the "
                "pointer keeps the event and the next write repairs the log",
                kind,
                current,
                target,
                exc,
            )
        log.info("%s %s -> %s: %s", kind, current, target, reason)
        return switch


def _is_switch(value: Any) -> bool:
    """Whether ``value`` is a switch event as the registry writes it: ``asdict(Switch(...))``."""
    return isinstance(value, dict) and set(value) == SWITCH_KEYS


def _excerpt(value: Any) -> str:
    """``value``'s JSON, cut to 80 characters, for an error message."""
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _missing_switch(lines: list[dict[str, Any]], state: dict[str, Any]) -> dict[str, Any] | None:
    """The pointer's ``last_switch`` if the log does not end with it, else None.

    Consecutive switches always differ in (from, to) (a version never succeeds itself), so the
    last line equal to ``last_switch`` means its copy was made. A pointer without ``last_switch``
    has no event to copy.
    """
    last = state.get("last_switch")
    if last is None or (lines and lines[-1] == last):
        return None
    return last


def _append_event(path: Path, event: dict[str, Any], *, keep: int | None = None) -> None:
    """Append ``event`` to ``path`` as one JSON line and fsync it; ``keep`` first cuts the file to
    that many bytes (a torn last line)."""
    with open(path, "ab") as events:
        if keep is not None:
            events.truncate(keep)  # "ab" still appends at the (new) end
        events.write((json.dumps(event) + "\n").encode())
        events.flush()
        os.fsync(events.fileno())


def _fsync_dir(path: Path, what: str) -> None:
    """fsync a directory, so that ``what`` (a rename, a new file in it) survives a power cut.

    Logged, never raised: some file systems refuse to fsync a directory (EINVAL), and there the
    registry still works, with renames as durable as the file system makes them.
    """
    try:
        _fsync(path)
    except OSError as exc:
        log.warning("cannot fsync %s (%s): %s may not survive a power cut", path, exc, what)


def _fsync(path: Path) -> None:
    """Flush ``path`` to disk: a file's bytes, or a directory's entries (a rename, a new file)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _json_value(value: Any) -> Any:
    """``json.dumps``'s fallback for meta values: a numpy scalar or array as the Python number or
    list it holds; RegistryError for anything else JSON has no type for."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()  # a numpy scalar's tolist() is its Python number
    raise RegistryError(
        f"meta value {value!r} ({type(value).__name__}) is not a JSON value; pass numbers, "
        "strings, bools, None, or lists and dicts of them"
    )
