"""``python -m benchmarks``: run the registered system benchmarks and render the report.

    python -m benchmarks                 # every system, full run, records in results/
    python -m benchmarks rag recsys      # some systems
    python -m benchmarks --quick         # small fast subset (CI), records in results/quick/
    python -m benchmarks --list          # what is registered
    python -m benchmarks rag --dataset path/to/beir-folder
    python -m benchmarks drift rag --seed 7   # recsys refuses --seed: its split seeds are fixed

Each system runs in its own process and writes ``<out>/<system>.json``; then ``<out>/REPORT.md``
is rendered from every record in ``<out>``. The exit code is non-zero if any benchmark failed.
A failed system's record from an earlier run is moved to ``<out>/stale/``, so the report never
shows old figures as if the latest run had produced them. Two failures leave the record where it
is, because they say nothing about the figures in it: a system that refused its configuration
before measuring anything (its ``ConfigError``, exit code 3) and a system's process that was
interrupted on its own; the report's "Failed in the latest run" line still names them. Caches
(embeddings, fine-tuned models) live in ``--cache-dir``, by default ``results/cache`` for full
and quick runs alike.

Arguments are checked before the first system starts, as argparse's one ``error:`` line and exit
code 2: a ``--seed`` outside 0..2**32-1, a ``--data-dir`` that is not a folder, a ``--dataset``
that is neither a registered name nor a folder, and an ``--out`` or ``--cache-dir`` that cannot
be created or written (a probe file is written there). A mistyped argument would otherwise cost
a run of up to hours, or fail every child in its first second and set good records aside.
Ctrl-C stops the running system's process and ends with one line, ``interrupted``, and exit code
130: the records already written stay, none is moved, and REPORT.md is not re-rendered. SIGTERM
(``kill``, ``timeout``, a CI job's cancel) and SIGHUP (the terminal closed) take the same path and
end with ``terminated (SIGTERM)`` and exit code 143 (128 + 15, what a shell reports for a process
SIGTERM ended; 129 for SIGHUP), so a script sees which signal stopped the run. Without that, the
signal would end this process alone and leave the running system's process going to its end.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from benchmarks import report
from benchmarks.record import BenchContext
from benchmarks.registry import BENCHMARKS, TAKES_DATASET, TAKES_SEED
from benchmarks.runner import (
    EXIT_CONFIG,
    EXIT_DATASET,
    describe,
    record_path,
    run_in_subprocess,
)
from evals.cli import INTERRUPTED, run, seed
from evals.files import writable_folder

# A child that ended with one of these did not show its system failing, so its record is kept.
KEEPS_RECORD = {
    EXIT_CONFIG: "configuration refused before anything was measured",
    INTERRUPTED: "interrupted",
}


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the run is so that it unwinds as a Ctrl-C does: a
    ``KeyboardInterrupt`` is what :func:`benchmarks.runner.run_in_subprocess` stops its child on."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _terminations_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``_Terminated``; the handlers before are put
    back after it. A signal the caller ignores (``nohup``) or handles its own way is left alone."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    ours = [s for s, handler in previous.items() if handler is signal.SIG_DFL]
    for signum in ours:
        signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum in ours:
            signal.signal(signum, previous[signum])


def _folder_problem(flag: str, folder: Path) -> str | None:
    """Why records or caches cannot go into ``folder`` (created here if missing), or None."""
    if folder.exists() and not folder.is_dir():
        return f"{flag} {folder} is a file; it names a folder"
    try:
        writable_folder(folder)
    except OSError as exc:  # strerror: "Permission denied", "Not a directory", ...
        return f"{flag} {folder} cannot be created or written: {exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0].replace("``", "")
    )
    parser.add_argument("systems", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list registered benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="small, fast subset for smoke runs")
    parser.add_argument("--data-dir", type=Path, help="folder holding the datasets")
    parser.add_argument(
        "--out", type=Path, help="records folder (default results/, quick: results/quick/)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="embeddings/model cache (default results/cache, whatever --out is)",
    )
    parser.add_argument(
        "--dataset", help="a dataset path for systems that accept one (rag: BEIR folder)"
    )
    parser.add_argument(
        "--seed", type=seed, help="seed for the systems that read one (not recsys); default 0"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)

    if args.list:
        width = max(map(len, BENCHMARKS))
        for name in BENCHMARKS:
            print(f"{name:<{width}}  {describe(name)}")
        return 0
    unknown = [s for s in args.systems if s not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; registered: {', '.join(BENCHMARKS)}"
        )

    ignoring = sorted(set(args.systems or BENCHMARKS) - TAKES_DATASET)
    if args.dataset and ignoring:
        parser.error(
            f"--dataset is read by {', '.join(sorted(TAKES_DATASET))} only; "
            f"{', '.join(ignoring)} would ignore it: name the systems, e.g. `rag --dataset PATH`"
        )
    ignoring = sorted(set(args.systems or BENCHMARKS) - TAKES_SEED)
    if args.seed is not None and ignoring:
        parser.error(
            f"--seed is read by {', '.join(sorted(TAKES_SEED))} only; "
            f"{', '.join(ignoring)} would ignore it: name the systems, "
            "e.g. `drift rag --seed 7`"
        )
    if args.data_dir is not None and not args.data_dir.is_dir():
        what = "is a file" if args.data_dir.exists() else "does not exist"
        parser.error(
            f"--data-dir {args.data_dir} {what}; give the folder holding the datasets, or leave "
            "it out to use AIS_DATA_DIR, the user cache or a download"
        )
    if args.dataset and not Path(args.dataset).expanduser().is_dir():
        from evals.datasets import DATASETS  # imported here: it loads pandas

        if args.dataset not in DATASETS:
            parser.error(
                f"--dataset {args.dataset} is neither a folder nor a registered dataset "
                f"({', '.join(DATASETS)})"
            )
    out = args.out or (Path("results/quick") if args.quick else Path("results"))
    cache_dir = args.cache_dir or Path("results/cache")
    for flag, folder in (("--out", out), ("--cache-dir", cache_dir)):
        if problem := _folder_problem(flag, folder):
            parser.error(problem)
    ctx = BenchContext(
        data_dir=args.data_dir,
        quick=args.quick,
        out_dir=out,
        cache_dir=cache_dir,
        seed=0 if args.seed is None else args.seed,
        dataset=args.dataset,
        progress=not args.no_progress,
    )
    try:
        with _terminations_as_interrupts():
            failures = _run_each(args.systems or list(BENCHMARKS), ctx)
    except _Terminated as stop:  # the child is stopped and reaped by now; no report, as for Ctrl-C
        print(f"terminated ({signal.Signals(stop.signum).name})", file=sys.stderr)
        return 128 + stop.signum
    report_path = report.render_dir(out, failures)
    print(f"\nreport: {report_path}")
    if failures:
        print("failed benchmarks:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def _run_each(systems: list[str], ctx: BenchContext) -> list[str]:
    """Run each system once, in the given order; returns one line per failed system."""
    out = ctx.out_dir
    failures = []
    for name in dict.fromkeys(systems):  # each system once, in the given order
        print(f"\n=== {name}{' (quick)' if ctx.quick else ''}: {describe(name)}", flush=True)
        code, seconds = run_in_subprocess(name, ctx)  # Ctrl-C here stops the child and ends main
        if code == 0:
            continue
        if code in KEEPS_RECORD:
            why = KEEPS_RECORD[code]
            if record_path(out, name).is_file():
                why += "; its earlier record kept"
        else:
            why = "dataset missing or corrupt" if code == EXIT_DATASET else f"exit code {code}"
            if moved := report.set_aside(out, name):
                why += f"; its earlier record moved to {moved}"
        failures.append(f"{name}: {why}")
        print(f"=== {name} FAILED after {seconds:.0f} s ({why})", flush=True)
    return failures


if __name__ == "__main__":
    sys.exit(run(main))
