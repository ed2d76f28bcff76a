"""Command line: ``python -m llm_client chat|serve-local|serve-fault``.

    python -m llm_client serve-local --port 8765               # llama.cpp + SmolLM2, foreground
    python -m llm_client chat "Name three primes" --base-url http://127.0.0.1:8765/v1
    python -m llm_client serve-fault --port 8766 --transient-rate 0.3   # chaos server for demos

``chat`` streams the answer to the terminal, then prints a one-line stats summary to stderr
(attempts, retries, cache hits, tokens, and the call's latency: every attempt and wait included).
Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import signal
import sys
from collections.abc import Callable

from evals.cli import run, shown
from llm_client.client import Client
from llm_client.config import MODEL_ENV, env_base_url, env_model
from llm_client.errors import ConfigurationError, LLMClientError
from llm_client.local_server import DEFAULT_MODEL_ALIAS, LocalLLMServer, port_taken_error


def _chat(args: argparse.Namespace) -> int:
    # checked here, not left to the library, so the message names this CLI's flags
    if not (args.base_url or env_base_url()):
        raise ConfigurationError(
            "no base URL: pass --base-url http://host:port/v1 or set AIS_LLM_BASE_URL "
            "(start a local server with `python -m llm_client serve-local`)"
        )
    if not (args.model or env_model()):
        raise ConfigurationError(
            f"no model: pass --model NAME or set {MODEL_ENV} "
            f"(the local server's is {DEFAULT_MODEL_ALIAS})"
        )
    overrides = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    with Client(args.base_url, model=args.model, **overrides) as client:
        messages = [{"role": "user", "content": args.prompt}]
        if args.system:
            messages.insert(0, {"role": "system", "content": args.system})
        if args.no_stream:
            reply = client.chat(messages, max_tokens=args.max_tokens, temperature=args.temperature)
            print(shown(reply.text))
        else:
            with client.chat(
                messages, max_tokens=args.max_tokens, temperature=args.temperature, stream=True
            ) as stream:  # Ctrl-C mid-stream closes the connection
                for chunk in stream:
                    print(shown(chunk.delta), end="", flush=True)  # escape sequences escaped
            print()
        s = client.stats
        tokens = sum(t.prompt_tokens + t.completion_tokens for t in s.tokens.values())
        print(
            f"[{s.attempts} attempt(s), {s.retries} retries, cache hits {s.cache_hits}, "
            f"~{tokens} tokens, {s.latency_p50_s * 1000:.0f} ms]",
            file=sys.stderr,
        )
    return 0


def _serve_local(args: argparse.Namespace) -> int:
    # `kill <pid>` (what scripts and CI do) must stop llama.cpp too, not orphan it
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server = LocalLLMServer(port=args.port, model_alias=args.model_alias).start()
        print(f"serving {server.model} at {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            return server.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            server.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_fault(args: argparse.Namespace) -> int:
    import threading

    from llm_client.fault_server import ChaosFaults, FaultServer, ServerLimits

    limits = ServerLimits(args.rpm, args.tpm, args.window)
    faults = ChaosFaults(
        seed=args.seed, transient_rate=args.transient_rate, fatal_rate=args.fatal_rate
    )
    try:  # the constructor binds: a busy port is one line and exit 2, as for serve-local
        server = FaultServer(port=args.port, faults=faults, limits=limits)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise port_taken_error(args.port) from None
        raise ConfigurationError(  # e.g. EACCES: a port below 1024 without root
            f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}; pick another port "
            "(--port N, or 0 for any free port)"
        ) from None
    with server:
        print(f"fault server at {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(server.report())
    return 0


def _bounded(convert: Callable[[str], float], ok: Callable[[float], bool], rule: str):
    """An argparse type: ``convert(text)`` (``int`` or ``float``), kept when ``ok(value)``;
    anything else is argparse's one error line (exit 2) naming ``rule``, before anything runs."""
    kind = "an integer" if convert is int else "a number"

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not ok(value):  # NaN fails every range below
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    return parse


_port = _bounded(int, lambda v: 0 <= v <= 65535, "port must be 1..65535 (or 0: any free port)")
_share = _bounded(float, lambda v: 0.0 <= v <= 1.0, "must be a share in [0, 1] (of requests)")
_positive_int = _bounded(int, lambda v: v >= 1, "must be >= 1 (leave it out for no limit)")
_seconds = _bounded(float, lambda v: 0.0 < v < math.inf, "must be a finite number of seconds > 0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llm_client", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log retry and cache decisions"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="send one prompt and stream the answer")
    chat.add_argument("prompt")
    chat.add_argument(
        "--base-url", default=None, help="e.g. http://127.0.0.1:8765/v1 (env AIS_LLM_BASE_URL)"
    )
    chat.add_argument(
        "--model",
        default=None,
        help=f"model name (env AIS_LLM_MODEL; local: {DEFAULT_MODEL_ALIAS})",
    )
    chat.add_argument("--system", default=None)
    chat.add_argument("--max-tokens", type=int, default=256)
    chat.add_argument("--temperature", type=float, default=0.0)
    chat.add_argument("--cache-dir", default=None)
    chat.add_argument("--no-stream", action="store_true")
    local = sub.add_parser("serve-local", help="run llama.cpp + SmolLM2-135M in the foreground")
    local.add_argument("--port", type=_port, default=8765, help="0: any free port")
    local.add_argument("--model-alias", default=DEFAULT_MODEL_ALIAS)
    fault = sub.add_parser("serve-fault", help="run the fault-injection server in the foreground")
    fault.add_argument("--port", type=_port, default=8766, help="0: any free port")
    fault.add_argument(
        "--transient-rate", type=_share, default=0.3, help="share of attempts faulted, 0..1"
    )
    fault.add_argument(
        "--fatal-rate", type=_share, default=0.02, help="share of requests given a 400/quota, 0..1"
    )
    fault.add_argument("--rpm", type=_positive_int, default=None, help="default: no limit")
    fault.add_argument("--tpm", type=_positive_int, default=None, help="default: no limit")
    fault.add_argument("--window", type=_seconds, default=60.0, help="seconds, > 0")
    fault.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    handler = {"chat": _chat, "serve-local": _serve_local, "serve-fault": _serve_fault}[
        args.command
    ]
    try:
        return handler(args)
    except LLMClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run(main))  # Ctrl-C or a closed pipe: one line, no traceback
