"""A two-stage recommender (candidate generation + learning-to-rank) on MovieLens 100K.

See README.md for the file map, the measured table and the failure modes.
"""

from recsys.catalog import Catalog
from recsys.config import RecsysConfig
from recsys.errors import (
    InvalidArgumentError,
    ModelFileError,
    NotFittedError,
    RecsysError,
    UnknownItemError,
    UnknownUserError,
    UnsafeModelError,
)
from recsys.recommender import Recommendation, TwoStageRecommender
from recsys.splits import Split, stratified_split, temporal_split

Recommender = TwoStageRecommender  # the serving name used in the issue and the README

__all__ = [
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
