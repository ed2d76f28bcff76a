"""Registry: versions on disk, atomic serving switch, rollback through the serving history."""

import doctest
import errno
import json
import logging
import os
import re
import stat
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import drift.registry
from drift.errors import NoPreviousVersionError, RegistryError
from drift.registry import ModelRegistry


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(tmp_path / "registry", clock=lambda: 1000.0)


def test_register_activate_and_reload(registry, models, bike_data):
    v1 = registry.register(models.base, {"note": "first"})
    assert v1 == "v0001" and registry.serving() is None
    registry.activate(v1, reason="initial")
    assert registry.serving() == v1
    fresh = ModelRegistry(registry.root)  # a new process sees the same state
    assert fresh.serving() == v1
    assert fresh.meta(v1)["note"] == "first"
    rows = bike_data.holdout.head(50)
    np.testing.assert_allclose(fresh.load(v1).predict(rows).value, models.base.predict(rows).value)


def test_rollback_follows_history_not_version_numbers(registry, models):
    v1, v2, v3 = (registry.register(m) for m in (models.base, models.benign, models.bad))
    registry.activate(v1, reason="a")
    registry.activate(v3, reason="b")
    registry.activate(v2, reason="c")
    assert registry.rollback(reason="v2 is bad").to_version == v3
    assert registry.rollback(reason="v3 is bad too").to_version == v1
    with pytest.raises(NoPreviousVersionError):
        registry.rollback(reason="nothing left")
    kinds = [e.kind for e in registry.events()]
    assert kinds == ["activate", "activate", "activate", "rollback", "rollback"]
    assert registry.events()[-1].reason == "v3 is bad too"


def test_switch_is_atomic_replace(registry, models, monkeypatch):
    """The pointer is written to a temp file and os.replace'd: a crash before the replace leaves
    the old pointer intact and readable."""
    v1, v2 = registry.register(models.base), registry.register(models.benign)
    registry.activate(v1, reason="initial")
    import drift.registry as module

    def crash(*args, **kwargs):
        raise OSError("power cut")

    monkeypatch.setattr(module.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        registry.activate(v2, reason="interrupted")
    monkeypatch.undo()
    assert ModelRegistry(registry.root).serving() == v1
    assert json.loads((registry.root / "SERVING").read_text())["version"] == v1
    assert [e.to_version for e in registry.events()] == [v1]  # no event for a switch not made


def test_errors_name_the_version(registry, models):
    with pytest.raises(RegistryError, match="unknown model version 'v0042'") as info:
        registry.activate("v0042", reason="typo")
    assert info.value.version == "v0042"
    v1 = registry.register(models.base)
    registry.activate(v1, reason="initial")
    with pytest.raises(RegistryError, match="already serving"):
        registry.activate(v1, reason="again")
    with pytest.raises(NoPreviousVersionError):
        registry.rollback(reason="only one")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "Expecting property name"),
        (b"\xff\xfe garbage \x00\x81", "can't decode byte 0xff"),  # was a UnicodeDecodeError
        (b"[]", "expected a JSON object whose 'history' is a list"),  # was a TypeError
        (b'{"version": "v0001", "history": "v0001"}', "'history' is a list of version ids"),
        (b'{"history": [1]}', "'history' is a list of version ids"),
        (b'{"history": ["v0001"], "last_switch": [1]}', "'last_switch' is not a switch event"),
    ],
)
def test_a_corrupt_pointer_is_a_registry_error_naming_the_file(registry, models, content, why):
    """Binary garbage or JSON of the wrong shape escaped as UnicodeDecodeError / TypeError (found
    by a review). Nothing is changed: the pointer stays as it was."""
    version = registry.register(models.base)
    pointer = registry.root / "SERVING"
    pointer.write_bytes(content)
    for call in (
        registry.serving,
        registry.previous,
        registry.events,
        lambda: registry.activate(version, reason="x"),
        lambda: registry.rollback(reason="x"),
    ):
        with pytest.raises(
            RegistryError, match=f"corrupt serving pointer {re.escape(str(pointer))}: .*{why}"
        ):
            call()
    assert pointer.read_bytes() == content


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"\xff\xfe garbage", "Expecting value"),
        (b'["not", "a", "switch"]', "expected a switch event"),  # was a TypeError
        (b'{"kind": "activate"}', "expected a switch event"),
    ],
)
def test_a_corrupt_event_line_is_a_registry_error_naming_the_file_and_line(
    registry, models, line, why
):
    v1, v2 = registry.register(models.base), registry.register(models.benign)
    registry.activate(v1, reason="initial")
    events = registry.root / "events.jsonl"
    events.write_bytes(events.read_bytes() + line + b"\n")
    with pytest.raises(
        RegistryError, match=f"corrupt event log {re.escape(str(events))}, line 2: {why}"
    ):
        registry.events()
    with pytest.raises(RegistryError, match="corrupt event log"):
        registry.activate(v2, reason="refused before the switch")
    assert registry.serving() == v1


