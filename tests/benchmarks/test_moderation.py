"""The moderation benchmark's fine-tuning threads setting (``AIS_FINETUNE_THREADS``)."""

import pytest

from benchmarks.moderation import THREADS_ENV, finetune_threads


def test_fine_tunes_use_one_thread_unless_told_otherwise():
    assert finetune_threads({}) == 1
    assert finetune_threads({THREADS_ENV: "2"}) == 2


@pytest.mark.parametrize("raw", ["0", "-1", "two", "", "1.5"])
def test_a_thread_count_that_is_not_a_positive_whole_number_is_refused(raw):
    with pytest.raises(ValueError, match=f"{THREADS_ENV} must be a whole number"):
        finetune_threads({THREADS_ENV: raw})
