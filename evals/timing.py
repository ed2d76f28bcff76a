"""Timing and memory measurement for benchmarks.

Latency is reported as percentiles, never as a mean alone: one slow query in a hundred is what a
user notices, and the mean hides it. Peak memory is the process's maximum resident set size, which
is why the benchmark runner gives every system benchmark a process of its own.

>>> latency_summary([0.001, 0.002, 0.003])["p50_ms"]
2.0
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterable, Sequence
from types import TracebackType

import numpy as np

from evals.errors import MetricError

__all__ = ["Stopwatch", "latency_summary", "peak_rss_mb"]


def latency_summary(seconds: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds of durations in seconds (linear interpolation).

    ``seconds`` is any iterable of numbers: a list, an array, ``durations.values()``.
    """
    try:  # numpy reads a list or an array, not dict.values() or a generator: list those first
        listed = seconds if isinstance(seconds, Sequence | np.ndarray) else list(seconds)
        array = np.asarray(listed, dtype=float)
    except (TypeError, ValueError):
        raise MetricError("latency_summary needs durations: numbers of seconds") from None
    if array.ndim != 1 or len(array) == 0:
        raise MetricError("latency_summary needs at least one duration")
    if not (np.isfinite(array) & (array >= 0)).all():  # a clock misread, not a fast request
        bad = array[~(np.isfinite(array) & (array >= 0))][0]
        raise MetricError(f"durations must be finite and >= 0 seconds, got {bad}")
    p50, p95, p99 = np.percentile(array, [50, 95, 99]) * 1000.0
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(array.mean() * 1000.0),
    }


class Stopwatch:
    """Context manager measuring wall time with ``time.perf_counter``.

    >>> with Stopwatch() as watch:
    ...     pass
    >>> watch.seconds >= 0
    True
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self._start


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``getrusage``; KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024  # macOS reports bytes
    return peak / divisor
