"""A fault-injecting OpenAI-compatible server on a real loopback socket (tests, chaos run).

It answers ``POST /v1/chat/completions`` (plain and SSE), ``POST /v1/embeddings`` and
``GET /v1/models`` with deterministic content ("echo: <last user message>"), and can be told to
misbehave the way real providers do:

============================  =================================================================
``Fault.rate_limited(ra, f)``    429 with ``retry-after-ms`` / ``retry-after`` seconds / date / none
``Fault.quota()``                429 ``insufficient_quota`` (must not be retried)
``Fault.status_code(c)``         any status, e.g. 500/502/503, 400, 401 (optional x-should-retry)
``Fault.reset()``                TCP RST before any byte of the answer
``Fault.stall(s)``               answer only after ``s`` seconds (past the client's read timeout)
``Fault.trickle(s)``             200 whose body arrives one byte every ``s`` seconds (each gap is
                                 under the read timeout, the whole body is not)
``Fault.truncate()``             Content-Length says N, half the body arrives, connection closes
``Fault.malformed()``            200 with a body that is not JSON
``Fault.wrong_shape()``          200 with a JSON object that is not the protocol (no choices)
``Fault.stream_cut(n)``          SSE: ``n`` events, then RST (``n=0``: headers only)
============================  =================================================================

Which fault hits which arrival is a policy (``faults.py``): ``ScriptedFaults`` (a list, for
tests) or ``ChaosFaults`` (seeded random per request and attempt, for the benchmark); replies come
from ``echo_model.py``. The server also
**enforces its own RPM/TPM** over a sliding window (every arrival counts as a request; tokens are
charged as ceil(chars/4) of the prompt's contents plus the completion) and answers over-limit
arrivals with 429 + ``retry-after-ms``; and it **records every arrival**: time, idempotency key,
attempt number, fault, whether it broke a limit, and how early it came if the previous answer to
the same key carried a Retry-After. ``report()`` sums that up; that is how tests prove the client
never exceeded a limit and never retried early.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_client.echo_model import chat_completion, embeddings, stream_events
from llm_client.faults import ArrivalInfo, ChaosFaults, Fault, FaultPolicy, ScriptedFaults

__all__ = [
    "Arrival",
    "ArrivalInfo",
    "ChaosFaults",
    "Fault",
    "FaultServer",
    "ScriptedFaults",
    "ServerLimits",
    "ServerReport",
]

MODEL = "fault-model"


@dataclass(frozen=True)
class ServerLimits:
    rpm: int | None = None
    tpm: int | None = None
    window: float = 60.0


@dataclass(frozen=True)
class Arrival:
    """One request as the server saw it (times on the server's monotonic and wall clocks)."""

    index: int
    at: float
    wall: float
    path: str
    key: str | None
    attempt: int
    stream: bool
    tokens: int  # charged against TPM (0 for faulted or rejected arrivals)
    fault: str | None  # the injected fault's label, "limit" if rejected by RPM/TPM, None if served
    fault_retryable: bool | None
    early_by: float  # > 0: arrived this long before the Retry-After we gave this key allowed


@dataclass(frozen=True)
class ServerReport:
    arrivals: int
    limit_violations: int  # arrivals over RPM or TPM (target 0)
    early_retries: int  # arrivals before their Retry-After (target 0)
    max_early_by_s: float
    retried_after_fatal: int  # keys that came back after a non-retryable fault (target 0)
    faults: dict[str, int] = field(default_factory=dict)


class FaultServer:
    """``with FaultServer(faults=ScriptedFaults([...])) as server:`` then ``server.base_url``."""

    def __init__(
        self,
        *,
        port: int = 0,
        faults: FaultPolicy | None = None,
        limits: ServerLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        model: str = MODEL,
        ratelimit_headers: bool = True,
    ) -> None:
        self.faults: FaultPolicy = faults or ScriptedFaults()
        self.limits = limits or ServerLimits()
        self.model = model
        self.ratelimit_headers = ratelimit_headers
        self._clock, self._wall = clock, wall_clock
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._window: deque[tuple[float, int]] = deque()  # (arrival time, tokens charged)
        self._attempts: dict[str, int] = {}
        self._retry_at: dict[str, tuple[float, bool]] = {}  # key -> (earliest time, is wall clock)
        self._fatal_keys: set[str] = set()
        self._revisited_fatal: set[str] = set()
        self.stopping = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *faults: Fault | None) -> None:
        """Serve the next arrivals with these faults (None = serve normally), then normally."""
        self.faults = ScriptedFaults(faults)

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def report(self) -> ServerReport:
        arrivals = self.arrivals
        counts: dict[str, int] = {}
        for a in arrivals:
            if a.fault:
                counts[a.fault] = counts.get(a.fault, 0) + 1
        early = [a.early_by for a in arrivals if a.early_by > 0]
        return ServerReport(
            arrivals=len(arrivals),
            limit_violations=counts.get("limit", 0),
            early_retries=len(early),
            max_early_by_s=max(early, default=0.0),
            retried_after_fatal=len(self._revisited_fatal),
            faults=counts,
        )

    # ---- bookkeeping (called by the handler thread) -------------------------------------------
    def admit(
        self, path: str, key: str | None, body: dict[str, Any], stream: bool, tokens: int
    ) -> tuple[Fault | None, dict[str, str]]:
        """Record an arrival; return the fault to inject (or None) and rate-limit headers."""
        with self._lock:
            now, wall = self._clock(), self._wall()
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1 if key else 1
            if key in self._fatal_keys:
                self._revisited_fatal.add(key)
            early_by = 0.0
            if key in self._retry_at:
                allowed, is_wall = self._retry_at.pop(key)
                early_by = max(0.0, allowed - (wall if is_wall else now))
            lim = self.limits
            while self._window and self._window[0][0] <= now - lim.window:
                self._window.popleft()
            used = sum(t for _, t in self._window)
            over = (lim.rpm is not None and len(self._window) + 1 > lim.rpm) or (
                lim.tpm is not None and used + tokens > lim.tpm
            )
            fault = None
            if over:
                wait = self._window[0][0] + lim.window - now if self._window else lim.window
                fault = Fault.rate_limited(round(max(wait, 0.001), 3), "ms")
                label, retryable = "limit", True
            else:
                fault = self.faults(ArrivalInfo(path, key, attempt, stream, body))
                label = fault.label if fault else None
                retryable = fault.retryable if fault else None
            charged = tokens if fault is None else 0
            self._window.append((now, charged))
            if fault is not None and key:
                if fault.retry_after is not None and fault.form is not None:
                    if fault.form == "date":
                        self._retry_at[key] = (math.ceil(wall + fault.retry_after), True)
                    else:
                        self._retry_at[key] = (now + fault.retry_after, False)
                if not fault.retryable:
                    self._fatal_keys.add(key)
            self._arrivals.append(
                Arrival(
                    len(self._arrivals),
                    now,
                    wall,
                    path,
                    key,
                    attempt,
                    stream,
                    charged,
                    label,
                    retryable,
                    early_by,
                )
            )
            headers = {}
            if self.ratelimit_headers and lim.rpm is not None:
                reset = self._window[0][0] + lim.window - now
                headers["x-ratelimit-limit-requests"] = str(lim.rpm)
                headers["x-ratelimit-remaining-requests"] = str(max(0, lim.rpm - len(self._window)))
                # rounded up to the ms, like Retry-After: a server never says "come back" early
                headers["x-ratelimit-reset-requests"] = f"{math.ceil(max(reset, 0.0) * 1000)}ms"
            return fault, headers

    def retry_after_headers(self, fault: Fault) -> dict[str, str]:
        if fault.retry_after is None or fault.form is None:
            return {}
        if fault.form == "ms":
            return {"retry-after-ms": f"{fault.retry_after * 1000:.0f}"}
        if fault.form == "date":  # HTTP dates have 1 s resolution: round up, never down
            return {
                "retry-after": formatdate(math.ceil(self._wall() + fault.retry_after), usegmt=True)
            }
        return {"retry-after": f"{fault.retry_after:g}"}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default of 5 drops connections under concurrency 32
    owner: FaultServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = (
        True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    )
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:  # the socket may have been reset on purpose: not an error here
        with contextlib.suppress(OSError, ValueError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            owner = self.server.owner
            self._json(200, {"object": "list", "data": [{"id": owner.model, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            self._json(
                400,
                {
                    "error": {
                        "message": "body is not a JSON object",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        path = self.path.rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/embeddings"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        stream = bool(body.get("stream"))
        payload, tokens = (
            chat_completion(body, owner.model)
            if path.endswith("completions")
            else embeddings(body, owner.model)
        )
        fault, headers = owner.admit(
            path, self.headers.get("Idempotency-Key"), body, stream, tokens
        )
        if fault is None:
            if stream:
                self._stream(stream_events(payload), headers)
            else:
                self._json(200, payload, headers)
            return
        self._inject(fault, payload, headers, owner)

    def _inject(
        self, fault: Fault, payload: dict, headers: dict[str, str], owner: FaultServer
    ) -> None:
        if fault.kind == "status":
            headers = {**headers, **owner.retry_after_headers(fault)}
            if fault.should_retry:
                headers["x-should-retry"] = fault.should_retry
            error = {
                "message": f"injected {fault.label}",
                "type": fault.code or "server_error",
                "code": fault.code,
            }
            self._json(fault.status, {"error": error}, headers)
        elif fault.kind == "reset":
            self._reset()
        elif fault.kind == "stall":
            owner.stopping.wait(fault.seconds)
            with contextlib.suppress(OSError):
                self._json(200, payload, headers)
        elif fault.kind == "trickle":
            data = json.dumps(payload).encode()
            self._head(200, "application/json", len(data), headers)
            for i in range(len(data)):
                if owner.stopping.wait(fault.seconds):
                    break
                self.wfile.write(data[i : i + 1])
        elif fault.kind == "truncate":
            data = json.dumps(payload).encode()
            self._head(200, "application/json", len(data), headers)
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif fault.kind == "malformed":
            data = b'{"id": "chatcmpl-broken", "choices": [{"message": '
            self._head(200, "application/json", len(data), headers)
            self.wfile.write(data)
        elif fault.kind == "wrong_shape":  # valid JSON, e.g. a proxy's own answer
            data = b'{"id": "not-a-completion", "status": "ok"}'
            self._head(200, "application/json", len(data), headers)
            self.wfile.write(data)
        elif fault.kind == "stream_cut":
            events = stream_events(payload) if "choices" in payload else []
            self._stream(events[: fault.events], headers, cut=True)

    # ---- low-level writing --------------------------------------------------------------------
    def _head(self, status: int, ctype: str, length: int | None, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header(
            "x-request-id", f"req-{threading.get_ident():x}-{time.perf_counter_ns():x}"
        )
        for k, v in headers.items():
            self.send_header(k, v)
        if length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self._head(status, "application/json", len(data), headers or {})
        self.wfile.write(data)

    def _stream(self, events: list[dict], headers: dict[str, str], *, cut: bool = False) -> None:
        self._head(200, "text/event-stream", None, headers)
        for event in events:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        self.wfile.flush()
        if cut:
            self._reset()
        else:
            self.wfile.write(b"data: [DONE]\n\n")

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), like a crashed proxy."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
        except OSError:
            pass
