"""ModerationConfig refuses settings out of range, NaN included (every comparison with NaN is
false, so a check written as ``x <= 0`` lets it through)."""

from __future__ import annotations

import math

import pytest

from moderation.config import ModerationConfig
from moderation.errors import ConfigError

NAN = math.nan


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_chars", NAN),
        ("max_chars", 0),
        ("max_chars", 2.5),
        ("max_chars", True),
        ("lease_seconds", NAN),
        ("lease_seconds", 0),
        ("lease_seconds", math.inf),  # found by a review: it locked a claimed item forever
        ("lease_seconds", 86_401.0),
        ("C", NAN),
        ("C", 0),
        ("child_C", NAN),
        ("auto_confidence_z", NAN),
        ("auto_confidence_z", -1.0),
        ("auto_confidence_z", math.inf),
        ("min_auto_support", -5),
        ("min_auto_support", 2.5),
        ("target_precision", NAN),
    ],
)
def test_a_setting_out_of_range_is_refused_and_named(setting, value):
    with pytest.raises(ConfigError, match=setting):
        ModerationConfig(**{setting: value})


def test_the_defaults_and_the_edges_of_each_range_are_accepted():
    ModerationConfig()
    ModerationConfig(max_chars=1, lease_seconds=0.5, C=1e-3, auto_confidence_z=0.0)
    ModerationConfig(min_auto_support=0)  # no minimum: any one item may back an auto cut
