"""Render benchmark records (``<out>/*.json``) into ``<out>/REPORT.md``, and into the root README.

A separate step from measuring: tables can be re-rendered at any time from the records alone.

    python -m benchmarks.report results                      # writes results/REPORT.md
    python -m benchmarks.report results --readme README.md   # also refreshes the README's table

A README that cannot take the table (missing, a folder, not UTF-8, no start marker before an end
marker) is refused with argparse's ``error:`` line and exit code 2 before anything is written.

For each system: one table per ``table`` name of its rows (metrics, then timings, a confidence
interval beside a metric when the record has one), then the published anchors, each beside the
row it is compared with and the difference, then the record's notes. The machine and dates head
the report, because a latency figure means nothing without them. The README gets the compact
form: per system, each published anchor beside our figure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from evals.cli import run

__all__ = ["readme_text", "render", "render_dir", "render_summary", "set_aside", "update_readme"]

# What render() reads from every record; a JSON file without them is not a benchmark record.
REQUIRED = ("system", "quick", "started_at", "duration_s", "peak_rss_mb", "machine", "rows")
STALE_DIR = "stale"

README_START = "<!-- benchmark-report:start -->"
README_END = "<!-- benchmark-report:end -->"


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value == 0:
            return "0"
        if value.is_integer() and abs(value) >= 1:  # counts stored as floats
            return f"{value:,.0f}"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 100:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.4f}"
    return str(value)


def _signed(value: float) -> str:
    return f"{value:+.4f}" if abs(value) < 10 else f"{value:+,.1f}"


def _columns(rows: list[dict], key: str) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.get(key, {})))
    return list(seen)


def _table(rows: list[dict]) -> list[str]:
    metrics, timings = _columns(rows, "metrics"), _columns(rows, "timings")
    header = ["variant", *metrics, *timings]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"`{row['variant']}`"]
        for m in metrics:
            value = row["metrics"].get(m)
            # null is a figure that is undefined or unreachable (records hold no NaN or inf);
            # "–" is a metric the row does not have
            cell = "n/a" if m in row["metrics"] and value is None else _fmt(value)
            if m in row.get("ci", {}) and value is not None:
                low, high = row["ci"][m]
                cell += f" ({_fmt(low)}–{_fmt(high)})"
            cells.append(cell)
        cells += [_fmt(row.get("timings", {}).get(t)) for t in timings]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _anchor_table(record: dict) -> list[str]:
    rows_by_key = {(r.get("table", "main"), r["variant"]): r for r in record["rows"]}
    lines = [
        "| reference | metric | published | ours (variant) | ours − published | protocol "
        "| source |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in record["anchors"]:
        row = rows_by_key.get((a.get("table", "main"), a.get("variant")), {})
        # Our figure is one of the row's metrics or, for a speed target (p99_ms), a timing.
        ours = row.get("metrics", {}).get(a["metric"], row.get("timings", {}).get(a["metric"]))
        ours_cell = f"{_fmt(ours)} (`{a['variant']}`)" if ours is not None else "–"
        diff = "–" if ours is None else _signed(ours - a["value"])
        lines.append(
            f"| {a['name']} | {a['metric']} | {_fmt(a['value'])} | {ours_cell} | {diff} | "
            f"{a['protocol']} | {a['source']} |"
        )
    return lines


def render_summary(records: list[dict]) -> str:
    """The compact form for the root README: per system, each figure beside its anchors."""
    lines = []
    for record in sorted(records, key=lambda r: r["system"]):
        if not record.get("anchors"):
            continue
        quick = " (quick smoke run)" * record["quick"]
        lines += [
            f"### {record['system']}{quick}",
            "",
            f"{record.get('description', '').rstrip('.')}. Run {record['started_at'][:10]}, "
            f"{record['duration_s']:.0f} s, peak {record['peak_rss_mb']:.0f} MiB.",
            "",
            *_not_measured(record),
            *_anchor_table(record),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _not_measured(record: dict) -> list[str]:
    """A partial record's warning (records written before ``not_measured`` existed have none)."""
    parts = record.get("not_measured") or []
    return ["**Partial run, not measured:** " + "; ".join(parts), ""] if parts else []


def _libraries(machine: dict) -> list[str]:
    return [f"{k} {v}" for k, v in machine.get("libraries", {}).items() if v]


def _machine(machine: dict) -> str:
    cpu, cores, python = (machine.get(k, "?") for k in ("cpu", "cores", "python"))
    return f"{cpu}, {cores} cores, Python {python}"


