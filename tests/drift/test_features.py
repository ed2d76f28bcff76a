"""split_reference on synthetic hours: a holdout share or a seed numpy cannot take is refused."""

import math

import pytest

from drift.errors import ConfigError
from drift.features import split_reference


def test_split_is_by_day_with_the_requested_share(hour_csv):
    data = split_reference(hour_csv, holdout_share=0.4, seed=0)
    assert data.holdout["dteday"].nunique() == 20 and data.train["dteday"].nunique() == 30
    assert not set(data.train["dteday"]) & set(data.holdout["dteday"])
    assert len(data.future) == 20 * 24


@pytest.mark.parametrize("share", [1.5, math.nan, 0.0, 1.0, -0.2, math.inf, "0.4", True])
def test_a_holdout_share_outside_zero_to_one_is_a_config_error(hour_csv, share):
    """1.5 and NaN failed inside numpy's ``choice`` / ``round`` (found by a review)."""
    with pytest.raises(ConfigError, match="strictly between 0 and 1") as info:
        split_reference(hour_csv, holdout_share=share)
    assert info.value.field == "holdout_share"


@pytest.mark.parametrize("share", [0.001, 0.999])
def test_a_share_that_rounds_to_no_holdout_or_no_training_day_is_refused(hour_csv, share):
    with pytest.raises(ConfigError, match="of the 50 days of 2011 in the frame is"):
        split_reference(hour_csv, holdout_share=share)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_a_seed_numpy_cannot_take_is_a_config_error(hour_csv, seed):
    with pytest.raises(ConfigError, match="seed: must be a whole number from 0 to 2\\*\\*32 - 1"):
        split_reference(hour_csv, seed=seed)
