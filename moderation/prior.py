"""Deployment-prior correction: re-weight calibrated probabilities to the traffic they will see.

A calibrated probability is calibrated *for the class balance of the data it was fitted on*. The
Davidson tweets were sampled with a hate-speech lexicon, so ~83 % are offensive; a platform's real
traffic is mostly ordinary conversation. Under such a label shift (p(x | y) unchanged, p(y)
changed) Bayes' rule gives the corrected posterior in closed form (Saerens, Latinne &
Decaestecker, "Adjusting the outputs of a classifier to new a priori probabilities", Neural
Computation 14(1), 2002, eq. 2.4), which for one binary label is a rescaling of the odds::

    odds'(x) = odds(x) * [pi_t / (1 - pi_t)] / [pi_s / (1 - pi_s)]
    p'(x)    = odds' / (1 + odds')

with ``pi_s`` the positive share the calibrator was fitted on (the validation split, stratified
like training) and ``pi_t`` the deployment share (``ModerationConfig.deployment_prior``).

A probability shift alone does not change a policy whose thresholds are chosen on validation,
because the map is monotone. What changes is *what precision a threshold buys*: at a 10 %
offensive share, a false positive costs (1 - pi_t) / (1 - pi_s) times more. So thresholds are
chosen on validation with the same importance weights (:func:`importance_weights`): positives
weighted ``pi_t / pi_s``, negatives ``(1 - pi_t) / (1 - pi_s)``, which estimates each policy
quantity (precision, review share) at the deployment prior from validation data.

Every model serves its probabilities through :func:`calibrate_at_prior` (its ``calibrate``), so
the TF-IDF model and the stacked one shift the same way: per label, from the share its calibrator
was fitted on (``model.train_prior``) to ``config.deployment_prior``.
"""

from __future__ import annotations

import numpy as np

from moderation.calibration import Calibrator
from moderation.errors import ConfigError

__all__ = ["calibrate_at_prior", "importance_weights", "prior_shift", "shift_label"]


def _check(prior: float, name: str) -> None:
    if not 0.0 < prior < 1.0:
        raise ConfigError(f"{name} must be strictly between 0 and 1, got {prior}")


def prior_shift(p: np.ndarray, train_prior: float, target_prior: float) -> np.ndarray:
    """Saerens et al. 2002 for one binary label: rescale the odds by the prior-odds ratio."""
    _check(train_prior, "train_prior")
    _check(target_prior, "target_prior")
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    ratio = (target_prior / (1 - target_prior)) / (train_prior / (1 - train_prior))
    positive = ratio * p  # odds' * (1 - p), written to stay finite at p = 0 and p = 1
    return positive / (positive + (1.0 - p))


def shift_label(
    label: str,
    p: np.ndarray,
    train_prior: dict[str, float],
    deployment_prior: dict[str, float] | None,
) -> np.ndarray:
    """``label``'s calibrated probabilities ``p`` moved to its deployment share (Saerens et al.).

    ``p`` comes back unchanged when the deployment prior does not name ``label``, or when the
    label has no usable training share: none recorded (a head added from a few examples, with no
    held-out set) or 0 or 1 (a calibrator that saw one class: its odds cannot be rescaled).
    """
    target = (deployment_prior or {}).get(label)
    source = train_prior.get(label)
    if target is None or source is None or not 0.0 < source < 1.0:
        return p
    return prior_shift(p, source, target)


def calibrate_at_prior(
    calibrators: dict[str, Calibrator],
    raw: dict[str, np.ndarray],
    train_prior: dict[str, float],
    deployment_prior: dict[str, float] | None,
) -> dict[str, np.ndarray]:
    """Raw scores ``{label: (n,)}`` through each label's calibrator, then :func:`shift_label`."""
    return {
        label: shift_label(label, calibrators[label].transform(s), train_prior, deployment_prior)
        for label, s in raw.items()
    }


def importance_weights(y: np.ndarray, train_prior: float, target_prior: float) -> np.ndarray:
    """Per-item weights that make a sample with positive share ``train_prior`` look like one
    with ``target_prior`` (positives ``pi_t / pi_s``, negatives ``(1 - pi_t) / (1 - pi_s)``)."""
    _check(train_prior, "train_prior")
    _check(target_prior, "target_prior")
    y = np.asarray(y).astype(bool)
    return np.where(y, target_prior / train_prior, (1 - target_prior) / (1 - train_prior))
