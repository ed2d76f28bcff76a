"""Registry: versions on disk, atomic serving switch, rollback through the serving history."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

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


def test_corrupt_pointer_is_reported(registry):
    (registry.root / "SERVING").write_text("{not json")
    with pytest.raises(RegistryError, match="corrupt serving pointer"):
        registry.serving()


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
from drift.errors import RegistryError
from drift.registry import ModelRegistry

root, first, second = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
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


def test_concurrent_activate_from_two_processes(tmp_path, models):
    """Two processes switch the serving version 100 times each on one folder: no call fails with
    anything but "already serving", and no switch is lost from the history or the event log."""
    root = tmp_path / "registry"
    registry = ModelRegistry(root)
    versions = [registry.register(models.base) for _ in range(4)]
    registry.activate(versions[0], reason="initial")
    repo = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _FLIP, str(root), *pair],
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
