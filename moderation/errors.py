"""Exceptions raised by the moderation system.

Every error derives from :class:`ModerationError`, so a caller can catch one type. Each carries the
context needed to fix the problem in its attributes and its message says what would be valid.

    ModerationError
    ├── ConfigError              a setting is out of range or names an unknown option
    ├── InvalidTextError         input that cannot be moderated as text (raised at the boundary)
    │   ├── BinaryContentError   bytes that are not text (NUL bytes, mostly control characters)
    │   ├── EncodingError        bytes that are not valid UTF-8
    │   └── TextTooLongError     more characters than ``ModerationConfig.max_chars``
    ├── NotTrainedError          a model is used before ``fit`` (or a model file is missing)
    │   └── UnsafeModelError     a model file names code no model uses, alters a class, or
    │                            builds a numpy dtype numpy would not (a crash on use)
    ├── CategoryError            a new category cannot be added (name taken, too few examples)
    └── QueueError               the human review queue refused an operation
        ├── ItemNotFoundError    no queue item with that id
        ├── LeaseError           the caller does not hold a live lease on the item
        ├── AlreadyDecidedError  the item (or appeal) already has a decision: no double decisions
        └── AppealError          the appeal is not allowed (not decided yet, already appealed,
                                 or the reviewer is the one who made the original decision)

Empty text is *not* an error: ``moderate("")`` returns an ``allow`` verdict whose reason says so.
"""

from __future__ import annotations


class ModerationError(Exception):
    """Root of every exception this package raises."""


class ConfigError(ModerationError, ValueError):
    """A setting is invalid; the message names the setting and the valid range."""


class InvalidTextError(ModerationError, ValueError):
    """The input cannot be moderated as text. ``reason`` is a short machine-readable code."""

    reason = "invalid_text"


class BinaryContentError(InvalidTextError):
    """The bytes look like binary data, not text."""

    reason = "binary"


class EncodingError(InvalidTextError):
    """The bytes are not valid UTF-8; ``position`` is the offset of the first bad byte."""

    reason = "encoding"

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class TextTooLongError(InvalidTextError):
    """The text is longer than the configured limit."""

    reason = "too_long"

    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


class NotTrainedError(ModerationError, RuntimeError):
    """The model has not been fitted (or no saved model exists at the path)."""


class UnsafeModelError(NotTrainedError):
    """A model file names a class or function that no moderation model is made of, sets
    attributes on an allowed class itself (which would change every model in the process), or
    builds a numpy dtype unlike any numpy makes (arrays of it would read the file's bytes as
    memory addresses: a crash, or worse).

    Loading stops at that point, before the name is imported, the attribute set or an array made
    of the dtype; ``name`` is the class or function (``numpy.dtype`` for a dtype). What the file
    built before that point was built and is dropped."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class CategoryError(ModerationError, ValueError):
    """A category cannot be added as requested."""


class QueueError(ModerationError):
    """The review queue refused an operation; ``item_id`` names the item when there is one."""

    def __init__(self, message: str, *, item_id: str | None = None) -> None:
        super().__init__(message)
        self.item_id = item_id


class ItemNotFoundError(QueueError, KeyError):
    """No item with this id exists in the queue."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class LeaseError(QueueError):
    """The reviewer holds no live lease on the item (never claimed, expired, or another's)."""


class AlreadyDecidedError(QueueError):
    """The item or appeal already has a decision; a second one is refused."""


class AppealError(QueueError):
    """The item cannot be appealed: not decided yet, already appealed, or itself an appeal."""
