"""The moderation cascade: validate input -> normalise -> score -> calibrate -> route.

Two entry points over one trained :class:`~moderation.classifier.ModerationModel`:

* :meth:`Moderator.moderate` is the **synchronous** path a posting request blocks on. It scores
  one text and returns a :class:`Verdict` (measured p50/p99 latency in the README). Unusable input
  raises a specific :class:`~moderation.errors.InvalidTextError` at the boundary; empty text, or
  text with nothing visible in it (:func:`is_blank`), is allowed with a reason.
* :meth:`Moderator.moderate_batch` is the **asynchronous / bulk** path (back-fills, re-scoring after
  a model update, a queue consumer): texts are vectorised together, which amortises the per-call
  overhead, and a bad item becomes a verdict with ``path="rejected"`` instead of failing the batch.

Evasion signals from the normaliser (zero-width characters, homoglyphs, leetspeak, ...) are
carried on the verdict as ``evasions``; with ``review_evasions=True`` an otherwise allowed item
that tried to evade is sent to review. It is off by default because ordinary text raises signals
too: measured by hand in session 25 on the tfidf model's seed-0 test split, it moves 22 of 2,479
tweets from allow to review, 21 of them of class "neither" ("3pm", "1st", "COVID19" raise
``leetspeak``, "café" ``unicode``, "U.S.A." ``separators``); the benchmark does not measure it.
Two minimum-evidence rules against identity-term false positives (measured in the
README): with ``identity_guard=True`` a hate score must survive deleting the identity terms from
the text, and with ``require_parent=True`` a hate flag also needs the offensive score at or above
its review cut (:mod:`moderation.identity`). Thresholds for a guarded moderator are chosen on
guarded validation scores (``eval.with_identity_guard``).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from moderation.classifier import ModerationModel, text_list
from moderation.errors import (
    BinaryContentError,
    ConfigError,
    EncodingError,
    InvalidTextError,
    TextTooLongError,
)
from moderation.identity import GUARDED_LABELS, mask_identity_terms
from moderation.normalise import Normalised, normalise, normalise_with_signals, unicode_overflow
from moderation.policy import ALLOW, REVIEW, LabelThresholds, route
from moderation.serving import CompiledScorer

__all__ = ["REJECTED", "Moderator", "Verdict", "is_blank", "is_invisible", "validate_text"]

REJECTED = "rejected"


@dataclass(frozen=True)
class Verdict:
    """The outcome for one text.

    ``path``: "auto_action" | "review" | "allow" | "rejected"; ``label``: the label acted on
    ("" when allowed); ``scores``: calibrated probability per label; ``evasions``: normaliser steps
    that changed the text; ``reason``: why, in words; ``latency_ms``: scoring time (sync path).
    """

    path: str
    label: str
    scores: dict[str, float] = field(default_factory=dict)
    evasions: tuple[str, ...] = ()
    reason: str = ""
    latency_ms: float = 0.0


def validate_text(
    raw: str | bytes, max_chars: int | None, *, limit_name: str = "ModerationConfig.max_chars"
) -> str:
    """Return usable text or raise a specific :class:`InvalidTextError`.

    Bytes must be UTF-8 (not guessed: a wrong guess would silently score mojibake). Text with NUL
    bytes, or where more than 30 % of characters are control characters, is binary. Text longer
    than ``max_chars`` is refused rather than truncated: an abuser could hide content past the cut.
    ``max_chars=None`` skips only the length check, for a caller that measures the text after
    transforming it (the review queue folds a name, then holds the folded name to its limit).
    ``limit_name`` is the setting ``max_chars`` came from, which the error names.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw)
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncodingError(
                f"input is not valid UTF-8 (bad byte 0x{raw[exc.start]:02x} at offset "
                f"{exc.start}); send UTF-8 text",
                position=exc.start,
            ) from None
    if not isinstance(raw, str):
        raise InvalidTextError(f"expected str or UTF-8 bytes, got {type(raw).__name__}")
    if "\x00" in raw:
        raise BinaryContentError("input contains NUL bytes: binary data, not text")
    if max_chars is not None and not len(raw) <= max_chars:  # a nan limit refuses, not allows
        raise TextTooLongError(
            f"input has {len(raw)} characters; the limit is {max_chars} ({limit_name})",
            length=len(raw),
            limit=max_chars,
        )
    # The limit holds for the text the normaliser makes too: some characters decompose into
    # many (U+FDFA into 18), so a short post could otherwise cost every later step 18 times its
    # length. Refused like any over-long text: cutting it would hide what follows the cut.
    if max_chars is not None and (grown := unicode_overflow(raw, max_chars)) is not None:
        raise TextTooLongError(
            f"input has {len(raw)} characters, but the normaliser's first step (Unicode "
            f"compatibility decomposition) makes at least {grown} of them; the limit is "
            f"{max_chars} ({limit_name})",
            length=grown,
            limit=max_chars,
        )
    control = sum(1 for c in raw if unicodedata.category(c) == "Cc" and c not in "\t\n\r")
    if raw and control / len(raw) > 0.3:
        raise BinaryContentError(
            f"{control} of {len(raw)} characters are control characters: binary data, not text"
        )
    if any(0xD800 <= ord(c) <= 0xDFFF for c in raw):
        raise EncodingError(
            "input is not valid Unicode text (it holds lone surrogates, which is how Python "
            "carries bytes that were not UTF-8, e.g. from a command line); send UTF-8 text"
        )
    return raw


