"""The moderation model: shared features, one calibrated binary head per label (one-vs-rest).

Each label (``hate``, ``offensive``, and any category added later such as ``spam``) gets its own
binary logistic regression over the same feature matrix, then its own calibrator fitted on the
validation split. Independent heads are what make the system extensible: a new category is one
more head (:meth:`ModerationModel.add_category`), and no existing head is refitted.

**Soft labels.** With ``soft_labels=True`` a head is trained on the annotator vote share ``s``
rather than the majority 0/1. Logistic regression in scikit-learn takes only hard targets, so each
item appears twice, as a positive with weight ``s`` and as a negative with weight ``1 - s``; the
summed log-loss is exactly the cross-entropy against the soft target::

    -[s log p + (1 - s) log(1 - p)]

**Label hierarchy.** Hate speech is a kind of offensive content, and the hard part of this data is
telling the two apart (most hate-class tweets use the same slurs as offensive ones). With
``parents={"hate": "offensive"}`` the hate head is trained only on items whose offensive target is
>= 0.5, against the conditional share ``h / (h + o)``, and scores ``p(hate) = p(offensive) *
p(hate | offensive)``. Measured on validation this lifts hate F1 by about 0.03 over a flat head.

**The paper's 3 classes** are decoded from the two heads (:func:`three_class`): hate if
``p_hate >= t_hate``, otherwise offensive if ``p_offensive >= 0.5``, otherwise neither. ``t_hate``
is chosen on validation to maximise hate F1 (:func:`tune_hate_threshold`): the hate class is 6 %
of the data, so 0.5 is far too strict a cut for F1.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from evals.errors import RefusedPickleError
from evals.files import writable_folder, written_atomically
from evals.pickles import restricted_load
from moderation import calibration, prior
from moderation.config import ModerationConfig
from moderation.errors import (
    CategoryError,
    ConfigError,
    InvalidTextError,
    ModerationError,
    NotTrainedError,
    UnsafeModelError,
)
from moderation.features import Embedder, TextFeatures
from moderation.normalise import normalise

__all__ = [
    "FORMAT_VERSION",
    "ModerationModel",
    "check_model_path",
    "text_list",
    "three_class",
    "tune_hate_threshold",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1

# Everything a saved model is made of (recorded from models of every feature set, calibration,
# class weight and an added category). :meth:`ModerationModel.load` resolves only these names
# (evals/pickles.py), so a model file cannot call ``os.system`` or any other function.
# numpy 1 pickles say ``numpy.core``, numpy 2 ``numpy._core``.
SAFE_GLOBALS = frozenset(
    {
        ("moderation.classifier", "ModerationModel"),
        ("moderation.config", "ModerationConfig"),
        ("moderation.features", "TextFeatures"),
        ("moderation.policy", "LabelThresholds"),
        ("moderation.calibration", "IdentityCalibrator"),
        ("moderation.calibration", "IsotonicCalibrator"),
        ("moderation.calibration", "SigmoidCalibrator"),
        ("sklearn.feature_extraction.text", "TfidfVectorizer"),
        ("sklearn.feature_extraction.text", "TfidfTransformer"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("sklearn.isotonic", "IsotonicRegression"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy", "float64"),
        *((core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
          for name in ("_reconstruct", "scalar")),
    }
)  # fmt: skip


def text_list(texts: object, caller: str, hint: str = "wrap one text in a list") -> list:
    """``texts`` as a list, or InvalidTextError if it is one text rather than a sequence of them.

    A ``str`` is itself a sequence (of characters), so without this check ``predict_proba("you
    idiot")`` would return nine scores, one per character, and no error. ``caller`` and ``hint``
    go into the message. The items themselves are not checked here.
    """
    if isinstance(texts, str | bytes | bytearray | memoryview) or texts is None:
        raise InvalidTextError(
            f"{caller} takes a sequence of texts, got {type(texts).__name__}; {hint}"
        )
    try:
        return list(texts)
    except TypeError:  # an int, a float: not iterable at all
        raise InvalidTextError(
            f"{caller} takes a sequence of texts, got {type(texts).__name__}; {hint}"
        ) from None


def check_model_path(path: str | Path) -> Path:
    """Make sure :meth:`ModerationModel.save` can write ``path``: create its folder, or raise.

    ``python -m moderation train`` calls it before loading the data, so a ``--model`` that is a
    directory, lies under a file, or sits in a folder no file can be written to fails at once
    instead of after the whole fit. The folder is proved writable by writing and deleting a probe
    file in it (:func:`evals.files.writable_folder`): permission bits do not tell, for root
    (who passes every check) or on ``/sys``-like file systems. Raises
    :class:`~moderation.errors.ModerationError` naming the path and what is in the way.
    """
    path = Path(path)
    if path.is_dir():
        raise ModerationError(
            f"cannot save the model to {path}: it is a directory; pass a file path, "
            f"e.g. {path / 'model.pkl'}"
        )
    try:
        writable_folder(path.parent)
    except OSError as exc:  # a file on the path, a read-only file system, no permission
        if blocker := next((p for p in path.parents if p.is_file()), None):
            why = f"{blocker} is a file"
        else:
            why = f"no file can be written in {path.parent} ({exc.strerror or exc})"
        raise ModerationError(
            f"cannot save the model to {path}: {why}; pass a path in a folder you can write to"
        ) from exc
    return path


def _fit_head(
    x: sp.csr_matrix, target: np.ndarray, C: float, class_weight: str | None
) -> LogisticRegression:
    """Binary logistic regression on a hard (0/1) or soft ([0, 1]) target."""
    target = np.asarray(target, dtype=float)
    n = x.shape[0]
    xx = sp.vstack([x, x], format="csr")
    yy = np.r_[np.ones(n), np.zeros(n)]
    weight = np.r_[target, 1.0 - target]
    if class_weight == "balanced":  # the positive and negative mass count equally
        pos, neg = target.sum(), n - target.sum()
        weight = weight * np.where(yy == 1, n / (2 * max(pos, 1e-9)), n / (2 * max(neg, 1e-9)))
    keep = weight > 0
    head = LogisticRegression(C=C, solver="liblinear", max_iter=1000)
    return head.fit(xx[keep], yy[keep], sample_weight=weight[keep])


class ModerationModel:
    """Normaliser -> :class:`TextFeatures` -> one logistic head per label -> calibrator per head."""

    def __init__(self, config: ModerationConfig | None = None, embedder: Embedder | None = None):
        self.config = config or ModerationConfig()
        self.features = TextFeatures(self.config, embedder)
        self.heads: dict[str, LogisticRegression] = {}
        self.calibrators: dict[str, calibration.Calibrator] = {}
        self.hate_threshold = 0.5  # the 3-class decoding cut, set by tune_hate_threshold
        self.thresholds: dict = {}  # label -> policy.LabelThresholds, chosen on validation
        self.train_prior: dict[str, float] = {}  # positive share the calibrators were fitted on
        # How the thresholds were chosen to be served: Moderator's identity_guard and
        # require_parent, saved with the model so every Moderator(model) serves it the same way.
        self.serving_options: dict[str, bool] = {}

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.heads)

    def prepare(self, texts: list[str]) -> list[str]:
        return [normalise(t) for t in texts] if self.config.normalise else list(texts)

    def fit(
        self,
        texts: list[str],
        targets: dict[str, np.ndarray],
        val_texts: list[str],
        val_labels: dict[str, np.ndarray],
    ) -> ModerationModel:
        """Fit features and heads on ``targets`` (hard or soft), calibrators on ``val_labels``."""
        if not targets:
            raise ConfigError("targets must name at least one label")
        for label, y in targets.items():
            if len(y) != len(texts):
                raise ConfigError(f"targets[{label!r}] has {len(y)} values for {len(texts)} texts")
        x = self.features.fit_transform(self.prepare(texts))
        x_val = self.features.transform(self.prepare(val_texts))
        c = self.config
        for label in sorted(targets, key=lambda name: name in c.parents):  # parents first
            y = np.asarray(targets[label], dtype=float)
            parent = c.parents.get(label)
            if parent is None:
                self.heads[label] = _fit_head(x, y, c.C, c.class_weight)
            else:
                if parent not in targets:
                    raise ConfigError(f"label {label!r} has parent {parent!r}, not in targets")
                inside = np.asarray(targets[parent], dtype=float) >= 0.5
                conditional = np.clip(y[inside] / np.asarray(targets[parent])[inside], 0.0, 1.0)
                self.heads[label] = _fit_head(x[inside], conditional, c.child_C, c.class_weight)
        raw = self._raw(x_val)
        for label in targets:
            cal = calibration.make(c.calibration)
            self.calibrators[label] = cal.fit(raw[label], val_labels[label])
            self.train_prior[label] = float(np.mean(np.asarray(val_labels[label], dtype=float)))
        return self

    def _raw(self, x: sp.csr_matrix) -> dict[str, np.ndarray]:
        out = {label: head.predict_proba(x)[:, 1] for label, head in self.heads.items()}
        for label, parent in self.config.parents.items():
            if label in out and parent in out:
                out[label] = out[label] * out[parent]  # p(child) = p(parent) p(child | parent)
        return out

    def _check(self) -> None:
        if not self.heads:
            raise NotTrainedError("ModerationModel is not fitted: call fit() or load()")

    def raw_scores(self, texts: list[str], *, prepared: bool = False) -> dict[str, np.ndarray]:
        """Uncalibrated head outputs ``{label: (n,) array}`` (``prepared``: already normalised).

        ``texts`` is a sequence of texts: one ``str`` is refused (InvalidTextError), and an empty
        sequence gives an empty ``(0,)`` array per label.
        """
        self._check()
        texts = text_list(texts, "ModerationModel.raw_scores")
        if not texts:  # scikit-learn refuses a 0-row matrix
            return {label: np.zeros(0) for label in self.heads}
        return self._raw(self.features.transform(texts if prepared else self.prepare(texts)))

    def predict_proba(self, texts: list[str], *, prepared: bool = False) -> dict[str, np.ndarray]:
        """Calibrated probabilities ``{label: (n,) array in [0, 1]}``, for ``n`` texts.

        As :meth:`raw_scores`: one ``str`` is refused, no texts give ``(0,)`` arrays.
        """
        self._check()
        texts = text_list(texts, "ModerationModel.predict_proba")
        if not texts:
            return {label: np.zeros(0) for label in self.heads}
        return self.calibrate(self.raw_scores(texts, prepared=prepared))

    def calibrate(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calibrated probabilities, shifted to ``config.deployment_prior`` when one is set."""
        return prior.calibrate_at_prior(
            self.calibrators, raw, self._train_prior(), self.config.deployment_prior
        )

    def shift_prior(self, label: str, p: np.ndarray) -> np.ndarray:
        """Saerens et al. prior correction for ``label`` (identity without a deployment prior)."""
        return prior.shift_label(label, p, self._train_prior(), self.config.deployment_prior)

    def _train_prior(self) -> dict[str, float]:
        return getattr(self, "train_prior", {})  # a model pickled without one is never shifted

    def add_category(
        self, label: str, texts: list[str], y: np.ndarray, *, min_examples: int = 4
    ) -> None:
        """Add a head for a new label from a few examples; existing heads are not touched.

        The head reuses the fitted (frozen) features. With few examples there is no held-out set
        to calibrate on, so the head's own probability is used (an identity calibrator); the
        README's new-category table shows what quality that buys at 16, 64 and 256 examples.
        """
        self._check()
        y = np.asarray(y)
        if label in self.heads:
            raise CategoryError(f"label {label!r} exists; existing labels: {list(self.heads)}")
        if len(texts) != len(y):
            raise CategoryError(f"{len(texts)} texts but {len(y)} labels")
        pos = int((y == 1).sum())
        if pos < min_examples or len(y) - pos < min_examples:
            raise CategoryError(
                f"need >= {min_examples} positive and negative examples, got {pos} and "
                f"{len(y) - pos}"
            )
        x = self.features.transform(self.prepare(list(texts)))
        self.heads[label] = _fit_head(x, y, self.config.C, "balanced")
        self.calibrators[label] = calibration.make("none")
        log.info("added category %r from %d examples (%d positive)", label, len(y), pos)

    def save(self, path: str | Path) -> None:
        """Pickle the model (features, heads, calibrators; not the embedding network).

        The file appears whole or not at all: it is written under this writer's own temporary
        name and renamed into place, so two runs saving to one path at once both finish (the
        last rename wins) and a failed write leaves the previous file and no temporary one.
        A path that cannot be written (a directory, under a file, a full disk) raises
        :class:`~moderation.errors.ModerationError` naming it (:func:`check_model_path`).
        """
        self._check()
        path = check_model_path(path)
        try:
            with written_atomically(path) as tmp, tmp.open("wb") as fh:
                pickle.dump({"format": FORMAT_VERSION, "model": self}, fh)
        except OSError as exc:  # disk full, permission denied, replaced by a folder meanwhile
            raise ModerationError(
                f"cannot save the model to {path}: {exc.strerror or exc}; nothing was written "
                "there (a previous model file is unchanged)"
            ) from exc

    @classmethod
    def load(cls, path: str | Path) -> ModerationModel:
        """Load a model written by :meth:`save`.

        The file is a pickle, read by an unpickler that resolves only :data:`SAFE_GLOBALS`: a
        file naming anything else (``os.system``, ``builtins.eval``), setting attributes on an
        allowed class itself, or building a numpy dtype unlike any numpy makes (one that would
        read the file's bytes as memory addresses), is refused with :class:`UnsafeModelError`
        before that name is looked up, that attribute set or an array made of that dtype. A
        file that unpickles to anything but a ``{"format": FORMAT_VERSION, "model":
        ModerationModel}`` is a :class:`NotTrainedError` naming what it holds.
        """
        path = Path(path)
        if not path.exists():
            raise NotTrainedError(f"no model at {path}; run `python -m moderation train` first")
        if not path.is_file():
            raise NotTrainedError(f"{path} is not a file; pass the model file `train` wrote")
        try:
            with path.open("rb") as fh:
                payload = restricted_load(fh, SAFE_GLOBALS)
        except RefusedPickleError as exc:
            raise UnsafeModelError(
                f"{path}: the model file {exc.problem}; it was not loaded (loading it could run "
                "code, change every model in this process or crash it). Retrain, or load only "
                "files written by `python -m moderation train`",
                name=exc.name,
            ) from None
        except Exception as exc:  # pickle raises many types on a file that is not a pickle
            raise NotTrainedError(
                f"{path} is not a model file written by `python -m moderation train` "
                f"({type(exc).__name__}); retrain or pass the right path"
            ) from None
        found = payload.get("format") if isinstance(payload, dict) else None
        if found != FORMAT_VERSION:
            raise NotTrainedError(f"{path} has format {found}, expected {FORMAT_VERSION}: retrain")
        model = payload.get("model")
        if not isinstance(model, cls):
            raise NotTrainedError(
                f"{path} holds a {type(model).__name__} under 'model', not a moderation model; "
                "retrain with `python -m moderation train` or pass the file it wrote"
            )
        return model


def three_class(p_hate: np.ndarray, p_offensive: np.ndarray, hate_threshold: float) -> np.ndarray:
    """Decode the paper's classes (0 hate, 1 offensive, 2 neither) from the two heads."""
    pred = np.where(np.asarray(p_offensive) >= 0.5, 1, 2)
    pred[np.asarray(p_hate) >= hate_threshold] = 0
    return pred


def tune_hate_threshold(p_hate: np.ndarray, p_offensive: np.ndarray, y3: np.ndarray) -> float:
    """The hate cut in a 0.01 grid that maximises hate-class F1 on (validation) data."""
    best_f1, best_t = -1.0, 0.5
    y_hate = np.asarray(y3) == 0
    for t in np.round(np.arange(0.02, 0.96, 0.01), 2):
        pred_hate = three_class(p_hate, p_offensive, t) == 0
        tp = float((pred_hate & y_hate).sum())
        denom = pred_hate.sum() + y_hate.sum()
        f1 = 2 * tp / denom if denom else 0.0
        if f1 > best_f1:
            best_f1, best_t = f1, float(t)
    return best_t
