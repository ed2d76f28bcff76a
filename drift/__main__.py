"""Command line: play a scenario and print its timeline, or write a triage report.

    python -m drift simulate --scenario bad_deployment
    python -m drift simulate --scenario real_2011_2012 --observe-only
    python -m drift report --scenario data_quality --out drift-report

Data comes from ``evals.datasets.load_bike_sharing`` (``--data-dir`` or ``AIS_DATA_DIR``).

A ``--workdir`` holds one run: the CLI refuses one that already holds a run's registry or log,
unless ``--fresh`` asks it to delete those files first, and creates it before the run, so one that
cannot be created (a file in its path) is refused at once. ``--out`` is created and proved
writable before the run too, so a file in its path or a folder without write permission is one
error line, not a traceback after the run. In a folder reused from an earlier report, that
report's ``evidently_drift.html`` is deleted, and the CLI says so, when this run has no alert to
write one for. A scenario flag the chosen scenario does not read (``--onset`` for ``stationary``,
every size flag for ``real_2011_2012``) is an error, not silently ignored.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import tempfile
from pathlib import Path

from drift.config import MonitorConfig
from drift.errors import DriftError, ScenarioError
from drift.features import split_reference
from drift.scenarios import PARAMETERS, SCENARIOS, build_scenario
from drift.timeline import (
    Timeline,
    check_workdir,
    clear_run_state,
    make_workdir,
    run_scenario,
    train_models,
)
from drift.triage import report_folder, write_triage
from evals.cli import run, seed
from evals.errors import DatasetError

# build_scenario parameter -> (flag, type, default). The flags default to None so that a flag the
# user typed can be told from one left alone; the defaults are build_scenario's own.
_SCENARIO_FLAGS: dict[str, tuple[str, type, float]] = {
    param: (flag, kind, inspect.signature(build_scenario).parameters[param].default)
    for param, flag, kind in (
        ("n_windows", "--windows", int),
        ("window_rows", "--window-rows", int),
        ("onset", "--onset", int),
        ("shift_sd", "--shift-sd", float),
    )
}


def _scenario_kwargs(args: argparse.Namespace) -> dict[str, float]:
    """The scenario flags with defaults filled in; refuses a typed flag the scenario ignores."""
    reads = PARAMETERS[args.scenario]
    ignored = [
        flag
        for param, (flag, _, _) in _SCENARIO_FLAGS.items()
        if getattr(args, param) is not None and param not in reads
    ]
    if ignored:
        every = [flag for flag, _, _ in _SCENARIO_FLAGS.values()]
        valid = [flag for param, (flag, _, _) in _SCENARIO_FLAGS.items() if param in reads]
        raise ScenarioError(
            f"--scenario {args.scenario} does not use {', '.join(ignored)}; remove "
            f"{'it' if len(ignored) == 1 else 'them'} (it reads "
            f"{'only ' + ', '.join(valid) if valid else 'none of ' + ', '.join(every)})"
        )
    return {
        param: default if getattr(args, param) is None else getattr(args, param)
        for param, (_, _, default) in _SCENARIO_FLAGS.items()
        if param in reads
    }


def _workdir(args: argparse.Namespace) -> Path | None:
    """``--workdir`` (None if not given), created; refuses one holding a previous run unless
    ``--fresh``."""
    if not args.workdir:
        return None
    workdir = Path(args.workdir)
    if not args.fresh:
        check_workdir(workdir, "pass an empty directory, or add --fresh to delete that run's files")
    # Created now, before the data loads and the models train: a folder that can never exist (a
    # file in its path, no permission) is then one error line at once, not a traceback from
    # run_scenario's mkdir after the slow part.
    make_workdir(workdir)
    return workdir


def _timeline(
    args: argparse.Namespace, act: bool, scratch: Path, out: Path | None = None
) -> Timeline:
    """Play the scenario in ``--workdir``, else in ``scratch`` (a temp dir the caller deletes)."""
    from evals.datasets import load_bike_sharing

    kwargs = _scenario_kwargs(args)  # check the flags before the slow part
    workdir = _workdir(args)
    if out is not None:  # the report is written after the whole run: prove now that it can be
        report_folder(out)
    data = split_reference(load_bike_sharing(args.data_dir), seed=args.seed)
    scenario = build_scenario(args.scenario, data, seed=args.seed, **kwargs)
    models = train_models(data, seed=args.seed)
    if workdir is None:
        workdir = scratch
    elif args.fresh and (removed := clear_run_state(workdir)):
        print(
            f"--fresh: deleted {len(removed)} entries of the previous run in {workdir}",
            file=sys.stderr,
        )
    config = MonitorConfig(method=args.method, correction=args.correction)
    return run_scenario(scenario, models, workdir, config=config, act=act, seed=args.seed)


def _print_timeline(timeline: Timeline, kept: bool) -> None:
    scenario = timeline.scenario
    onset = "no onset" if scenario.onset is None else f"onset {scenario.onset}"
    print(
        f"scenario {scenario.name}: {scenario.description}; {onset}; "
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
        # Observe-only: the policy still decides; the log records "recommend:<action>" too.
        acts = "; ".join(
            d.action if timeline.acted else f"recommend:{d.action}" for d in s.decisions
        )
        quality = "ok" if s.report.quality.ok else "INCIDENT"
        marker = " <- onset" if s.window == scenario.onset else ""
        print(
            f"{s.window:>3} {s.label:<10} {s.serving:<6} {s.served_mae:6.1f} {quality:<8} "
            f"{s.report.drift.drifted_share:5.2f} {s.report.cusum_statistic:5.2f} {ratio}  "
            f"{top}{' | ' + acts if acts else ''}{marker}"
        )
    since = "all windows" if scenario.onset is None else "from onset"
    state = (
        f"state in {timeline.registry_root.parent}"
        if kept
        else "state deleted with its temp dir; --workdir DIR keeps it"
    )
    print(f"served MAE {since}: {timeline.served_mae(scenario.onset or 0):.1f} ({state})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drift", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("simulate", "report"):
        p = sub.add_parser(name)
        p.add_argument("--scenario", choices=SCENARIOS, default="bad_deployment")
        for param, (flag, kind, default) in _SCENARIO_FLAGS.items():
            p.add_argument(flag, dest=param, type=kind, default=None, help=f"default {default}")
        p.add_argument("--seed", type=seed, default=0)
        p.add_argument(
            "--method", choices=("evidently_default", "pvalue"), default="evidently_default"
        )
        p.add_argument("--correction", choices=("none", "bonferroni"), default="none")
        p.add_argument("--data-dir", default=None)
        p.add_argument(
            "--workdir", default=None, help="registry + SQLite log of this run (default: temp dir)"
        )
        p.add_argument(
            "--fresh",
            action="store_true",
            help="delete a previous run's registry and log in --workdir first (nothing else)",
        )
        p.add_argument("-v", "--verbose", action="store_true")
    sub.choices["simulate"].add_argument(
        "--observe-only", action="store_true", help="decide and record, but never change the model"
    )
    sub.choices["report"].add_argument(
        "--out",
        default="drift-report",
        help="folder for triage.json and evidently_drift.html, new or existing",
    )
    args = parser.parse_args(argv)
    if args.fresh and not args.workdir:
        parser.error("--fresh clears a --workdir; without one each run gets a new temp dir")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # without --workdir the run's registry and log live in a temp dir, deleted when it ends
    with tempfile.TemporaryDirectory(prefix="drift-", ignore_cleanup_errors=True) as scratch:
        return _command(args, Path(scratch))


def _command(args: argparse.Namespace, scratch: Path) -> int:
    try:
        if args.command == "simulate":
            timeline = _timeline(args, act=not args.observe_only, scratch=scratch)
            _print_timeline(timeline, kept=bool(args.workdir))
        else:
            timeline = _timeline(args, act=True, scratch=scratch, out=Path(args.out))
            report = write_triage(timeline, Path(args.out))
            print(f"triage summary: {report.json_path}")
            if report.html_path:
                print(f"evidently drift report: {report.html_path}")
            if report.removed:
                print(
                    f"deleted {report.removed}: an earlier run's report; this run has no alert "
                    "to report on",
                    file=sys.stderr,
                )
    except (DriftError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run(main))  # Ctrl-C: "interrupted", status 130; a closed stdout pipe: status 1
