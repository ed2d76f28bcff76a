"""The public surface of ``recsys`` is pinned: changing it is a deliberate act."""

from __future__ import annotations

import pytest

import recsys
from recsys.errors import RecsysError, UnknownIdError, UnknownItemError, UnknownUserError


def test_all_is_pinned():
    assert sorted(recsys.__all__) == sorted(
        [
            "Catalog",
            "InvalidArgumentError",
            "ModelFileError",
            "NotFittedError",
            "Recommendation",
            "Recommender",
            "RecsysConfig",
            "RecsysError",
            "Split",
            "TwoStageRecommender",
            "UnknownItemError",
            "UnknownUserError",
            "UnsafeModelError",
            "stratified_split",
            "temporal_split",
        ]
    )
    assert recsys.Recommender is recsys.TwoStageRecommender


def test_exception_tree():
    for cls in (UnknownUserError, UnknownItemError):
        assert issubclass(cls, UnknownIdError) and issubclass(cls, KeyError)
        assert issubclass(cls, RecsysError)
    assert issubclass(recsys.InvalidArgumentError, ValueError)


def test_unknown_item_error_lists_ids(catalog):
    with pytest.raises(UnknownItemError) as info:
        catalog.item_index([1, 5000, 6000])
    assert info.value.ids == [5000, 6000]
    assert "unknown item id(s): 5000, 6000" in str(info.value)
