"""Errors raised by the drift monitor.

Every error derives from one root, so a caller can catch the whole system with one clause::

    DriftError
    ├── ConfigError          a MonitorConfig field, a detector's threshold, a performance
    │                        baseline or a seed is out of its valid range
    ├── ObservationError     a sequential detector was given a NaN or infinite observation
    ├── SchemaError          a window does not match the feature schema (missing column, type)
    ├── RegistryError        the registry is missing, corrupt, or asked for an unknown version
    │   └── NoPreviousVersionError   rollback asked for, but nothing served before the current
    ├── PredictionLogError   the SQLite log rejected a write or a read, a label for an unknown
    │                        row, or a label that contradicts the one already stored
    ├── ScenarioError        an unknown scenario name or impossible scenario parameters
    ├── WorkdirError         the workdir cannot be created (a file in its path), or already
    │                        holds another run's registry and log
    └── ReportError          the triage report's folder cannot be created or written

Errors carry the offending value (``.field``, ``.value``, ``.version``, ``.columns``,
``.workdir``, ``.folder``) so a CLI can print a specific message without parsing text.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConfigError",
    "DriftError",
    "NoPreviousVersionError",
    "ObservationError",
    "PredictionLogError",
    "RegistryError",
    "ReportError",
    "ScenarioError",
    "SchemaError",
    "WorkdirError",
]


class DriftError(Exception):
    """Root of every error the drift package raises."""


class ConfigError(DriftError, ValueError):
    """A configuration value is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ObservationError(DriftError, ValueError):
    """A sequential detector's ``update`` got a NaN or infinite ``value``; its state is kept."""

    def __init__(self, message: str, value: object = None) -> None:
        super().__init__(message)
        self.value = value


class SchemaError(DriftError, ValueError):
    """A window's columns or dtypes do not match the schema; ``columns`` lists the culprits."""

    def __init__(self, message: str, columns: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.columns = columns


class RegistryError(DriftError):
    """The model registry cannot do what was asked; ``version`` is the version involved, if any."""

    def __init__(self, message: str, version: str | None = None) -> None:
        super().__init__(message)
        self.version = version


class NoPreviousVersionError(RegistryError):
    """Rollback was requested but no version served before the current one."""


class PredictionLogError(DriftError):
    """The prediction log could not store, read or join a record."""


class ScenarioError(DriftError, ValueError):
    """Unknown scenario or impossible scenario parameters."""


class WorkdirError(DriftError):
    """``workdir`` cannot be used: it (or a parent) is a file, it cannot be created, or it already
    holds state from a run (``files`` lists what was found).

    A workdir belongs to one run: a second run in it would mix two registries' versions, two sets
    of labels and two decision histories, and every number read back would be wrong.
    """

    def __init__(self, message: str, workdir: Path, files: tuple[Path, ...] = ()) -> None:
        super().__init__(message)
        self.workdir = workdir
        self.files = files


class ReportError(DriftError):
    """The triage report cannot be written to ``folder``: it (or a parent) is a file, or the
    operating system refuses to create it or a file in it (no permission, read-only)."""

    def __init__(self, message: str, folder: Path) -> None:
        super().__init__(message)
        self.folder = folder
