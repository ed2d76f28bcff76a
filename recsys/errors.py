"""Errors raised by the recommender.

    RecsysError
    ├── UnknownIdError         a user or item id is not in the catalogue (carries the bad ids)
    │   ├── UnknownUserError
    │   └── UnknownItemError
    ├── InvalidArgumentError   k <= 0, an empty batch, a ratio outside (0, 1), a bad column set
    ├── NotFittedError         recommend() or save() before fit()
    └── ModelFileError         a saved model is missing, corrupt, or from another format version,
        │                      or its folder cannot be created or written
        └── UnsafeModelError   model.pkl names code no recommender uses, or alters a class

Each error says what was wrong and what would have been valid, so a caller never has to read a
stack trace from deep inside numpy or LightGBM. ``UnknownIdError`` also subclasses ``KeyError``
and ``InvalidArgumentError`` subclasses ``ValueError``, so generic handlers keep working.
"""

from __future__ import annotations

from collections.abc import Sequence


class RecsysError(Exception):
    """Root of every error raised by ``recsys``."""


class InvalidArgumentError(RecsysError, ValueError):
    """An argument is outside its valid range; the message names the valid range."""


class UnknownIdError(RecsysError, KeyError):
    """Some ids are not in the catalogue the model was trained with."""

    kind = "id"

    def __init__(self, ids: Sequence[object], n_known: int) -> None:
        self.ids = list(ids)
        self.n_known = n_known
        shown = ", ".join(repr(i) for i in self.ids[:10])
        more = f" (and {len(self.ids) - 10} more)" if len(self.ids) > 10 else ""
        super().__init__(
            f"unknown {self.kind} id(s): {shown}{more}; the catalogue has {n_known} "
            f"{self.kind}s. Use ids from the training data, or the cold-start path for new ones."
        )

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]


class UnknownUserError(UnknownIdError):
    kind = "user"


class UnknownItemError(UnknownIdError):
    kind = "item"


class NotFittedError(RecsysError, RuntimeError):
    """The model was used before ``fit()`` (or ``load()``)."""


class ModelFileError(RecsysError, OSError):
    """A saved model cannot be read (missing, corrupt, written by another format version) or
    written (the folder is a file, or cannot be created or written to)."""


class UnsafeModelError(ModelFileError):
    """``model.pkl`` names a class or function that no saved recommender is made of, or sets
    attributes on an allowed class itself (which would change every recommender in the process).

    Loading stops at that point, before the name is imported or the attribute set; ``name`` is
    the class or function. What the file built before that point was built and is dropped."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name