EMPTY_REASON = "empty text: nothing to moderate"

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters a renderer shows
# as nothing when it has no glyph for them. The Hangul fillers (U+115F, U+1160, U+3164, U+FFA0)
# are letters (Lo) that draw blank, the variation selectors and U+034F are marks (Mn); a category
# test misses them all. Braille pattern blank U+2800 is not in the property but draws blank too.
# tests/moderation/test_pipeline.py checks this table against the `regex` module's copy of the
# property over every code point.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF), (0x2800, 0x2800),
)  # fmt: skip
_IGNORABLE = frozenset(cp for low, high in _IGNORABLE_RANGES for cp in range(low, high + 1))


def is_invisible(char: str) -> bool:
    """One character a reader cannot see: whitespace, a control or format character (Cc, Cf),
    a Default_Ignorable_Code_Point (zero-width space, soft hyphen, variation selector, Hangul
    filler, ...) or the Braille blank U+2800.

    The one definition of "invisible" for :func:`is_blank` and the review queue's names.
    Combining marks in general are *not* invisible: they carry meaning in many scripts.
    """
    return char.isspace() or ord(char) in _IGNORABLE or unicodedata.category(char) in ("Cc", "Cf")


def is_blank(text: str, canonical: str | None = None) -> bool:
    """Nothing visible is left: ``text``, or its normalised form, is only invisible characters.

    That covers the empty string, whitespace, zero-width and filler characters
    (:func:`is_invisible`), and text the normaliser turns into nothing (a lone accent ``"´"``,
    a combining mark). Such text is not scored because its score would be the model's bias
    alone: scored, a zero-width space or a lone ``"´"`` would be auto-actioned as offensive at
    p = 0.38. ``canonical`` is ``normalise(text)`` when the caller already has it.
    """
    if all(map(is_invisible, text)):
        return True
    if canonical is None:
        canonical = normalise(text)
    return all(map(is_invisible, canonical))


