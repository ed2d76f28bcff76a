"""A Ctrl-C at any line of a sync call, and an event loop closed under waiting tasks, must leave
the rate limiter whole: no ticket left in the queue, no slot left in flight, its lock free, and
the full ``rpm`` admitted afterwards.

Python's SIGINT handler raises ``KeyboardInterrupt`` between any two bytecodes. A real signal
lands at random, so these tests place it instead: a ``sys.settrace`` function raises
``KeyboardInterrupt`` at the n-th line run in the functions under test (an exception from a
trace function propagates from that line), for n = 1, 2, ... until a call runs to its end.
"""

from __future__ import annotations

import ast
import asyncio
import dis
import inspect
import sys
import textwrap
import threading
import time

from llm_client import Client
from llm_client.client import Client as _Client
from llm_client.rate_limit import RateLimiter

USER = [{"role": "user", "content": "hello"}]


class ShiftedClock:
    """The real clock (``acquire`` really waits) plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def no_signal_here(code) -> set[int]:
    """Offsets where a line event fires but a real Ctrl-C cannot land, so none is placed there.

    CPython runs signal handlers only at calls, backward jumps and function starts. A ``try:``
    line is a bare NOP (covered by no handler, not even the enclosing ``try``'s), and a ``with``
    block's normal exit starts with loading ``None, None, None`` for ``__exit__``: a real Ctrl-C
    lands in the previous line's call or inside ``__exit__``, never before them.
    """
    ops = list(dis.get_instructions(code))
    skip = {op.offset for op in ops if op.opname == "NOP"}
    for k in range(len(ops) - 3):
        if [op.opname for op in ops[k : k + 4]] == ["LOAD_CONST"] * 3 + ["PRECALL"] and all(
            op.argval is None for op in ops[k : k + 3]
        ):
            skip.add(ops[k].offset)
            if k and ops[k - 1].opname == "SWAP":  # the exit on a ``return`` from the block
                skip.add(ops[k - 1].offset)
    return skip


def cleanup_lines(code) -> set[int]:
    """The lines of ``code``'s ``except`` and ``finally`` suites. Not interrupted: Python has no
    way to defer a Ctrl-C out of cleanup code (PEP 419 was withdrawn); what must hold is that
    no line *outside* them leaves a ticket or a slot behind."""
    first = code.co_firstlineno
    tree = ast.parse(textwrap.dedent(inspect.getsource(code)))
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for stmt in node.finalbody + [s for h in node.handlers for s in h.body]:
                lines.update(range(stmt.lineno + first - 1, stmt.end_lineno + first))
    return lines


def interrupt_at_line(n: int, codes: set) -> tuple:
    """(a trace function raising KeyboardInterrupt at the n-th line run in ``codes``, and a
    one-item list counting the lines seen: below n after the call, it ran uninterrupted)."""
    seen = [0]
    skip = {code: no_signal_here(code) for code in codes}
    finals = {code: cleanup_lines(code) for code in codes}

    def local(frame, event, arg):
        code = frame.f_code
        if (
            event == "line"
            and frame.f_lasti not in skip[code]
            and frame.f_lineno not in finals[code]
        ):
            seen[0] += 1
            if seen[0] == n:
                raise KeyboardInterrupt  # what SIGINT raises, at this line
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code in codes else None

    return tracer, seen


def run_interrupted(n: int, codes: set, call) -> tuple[object, int]:
    """``call()`` on a thread with a Ctrl-C at its n-th traced line: (its result or exception,
    the lines seen). A thread, so that a limiter deadlocked by the Ctrl-C fails the test."""
    tracer, seen = interrupt_at_line(n, codes)
    outcome: list[object] = []

    def target() -> None:
        sys.settrace(tracer)
        try:
            outcome.append(call())
        except BaseException as exc:  # the test inspects what escaped
            outcome.append(exc)
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), f"a Ctrl-C at line {n} left the call hanging (a lock held?)"
    return outcome[0], seen[0]


def assert_whole(limiter: RateLimiter, clock: ShiftedClock, where: str) -> None:
    assert not limiter._queue, f"{where}: a ticket stayed queued"
    assert not limiter._in_flight, f"{where}: a slot stayed in flight"
    assert not limiter._lock.locked(), f"{where}: the limiter's lock stayed held"


def assert_full_rate(limiter: RateLimiter, clock: ShiftedClock) -> None:
    """One window later, exactly ``rpm`` fresh requests are admitted at once."""
    clock.offset += 2 * limiter.window
    admitted = [limiter.poll(limiter.join(1)) == 0.0 for _ in range(limiter.rpm + 1)]
    assert admitted == [True] * limiter.rpm + [False]


def test_a_ctrl_c_at_any_line_of_a_waiting_acquire_leaves_the_limiter_whole():
    # Each call must wait (both slots held until a short window passes), so the interrupt also
    # lands in the waiting: before, Condition.wait interrupted there ended in "RuntimeError:
    # release unlocked lock", and one right after join() left its ticket at the queue's head.
    clock = ShiftedClock()
    limiter = RateLimiter(rpm=2, window=0.02, clock=clock)
    codes = {RateLimiter.acquire.__code__, RateLimiter.join.__code__}
    cond = threading.Condition
    codes |= {f.__code__ for f in (cond.__enter__, cond.wait, cond.__exit__)}
    n, interrupted = 1, 0
    while True:
        for _ in range(2):
            limiter.release(limiter.acquire(1))
        outcome, seen = run_interrupted(n, codes, lambda: limiter.acquire(1))
        if seen < n:  # ran to its end
            assert outcome in limiter._in_flight
            limiter.release(outcome)
            break
        assert isinstance(outcome, KeyboardInterrupt), f"line {n}: {outcome!r}"
        assert_whole(limiter, clock, f"Ctrl-C at line {n}")
        n, interrupted = n + 1, interrupted + 1
    assert interrupted >= 8  # the queueing, the waiting and the admission were all interrupted
    assert_whole(limiter, clock, "after the last call")
    assert_full_rate(limiter, clock)


def test_a_ctrl_c_at_any_line_of_a_sync_call_gives_back_its_slot(fault_server):
    # Before, a Ctrl-C on the line after admission (_acquire's stats.count) kept the slot in
    # flight for the client's life; streams (_open_stream) had the same gap.
    clock = ShiftedClock()
    limiter = RateLimiter(rpm=3, window=60.0, clock=clock)
    client = Client(fault_server.base_url, model="m", limiter=limiter, max_retries=0)
    codes = {
        f.__code__
        for f in (
            _Client._acquire,
            _Client._post_json,
            _Client._open_stream,
            RateLimiter.acquire,
            RateLimiter.join,
        )
    }

    def stream() -> str:
        with client.chat(USER, max_tokens=4, stream=True, cache=False) as chunks:
            return "".join(chunk.delta for chunk in chunks)

    for name, call in (("chat", lambda: client.chat(USER, max_tokens=4, cache=False)),
                       ("stream", stream)):  # fmt: skip
        n = 1
        while True:
            clock.offset += 61.0  # earlier calls' slots have expired: the next is admitted
            outcome, seen = run_interrupted(n, codes, call)
            assert_whole(limiter, clock, f"{name}, Ctrl-C at line {n}")
            if seen < n:
                assert not isinstance(outcome, BaseException), f"{name}: {outcome!r}"
                break
            assert isinstance(outcome, KeyboardInterrupt), f"{name}, line {n}: {outcome!r}"
            n += 1
        assert n > 5
    assert_full_rate(limiter, clock)


def test_a_loop_closed_under_waiting_tasks_does_not_block_the_limiter():
    # Ctrl-C out of run_until_complete, then loop.close(): the waiting tasks never run their
    # cleanup. Before, their tickets blocked the queue's head and every notify raised
    # "RuntimeError: Event loop is closed" into the caller (a sync release or acquire).
    clock = ShiftedClock()
    limiter = RateLimiter(rpm=1, window=1.0, clock=clock)
    loop = asyncio.new_event_loop()
    tasks = [loop.create_task(limiter.acquire_async(1)) for _ in range(3)]
    loop.run_until_complete(asyncio.sleep(0.01))  # one admitted, two waiting
    first = tasks[0].result()
    assert len(limiter._queue) == 2 and len(limiter._async_waiters) == 2
    loop.close()  # tasks (kept referenced, as gather does) are never resumed

    limiter.release(first)  # notifies the waiters: their loop is closed
    clock.offset += 2.0
    permit = limiter.acquire(1, deadline=clock() + 5.0)  # the dead tickets are skipped
    limiter.release(permit)
    assert not limiter._queue and not limiter._async_waiters
    assert_full_rate(limiter, clock)
    del tasks
