"""Errors raised by the shared evaluation harness.

    EvalsError
    ├── DatasetError
    │   ├── DatasetNotFoundError    the files are nowhere we looked and could not be downloaded
    │   ├── DatasetIntegrityError   a file is there but its checksum, row count or format is wrong
    │   └── UnknownDatasetError     the name is not in the registry
    ├── MetricError                 a metric name or an input (qrels, run, labels) is malformed
    └── RefusedPickleError          a saved model names code outside its allow-list, or
                                    builds numpy / SciPy state no pickler wrote (pickles.py)

Every error says what is wrong and what would be valid, so a user never has to read a traceback
from deep inside pandas or numpy to find out that a file is missing.
"""

from __future__ import annotations

from pathlib import Path


class EvalsError(Exception):
    """Root of every error raised by ``evals``."""


class DatasetError(EvalsError):
    """Something is wrong with a benchmark dataset."""


class UnknownDatasetError(DatasetError, KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(known))}")

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]


class DatasetNotFoundError(DatasetError):
    """The dataset is not in any place we looked, and downloading it failed or was not allowed."""

    def __init__(self, name: str, looked_in: list[Path], reason: str, how_to_fix: str) -> None:
        self.name = name
        self.looked_in = looked_in
        self.reason = reason
        places = "\n".join(f"  - {p}" for p in looked_in) or "  (nowhere: no location configured)"
        super().__init__(
            f"dataset {name!r} is not available.\nLooked in:\n{places}\n"
            f"Download: {reason}\nTo fix: {how_to_fix}"
        )


class DatasetIntegrityError(DatasetError):
    """A dataset file exists but is not the file we expect (checksum, row count or format)."""

    def __init__(self, name: str, path: Path, problem: str) -> None:
        self.name = name
        self.path = path
        self.problem = problem
        super().__init__(
            f"dataset {name!r}: {path} is not the expected file: {problem}. "
            "Refusing to compute numbers on it; delete it and let it download again, "
            "or point --data-dir / AIS_DATA_DIR at a verified copy."
        )


class MetricError(EvalsError, ValueError):
    """A metric name or a metric input is malformed."""


class RefusedPickleError(EvalsError):
    """A pickle was refused by :func:`evals.pickles.restricted_load`.

    ``name`` is the global or class it tried to use, ``problem`` what it tried (the systems put
    it into their own ``UnsafeModelError``)."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"the pickle {problem}")