class Moderator:
    """A trained model plus per-label thresholds, serving verdicts."""

    def __init__(
        self,
        model: ModerationModel,
        thresholds: dict[str, LabelThresholds] | None = None,
        *,
        review_evasions: bool = False,
        identity_guard: bool | None = None,
        require_parent: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``identity_guard`` and ``require_parent`` default (None) to the model's
        ``serving_options``, which `python -m moderation train` saves with the thresholds it
        chose under them; a model without them serves with both off."""
        thresholds = thresholds if thresholds is not None else model.thresholds
        options = getattr(model, "serving_options", {})  # a pickle without them: both off
        if identity_guard is None:
            identity_guard = bool(options.get("identity_guard", False))
        if require_parent is None:
            require_parent = bool(options.get("require_parent", False))
        missing = set(model.labels) - set(thresholds)
        if missing:
            raise ConfigError(
                f"no thresholds for labels {sorted(missing)}; choose them with "
                "policy.choose_thresholds on validation data"
            )
        self.model = model
        self.thresholds = thresholds
        self.review_evasions = review_evasions
        self.identity_guard = identity_guard
        # minimum evidence: a guarded label needs its parent label at least in review (hierarchy)
        parents = model.config.parents if require_parent else {}
        self.requires = {c: p for c, p in parents.items() if c in GUARDED_LABELS}
        self.clock = clock
        self.scorer = CompiledScorer(model)  # compiled now: a head added later is not in it
        self._labels = tuple(model.labels)  # what the scorer and thresholds were built for

    def _check_labels(self) -> None:
        """Refuse to serve a model whose labels changed after this Moderator was built.

        The compiled scorer and the thresholds are a snapshot of the model at construction, so
        after ``model.add_category(...)`` the sync path would ignore the new head while the batch
        path scored it (and, without its thresholds, failed deep in routing). A new label needs
        thresholds chosen for it, which only the caller can supply: build a new Moderator.
        """
        now = tuple(self.model.labels)
        if now != self._labels:
            raise ConfigError(
                f"the model's labels changed after this Moderator was built (built with "
                f"{list(self._labels)}, now {list(now)}): build a new Moderator(model, thresholds) "
                "with thresholds for every label"
            )

    def _verdicts(self, texts: list[str], signals: list[Normalised]) -> list[Verdict]:
        prepared = self.model.config.normalise
        canonical = [s.text if prepared else t for s, t in zip(signals, texts, strict=True)]
        if len(texts) == 1:  # the sync path: compiled scorer, no per-call sklearn validation
            one = self.scorer.scores(canonical[0], normalised=prepared)
            probs = {k: np.array([v]) for k, v in one.items()}
        else:
            probs = self.model.predict_proba(canonical, prepared=prepared)
        if self.identity_guard:
            probs = self._guard(canonical, probs, prepared)
        routing = route(probs, self.thresholds, self.model.config.severity, self.requires)
        verdicts = []
        for i, sig in enumerate(signals):
            path, label = str(routing.path[i]), str(routing.label[i])
            scores = {name: round(float(p[i]), 4) for name, p in probs.items()}
            reason = f"{label} p={scores[label]:.2f}" if label else "all labels below review"
            if path == ALLOW and sig.evasions and self.review_evasions:
                path, reason = REVIEW, f"evasion attempt: {', '.join(sig.evasions)}"
            verdicts.append(Verdict(path, label, scores, sig.evasions, reason))
        return verdicts

    def _guard(
        self, canonical: list[str], probs: dict[str, np.ndarray], prepared: bool
    ) -> dict[str, np.ndarray]:
        """Guarded labels keep ``min(p(text), p(text without identity terms))``.

        A post that is nothing but identity terms ("gay") masks to ``""``, which is scored like
        any other masked text (``is not None``, not truthiness): a group's name alone is no
        evidence of an attack on it.
        """
        masked = {
            i: m for i, t in enumerate(canonical) if (m := mask_identity_terms(t)) is not None
        }
        labels = [k for k in GUARDED_LABELS if k in probs]
        if not masked or not labels:
            return probs
        index = np.fromiter(masked, dtype=np.int64, count=len(masked))
        if len(canonical) == 1:
            one = self.scorer.scores(masked[0], normalised=prepared)
            alt = {k: np.array([v]) for k, v in one.items()}
        else:
            alt = self.model.predict_proba(list(masked.values()), prepared=prepared)
        out = dict(probs)
        for label in labels:
            out[label] = np.array(probs[label], dtype=float)
            out[label][index] = np.minimum(out[label][index], alt[label])
        return out

    def moderate(self, text: str | bytes) -> Verdict:
        """Synchronous path: one text, one verdict. Raises InvalidTextError on unusable input."""
        start = self.clock()
        self._check_labels()
        text = validate_text(text, self.model.config.max_chars)
        signals = normalise_with_signals(text)
        if is_blank(text, signals.text):
            return Verdict(ALLOW, "", reason=EMPTY_REASON)
        verdict = self._verdicts([text], [signals])[0]
        elapsed = (self.clock() - start) * 1000
        return Verdict(**{**verdict.__dict__, "latency_ms": elapsed})

    def moderate_batch(self, texts: Iterable[str | bytes], batch_size: int = 1024) -> list[Verdict]:
        """Bulk path: vectorised scoring; bad items come back as ``path="rejected"`` verdicts.

        One verdict per input, in order, whatever the input holds; ``texts`` may be any iterable
        of texts (a single ``str`` is refused: it would be scored character by character).
        """
        texts = text_list(
            texts, "moderate_batch", hint="use moderate() for one text, or wrap it in a list"
        )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._check_labels()
        out: list[Verdict | None] = [None] * len(texts)
        good: list[tuple[int, str, Normalised]] = []
        for i, raw in enumerate(texts):
            try:
                text = validate_text(raw, self.model.config.max_chars)
            except InvalidTextError as exc:
                out[i] = Verdict(REJECTED, "", reason=f"{exc.reason}: {exc}")
                continue
            signals = normalise_with_signals(text)
            if is_blank(text, signals.text):
                out[i] = Verdict(ALLOW, "", reason=EMPTY_REASON)
            else:
                good.append((i, text, signals))
        for start in range(0, len(good), batch_size):
            chunk = good[start : start + batch_size]
            verdicts = self._verdicts([t for _, t, _ in chunk], [s for _, _, s in chunk])
            for (i, _, _), verdict in zip(chunk, verdicts, strict=True):
                out[i] = verdict
        return out  # type: ignore[return-value]  # every slot was filled above

    def scores(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Calibrated (with the guard: guarded) probabilities; no validation, for evaluation.

        ``texts`` is a sequence of texts (one ``str`` is refused: it would be scored character
        by character); an empty one gives an empty ``(0,)`` array per label.
        """
        self._check_labels()
        texts = text_list(texts, "Moderator.scores")
        if not self.identity_guard:
            return self.model.predict_proba(texts)
        canonical = self.model.prepare(texts)
        probs = self.model.predict_proba(canonical, prepared=True)
        return self._guard(canonical, probs, prepared=True)
