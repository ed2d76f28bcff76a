"""Accounting: tokens and cost per model, attempts, retries (by reason), cache hits, latency.

One ``Stats`` object per client, updated under a lock by every thread or task; ``snapshot()``
returns a plain frozen ``StatsSnapshot`` (``asdict`` it for JSON). Latency percentiles use the
nearest-rank method over the last ``window`` calls (a bounded deque, so memory stays flat).
A call that shared an identical in-flight call's request (``singleflight.py``) counts in
``calls`` and ``coalesced`` and is timed, but, like a cache hit, adds no attempts and no tokens.

**What a latency measures:** one call, from just after its request is prepared to its result,
so every attempt, every backoff or Retry-After wait and every wait for a rate-limit slot counts.
A non-streamed call ends when its response is parsed; a stream ends when it is exhausted,
closed, broken or garbage collected (the whole stream, not its time to first token). A cache hit
is timed too (it is a call); a call that raises is not, except a stream that breaks after its
first chunk: it was a call that returned, and its error counts in ``errors`` as well.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of an ascending sequence; nan when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class ModelTokens:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class StatsSnapshot:
    """Counters since the client was created; latencies are seconds per call, from its start to
    its result, retries and waits included (hits included; see the module docstring)."""

    calls: int
    attempts: int
    retries: int
    retry_reasons: dict[str, int]
    errors: dict[str, int]
    cache_hits: int
    cache_misses: int
    cache_errors: int
    coalesced: int  # calls that shared an identical in-flight call's request (singleflight.py)
    tokens: dict[str, ModelTokens]
    cost_usd: float
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    latencies_observed: int = field(default=0)


class Stats:
    def __init__(
        self,
        prices_per_million: Mapping[str, tuple[float, float]] | None = None,
        *,
        window: int = 10_000,
    ) -> None:
        self._prices = dict(prices_per_million or {})
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=window)
        self._counts: Counter[str] = Counter()
        self._retry_reasons: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._tokens: dict[str, list[float]] = {}

    def count(self, name: str, n: int = 1) -> None:
        """Bump a counter: calls, attempts, retries, cache_hits/misses/errors, coalesced."""
        with self._lock:
            self._counts[name] += n

    def retry(self, reason: str) -> None:
        # "HTTP 429; retry-after 0.200s" -> "HTTP 429": group by cause, not by wait
        with self._lock:
            self._counts["retries"] += 1
            self._retry_reasons[reason.split(";")[0]] += 1

    def error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors[type(exc).__name__] += 1

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        price_in, price_out = self._prices.get(model, (0.0, 0.0))
        cost = (prompt_tokens * price_in + completion_tokens * price_out) / 1e6
        with self._lock:
            row = self._tokens.setdefault(model, [0, 0, 0.0])
            row[0] += prompt_tokens
            row[1] += completion_tokens
            row[2] += cost

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            lat = sorted(self._latencies)
            tokens = {
                m: ModelTokens(int(p), int(c), cost) for m, (p, c, cost) in self._tokens.items()
            }
            c = self._counts
            return StatsSnapshot(
                calls=c["calls"],
                attempts=c["attempts"],
                retries=c["retries"],
                retry_reasons=dict(self._retry_reasons),
                errors=dict(self._errors),
                cache_hits=c["cache_hits"],
                cache_misses=c["cache_misses"],
                cache_errors=c["cache_errors"],
                coalesced=c["coalesced"],
                tokens=tokens,
                cost_usd=sum(t.cost_usd for t in tokens.values()),
                latency_p50_s=percentile(lat, 50),
                latency_p95_s=percentile(lat, 95),
                latency_p99_s=percentile(lat, 99),
                latencies_observed=len(lat),
            )
