"""One AsyncClient used from several event loops, over real sockets (connections.py).

httpx.MockTransport has no connection pool, so it cannot show what went wrong here: these
tests talk to the fault server, whose keep-alive connections the pool really holds.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import threading
import warnings
import weakref

import pytest

from llm_client import AsyncClient, Client, ConfigurationError
from llm_client.faults import Fault


def ask(client: AsyncClient, text: str):
    return client.chat([{"role": "user", "content": text}])


def test_one_async_client_serves_asyncio_run_after_asyncio_run(fault_server):
    # before: run 1 was handed run 0's keep-alive connection, whose loop was closed, and raised
    # a bare "RuntimeError: Event loop is closed" (not retried, not counted)
    client = AsyncClient(fault_server.base_url, model="m", max_retries=0)
    loops = []

    async def one_run(i: int) -> tuple[str, str]:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        async with await client.chat([{"role": "user", "content": f"s{i}"}], stream=True) as s:
            streamed = "".join([chunk.delta async for chunk in s])
        reply = await ask(client, f"q{i}")  # last: its connection stays in the pool, kept alive
        return reply.text, streamed

    gc.collect()  # earlier tests' garbage: its warnings are not ours
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        results = [asyncio.run(one_run(i)) for i in range(3)]
        gc.collect()
    assert results == [(f"echo: q{i}", f"echo: s{i}") for i in range(3)]
    assert client.stats.errors == {}
    # each loop closed its own connections as it shut down, and nothing keeps it alive
    assert len(client._connections) == 0
    assert all(loop() is None for loop in loops)
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_one_async_client_serves_two_threads_each_running_its_loops(fault_server):
    # the README's case: before, calls failed with "bound to a different event loop" and some
    # hung past total_timeout, parked in the pool on a future the other thread completed
    client = AsyncClient(fault_server.base_url, model="m", max_retries=0, total_timeout=5)
    outcomes: collections.Counter[str] = collections.Counter()

    async def series(t: int, run: int) -> None:
        for i in range(15):
            try:
                await ask(client, f"t{t} r{run} q{i}")
                outcomes["ok"] += 1
            except Exception as exc:  # counted, and shown by the assertion below
                outcomes[f"{type(exc).__name__}: {exc}"[:120]] += 1

    def worker(t: int) -> None:
        for run in range(3):
            asyncio.run(series(t, run))

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)  # only the old code came near it: it hung
    assert not any(thread.is_alive() for thread in threads), f"calls hung: {outcomes}"
    assert outcomes == {"ok": 90} and client.stats.errors == {}
    assert len(client._connections) == 0


def test_aclose_closes_a_live_loops_connections_there_and_drops_a_closed_loops(fault_server):
    # closing from one loop must neither hang nor raise for the others: a loop still running in
    # another thread closes its own connections; a loop closed by hand (no shutdown_asyncgens,
    # so nothing closed its client) is only forgotten
    client = AsyncClient(fault_server.base_url, model="m")
    other = asyncio.new_event_loop()
    runner = threading.Thread(target=other.run_forever, daemon=True)
    runner.start()
    try:
        reply = asyncio.run_coroutine_threadsafe(ask(client, "b"), other).result(timeout=10)
        assert reply.text == "echo: b"
        others_http = client._connections._per_loop[other].http
        by_hand = asyncio.new_event_loop()
        assert by_hand.run_until_complete(ask(client, "a")).text == "echo: a"
        by_hand.close()
        assert len(client._connections) == 2

        asyncio.run(client.aclose())  # a third loop: neither of the two is its own

        assert len(client._connections) == 0

        async def closed_there() -> bool:  # the close is a task on that loop: wait for it there
            for _ in range(500):
                if others_http.is_closed:
                    return True
                await asyncio.sleep(0.01)
            return False

        assert asyncio.run_coroutine_threadsafe(closed_there(), other).result(timeout=10)
    finally:
        other.call_soon_threadsafe(other.stop)
        runner.join(timeout=10)
        other.close()


def test_a_loop_closed_by_hand_is_forgotten_at_the_next_loops_first_call(fault_server):
    # loop.close() without shutdown_asyncgens closes nothing of ours: the next loop to call
    # drops that loop's client, so it is not kept (with the loop it holds) for ever
    client = AsyncClient(fault_server.base_url, model="m")
    by_hand = asyncio.new_event_loop()
    by_hand.run_until_complete(ask(client, "a"))
    by_hand.close()
    assert len(client._connections) == 1
    assert asyncio.run(ask(client, "b")).text == "echo: b"
    assert len(client._connections) == 0


def test_a_call_on_a_closed_client_is_a_configuration_error_in_both_clients(fault_server):
    # before: the async client opened a new pool behind the caller's back after aclose(), and
    # the sync one (or the async one on a caller's transport) raised httpx's bare RuntimeError
    async def close_then_call() -> None:
        client = AsyncClient(fault_server.base_url, model="m", max_retries=0)
        assert (await ask(client, "q")).text == "echo: q"
        await client.aclose()
        with pytest.raises(ConfigurationError, match="this client is closed"):
            await ask(client, "again")
        with pytest.raises(ConfigurationError, match="this client is closed"):
            await client.embed("again")
        assert len(client._connections) == 0  # no pool was opened for the refused calls

    asyncio.run(close_then_call())
    with Client(fault_server.base_url, model="m", max_retries=0) as client:
        assert client.chat([{"role": "user", "content": "q"}]).text == "echo: q"
    with pytest.raises(ConfigurationError, match="this client is closed"):
        client.chat([{"role": "user", "content": "again"}])


def test_a_call_closed_during_its_backoff_sends_no_further_attempt(fault_server):
    # before: the async retry opened a new pool after aclose() (a socket nobody closed) and got
    # its answer; the sync retry raised httpx's bare RuntimeError
    fault_server.script(Fault.status_code(503))

    async def close_during_backoff() -> None:
        async def backoff(seconds: float) -> None:
            await client.aclose()  # the application shuts down while this call waits to retry

        client = AsyncClient(fault_server.base_url, model="m", max_retries=2, sleep=backoff)
        with pytest.raises(ConfigurationError, match="this client is closed"):
            await ask(client, "q")
        assert len(client._connections) == 0

    asyncio.run(close_during_backoff())
    fault_server.script(Fault.status_code(503))
    client = Client(fault_server.base_url, model="m", max_retries=2, sleep=lambda s: client.close())
    with pytest.raises(ConfigurationError, match="this client is closed"):
        client.chat([{"role": "user", "content": "q"}])
    assert len(fault_server.arrivals) == 2  # one 503 each; no attempt after the close
