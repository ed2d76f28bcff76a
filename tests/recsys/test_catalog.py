"""The catalogue's id maps: one row and one column per id, built from the metadata frames."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.catalog import Catalog
from recsys.errors import InvalidArgumentError
from tests.recsys.conftest import GENRES


@pytest.mark.parametrize("which", ["items", "users"])
def test_duplicate_ids_in_the_metadata_are_refused_and_named(frames, which):
    # A repeated id would get a second column (or row) that no interaction ever reaches: a seen
    # item would then be recommended as unseen, and the cold-start list would hold it twice.
    _, items, users = frames
    frame = items if which == "items" else users
    column = "item_id" if which == "items" else "user_id"
    doubled = pd.concat([frame, frame.iloc[[4, 0, 4]]])  # ids 5, 1, 5 repeated
    kwargs = {"items": items, "users": users, which: doubled}
    with pytest.raises(InvalidArgumentError, match=rf"{which} frame repeats {column} 1, 5"):
        Catalog.from_frames(kwargs["items"], kwargs["users"], GENRES)


@pytest.mark.parametrize(
    "which, column",
    [("items", "title"), ("items", "release_date"), ("users", "occupation"), ("users", "age")],
)
def test_a_metadata_frame_without_a_column_it_needs_is_refused_naming_it(frames, which, column):
    # it escaped as pandas' KeyError: 'title' (found by a review)
    _, items, users = frames
    kwargs = {"items": items, "users": users}
    kwargs[which] = kwargs[which].drop(columns=column)
    with pytest.raises(
        InvalidArgumentError, match=rf"{which} frame lacks the column\(s\) \['{column}'\]"
    ):
        Catalog.from_frames(kwargs["items"], kwargs["users"], GENRES)