def test_the_class_docstring_example_runs():
    """Its ``+SKIP`` covered the first line only, so the rest failed with NameError."""
    results = doctest.testmod(drift.registry)
    assert results.attempted > 0 and results.failed == 0


def test_meta_may_not_overwrite_the_registrys_own_keys(registry, models):
    """``version`` and ``registered_at`` are the registry's own meta.json keys: a caller's key of
    either name would contradict the folder it is stored in (v0002 saying v0001), so it is
    refused and nothing is registered."""
    registry.register(models.base)
    for meta in ({"version": "v0001"}, {"registered_at": 0.0, "note": "x"}):
        with pytest.raises(RegistryError, match=r"meta keys \['(version|registered_at)'\]"):
            registry.register(models.benign, meta)
    assert registry.versions() == ["v0001"]
    assert [p.name for p in (registry.root / "versions").iterdir()] == ["v0001"]
    v2 = registry.register(models.benign, {"source_version": "v0001"})
    assert registry.meta(v2)["version"] == v2 == "v0002"
    assert registry.meta(v2)["source_version"] == "v0001"


def test_meta_keeps_numpy_numbers_as_numbers(registry, models):
    """``json.dumps(default=str)`` stored np.float32(25.5) as the string "25.5" and an array as
    "[0 1 2]", so meta() did not return what was registered (found by a review)."""
    meta = {"mae": np.float32(25.5), "rows": np.int64(3200), "windows": np.arange(3), "n": 1}
    version = registry.register(models.base, meta)
    back = registry.meta(version)
    assert (back["mae"], back["rows"], back["windows"], back["n"]) == (25.5, 3200, [0, 1, 2], 1)
    assert isinstance(back["mae"], float) and isinstance(back["rows"], int)
    with pytest.raises(RegistryError, match=r"meta value .* is not a JSON value"):
        registry.register(models.benign, {"trained_from": Path("/data")})
    assert registry.versions() == [version]  # nothing registered


# ---- the pointer and the event log agree ------------------------------------------------------


def _replay(events):
    """The serving history that a list of switches produces (asserting each one is consistent)."""
    history: list[str] = []
    for event in events:
        assert event.from_version == (history[-1] if history else None), event
        if event.kind == "activate":
            history.append(event.to_version)
        else:
            history.pop()
            assert history[-1] == event.to_version, event
    return history


def _log_lines(root):
    return [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]


def test_a_switch_that_raises_changes_nothing(registry, models):
    """Everything that can fail runs before the pointer is replaced, so an exception means the
    old version still serves: an unreadable event log is a RegistryError before the switch."""
    v1, v2 = registry.register(models.base), registry.register(models.benign)
    registry.activate(v1, reason="initial")
    registry.activate(v2, reason="second")
    events = registry.root / "events.jsonl"
    events.rename(registry.root / "events.bak")
    events.mkdir()  # now neither readable nor appendable
    pointer = (registry.root / "SERVING").read_bytes()
    with pytest.raises(RegistryError, match="cannot read the event log"):
        registry.activate(v1, reason="refused")
    with pytest.raises(RegistryError, match="cannot read the event log"):
        registry.rollback(reason="refused")
    assert (registry.root / "SERVING").read_bytes() == pointer and registry.serving() == v2
    events.rmdir()
    (registry.root / "events.bak").rename(events)
    registry.activate(v1, reason="after the fix")
    assert [e.reason for e in registry.events()] == ["initial", "second", "after the fix"]


