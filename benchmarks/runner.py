"""Run system benchmarks, each in a process of its own, and write one record per system.

Why a process per benchmark: peak memory (``ru_maxrss``) only grows within a process, so a
benchmark that ran after a hungry one would report the other's peak; and a crash or a leaked
thread in one system must not take the others down. The parent only starts children, waits, and
renders the report at the end.

How a child ends, and what the parent does with its record:

* 0: it wrote its record.
* 2 (``EXIT_DATASET``): a dataset is missing or corrupt; a message, no traceback. The parent sets
  the system's earlier record aside, as for any failure.
* 3 (``EXIT_CONFIG``): the system refused its configuration (one of ``CONFIG_ERRORS``) before
  measuring anything; one line. The parent keeps the earlier record: the refusal says nothing
  about those figures, and the parent has already checked the arguments it can (``--seed``,
  ``--data-dir``), so what reaches here is a rule only the system knows, or a benchmark's own
  setting that its system no longer accepts (a bug, which the line names; the kept record still
  says which commit measured it).
* 130: interrupted (Ctrl-C), silently: the parent prints the one ``interrupted`` line. The
  parent, interrupted, stops and reaps its child before it exits (:func:`_stop`), so neither a
  Ctrl-C, nor a SIGINT sent to the parent alone, nor the SIGTERM or SIGHUP that ``python -m
  benchmarks`` turns into the same interrupt, leaves a child running. A child killed mid-write
  leaves at most a uniquely named temporary file, which the next write of that entry removes
  (:mod:`evals.files`).
* anything else: it crashed (a traceback); the parent sets the earlier record aside.

Each child runs in a process group of its own, with whatever it starts (llama.cpp for rag's
answer check and llm_client's real-server row): a terminal's Ctrl-C reaches the parent only, the
parent passes it on, and a child that has not unwound in time is killed with its whole group, so
a server it was still stopping is not left running, orphaned, on both cores. The price: Ctrl-Z
suspends the parent only, and the running system carries on until ``fg``.

    parent:  python -m benchmarks rag recsys --quick
    child:   python -m benchmarks.runner rag benchmarks.rag '{"quick": true, ...}'  (one each)
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import importlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks import record as rec
from benchmarks.registry import BENCHMARKS, CONFIG_ERRORS
from evals.cli import INTERRUPTED, run
from evals.errors import DatasetError
from evals.timing import peak_rss_mb

logger = logging.getLogger(__name__)

__all__ = ["describe", "record_path", "run_in_subprocess", "run_one"]

EXIT_DATASET = 2  # a child's exit code when a dataset is missing or corrupt (message, no traceback)
EXIT_CONFIG = 3  # a child's exit code when its system refused its configuration (one line)
STOP_GRACE_S = 5.0  # how long an interrupted run waits for its child to unwind before killing it
# (more than LocalLLMServer's 2 s to stop llama.cpp: an interrupted child stops its server itself)


def describe(name: str) -> str:
    """A benchmark's ``DESCRIPTION``, read from its source without importing it (cheap --list)."""
    module = BENCHMARKS[name]
    try:
        spec = importlib.util.find_spec(module)  # locates the file; does not run it
        tree = ast.parse(Path(spec.origin).read_text())  # type: ignore[union-attr,arg-type]
    except (ImportError, AttributeError, TypeError, OSError):
        return f"(missing module {module})"
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DESCRIPTION" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    return ""


def record_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}.json"


