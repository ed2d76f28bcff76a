"""Content moderation on Davidson et al. 2017: calibrated heads, a routing policy, a review queue.

Start with README.md; the cascade reads top to bottom in ``pipeline.py``.
"""

from moderation.classifier import ModerationModel, three_class, tune_hate_threshold
from moderation.config import ModerationConfig
from moderation.errors import (
    AlreadyDecidedError,
    AppealError,
    BinaryContentError,
    CategoryError,
    ConfigError,
    EncodingError,
    InvalidTextError,
    ItemNotFoundError,
    LeaseError,
    ModerationError,
    NotTrainedError,
    QueueError,
    TextTooLongError,
    UnsafeModelError,
)
from moderation.normalise import normalise, normalise_with_signals
from moderation.perturb import Perturber
from moderation.pipeline import Moderator, Verdict, validate_text
from moderation.policy import LabelThresholds, choose_thresholds, route
from moderation.queue import ReviewQueue, risk_priority

__all__ = [
    "AlreadyDecidedError",
    "AppealError",
    "BinaryContentError",
    "CategoryError",
    "ConfigError",
    "EncodingError",
    "InvalidTextError",
    "ItemNotFoundError",
    "LabelThresholds",
    "LeaseError",
    "ModerationConfig",
    "ModerationError",
    "ModerationModel",
    "Moderator",
    "NotTrainedError",
    "Perturber",
    "QueueError",
    "ReviewQueue",
    "TextTooLongError",
    "UnsafeModelError",
    "Verdict",
    "choose_thresholds",
    "normalise",
    "normalise_with_signals",
    "risk_priority",
    "route",
    "three_class",
    "tune_hate_threshold",
    "validate_text",
]
