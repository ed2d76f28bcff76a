"""The rules of rag.rwlock.RWLock, each shown with real threads.

Waits are bounded (``Event.wait(10)``) only so that a broken lock fails the test instead of
hanging the suite; no assertion is about time.
"""

from __future__ import annotations

import threading

import pytest

from rag.rwlock import RWLock


def in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def wait_until_a_writer_waits(lock: RWLock) -> None:
    for _ in range(10_000):
        with lock._cond:
            if lock._writers_waiting:
                return
        threading.Event().wait(0.001)
    raise AssertionError("the writer never started waiting")


def test_readers_share_the_lock():
    lock, inside, both = RWLock(), threading.Barrier(2, timeout=10), []

    def reader():
        with lock.read():
            inside.wait()  # both readers inside at once, or the barrier breaks
            both.append(True)

    threads = [in_thread(reader), in_thread(reader)]
    for t in threads:
        t.join(10)
    assert both == [True, True]


def test_a_waiting_writer_goes_before_readers_that_come_after_it():
    lock, order = RWLock(), []
    first_in, release_first = threading.Event(), threading.Event()

    def first_reader():
        with lock.read():
            first_in.set()
            release_first.wait(10)

    def writer():
        with lock.write():
            order.append("writer")

    def late_reader():
        with lock.read():
            order.append("late reader")

    a = in_thread(first_reader)
    assert first_in.wait(10)
    w = in_thread(writer)
    wait_until_a_writer_waits(lock)
    b = in_thread(late_reader)  # arrives while the writer waits: queues behind it
    release_first.set()
    for t in (a, w, b):
        t.join(10)
    assert order == ["writer", "late reader"]


def test_a_reader_may_read_again_while_a_writer_waits():
    # a nested read that waited for the writer would wait forever: the writer waits for it
    lock, nested_done, writer_in = RWLock(), threading.Event(), threading.Event()
    outer_in, go_on = threading.Event(), threading.Event()

    def reader():
        with lock.read():
            outer_in.set()
            go_on.wait(10)
            with lock.read():
                nested_done.set()

    r = in_thread(reader)
    assert outer_in.wait(10)

    def writer():
        with lock.write():
            writer_in.set()

    w = in_thread(writer)
    wait_until_a_writer_waits(lock)
    go_on.set()
    assert nested_done.wait(10), "the nested read waited behind the writer: deadlock"
    assert writer_in.wait(10)  # and the writer got in once the reader left
    r.join(10)
    w.join(10)


def test_the_writer_may_take_either_lock_again():
    lock = RWLock()
    with lock.write(), lock.write(), lock.read():
        assert lock._writer == threading.get_ident()
    assert lock._writer is None and lock._readers == 0


def test_upgrading_a_read_to_a_write_is_refused_not_a_deadlock():
    lock = RWLock()
    refused = pytest.raises(RuntimeError, match=r"holds the index's read lock .* upgrade")
    with lock.read(), refused, lock.write():
        pass
    with lock.write():  # the refused upgrade left nothing held
        pass
