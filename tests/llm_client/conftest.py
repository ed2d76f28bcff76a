"""Fixtures for llm_client tests: the fault-injection server on an ephemeral loopback port."""

from __future__ import annotations

import pytest

from llm_client.fault_server import FaultServer


@pytest.fixture
def fault_server():
    """A fresh fault server per test (a thread and a socket: milliseconds to start)."""
    with FaultServer() as server:
        yield server


class FakeTime:
    """An injected clock + sleep: ``sleep`` records the wait and advances the clock instantly."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


USER = [{"role": "user", "content": "hello"}]