def run_one(name: str, ctx: rec.BenchContext, module_name: str | None = None) -> dict:
    """Run one benchmark in this process and write its record. Returns the record."""
    module = importlib.import_module(module_name or BENCHMARKS[name])
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    result: rec.BenchResult = module.run(ctx)
    duration = time.perf_counter() - start
    record = {
        "system": name,
        "description": getattr(module, "DESCRIPTION", ""),
        "quick": ctx.quick,
        "status": result.status,
        **rec.result_to_dict(result),
        "machine": rec.machine_info(),
        "git_sha": rec.git_sha(Path(__file__).resolve().parent.parent),
        "started_at": started_at,
        "duration_s": round(duration, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "seed": ctx.seed,
    }
    # Put the identifying keys first so a reader of the JSON sees them before the rows.
    order = ["system", "description", "quick", "status", "dataset", "config", "machine"]
    record = {**{k: record[k] for k in order}, **record}
    rec.write(record, record_path(ctx.out_dir, name))
    return record


def run_in_subprocess(name: str, ctx: rec.BenchContext) -> tuple[int, float]:
    """Start ``python -m benchmarks.runner NAME MODULE CTX_JSON``; returns (exit code, seconds).

    Interrupted (Ctrl-C), it stops the child (:func:`_stop`) before raising ``KeyboardInterrupt``.
    The child leads a process group of its own (the module docstring says why). SIGTERM ends
    this process outright unless the caller turns it into a ``KeyboardInterrupt`` too, as
    ``python -m benchmarks`` does.
    """
    payload = json.dumps(asdict(ctx), default=str)
    start = time.perf_counter()
    command = [sys.executable, "-m", "benchmarks.runner", name, BENCHMARKS[name], payload]
    child = subprocess.Popen(command, process_group=0)
    try:
        code = child.wait()
    except BaseException:
        _stop(child)
        raise
    return code, time.perf_counter() - start


def _stop(child: subprocess.Popen) -> None:
    """End ``child`` after this process was interrupted, and reap it: nothing outlives the run.

    The child is in a process group of its own, so no terminal's Ctrl-C has reached it: the
    SIGINT is passed on here. The child then has ``STOP_GRACE_S`` to unwind (its ``with`` and
    ``finally`` blocks stop the servers it started, remove their temporary files and release
    their locks) before its whole group is killed; a second Ctrl-C kills it at once. Killing the
    group, not the child alone, matters: a child killed while it waits for a server to stop
    leaves that server running, orphaned. (``subprocess.run`` would kill the child alone after a
    quarter of a second and not reap it.)
    """
    try:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            child.wait(timeout=STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        # Whatever is left of the group, whether the child unwound or not. The group's id is
        # not given to a new process while any member lives; none left: ProcessLookupError.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _is_config_error(exc: Exception) -> bool:
    """Whether ``exc`` is a system's configuration error (``CONFIG_ERRORS``).

    Only modules already imported are looked in: an error of a system this child never loaded
    cannot have been raised, and importing every system here would cost seconds and let one
    broken system stop the others' benchmarks.
    """
    for dotted in CONFIG_ERRORS:
        module, _, name = dotted.rpartition(".")
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type) and isinstance(exc, error):
            return True
    return False


def _child_main(argv: list[str]) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    name, module_name, payload = argv
    fields = json.loads(payload)
    for key in ("data_dir", "out_dir", "cache_dir"):
        if fields.get(key) is not None:
            fields[key] = Path(fields[key])
    ctx = rec.BenchContext(**fields)
    try:
        record = run_one(name, ctx, module_name)
    except DatasetError as exc:
        print(f"\n[{name}] dataset problem:\n{exc}", file=sys.stderr)
        return EXIT_DATASET
    except KeyboardInterrupt:
        return INTERRUPTED  # no line: the parent, interrupted too, prints the one "interrupted"
    except Exception as exc:
        if not _is_config_error(exc):
            raise  # a crash: its traceback is what its author needs
        print(f"[{name}] configuration refused, nothing measured: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"[{name}] wrote {record_path(ctx.out_dir, name)} "
        f"({record['duration_s']:.1f} s, peak {record['peak_rss_mb']:.0f} MiB)"
    )
    for part in record["not_measured"]:
        print(f"[{name}] PARTIAL, not measured: {part}")
    return 0


if __name__ == "__main__":
    # The parent stops this process with SIGINT, so it must hear one even when started from a
    # job that ignores it (a script's `cmd &`); no terminal sends it one (own process group).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(run(lambda: _child_main(sys.argv[1:])))  # run: a closed stdout pipe is no traceback