def render(
    records: list[dict], failures: list[str] | None = None, skipped: list[str] | None = None
) -> str:
    """The markdown report for a list of records (``skipped``: files that are not records)."""
    lines = ["# Benchmark report", ""]
    machines = {_machine(r["machine"]) for r in records}
    # library versions every record shares head the report; a section names only its own others
    shared = (
        set.intersection(*(set(_libraries(r["machine"])) for r in records)) if records else set()
    )
    if records:
        where = (
            f"Machine: {next(iter(machines))}.  "
            if len(machines) == 1
            else "Machines differ between records: each system's section names its own.  "
        )
        libs = ", ".join(lib for lib in _libraries(records[0]["machine"]) if lib in shared)
        lines += [
            where,
            f"Libraries: {libs or '–'}.  ",
            "Rendered from the JSON records beside this file by `python -m benchmarks.report`.",
            "",
        ]
    if failures:
        lines += ["**Failed in the latest run:** " + "; ".join(failures), ""]
    if skipped:
        lines += ["**Not shown (unreadable, or not a record):** " + "; ".join(skipped), ""]
    for record in sorted(records, key=lambda r: r["system"]):
        quick = " (QUICK smoke run: a small subset, not comparable with anchors)" * record["quick"]
        dataset = record.get("dataset") or {}
        on = f" on {_machine(record['machine'])}" if len(machines) > 1 else ""
        lines += [
            f"## {record['system']}{quick}",
            "",
            record.get("description", ""),
            "",
            f"Dataset: {dataset.get('name', '–')}. Run {record['started_at']} at "
            f"`{(record.get('git_sha') or 'unknown')[:12]}`{on}, {record['duration_s']:.0f} s, "
            f"peak memory {record['peak_rss_mb']:.0f} MiB.",
            "",
        ]
        if own := [lib for lib in _libraries(record["machine"]) if lib not in shared]:
            lines += [f"Libraries beyond those above: {', '.join(own)}.", ""]
        lines += _not_measured(record)
        tables: dict[str, list[dict]] = {}
        for row in record["rows"]:
            tables.setdefault(row.get("table", "main"), []).append(row)
        for name, rows in tables.items():
            if len(tables) > 1 or name != "main":
                lines += [f"### {name}", ""]
            lines += [*_table(rows), ""]
        if record.get("anchors"):
            lines += ["Published anchors:", "", *_anchor_table(record), ""]
        for note in record.get("notes", []):
            lines.append(f"- {note}")
        if record.get("notes"):
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _load(out_dir: Path) -> tuple[list[dict], list[str]]:
    """The records in ``out_dir``, and the JSON files there that are not records (and why)."""
    records, skipped = [], []
    for path in sorted(out_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = f"unreadable ({type(exc).__name__})"
        else:
            missing = [k for k in REQUIRED if k not in record] if isinstance(record, dict) else []
            if isinstance(record, dict) and not missing:
                records.append(record)
                continue
            problem = f"no {', '.join(missing)}" if missing else "not a JSON object"
        print(f"skipping {path}: {problem}", file=sys.stderr)
        skipped.append(f"{path.name} ({problem})")
    return records, skipped


def render_dir(out_dir: Path, failures: list[str] | None = None) -> Path:
    """Render every record in ``out_dir`` into ``out_dir/REPORT.md``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "REPORT.md"
    records, skipped = _load(out_dir)
    path.write_text(render(records, failures, skipped))
    return path


def set_aside(out_dir: Path, system: str) -> Path | None:
    """Move ``system``'s record out of the report (to ``out_dir/stale/``) after a failed run.

    The old figures are kept, not deleted, but a report rendered later can no longer show them
    as current. Returns where the record went, or None if there was none.
    """
    record = out_dir / f"{system}.json"
    if not record.is_file():
        return None
    target = out_dir / STALE_DIR / record.name
    target.parent.mkdir(exist_ok=True)
    record.replace(target)
    return target


def readme_text(readme: Path) -> str:
    """The README's text if its report section can be replaced, else ValueError saying why.

    It must be a UTF-8 file holding ``README_START`` and, after it, ``README_END``.
    """
    try:
        text = readme.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{readme} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{readme} is a folder, not a markdown file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{readme} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"{readme} cannot be read: {exc.strerror or exc}") from None
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0:
        raise ValueError(
            f"{readme} has no {README_START} / {README_END} markers: put the pair, each on a "
            "line of its own, where the table goes"
        )
    if end < start:
        raise ValueError(f"{readme} has {README_END} before {README_START}; swap them")
    return text


def update_readme(readme: Path, summary_md: str) -> None:
    """Replace the text between the README's report markers with ``summary_md``.

    ValueError (from :func:`readme_text`), with the README unchanged, if it has no such section.
    """
    text = readme_text(readme)
    before, rest = text.split(README_START, 1)
    _, after = rest.split(README_END, 1)
    readme.write_text(
        f"{before}{README_START}\n{summary_md.strip()}\n{README_END}{after}", encoding="utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report")
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("results"))
    parser.add_argument("--readme", type=Path, help="also refresh this README's report section")
    args = parser.parse_args(argv)
    if not args.out_dir.is_dir():
        parser.error(f"{args.out_dir} is not a folder of benchmark records")
    if args.readme:
        try:  # before REPORT.md is written: a refused command writes nothing
            readme_text(args.readme)
        except ValueError as exc:
            parser.error(f"--readme {exc}")
    path = render_dir(args.out_dir)
    if args.readme:
        update_readme(args.readme, render_summary(_load(args.out_dir)[0]))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
