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
shows old figures as if the latest run had produced them. Caches (embeddings, fine-tuned models)
live in ``--cache-dir``, by default ``results/cache`` for full and quick runs alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import report
from benchmarks.record import BenchContext
from benchmarks.registry import BENCHMARKS, TAKES_DATASET, TAKES_SEED
from benchmarks.runner import EXIT_DATASET, describe, run_in_subprocess


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
        "--seed", type=int, help="seed for the systems that read one (not recsys); default 0"
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
    out = args.out or (Path("results/quick") if args.quick else Path("results"))
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; records go into a folder")
    ctx = BenchContext(
        data_dir=args.data_dir,
        quick=args.quick,
        out_dir=out,
        cache_dir=args.cache_dir or Path("results/cache"),
        seed=0 if args.seed is None else args.seed,
        dataset=args.dataset,
        progress=not args.no_progress,
    )
    failures = []
    for name in dict.fromkeys(args.systems or BENCHMARKS):  # each system once, in the given order
        print(f"\n=== {name}{' (quick)' if args.quick else ''}: {describe(name)}", flush=True)
        code, seconds = run_in_subprocess(name, ctx)
        if code != 0:
            why = "dataset missing or corrupt" if code == EXIT_DATASET else f"exit code {code}"
            if moved := report.set_aside(out, name):
                why += f"; its earlier record moved to {moved}"
            failures.append(f"{name}: {why}")
            print(f"=== {name} FAILED after {seconds:.0f} s ({why})", flush=True)
    report_path = report.render_dir(out, failures)
    print(f"\nreport: {report_path}")
    if failures:
        print("failed benchmarks:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
