"""Run system benchmarks, each in a process of its own, and write one record per system.

Why a process per benchmark: peak memory (``ru_maxrss``) only grows within a process, so a
benchmark that ran after a hungry one would report the other's peak; and a crash or a leaked
thread in one system must not take the others down. The parent only starts children, waits, and
renders the report at the end.

    parent:  python -m benchmarks rag recsys --quick
    child:   python -m benchmarks.runner rag benchmarks.rag '{"quick": true, ...}'  (one each)
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import importlib.util
import json
import logging
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks import record as rec
from benchmarks.registry import BENCHMARKS
from evals.errors import DatasetError
from evals.timing import peak_rss_mb

logger = logging.getLogger(__name__)

__all__ = ["describe", "record_path", "run_in_subprocess", "run_one"]

EXIT_DATASET = 2  # a child's exit code when a dataset is missing or corrupt (message, no traceback)


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
    """Start ``python -m benchmarks.runner NAME MODULE CTX_JSON``; returns (exit code, seconds)."""
    payload = json.dumps(asdict(ctx), default=str)
    start = time.perf_counter()
    command = [sys.executable, "-m", "benchmarks.runner", name, BENCHMARKS[name], payload]
    completed = subprocess.run(command)
    return completed.returncode, time.perf_counter() - start


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
    print(
        f"[{name}] wrote {record_path(ctx.out_dir, name)} "
        f"({record['duration_s']:.1f} s, peak {record['peak_rss_mb']:.0f} MiB)"
    )
    for part in record["not_measured"]:
        print(f"[{name}] PARTIAL, not measured: {part}")
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