def test_a_failed_append_after_the_switch_is_not_an_error_and_is_repaired(
    registry, models, monkeypatch
):
    """Once the pointer is replaced the switch has happened, so the caller gets it (no exception)
    and the event, carried by the pointer, reaches events.jsonl with the next write."""
    v1, v2 = registry.register(models.base), registry.register(models.benign)
    registry.activate(v1, reason="initial")
    import drift.registry as module

    def disk_full_for_the_log(file, mode="r", *args, **kwargs):
        if Path(file).name == "events.jsonl":
            raise OSError(28, "No space left on device")
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(module, "open", disk_full_for_the_log, raising=False)
    switch = registry.activate(v2, reason="committed")
    monkeypatch.undo()
    assert switch.to_version == v2 and registry.serving() == v2
    assert len(_log_lines(registry.root)) == 1  # the copy was not made...
    assert [e.reason for e in registry.events()] == ["initial", "committed"]  # ...but it is seen
    registry.rollback(reason="back")
    assert [line["reason"] for line in _log_lines(registry.root)] == [
        "initial",
        "committed",
        "back",
    ]


def test_register_makes_the_version_durable_before_and_after_the_rename(
    registry, models, monkeypatch
):
    """A power cut can't be simulated, so record what is fsynced (by inode, which the rename
    keeps). Only the pointer and the event log were: after a power cut, SERVING could durably
    name a version whose files were empty or whose rename into versions/ was lost."""
    calls = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        calls.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def recording_replace(src, dst):
        calls.append(("replace", Path(dst).name))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    version = registry.register(models.base, {"note": "durable"})
    folder = registry.root / "versions" / version
    rename = calls.index(("replace", version))
    before = {ino for kind, ino in calls[:rename] if kind == "fsync"}
    after = {ino for kind, ino in calls[rename + 1 :] if kind == "fsync"}
    files = {path.name: path.stat().st_ino for path in folder.iterdir()}
    assert {"meta.json", "features.json", "point.txt", "q10.txt", "q90.txt"} <= set(files)
    assert set(files.values()) <= before  # every file's bytes, meta.json included
    assert folder.stat().st_ino in before  # the folder's entries, before it is published
    assert (registry.root / "versions").stat().st_ino in after  # the rename itself


def test_a_file_system_that_refuses_a_directory_fsync_still_gets_every_event(
    registry, models, monkeypatch, caplog
):
    """EINVAL from fsync on a directory (some file systems) is logged; the switch and its
    events.jsonl line are made all the same."""
    v1, v2 = registry.register(models.base), registry.register(models.benign)
    fsync = os.fsync

    def no_directory_fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", no_directory_fsync)
    with caplog.at_level(logging.WARNING, logger="drift.registry"):
        registry.activate(v1, reason="initial")
        registry.activate(v2, reason="second")
        registry.rollback(reason="back")
    assert [line["reason"] for line in _log_lines(registry.root)] == ["initial", "second", "back"]
    assert "Invalid argument" in caplog.text and "not appended" not in caplog.text


