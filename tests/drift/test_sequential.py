"""CUSUM and Page-Hinkley against hand-computed sequences."""

import math

import numpy as np
import pytest

from drift.errors import ConfigError, ObservationError
from drift.sequential import Cusum, PageHinkley


def test_cusum_hand_computed():
    cusum = Cusum(allowance=0.1, threshold=0.5)
    # S: max(0, 0+0.05-0.1)=0; 0+0.4-0.1=0.3; 0.3+0.4-0.1=0.6 > 0.5 -> alarm, reset
    states = [cusum.update(x) for x in (0.05, 0.4, 0.4, 0.0)]
    assert [round(s.statistic, 10) for s in states] == [0.0, 0.3, 0.6, 0.0]
    assert [s.alarm for s in states] == [False, False, True, False]


def test_cusum_never_alarms_below_allowance():
    cusum = Cusum(allowance=0.15, threshold=0.3)
    assert not any(cusum.update(0.149).alarm for _ in range(1000))


def test_cusum_delay_formula():
    """A shift d > k alarms after about h / (d - k) observations."""
    cusum = Cusum(allowance=0.1, threshold=1.0)
    alarms = [cusum.update(0.35).alarm for _ in range(10)]
    assert alarms.index(True) == 4  # 5 * 0.25 = 1.25 > 1.0, while 4 * 0.25 = 1.0 is not > 1.0


def test_page_hinkley_hand_computed():
    ph = PageHinkley(delta=0.0, threshold=1.5)
    # x: 0, 0, 2, 2 -> means 0, 0, 2/3, 1; cumulative: 0, 0, 4/3, 4/3 + 1 = 7/3; min 0
    states = [ph.update(x) for x in (0.0, 0.0, 2.0, 2.0)]
    assert states[2].statistic == pytest.approx(4 / 3)
    assert not states[2].alarm
    assert states[3].statistic == pytest.approx(7 / 3)
    assert states[3].alarm
    assert ph.n == 0  # reset after alarm


def test_page_hinkley_delta_is_subtracted_hand_computed():
    ph = PageHinkley(delta=0.25, threshold=10.0)
    # x: 0, 1, 1, 1, 1 -> means 0, 1/2, 2/3, 3/4, 4/5; terms x - mean - 0.25: -1/4, 1/4, 1/12, 0,
    # -1/20; cumulative -1/4, 0, 1/12, 1/12, 1/30; minimum -1/4 from the first step on
    states = [ph.update(x) for x in (0.0, 1.0, 1.0, 1.0, 1.0)]
    expected = [0.0, 1 / 4, 1 / 3, 1 / 3, 1 / 30 + 1 / 4]
    assert [s.statistic for s in states] == pytest.approx(expected)
    assert not any(s.alarm for s in states)


def test_page_hinkley_delta_ignores_a_shift_smaller_than_delta():
    """After one 0, a steady 0.4: x_i - mean_i = 0.4 / i. With delta = 0 these add up without
    bound (0.4 times the harmonic series) and alarm; with delta = 0.5 every term is negative."""
    sequence = [0.0] + [0.4] * 199
    no_allowance = PageHinkley(delta=0.0, threshold=1.0)
    alarms = [no_allowance.update(x).alarm for x in sequence]
    # 0.4 * (1/2 + ... + 1/18) = 0.998 is not > 1.0; adding 0.4 / 19 (the 19th value) is
    assert alarms.index(True) == 18
    allowance = PageHinkley(delta=0.5, threshold=1.0)
    states = [allowance.update(x) for x in sequence]
    assert not any(s.alarm for s in states)
    assert all(s.statistic == 0.0 for s in states)


@pytest.mark.parametrize(
    ("detector", "names"), [(Cusum, "allowance threshold"), (PageHinkley, "delta threshold")]
)
@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        ((0.1, 0.0), 1),
        ((0.1, -1.0), 1),
        ((0.1, math.nan), 1),  # passed ``threshold <= 0``, then could never alarm
        ((0.1, math.inf), 1),
        ((0.1, "0.3"), 1),
        ((0.1, True), 1),
        ((math.nan, 0.3), 0),
        ((-math.inf, 0.3), 0),
    ],
)
def test_constructor_arguments_are_config_errors_naming_the_field(detector, names, args, culprit):
    """They were builtin ValueErrors outside the drift tree, and NaN or inf got through (found by
    a review)."""
    field = names.split()[culprit]
    with pytest.raises(ConfigError, match=f"^{field}: must be a finite number") as info:
        detector(*args)
    assert info.value.field == field


def test_a_negative_allowance_and_numpy_numbers_are_accepted():
    """k is a reference level: on a statistic that is negative when all is well it is too."""
    cusum = Cusum(allowance=np.float32(-0.5), threshold=np.int64(1))
    assert (cusum.allowance, cusum.threshold) == (-0.5, 1.0)
    assert type(cusum.threshold) is float
    assert cusum.update(np.float64(-0.2)).statistic == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan"), None, "0.4"])
def test_a_non_finite_observation_is_refused_and_leaves_the_evidence_alone(bad):
    """One NaN reset CUSUM's evidence to 0 (``max(0, nan)`` is 0) and made Page-Hinkley's running
    mean NaN, so it never alarmed again (found by a review)."""
    cusum = Cusum(allowance=0.1, threshold=0.5)
    cusum.update(0.5)  # S = 0.4
    with pytest.raises(ObservationError, match="not a finite number") as info:
        cusum.update(bad)
    assert info.value.value is bad
    assert cusum.value == pytest.approx(0.4)
    assert cusum.update(0.5).alarm  # 0.4 + 0.4 > 0.5: the evidence was kept

    ph = PageHinkley(delta=0.0, threshold=1.5)
    for x in (0.0, 0.0):
        ph.update(x)
    with pytest.raises(ObservationError):
        ph.update(bad)
    assert (ph.n, ph.mean, ph.cumulative) == (2, 0.0, 0.0)
    states = [ph.update(x) for x in (2.0, 2.0)]  # as in test_page_hinkley_hand_computed
    assert states[1].statistic == pytest.approx(7 / 3) and states[1].alarm
