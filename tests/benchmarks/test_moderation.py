"""The moderation benchmark's fine-tuning threads setting (``AIS_FINETUNE_THREADS``)."""

import pytest

from benchmarks.moderation import THREADS_ENV, finetune_threads


def test_fine_tunes_follow_the_records_recipe_unless_told_otherwise():
    assert finetune_threads({}) is None  # MiniLM trains with 1 thread, SmolLM2 with 2
    assert finetune_threads({THREADS_ENV: "2"}) == 2


@pytest.mark.parametrize("raw", ["0", "-1", "two", "", "1.5"])
def test_a_thread_count_that_is_not_a_positive_whole_number_is_refused(raw):
    with pytest.raises(ValueError, match=f"{THREADS_ENV} must be a whole number"):
        finetune_threads({THREADS_ENV: raw})
