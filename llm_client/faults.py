"""What can go wrong, and when: the faults the fault server injects, and the policies choosing them.

A ``Fault`` is one misbehaviour (see the table in ``fault_server.py``); a *policy* is any callable
``(ArrivalInfo) -> Fault | None`` deciding, per arrival, whether to inject one:
``ScriptedFaults`` replays a list (tests), ``ChaosFaults`` draws seeded random faults per
request and attempt (the chaos benchmark). ``Fault.retryable`` is the ground truth the chaos run
scores the client against.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


def count_tokens(text: str) -> int:
    """The server's tokenizer stand-in: ceil(chars/4), the same rule the client estimates with."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Fault:
    kind: str  # status | reset | stall | trickle | truncate | malformed | wrong_shape | stream_cut
    status: int = 200
    retry_after: float | None = None
    form: str | None = None  # ms | seconds | date | None: how retry_after is sent
    code: str | None = None  # error.code in the body, e.g. insufficient_quota
    should_retry: str | None = None  # x-should-retry header value
    seconds: float = 0.0  # stall length; trickle: the pause before each byte
    events: int = 0  # stream_cut: events sent before the cut

    @property
    def label(self) -> str:
        if self.kind == "status":
            return (
                f"{self.status}"
                + (f"/{self.form}" if self.form else "")
                + (f"/{self.code}" if self.code else "")
            )
        return self.kind

    @property
    def retryable(self) -> bool:
        """Should a correct client retry after this fault? (The chaos run's ground truth.)"""
        if self.kind != "status":
            return True
        if self.code == "insufficient_quota" or self.status in (400, 401, 403, 404, 422):
            return False
        return self.status in (408, 409, 429) or self.status >= 500

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, form: str | None = "seconds") -> Fault:
        return cls(
            "status",
            429,
            retry_after,
            form if retry_after is not None else None,
            "rate_limit_exceeded",
        )

    @classmethod
    def quota(cls) -> Fault:
        return cls("status", 429, code="insufficient_quota")

    @classmethod
    def status_code(
        cls,
        status: int,
        *,
        should_retry: str | None = None,
        retry_after: float | None = None,
        form: str | None = "seconds",
    ) -> Fault:
        return cls(
            "status",
            status,
            retry_after,
            form if retry_after is not None else None,
            should_retry=should_retry,
        )

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        return cls("stall", seconds=seconds)

    @classmethod
    def trickle(cls, seconds_per_byte: float) -> Fault:
        return cls("trickle", seconds=seconds_per_byte)

    @classmethod
    def truncate(cls) -> Fault:
        return cls("truncate")

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def wrong_shape(cls) -> Fault:
        return cls("wrong_shape")

    @classmethod
    def stream_cut(cls, events: int = 0) -> Fault:
        return cls("stream_cut", events=events)


@dataclass(frozen=True)
class ArrivalInfo:
    """What a fault policy sees about an arrival."""

    path: str
    key: str | None
    attempt: int  # 1 for the first arrival with this idempotency key
    stream: bool
    body: dict[str, Any]


FaultPolicy = Callable[[ArrivalInfo], "Fault | None"]


class ScriptedFaults:
    """Faults for the next arrivals, in order; afterwards every arrival is served normally."""

    def __init__(self, faults: Iterable[Fault | None] = ()) -> None:
        self._faults = deque(faults)
        self._lock = threading.Lock()

    def __call__(self, info: ArrivalInfo) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None


class ChaosFaults:
    """Seeded random faults: each attempt of a request is faulted with ``transient_rate``; a
    ``fatal_rate`` share of requests get a non-retryable fault on their first attempt.
    Decisions are a pure function of (seed, idempotency key, attempt), so a request's faults do
    not depend on thread interleaving. The client gives every call a new random idempotency key,
    so two runs with one seed still meet different faults: the chaos record's counts (fatal
    requests, attempts) move from run to run, and its targets must hold whatever the draw."""

    def __init__(
        self,
        *,
        seed: int = 0,
        transient_rate: float = 0.3,
        fatal_rate: float = 0.02,
        stall_seconds: float = 1.0,
        retry_after: tuple[float, float] = (0.05, 0.5),
    ) -> None:
        self.seed, self.transient_rate, self.fatal_rate = seed, transient_rate, fatal_rate
        self.stall_seconds, self.retry_after = stall_seconds, retry_after

    def _rng(self, *parts: object) -> random.Random:
        digest = hashlib.sha256(repr((self.seed, *parts)).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def __call__(self, info: ArrivalInfo) -> Fault | None:
        if info.attempt == 1 and self._rng(info.key, "fatal").random() < self.fatal_rate:
            return self._rng(info.key, "kind").choice([Fault.quota(), Fault.status_code(400)])
        rng = self._rng(info.key, info.attempt)
        if rng.random() >= self.transient_rate:
            return None
        ra = round(rng.uniform(*self.retry_after), 3)
        kinds = [
            Fault.rate_limited(ra, "ms"),
            Fault.rate_limited(ra, "seconds"),
            Fault.rate_limited(ra, "date"),
            Fault.rate_limited(None),
            Fault.status_code(500),
            Fault.status_code(502),
            Fault.status_code(503, retry_after=ra),
            Fault.reset(),
            Fault.stall(self.stall_seconds),
            Fault.truncate(),
            Fault.malformed(),
        ]
        if info.stream:
            kinds.append(Fault.stream_cut(0))
        return rng.choice(kinds)
