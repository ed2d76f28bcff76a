"""What ``python -m benchmarks llm_client`` measures: chaos, overhead, cache hits, real server.

Each function starts what it needs on loopback, measures, stops it, and returns a named result.

* ``run_chaos``: N requests at concurrency C through one ``AsyncClient`` against the fault
  server with seeded transient faults (every kind in ``fault_server.py``), a share of requests
  with a non-retryable fault, and server-enforced RPM/TPM equal to the client's limits and
  below the offered load. The *server's* log is the judge: limit violations, retries earlier
  than the Retry-After it sent, keys that came back after a non-retryable answer.
* ``measure_overhead``: the same loopback request through raw ``httpx`` and through ``Client``,
  interleaved, so drift on a shared machine hits both equally; the p50 difference is our cost.
* ``measure_cache_hits``: latency of a cache hit (diskcache read + JSON decode + dataclass).
* ``measure_real_server``: latency and tokens/s against llama.cpp + SmolLM2, cold vs cached.

Time is compressed for the chaos run: limits are per ``window`` seconds (1 s by default) rather
than per minute, so 1,000 requests finish in about a minute; the limiter's arithmetic does not
depend on the window's length.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx

from llm_client.async_client import AsyncClient
from llm_client.client import Client
from llm_client.errors import BadRequestError, LLMClientError, QuotaExhaustedError
from llm_client.fault_server import ChaosFaults, FaultServer, ServerLimits
from llm_client.pipeline import USER_AGENT
from llm_client.stats import percentile

FATAL = (QuotaExhaustedError, BadRequestError)


@dataclass(frozen=True)
class ChaosResult:
    requests: int
    concurrency: int
    succeeded: int
    fatal_requests: int  # requests the server gave a non-retryable fault (they must fail fast)
    retryable_success_rate: float  # succeeded / (requests - fatal_requests); target 1.0
    limit_violations: int  # arrivals the server rejected for RPM/TPM; target 0
    early_retries: int  # arrivals before the Retry-After the server gave; target 0
    fatal_retried: int  # non-retryable answers that were retried anyway; target 0
    attempts: int
    retries: int
    wall_s: float
    ideal_s: float  # fault-free schedule at the limits: max(N/rpm, tokens/tpm) windows
    wall_vs_ideal: float
    server_faults: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def run_chaos(
    *,
    n_requests: int = 1000,
    concurrency: int = 32,
    transient_rate: float = 0.3,
    fatal_rate: float = 0.02,
    rpm: int = 24,
    tpm: int = 600,
    window: float = 1.0,
    stream_share: float = 0.2,
    seed: int = 0,
    progress: bool = False,
) -> ChaosResult:
    """The chaos benchmark (see module docstring). Returns what the server observed."""
    faults = ChaosFaults(
        seed=seed,
        transient_rate=transient_rate,
        fatal_rate=fatal_rate,
        stall_seconds=1.0,
        retry_after=(0.05, 0.6),
    )
    with FaultServer(faults=faults, limits=ServerLimits(rpm, tpm, window)) as server:
        client = AsyncClient(
            server.base_url,
            model="chaos",
            rpm=rpm,
            tpm=tpm,
            rate_window=window,
            seed=seed,
            read_timeout=0.5,
            connect_timeout=2.0,
            total_timeout=120.0,
            max_retries=8,
            backoff_base=0.05,
            backoff_cap=1.0,
            max_retry_after=5.0,
        )
        outcomes, wall = asyncio.run(
            _chaos_calls(client, n_requests, concurrency, stream_share, progress)
        )
        report = server.report()
        stats = client.stats
    failures: dict[str, int] = {}
    fatal_failed = 0
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            failures[type(outcome).__name__] = failures.get(type(outcome).__name__, 0) + 1
            fatal_failed += isinstance(outcome, FATAL)
    succeeded = sum(not isinstance(o, BaseException) for o in outcomes)
    fatal_keys = sum(1 for a in server.arrivals if a.fault_retryable is False)
    tokens = sum(a.tokens for a in server.arrivals)
    ideal = max(math.ceil(n_requests / rpm) - 1, math.ceil(tokens / tpm) - 1, 0) * window
    retryable = n_requests - fatal_keys
    return ChaosResult(
        requests=n_requests,
        concurrency=concurrency,
        succeeded=succeeded,
        fatal_requests=fatal_keys,
        retryable_success_rate=succeeded / retryable if retryable else 1.0,
        limit_violations=report.limit_violations,
        early_retries=report.early_retries,
        fatal_retried=report.retried_after_fatal,
        attempts=report.arrivals,
        retries=stats.retries,
        wall_s=wall,
        ideal_s=ideal,
        wall_vs_ideal=wall / ideal if ideal else math.nan,
        server_faults=report.faults,
        failures=failures,
        stats={"retry_reasons": stats.retry_reasons, "fatal_failed": fatal_failed},
    )


async def _chaos_calls(
    client: AsyncClient, n: int, concurrency: int, stream_share: float, progress: bool
) -> tuple[list[Any], float]:
    gate = asyncio.Semaphore(concurrency)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="chaos", unit="req")

    async def one(i: int) -> Any:
        messages = [
            {"role": "user", "content": f"request {i:05d}: summarise the chaos run briefly"}
        ]
        async with gate:
            try:
                if i % 100 < stream_share * 100:
                    stream = await client.chat(messages, max_tokens=16, stream=True)
                    return "".join([c.delta async for c in stream])
                return (await client.chat(messages, max_tokens=16)).text
            except LLMClientError as exc:
                return exc
            finally:
                if bar is not None:
                    bar.update()

    started = time.perf_counter()
    async with client:
        outcomes = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - started
    if bar is not None:
        bar.close()
    return list(outcomes), wall


def latency_ms(seconds: list[float]) -> dict[str, float]:
    s = sorted(seconds)
    return {
        "p50_ms": percentile(s, 50) * 1e3,
        "p95_ms": percentile(s, 95) * 1e3,
        "p99_ms": percentile(s, 99) * 1e3,
    }


@dataclass(frozen=True)
class OverheadResult:
    n: int
    raw_httpx: dict[str, float]
    client: dict[str, float]
    client_limited: dict[str, float]  # with an (unreached) rpm/tpm limiter in the path
    added_p50_ms: float
    added_p50_limited_ms: float
    raw_rps: float
    client_rps: float


def measure_overhead(n: int = 1000, warmup: int = 50) -> OverheadResult:
    """Sequential loopback requests to a server process; raw, client, client+limiter interleaved."""
    messages = [{"role": "user", "content": "overhead probe"}]
    body = {"model": "m", "messages": messages, "max_tokens": 8, "temperature": 0.0}
    with _server_process() as server:
        raw = httpx.Client(timeout=10.0)
        url = server.base_url + "/chat/completions"
        ours = Client(server.base_url, model="m")
        limited = Client(server.base_url, model="m", rpm=10**9, tpm=10**12)
        times: dict[str, list[float]] = {"raw": [], "client": [], "limited": []}

        def raw_call() -> None:  # the same request our client sends, headers included
            headers = {"Idempotency-Key": uuid.uuid4().hex, "User-Agent": USER_AGENT}
            json.loads(raw.post(url, json=body, headers=headers).content)["choices"][0]["message"]

        calls = {
            "raw": raw_call,
            "client": lambda: ours.chat(messages, max_tokens=8),
            "limited": lambda: limited.chat(messages, max_tokens=8),
        }
        order = list(calls.items())
        for i in range(warmup + n):
            order.reverse()  # alternate who goes first: a shared machine drifts
            for name, call in order:
                t0 = time.perf_counter()
                call()
                if i >= warmup:
                    times[name].append(time.perf_counter() - t0)
        raw.close()
        ours.close()
        limited.close()
    summary = {k: latency_ms(v) for k, v in times.items()}
    return OverheadResult(
        n=n,
        raw_httpx=summary["raw"],
        client=summary["client"],
        client_limited=summary["limited"],
        added_p50_ms=summary["client"]["p50_ms"] - summary["raw"]["p50_ms"],
        added_p50_limited_ms=summary["limited"]["p50_ms"] - summary["raw"]["p50_ms"],
        raw_rps=n / sum(times["raw"]),
        client_rps=n / sum(times["client"]),
    )


@contextlib.contextmanager
def _server_process() -> Iterator[Any]:
    """The fault server (no faults) in its own process, so it does not share our GIL."""
    from llm_client.local_server import free_port

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llm_client",
        "serve-fault",
        "--port",
        str(port),
        "--transient-rate",
        "0",
        "--fatal-rate",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = SimpleNamespace(base_url=f"http://127.0.0.1:{port}/v1")
    try:
        for _ in range(200):
            try:
                httpx.get(server.base_url + "/models", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure_cache_hits(n: int = 2000) -> dict[str, float]:
    """p50/p95/p99 of a cache hit (no request is sent) plus hits per second."""
    messages = [{"role": "user", "content": "cache probe " * 20}]
    with FaultServer() as server, tempfile.TemporaryDirectory() as tmp:
        client = Client(server.base_url, model="m", cache_dir=tmp)
        client.chat(messages, max_tokens=64)
        seconds = []
        for _ in range(n):
            t0 = time.perf_counter()
            reply = client.chat(messages, max_tokens=64)
            seconds.append(time.perf_counter() - t0)
            assert reply.cached
        arrivals = server.report().arrivals
        client.close()
    return {**latency_ms(seconds), "hits_per_s": n / sum(seconds), "server_arrivals": arrivals}


PROMPT = [{"role": "user", "content": "List three facts about the planet Mars, one line each."}]


def measure_real_server(
    base_url: str, model: str, *, n: int = 5, max_tokens: int = 48
) -> dict[str, Any]:
    """Cold (cache bypassed) vs cached latency and tokens/s for one fixed prompt, plus a stream."""
    with tempfile.TemporaryDirectory() as tmp:
        client = Client(base_url, model=model, cache_dir=tmp, read_timeout=300.0)
        # "cold" means cache-cold, not server-cold: the first generation after llama.cpp starts
        # pays for paging the model in (tens of seconds on a loaded box), so it is not timed.
        client.chat([{"role": "user", "content": "Hi"}], max_tokens=4, cache=False)
        cold, tokens = [], []
        for _ in range(n):
            reply = client.chat(PROMPT, max_tokens=max_tokens, cache=False)
            cold.append(reply.latency_s)
            tokens.append(reply.usage.completion_tokens if reply.usage else 0)
        client.chat(PROMPT, max_tokens=max_tokens)  # fill the cache
        hot = []
        for _ in range(max(n, 20)):
            t0 = time.perf_counter()
            assert client.chat(PROMPT, max_tokens=max_tokens).cached
            hot.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stream = client.chat(PROMPT, max_tokens=max_tokens, stream=True, cache=False)
        first = None
        for chunk in stream:
            if first is None and chunk.delta:
                first = time.perf_counter() - t0
        stream_s = time.perf_counter() - t0
        client.close()
    return {
        "cold": latency_ms(cold),
        "cached": latency_ms(hot),
        "completion_tokens_per_s": sum(tokens) / sum(cold),
        "completion_tokens_mean": sum(tokens) / n,
        "stream_ttft_ms": (first or math.nan) * 1e3,
        "stream_total_ms": stream_s * 1e3,
    }
