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


def test_where_processes_cannot_be_probed_nothing_is_removed(tmp_path, monkeypatch):
    # Windows: os.kill(pid, 0) there terminates the process instead of testing it
    import evals.files

    monkeypatch.setattr(evals.files, "_CAN_PROBE_PROCESSES", False)
    entry = tmp_path / "model.pkl"
    killed = tmp_path / "model.pkl.99999999.0123456789ab.tmp"
    killed.write_bytes(b"half a model")
    assert remove_abandoned_siblings(entry) == []
    assert killed.exists()


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


@pytest.fixture(params=["flock", "filelock"])
def lock_backend(request, monkeypatch):
    """Both lock back-ends: POSIX ``flock``, and the ``filelock`` package that Windows uses (run
    here on Linux by hiding ``fcntl``, as on Windows)."""
    import evals.files

    if request.param == "filelock":
        monkeypatch.setattr(evals.files, "fcntl", None)
    return request.param


def test_exclusive_lock_is_reentrant_one_lock_per_file_and_separates_threads(
    tmp_path, lock_backend
):
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


HOLD_THE_LOCK = """
import sys
import evals.files
from evals.files import exclusive_lock, shared_lock
if sys.argv[2] == "filelock":
    evals.files.fcntl = None
take = shared_lock if sys.argv[3] == "shared" else exclusive_lock
with take(sys.argv[1], "the test"):
    print("held", flush=True)
    sys.stdin.readline()  # hold it until the test says
"""


@pytest.mark.parametrize(
    "theirs, mine", [("exclusive", "exclusive"), ("exclusive", "shared"), ("shared", "exclusive")]
)
def test_a_lock_another_process_holds_is_waited_for_and_logged(
    tmp_path, lock_backend, theirs, mine, caplog
):
    import logging
    import subprocess
    import sys
    import threading

    from evals.files import exclusive_lock, shared_lock

    root = Path(__file__).resolve().parents[2]
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(lock), lock_backend, theirs],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        entered = threading.Event()

        def take():
            with (shared_lock if mine == "shared" else exclusive_lock)(lock, "the holder"):
                entered.set()

        with caplog.at_level(logging.INFO, logger="evals.files"):
            thread = threading.Thread(target=take, daemon=True)
            thread.start()
            assert not entered.wait(timeout=0.5)  # the other process holds it
            holder.stdin.write("release\n")
            holder.stdin.flush()
            assert entered.wait(timeout=10)
            thread.join(timeout=10)
        assert "waiting for the holder" in caplog.text
    finally:
        holder.kill()
        holder.wait()


def test_shared_locks_are_held_together_and_an_exclusive_one_waits_for_them(tmp_path):
    import threading

    from evals.files import exclusive_lock, shared_lock

    lock = tmp_path / "x.lock"
    two_readers = threading.Barrier(2, timeout=10)
    writer_in = threading.Event()

    def reader():
        with shared_lock(lock, "the test"):
            two_readers.wait()  # breaks (an error) unless both readers hold the lock at once

    def writer():
        with exclusive_lock(lock, "the readers"):
            writer_in.set()

    readers = [threading.Thread(target=reader) for _ in range(2)]
    with shared_lock(lock, "nothing"):
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join(timeout=10)
        assert not two_readers.broken
        writing = threading.Thread(target=writer, daemon=True)
        writing.start()
        assert not writer_in.wait(timeout=0.5)  # this thread still reads
    assert writer_in.wait(timeout=10)


def test_a_shared_lock_cannot_be_upgraded_but_an_exclusive_one_can_be_read_under(
    tmp_path, lock_backend
):
    from evals.files import exclusive_lock, shared_lock

    lock = tmp_path / "x.lock"
    with exclusive_lock(lock, "nothing"), shared_lock(lock, "itself"):
        pass  # a writer may read under its own lock
    upgrade = r"holds a shared lock .* asked for an exclusive"
    with shared_lock(lock, "nothing"), pytest.raises(RuntimeError, match=upgrade):
        exclusive_lock(lock, "itself").__enter__()
    with exclusive_lock(lock, "nothing"):  # and the failed upgrade left nothing held
        pass


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
