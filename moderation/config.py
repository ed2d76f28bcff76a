"""One frozen dataclass holding every knob of the moderation pipeline, with the reason for each.

Defaults follow the issue's policy targets (auto-action only at precision >= 0.95, at most 20 % of
traffic to human review) and the settings measured best on the validation split (see README).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field

from moderation.errors import ConfigError

__all__ = ["DEPLOYMENT_PRIOR", "MAX_LEASE_SECONDS", "MAX_SEED", "ModerationConfig", "check_seed"]

_CALIBRATIONS = ("isotonic", "sigmoid", "none")

# A realistic share of abusive posts on a general platform, for the deployment-prior correction:
# the Jigsaw Toxic Comment Classification data (Wikipedia talk-page comments, 159,571 labelled)
# has 9.6 % "toxic" and 0.9 % "identity_hate" comments; we round to 10 % and 1 %. A platform
# should measure its own shares (e.g. by labelling a uniform sample of traffic).
DEPLOYMENT_PRIOR: dict[str, float] = {"offensive": 0.10, "hate": 0.01}

# The longest claim lease: a day. A lease that never expires (inf) would lock an item for good
# once its reviewer walks away, and a JSON line cannot hold the infinite expiry time.
MAX_LEASE_SECONDS: float = 86_400.0

_FEATURES = ("tfidf", "embedding", "tfidf+embedding")

# The seeds numpy's and scikit-learn's generators take (train_test_split refuses any other).
MAX_SEED = 2**32 - 1


def _real(value: object) -> bool:
    """A real number (numpy's too), not a bool: ``True`` is an int to Python, not a setting."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(value: object) -> bool:
    """A whole number (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int, or ConfigError unless it is a whole number in ``[0, MAX_SEED]``."""
    if not (_whole(seed) and 0 <= seed <= MAX_SEED):
        raise ConfigError(f"{name} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def _check_ngrams(name: str, value: object) -> None:
    pair = isinstance(value, tuple) and len(value) == 2 and all(map(_whole, value))
    if not (pair and 1 <= value[0] <= value[1]):
        raise ConfigError(
            f"{name} must be a tuple (low, high) of whole numbers with 1 <= low <= high, "
            f"got {value!r}"
        )


def _default_severity() -> dict[str, float]:
    # How bad a missed item is, per label; scales the review-queue priority. Hate speech is the
    # most harmful class the data has; "offensive" alone is mostly profanity.
    return {"hate": 1.0, "offensive": 0.3, "spam": 0.2}


@dataclass(frozen=True)
class ModerationConfig:
    """Settings for features, heads, calibration, the routing policy, input limits and the queue."""

    # --- features ---
    features: str = "tfidf"  # "tfidf" | "embedding" | "tfidf+embedding" (concatenated)
    normalise: bool = True  # run moderation.normalise on train and serve (the evasion defence)
    word_ngrams: tuple[int, int] = (1, 2)  # word TF-IDF n-gram range
    char_ngrams: tuple[int, int] = (2, 5)  # char_wb TF-IDF n-gram range (robust to misspellings)
    min_df: int = 2  # drop n-grams seen in fewer documents (mostly typos, user names)
    max_features: int = 200_000  # per vectoriser; caps memory and the model file size
    embedding_model: str | None = None  # name or path; None = the packaged all-MiniLM-L6-v2
    embedding_weight: float = 1.0  # scale of the (unit-norm) embedding block next to TF-IDF

    # --- heads (one binary logistic regression per label: one-vs-rest) ---
    C: float = 4.0  # inverse L2 strength, chosen on validation
    parents: dict[str, str] = field(default_factory=lambda: {"hate": "offensive"})  # hierarchy
    child_C: float = 1.0  # inverse L2 strength of child heads (fewer, harder examples)
    soft_labels: bool = True  # train on annotator vote shares instead of the majority 0/1
    class_weight: str | None = None  # None or "balanced" (measured: worse hate F1, see README)
    calibration: str = "isotonic"  # fitted on the validation split: "isotonic" | "sigmoid" | "none"
    # Deployment prior: the positive share per label on the traffic the model will serve. None =
    # serve the training prior (Davidson: 83 % offensive). With a dict, calibrated probabilities
    # are rescaled (moderation.prior, Saerens et al. 2002) and thresholds are chosen on validation
    # re-weighted to these shares. DEPLOYMENT_PRIOR above is a documented example.
    deployment_prior: dict[str, float] | None = None

    # --- routing policy (thresholds are chosen on validation, per label) ---
    target_precision: float = 0.95  # auto-action only where validation precision >= this
    target_recall: float = 0.90  # the review band reaches down until auto+review recall >= this
    max_review_share: float = 0.20  # the review band is narrowed until review traffic <= this
    min_auto_support: int = 20  # an auto threshold must be backed by this many validation items
    auto_confidence_z: float = 1.645  # Wilson lower bound of auto precision must clear the target

    # --- input limits ---
    max_chars: int = 5_000  # longer input is refused (TextTooLongError), not silently truncated

    # --- review queue ---
    severity: dict[str, float] = field(default_factory=_default_severity)
    # a claim expires after this (at most MAX_LEASE_SECONDS, a day); the item returns to the queue
    lease_seconds: float = 300.0

    # the split seed this model was trained on (train() takes it too), kept with it; 0..MAX_SEED
    seed: int = 0

    def __post_init__(self) -> None:
        # Settings are checked here, so a bad one fails at construction naming its field,
        # not minutes later inside scikit-learn's fit. Range checks are written `not (x > 0)`,
        # not `x <= 0`: every comparison with NaN is false, so the second form would accept NaN
        # (max_chars=nan would switch off the length limit, C=nan would fail deep inside
        # scikit-learn). Numbers are checked to be numbers first ("0.9" < 1.0 is a TypeError).
        if self.features not in _FEATURES:
            raise ConfigError(f"features must be one of {_FEATURES}, got {self.features!r}")
        for name in ("normalise", "soft_labels"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _check_ngrams("word_ngrams", self.word_ngrams)
        _check_ngrams("char_ngrams", self.char_ngrams)
        for name in ("min_df", "max_features"):  # a count of documents / of n-grams
            value = getattr(self, name)
            if not (_whole(value) and value >= 1):
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        weight = self.embedding_weight
        if not (_real(weight) and math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"embedding_weight must be a finite number >= 0, got {weight!r}")
        if self.calibration not in _CALIBRATIONS:
            raise ConfigError(
                f"calibration must be one of {_CALIBRATIONS}, got {self.calibration!r}"
            )
        if self.class_weight not in (None, "balanced"):
            raise ConfigError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        for name in ("target_precision", "target_recall", "max_review_share"):
            value = getattr(self, name)
            if not (_real(value) and 0.0 < value <= 1.0):
                raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}")
        for name in ("C", "child_C"):  # C=inf is no regularisation, which liblinear refuses
            value = getattr(self, name)
            if not (_real(value) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
        if not (_whole(self.min_auto_support) and self.min_auto_support >= 0):
            raise ConfigError(
                f"min_auto_support must be a whole number >= 0, got {self.min_auto_support!r}"
            )
        z = self.auto_confidence_z
        if not (_real(z) and math.isfinite(z) and z >= 0):
            raise ConfigError(
                "auto_confidence_z must be a finite number >= 0 (0: the plain precision), "
                f"got {z!r}"
            )
        for label, prior in (self.deployment_prior or {}).items():
            if not (_real(prior) and 0.0 < prior < 1.0):
                raise ConfigError(
                    f"deployment_prior[{label!r}] must be strictly between 0 and 1, got {prior!r}"
                )
        if not (_whole(self.max_chars) and self.max_chars >= 1):
            raise ConfigError(f"max_chars must be a whole number >= 1, got {self.max_chars!r}")
        if not isinstance(self.severity, dict):
            raise ConfigError(f"severity must be a dict of label -> number, got {self.severity!r}")
        for label, value in self.severity.items():  # NaN would rank the queue arbitrarily
            if not (_real(value) and math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"severity[{label!r}] must be a finite number >= 0, got {value!r}"
                )
        lease = self.lease_seconds
        if not (_real(lease) and 0 < lease <= MAX_LEASE_SECONDS):  # also refuses nan and inf
            raise ConfigError(
                f"lease_seconds must be > 0 and at most MAX_LEASE_SECONDS ({MAX_LEASE_SECONDS:g}, "
                f"one day), got {lease!r}"
            )
        check_seed(self.seed)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (for benchmark records and saved models)."""
        return asdict(self)
