import numpy as np
import pytest

from evals.classification import expected_calibration_error
from moderation.calibration import IsotonicCalibrator, SigmoidCalibrator, make
from moderation.errors import ConfigError, NotTrainedError


def _overconfident(n: int, seed: int):
    """True probability q; the model reports q**0.3 (far too high)."""
    rng = np.random.default_rng(seed)
    q = rng.random(n)
    return q**0.3, (rng.random(n) < q).astype(int)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_on_held_out_data_reduces_ece(method):
    s_fit, y_fit = _overconfident(5000, 0)
    s_test, y_test = _overconfident(5000, 1)
    cal = make(method).fit(s_fit, y_fit)
    before = expected_calibration_error(y_test, s_test)
    after = expected_calibration_error(y_test, cal.transform(s_test))
    assert before > 0.1
    assert after < 0.03


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_is_monotone_and_in_unit_interval(method):
    s, y = _overconfident(2000, 2)
    out = make(method).fit(s, y).transform(np.linspace(0, 1, 101))
    assert np.all(np.diff(out) >= -1e-12)
    assert out.min() >= 0 and out.max() <= 1


def test_sigmoid_matches_platt_fit_by_hand():
    # Platt on the logit: p = sigmoid(a * logit(s) + b); for s already calibrated a~1, b~0
    rng = np.random.default_rng(3)
    s = rng.uniform(0.01, 0.99, 20000)
    y = (rng.random(20000) < s).astype(int)
    model = SigmoidCalibrator().fit(s, y)._model
    assert model.coef_[0, 0] == pytest.approx(1.0, abs=0.05)
    assert model.intercept_[0] == pytest.approx(0.0, abs=0.05)


def test_errors():
    with pytest.raises(NotTrainedError):
        IsotonicCalibrator().transform(np.array([0.5]))
    with pytest.raises(ConfigError, match="both positive and negative"):
        IsotonicCalibrator().fit(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(ConfigError, match="unknown calibration"):
        make("magic")
