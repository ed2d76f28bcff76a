"""Registry: versions on disk, atomic serving switch, rollback through the serving history."""

import json

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
