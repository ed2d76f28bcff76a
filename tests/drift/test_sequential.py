"""CUSUM and Page-Hinkley against hand-computed sequences."""

import pytest

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


def test_invalid_threshold():
    with pytest.raises(ValueError, match="threshold"):
        Cusum(0.1, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        PageHinkley(0.1, -1.0)