def test_the_event_log_is_durable_up_to_the_previous_switch_at_every_commit(
    registry, models, monkeypatch
):
    """A power cut keeps only what was fsynced. Model it: the durable log is the file as it was
    at its last successful fsync. Whenever a new pointer is committed, that durable log must hold
    every earlier switch, even when an append's own fsync never happened (here it fails, as if
    the process died between the write and the fsync), so a power cut after two quick switches
    loses at most the last line, which the pointer supplies."""
    path = registry.root / "events.jsonl"
    versions = [registry.register(m) for m in (models.base, models.benign, models.bad)]
    done: list[dict] = []  # the switches made so far, as the pointer records them
    durable = {"log": b""}
    phase = {"committed": False, "fail_fsync_after_commit": False}
    fsync, replace = os.fsync, os.replace

    def is_the_log(fd):
        return path.exists() and os.fstat(fd).st_ino == path.stat().st_ino

    def recording_fsync(fd):
        if is_the_log(fd):
            if phase["committed"] and phase["fail_fsync_after_commit"]:
                raise OSError(errno.EIO, "Input/output error")
            durable["log"] = path.read_bytes()
        fsync(fd)

    def checking_replace(src, dst):
        if Path(dst).name == "SERVING":
            assert [json.loads(line) for line in durable["log"].splitlines()] == done
            phase["committed"] = True
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", checking_replace)
    steps = [
        (lambda: registry.activate(versions[0], reason="first"), False),
        (lambda: registry.activate(versions[1], reason="second"), True),
        (lambda: registry.activate(versions[2], reason="third"), True),
        (lambda: registry.rollback(reason="back"), False),
        (lambda: registry.activate(versions[0], reason="fifth"), True),
    ]
    for switch, fail in steps:
        phase.update(committed=False, fail_fsync_after_commit=fail)
        done.append(asdict(switch()))
    monkeypatch.undo()
    path.write_bytes(durable["log"])  # the power cut: only fsynced bytes survive
    assert len(_log_lines(registry.root)) == len(done) - 1
    assert [asdict(e) for e in registry.events()] == done
    registry.rollback(reason="after the power cut")
    assert [e["reason"] for e in _log_lines(registry.root)] == [
        "first",
        "second",
        "third",
        "back",
        "fifth",
        "after the power cut",
    ]


_DIE_AFTER_POINTER = """
import os, sys
from pathlib import Path
import drift.registry as module
from drift.model import DemandModel
from drift.registry import ModelRegistry

root, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
registry = ModelRegistry(root)
replace, switches = os.replace, []

def replace_then_die(src, dst):  # killed right after the atomic switch, before the event append
    replace(src, dst)
    if Path(dst).name == "SERVING":
        switches.append(dst)
        if len(switches) == 2:
            os._exit(9)

module.os.replace = replace_then_die
model = DemandModel.load(model_dir)
registry.activate(registry.register(model), reason="first")
registry.activate(registry.register(model), reason="second")
"""


def test_a_process_killed_between_pointer_and_event_log_loses_no_event(tmp_path, models):
    """A real process dies after replacing SERVING and before appending to events.jsonl. The
    pointer carries the switch, so v0002's deployment is on record (and in triage's
    ``2_deployments``) at once, and the next write copies it into the log."""
    root, model_dir = tmp_path / "registry", tmp_path / "model"
    models.base.save(model_dir)
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", _DIE_AFTER_POINTER, str(root), str(model_dir)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 9, child.stderr
    registry = ModelRegistry(root)
    assert registry.serving() == "v0002"
    assert len(_log_lines(root)) == 1  # the crash left the log one line short
    events = registry.events()  # and the reader sees the missing switch at once
    assert [(e.kind, e.to_version, e.reason) for e in events] == [
        ("activate", "v0001", "first"),
        ("activate", "v0002", "second"),
    ]
    assert _replay(events) == json.loads((root / "SERVING").read_text())["history"]
    registry.rollback(reason="after the crash")  # the next write repairs the file itself
    assert [line["reason"] for line in _log_lines(root)] == ["first", "second", "after the crash"]
    assert _replay(registry.events()) == ["v0001"]


def test_a_half_written_last_event_is_replaced(registry, models):
    """A power cut during the append can leave a torn last line; it is not parsed as an event,
    the pointer supplies the event, and the next write re-writes the line whole."""
    v1, v2 = registry.register(models.base), registry.register(models.benign)
    registry.activate(v1, reason="initial")
    registry.activate(v2, reason="torn")
    events = registry.root / "events.jsonl"
    events.write_bytes(events.read_bytes()[:-20])
    assert [e.reason for e in registry.events()] == ["initial", "torn"]
    registry.rollback(reason="back")
    assert [line["reason"] for line in _log_lines(registry.root)] == ["initial", "torn", "back"]


