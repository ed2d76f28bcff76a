"""``temporary_sibling``: each writer's own temporary name beside the entry it will replace."""

from pathlib import Path

import pytest

from evals.files import remove_abandoned_siblings, temporary_sibling, written_atomically


def test_names_sit_beside_the_entry_differ_on_every_call_and_keep_the_suffix(tmp_path):
    entry = tmp_path / "vectors.npy"
    names = {temporary_sibling(entry, ".tmp.npy") for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert name.parent == tmp_path  # same folder, so the final rename is atomic
        assert name.name.startswith("vectors.npy.") and name.name.endswith(".tmp.npy")
    assert temporary_sibling(entry).name.endswith(".tmp")


def test_only_siblings_of_writers_that_have_exited_are_removed(tmp_path):
    entry = tmp_path / "finetuned-abc"
    exited = 99_999_999  # above any pid_max, so no process has it
    dead_folder = tmp_path / f"finetuned-abc.{exited}.0123456789ab.tmp"
    dead_folder.mkdir()
    (dead_folder / "model.safetensors").write_bytes(b"half a model")
    dead_aside = tmp_path / f"finetuned-abc.{exited}.ba9876543210.old"
    dead_aside.mkdir()
    ours = temporary_sibling(entry)  # this process is alive: it may be writing there now
    ours.write_text("being written")
    others = [tmp_path / "finetuned-abcd.99999999.0123456789ab.tmp", tmp_path / "finetuned-abc"]
    others[0].write_text("another entry's")
    others[1].mkdir()
    removed = remove_abandoned_siblings(entry)
    assert sorted(removed) == sorted([dead_folder, dead_aside])
    assert sorted(tmp_path.iterdir()) == sorted([ours, *others])


def test_a_write_that_fails_leaves_the_entry_as_it_was_and_no_temporary_file(tmp_path):
    entry = tmp_path / "record.json"
    with written_atomically(entry) as tmp:
        tmp.write_text("first")
    assert entry.read_text() == "first"
    with pytest.raises(RuntimeError), written_atomically(entry) as tmp:
        tmp.write_text("half of the sec")
        raise RuntimeError("the writer fails mid-write")
    assert entry.read_text() == "first"
    assert list(tmp_path.iterdir()) == [entry]


def test_exclusive_lock_is_reentrant_one_lock_per_file_and_separates_threads(tmp_path):
    import threading

    from evals.files import exclusive_lock

    (tmp_path / "sub").mkdir()
    lock = tmp_path / "x.lock"
    entered, released = threading.Event(), threading.Event()

    def other():
        with exclusive_lock(lock, "the test"):
            entered.set()

    thread = threading.Thread(target=other, daemon=True)
    with exclusive_lock(lock, "nothing"), exclusive_lock(tmp_path / "sub/../x.lock", "itself"):
        thread.start()  # re-entered above without waiting; another thread must wait
        assert not entered.wait(timeout=0.5)
        released.set()
    assert entered.wait(timeout=10) and released.is_set()


def test_the_next_write_clears_what_a_killed_writer_left(tmp_path):
    # a writer killed mid-save cannot remove its temporary file; only fine-tunes used to clear
    # them, so a recsys model folder kept one per kill (found by a review: 12 after 30 kills)
    entry = tmp_path / "model.pkl"
    killed = tmp_path / "model.pkl.99999999.0123456789ab.tmp"  # pid above any pid_max: exited
    killed.write_bytes(b"half a model")
    with written_atomically(entry) as tmp:
        tmp.write_bytes(b"a whole model")
    assert sorted(tmp_path.iterdir()) == [entry]
    assert entry.read_bytes() == b"a whole model"


def test_writable_folder_creates_the_folder_and_leaves_nothing_in_it(tmp_path):
    from evals.files import writable_folder

    folder = writable_folder(tmp_path / "a" / "b")
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_writable_folder_raises_where_nothing_can_be_written(tmp_path):
    import os

    from evals.files import writable_folder

    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OSError):
        writable_folder(tmp_path / "file")  # a file, not a folder
    with pytest.raises(OSError):
        writable_folder(tmp_path / "file" / "under")  # a path under a file
    if os.path.isdir("/sys/kernel"):  # a folder even root cannot write in (Linux)
        with pytest.raises(OSError):
            writable_folder(Path("/sys/kernel"))
