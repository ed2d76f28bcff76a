"""Command line: play a scenario and print its timeline, or write a triage report.

    python -m drift simulate --scenario bad_deployment
    python -m drift simulate --scenario real_2011_2012 --observe-only
    python -m drift report --scenario data_quality --out drift-report

Data comes from ``evals.datasets.load_bike_sharing`` (``--data-dir`` or ``AIS_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from drift.config import MonitorConfig
from drift.errors import DriftError
from drift.features import split_reference
from drift.scenarios import SCENARIOS, build_scenario
from drift.timeline import Timeline, run_scenario, train_models
from drift.triage import write_triage


def _timeline(args: argparse.Namespace, act: bool) -> Timeline:
    from evals.datasets import load_bike_sharing

    data = split_reference(load_bike_sharing(args.data_dir), seed=args.seed)
    scenario = build_scenario(
        args.scenario,
        data,
        n_windows=args.windows,
        window_rows=args.window_rows,
        onset=args.onset,
        shift_sd=args.shift_sd,
        seed=args.seed,
    )
    models = train_models(data, seed=args.seed)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="drift-"))
    config = MonitorConfig(method=args.method, correction=args.correction)
    return run_scenario(scenario, models, workdir, config=config, act=act, seed=args.seed)


def _print_timeline(timeline: Timeline) -> None:
    scenario = timeline.scenario
    print(
        f"scenario {scenario.name}: {scenario.description}; onset {scenario.onset}; "
        f"{'acting' if timeline.acted else 'observe-only'}"
    )
    header = (
        f"{'win':>3} {'label':<10} {'model':<6} {'MAE':>6} {'quality':<8} {'share':>5} "
        f"{'cusum':>5} {'ratio':>5}  top drift / actions"
    )
    print(header)
    print("-" * len(header))
    for s in timeline.steps:
        top = ", ".join(f"{c.column}:{c.distance:.2f}" for c in s.report.drift.ranked()[:2])
        ratio = f"{s.performance.ratio:5.2f}" if s.performance else "    -"
        acts = "; ".join(d.action for d in s.decisions)
        quality = "ok" if s.report.quality.ok else "INCIDENT"
        marker = " <- onset" if s.window == scenario.onset else ""
        print(
            f"{s.window:>3} {s.label:<10} {s.serving:<6} {s.served_mae:6.1f} {quality:<8} "
            f"{s.report.drift.drifted_share:5.2f} {s.report.cusum_statistic:5.2f} {ratio}  "
            f"{top}{' | ' + acts if acts else ''}{marker}"
        )
    print(
        f"served MAE from onset: {timeline.served_mae(scenario.onset or 0):.1f} "
        f"(state in {timeline.registry_root.parent})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drift", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("simulate", "report"):
        p = sub.add_parser(name)
        p.add_argument("--scenario", choices=SCENARIOS, default="bad_deployment")
        p.add_argument("--windows", type=int, default=16)
        p.add_argument("--window-rows", type=int, default=1000)
        p.add_argument("--onset", type=int, default=6)
        p.add_argument("--shift-sd", type=float, default=0.5)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--method", choices=("evidently_default", "pvalue"), default="evidently_default"
        )
        p.add_argument("--correction", choices=("none", "bonferroni"), default="none")
        p.add_argument("--data-dir", default=None)
        p.add_argument("--workdir", default=None, help="registry + SQLite log (default: temp dir)")
        p.add_argument("-v", "--verbose", action="store_true")
    sub.choices["simulate"].add_argument(
        "--observe-only", action="store_true", help="decide and record, but never change the model"
    )
    sub.choices["report"].add_argument("--out", default="drift-report")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "simulate":
            _print_timeline(_timeline(args, act=not args.observe_only))
        else:
            timeline = _timeline(args, act=True)
            report = write_triage(timeline, Path(args.out))
            print(f"triage summary: {report.json_path}")
            if report.html_path:
                print(f"evidently drift report: {report.html_path}")
    except DriftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