# ---- several writers on one folder (threads and processes) -----------------------------------


def test_concurrent_register_from_two_registry_objects(tmp_path, models):
    """Two registry objects on one folder, registering at once from threads: every call gets its
    own version number and no scratch folder is shared or left behind."""
    root = tmp_path / "registry"
    writers = [ModelRegistry(root), ModelRegistry(root)]
    results: list[str] = []
    errors: list[BaseException] = []

    def register_three(registry):
        for _ in range(3):
            try:
                results.append(registry.register(models.base))
            except BaseException as exc:  # collected and asserted on below
                errors.append(exc)

    threads = [threading.Thread(target=register_three, args=(w,)) for w in writers * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [f"v{n:04d}" for n in range(1, 13)]
    assert writers[0].versions() == sorted(results)
    assert sorted(p.name for p in (root / "versions").iterdir()) == sorted(results)
    assert {writers[1].meta(v)["version"] for v in results} == set(results)


_FLIP = """
import sys, time
from pathlib import Path
import evals.files
from drift.errors import RegistryError
from drift.registry import ModelRegistry

root, first, second, backend = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
if backend == "filelock":  # the lock Windows uses, run here by hiding fcntl as on Windows
    evals.files.fcntl = None
registry = ModelRegistry(root)
(root / f"ready-{first}").touch()
while not (root / "go").exists():  # start together, so the two writers really overlap
    time.sleep(0.001)
done = 0
for i in range(100):
    try:
        registry.activate((first, second)[i % 2], reason="flip")
        done += 1
    except RegistryError as exc:
        if "already serving" not in str(exc):
            raise
print(done)
"""


@pytest.mark.parametrize("backend", ["flock", "filelock"])
def test_concurrent_activate_from_two_processes(tmp_path, models, backend):
    """Two processes switch the serving version 100 times each on one folder: no call fails with
    anything but "already serving", and no switch is lost from the history or the event log.
    Both lock back-ends: POSIX ``flock`` and the ``filelock`` package that Windows uses."""
    root = tmp_path / "registry"
    registry = ModelRegistry(root)
    versions = [registry.register(models.base) for _ in range(4)]
    registry.activate(versions[0], reason="initial")
    repo = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _FLIP, str(root), *pair, backend],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pair in (versions[0:2], versions[2:4])
    ]
    deadline = time.monotonic() + 60
    while len(list(root.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    (root / "go").touch()
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    switches = sum(int(stdout) for stdout, _ in outputs)
    assert switches > 0
    history = json.loads((root / "SERVING").read_text())["history"]
    assert len(history) == 1 + switches
    assert len(registry.events()) == 1 + switches
    assert len(_log_lines(root)) == 1 + switches  # every copy made, none left to repair
    assert _replay(registry.events()) == history
    assert not list(root.glob("SERVING*.tmp"))


# ---- version ids are ids, not paths ---------------------------------------------------------


@pytest.mark.parametrize("bad", ["../versions/v0002", "v2", "", "v0002/", None, 2])
def test_activate_refuses_anything_but_a_registered_version_id(registry, models, bad):
    v1, _ = registry.register(models.base), registry.register(models.benign)
    registry.activate(v1, reason="initial")
    with pytest.raises(RegistryError, match=r"registered: \['v0001', 'v0002'\]"):
        registry.activate(bad, reason="alias")
    with pytest.raises(RegistryError):
        registry.load(bad)
    assert registry.serving() == v1 and len(registry.events()) == 1


def test_activate_refuses_another_registrys_model_by_absolute_path(tmp_path, registry, models):
    other = ModelRegistry(tmp_path / "other")
    foreign = other.root / "versions" / other.register(models.bad)
    registry.activate(registry.register(models.base), reason="initial")
    with pytest.raises(RegistryError, match="not a version id"):
        registry.activate(str(foreign), reason="foreign")
    assert registry.serving() == "v0001"
