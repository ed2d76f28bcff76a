"""Benchmark of llm_client: the chaos run, client overhead, cache hits, and a real LLM server.

Tables (variants are stable names):

* ``chaos``: ``AsyncClient`` against the fault server: N requests at concurrency C, 30 % of
  attempts faulted (429 in every Retry-After form, 500/502/503, resets, stalls past the read
  timeout, truncated and malformed bodies, broken streams), 2 % of requests given a non-retryable
  fault, server-enforced RPM/TPM equal to the client's and below the offered load. Time is
  compressed: limits are per 1-second window instead of per minute.
* ``overhead``: ``raw httpx`` vs ``llm_client.Client`` vs ``llm_client.Client+limiter``,
  sequential loopback requests, interleaved; and ``cache hit``.
* ``real_server``: llama.cpp + SmolLM2-135M-Instruct: ``cold`` (cache bypassed) vs ``cached``.
* ``behaviour``: our defaults beside openai-python, anthropic-sdk-python and LiteLLM (anchors).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict

from benchmarks.record import Anchor, BenchContext, BenchResult, Row
from llm_client.config import ClientConfig
from llm_client.eval import measure_cache_hits, measure_overhead, measure_real_server, run_chaos

DESCRIPTION = (
    "LLM client: chaos run vs fault server, overhead vs raw httpx, cache, real llama.cpp server"
)

OPENAI_SRC = (
    "openai-python 3.57 src/openai/_constants.py + _base_client.py (_calculate_retry_timeout)"
)
ANTHROPIC_SRC = "anthropic-sdk-python src/anthropic/_constants.py + _base_client.py"
LITELLM_SRC = "LiteLLM Router docs; BerriAI/litellm#5783 (rpm/tpm race), #11145 (stream cache)"


def _behaviour_anchors() -> list[Anchor]:
    def a(name, metric, value, protocol, source):
        return Anchor(
            name, metric, value, protocol, source, variant="llm_client", table="behaviour"
        )

    backoff = "min(0.5*2^n, 8 s) x (1 - 0.25 U)"
    return [
        a("openai-python", "default_max_retries", 2, "default; " + backoff, OPENAI_SRC),
        a("openai-python", "backoff_cap_s", 8.0, backoff, OPENAI_SRC),
        a(
            "openai-python",
            "retry_after_cap_s",
            120.0,
            "a longer Retry-After is not retried (3.57)",
            OPENAI_SRC,
        ),
        a("openai-python", "client_rpm_tpm_limiter", 0, "none", OPENAI_SRC),
        a("openai-python", "response_cache", 0, "none", OPENAI_SRC),
        a(
            "anthropic-sdk-python",
            "default_max_retries",
            2,
            "default; same schedule",
            ANTHROPIC_SRC,
        ),
        a(
            "anthropic-sdk-python",
            "retry_after_cap_s",
            60.0,
            "cap on an honoured Retry-After (issue #3)",
            ANTHROPIC_SRC,
        ),
        a("anthropic-sdk-python", "client_rpm_tpm_limiter", 0, "none", ANTHROPIC_SRC),
        a(
            "LiteLLM Router",
            "client_rpm_tpm_limiter",
            1,
            "rpm/tpm per deployment, checked non-atomically (#5783)",
            LITELLM_SRC,
        ),
        a("LiteLLM Router", "response_cache", 1, "redis/disk/in-memory caching", LITELLM_SRC),
        a(
            "LiteLLM Router",
            "stream_cache_replay",
            0,
            "cached streams return as one block (#11145)",
            LITELLM_SRC,
        ),
    ]


def _real_server(ctx: BenchContext, not_measured: list[str]) -> tuple[list[Row], list[str]]:
    """The real-server rows and their note; a server that cannot run goes to ``not_measured``."""
    # each cold call costs seconds (minutes on an overloaded 2-core box): keep --quick tiny
    n, max_tokens = (1, 8) if ctx.quick else (3, 48)
    url = os.environ.get("AIS_LLM_BASE_URL")
    from llm_client.local_server import DEFAULT_MODEL_ALIAS, LocalLLMServer

    model = os.environ.get("AIS_LLM_MODEL", DEFAULT_MODEL_ALIAS)
    try:
        if url:
            result = measure_real_server(url, model, n=n, max_tokens=max_tokens)
        else:
            with LocalLLMServer(model_alias=model) as server:
                result = measure_real_server(
                    server.base_url, server.model, n=n, max_tokens=max_tokens
                )
    except Exception as exc:  # the server is optional: the record says why there is no row
        not_measured.append(f"real-server latency: {type(exc).__name__}: {exc}")
        return [], []
    rows = [
        Row(
            "cold",
            {
                "p50_ms": result["cold"]["p50_ms"],
                "p95_ms": result["cold"]["p95_ms"],
                "completion_tokens_per_s": result["completion_tokens_per_s"],
                "stream_ttft_ms": result["stream_ttft_ms"],
            },
            table="real_server",
            extra={"completion_tokens_mean": result["completion_tokens_mean"], "calls": n},
        ),
        Row(
            "cached",
            {"p50_ms": result["cached"]["p50_ms"], "p95_ms": result["cached"]["p95_ms"]},
            table="real_server",
        ),
    ]
    return rows, [
        f"real server: {model} at {url or 'a LocalLLMServer started by the benchmark'}, "
        f"max_tokens={max_tokens}, {n} cold calls, 2 CPU threads on a shared machine"
    ]


def run(ctx: BenchContext) -> BenchResult:
    # one INFO line per HTTP request / retry would drown the progress bar
    for name in ("httpx", "llm_client"):
        logging.getLogger(name).setLevel(logging.WARNING)
    n, concurrency = (200, 16) if ctx.quick else (1000, 32)
    chaos_cfg = dict(
        n_requests=n,
        concurrency=concurrency,
        transient_rate=0.3,
        fatal_rate=0.02,
        rpm=24,
        tpm=600,
        window=1.0,
        stream_share=0.2,
        seed=ctx.seed,
    )
    chaos = run_chaos(**chaos_cfg, progress=ctx.progress)
    overhead = measure_overhead(n=200 if ctx.quick else 1000)
    cache = measure_cache_hits(n=500 if ctx.quick else 2000)
    not_measured: list[str] = []
    real_rows, real_notes = _real_server(ctx, not_measured)

    chaos_metrics = {k: float(v) for k, v in asdict(chaos).items() if isinstance(v, int | float)}
    defaults = ClientConfig()
    rows = [
        Row(
            "llm_client.AsyncClient",
            chaos_metrics,
            table="chaos",
            extra={"server_faults": chaos.server_faults, "failures": chaos.failures, **chaos.stats},
        ),
        Row(
            "raw httpx",
            {**overhead.raw_httpx, "requests_per_s": overhead.raw_rps},
            table="overhead",
        ),
        Row(
            "llm_client.Client",
            {
                **overhead.client,
                "requests_per_s": overhead.client_rps,
                "added_p50_ms": overhead.added_p50_ms,
            },
            table="overhead",
        ),
        Row(
            "llm_client.Client+limiter",
            {**overhead.client_limited, "added_p50_ms": overhead.added_p50_limited_ms},
            table="overhead",
        ),
        Row("cache hit", {k: float(v) for k, v in cache.items()}, table="overhead"),
        *real_rows,
        Row(
            "llm_client",
            {
                "default_max_retries": defaults.max_retries,
                "backoff_cap_s": defaults.backoff_cap,
                "retry_after_cap_s": defaults.max_retry_after,
                "client_rpm_tpm_limiter": 1,
                "response_cache": 1,
                "stream_cache_replay": 1,
            },
            table="behaviour",
        ),
    ]
    notes = [
        f"chaos: {n} requests, concurrency {concurrency}, limits rpm={chaos_cfg['rpm']} "
        f"tpm={chaos_cfg['tpm']} per {chaos_cfg['window']:g} s window (time-compressed), "
        "client limits = server limits; targets: retryable_success_rate 1.0, "
        "limit_violations 0, early_retries 0, fatal_retried 0. "
        "ideal_s = fault-free schedule at those limits.",
        "overhead targets: added_p50_ms <= 0.5 (Client vs raw httpx on the same loopback server), "
        "cache hit p50_ms <= 1. The machine's 2 cores are shared, so loopback latency is noisy.",
        *real_notes,
    ]
    return BenchResult(
        dataset={
            "name": "synthetic: fault-injection server + fixed prompts",
            "chaos_seed": ctx.seed,
        },
        config={"chaos": chaos_cfg, "overhead_n": overhead.n, "client_defaults": asdict(defaults)},
        rows=rows,
        anchors=_behaviour_anchors(),
        notes=notes,
        not_measured=not_measured,
    )
