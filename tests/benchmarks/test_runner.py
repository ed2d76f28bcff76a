"""The benchmark runner, its records and the report, run for real in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as cli
from benchmarks import record as rec
from benchmarks import report
from benchmarks.registry import BENCHMARKS
from benchmarks.runner import describe

ROOT = Path(__file__).resolve().parents[2]
RECORD_KEYS = {
    "system", "description", "quick", "status", "dataset", "config", "machine", "git_sha",
    "started_at", "duration_s", "peak_rss_mb", "rows", "anchors", "notes", "not_measured",
}  # fmt: skip


def test_every_registered_benchmark_has_a_description():
    for name in BENCHMARKS:
        assert describe(name) and not describe(name).startswith("(missing"), name


def test_list_shows_the_registered_benchmarks():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert all(name in out for name in BENCHMARKS)


def test_quick_harness_run_writes_a_self_describing_record_and_a_report(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"  # not the checkout's results/cache
    quick = ["harness", "--quick", "--out", str(out), "--cache-dir", str(cache)]
    subprocess.run(
        [sys.executable, "-m", "benchmarks", *quick], cwd=ROOT, check=True, capture_output=True
    )
    record = json.loads((out / "harness.json").read_text())
    assert set(record) >= RECORD_KEYS
    assert record["quick"] is True and record["machine"]["cores"] >= 1
    ours = next(r for r in record["rows"] if r["variant"] == "evals.metrics")
    assert ours["metrics"]["max_abs_diff_vs_trec_eval"] < 1e-9
    assert ours["metrics"]["ndcg@10"] > 0.3  # the synthetic retriever ranks judged docs higher
    text = (out / "REPORT.md").read_text()
    assert "## harness (QUICK" in text and "`evals.metrics`" in text
    assert sorted(p.name for p in out.iterdir()) == ["REPORT.md", "harness.json"]  # no temp


def test_a_failing_benchmark_makes_the_runner_exit_non_zero(tmp_path, monkeypatch):
    (tmp_path / "failing_bench.py").write_text(
        "DESCRIPTION = 'always fails'\ndef run(ctx):\n    raise RuntimeError('boom')\n"
    )
    (tmp_path / "missing_data_bench.py").write_text(
        "DESCRIPTION = 'needs data that is not there'\n"
        "from evals.datasets import load_davidson\n"
        "def run(ctx):\n"
        "    load_davidson(ctx.data_dir)\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{ROOT}")
    monkeypatch.setenv("AIS_NO_DOWNLOAD", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AIS_DATA_DIR", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        cli, "BENCHMARKS", {"boom": "failing_bench", "nodata": "missing_data_bench"}
    )
    monkeypatch.setattr("benchmarks.runner.BENCHMARKS", cli.BENCHMARKS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "boom.json").write_text(json.dumps(_record("boom")))  # figures from an earlier run
    (tmp_path / "empty").mkdir()  # a --data-dir that does not exist is refused before running
    assert cli.main(["--out", str(out), "--data-dir", str(tmp_path / "empty")]) == 1
    assert not (out / "boom.json").exists()  # set aside, not shown as the latest figures
    assert json.loads((out / "stale" / "boom.json").read_text())["system"] == "boom"
    text = (out / "REPORT.md").read_text()
    assert "Failed in the latest run" in text and "## boom" not in text
    report.main([str(out)])  # `make report` later cannot bring the old figures back either
    assert "## boom" not in (out / "REPORT.md").read_text()


def test_a_benchmark_that_skips_a_part_writes_a_partial_record(tmp_path, monkeypatch):
    (tmp_path / "partial_bench.py").write_text(
        "from benchmarks.record import BenchResult, Row\n"
        "DESCRIPTION = 'one part cannot run here'\n"
        "def run(ctx):\n"
        "    rows = [Row('v', {'m': 0.5})]\n"
        "    skipped = ['the model part: no model'] if ctx.seed else []\n"
        "    return BenchResult({'name': 'toy'}, {}, rows, not_measured=skipped)\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{ROOT}")
    monkeypatch.setattr(cli, "BENCHMARKS", {"part": "partial_bench"})
    monkeypatch.setattr(cli, "TAKES_SEED", frozenset({"part"}))
    monkeypatch.setattr("benchmarks.runner.BENCHMARKS", cli.BENCHMARKS)
    out = tmp_path / "out"
    assert cli.main(["--out", str(out)]) == 0
    record = json.loads((out / "part.json").read_text())
    assert (record["status"], record["not_measured"]) == ("ok", [])
    assert "Partial run" not in (out / "REPORT.md").read_text()
    assert cli.main(["--out", str(out), "--seed", "1"]) == 0  # a partial run is not a failure
    record = json.loads((out / "part.json").read_text())
    assert (record["status"], record["not_measured"]) == ("partial", ["the model part: no model"])
    text = (out / "REPORT.md").read_text()
    assert "**Partial run, not measured:** the model part: no model" in text


def test_the_summary_marks_a_partial_record_and_reads_records_without_the_field():
    old = {**_record("old"), "anchors": [_anchor()]}  # written before not_measured existed
    partial = {**_record("new"), "anchors": [_anchor()], "not_measured": ["x: no model"]}
    summary = report.render_summary([old, partial])
    assert summary.count("Partial run") == 1
    assert summary.index("Partial run") > summary.index("### new")


def test_the_header_names_shared_library_versions_and_each_section_its_own(tmp_path):
    first, second = _record("a"), _record("b")
    first["machine"]["libraries"] = {"numpy": "2.1", "torch": "2.13", "onnx": None}
    second["machine"]["libraries"] = {"numpy": "2.2", "torch": "2.13", "onnx": "1.2"}
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(second))
    text = report.render_dir(tmp_path).read_text()
    assert "Libraries: torch 2.13." in text
    a_section, b_section = text.split("## a")[1].split("## b")
    assert "beyond those above: numpy 2.1." in a_section
    assert "beyond those above: numpy 2.2, onnx 1.2." in b_section
    second["machine"]["libraries"] = first["machine"]["libraries"]
    (tmp_path / "b.json").write_text(json.dumps(second))
    text = report.render_dir(tmp_path).read_text()
    assert "Libraries: numpy 2.1, torch 2.13." in text and "beyond" not in text


def _anchor() -> dict:
    return {"name": "ref", "metric": "m", "value": 0.4, "protocol": "p", "source": "s",
            "variant": "v", "table": "main"}  # fmt: skip


def _record(system: str, cpu: str = "cpu") -> dict:
    return {
        "system": system, "description": "d", "quick": False, "dataset": {"name": "toy"},
        "git_sha": "abc", "machine": {"cpu": cpu, "cores": 2, "python": "3.11", "libraries": {}},
        "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0, "peak_rss_mb": 10.0,
        "rows": [{"variant": "v", "metrics": {"m": 0.5}, "timings": {}, "extra": {}}],
    }  # fmt: skip


def test_files_that_are_not_records_are_named_in_the_report_not_fatal(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(_record("good")))
    (tmp_path / "package.json").write_text('{"name": "x"}')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "cut.json").write_text('{"system": "cut", "ro')
    text = report.render_dir(tmp_path).read_text()
    assert "## good" in text
    for name in ("package.json (no system", "list.json (not a JSON object)", "cut.json (unread"):
        assert name in text


def test_each_section_names_its_machine_when_records_differ(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(_record("a", cpu="Xeon A")))
    (tmp_path / "b.json").write_text(json.dumps(_record("b", cpu="Xeon B")))
    text = report.render_dir(tmp_path).read_text()
    assert "Machines differ" in text and "on Xeon A, 2 cores" in text and "on Xeon B" in text
    (tmp_path / "b.json").write_text(json.dumps(_record("b", cpu="Xeon A")))
    text = report.render_dir(tmp_path).read_text()
    assert "Machine: Xeon A, 2 cores, Python 3.11." in text and " on Xeon A" not in text


def test_bad_output_folders_are_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "afile").write_text("hi")
    with pytest.raises(SystemExit) as info:
        cli.main(["harness", "--quick", "--out", str(tmp_path / "afile")])
    assert info.value.code == 2 and "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        report.main([str(tmp_path / "typo")])
    assert info.value.code == 2 and not (tmp_path / "typo").exists()


def test_a_system_named_twice_runs_once(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(cli, "run_in_subprocess", lambda name, ctx: (ran.append(name), (0, 0.0))[1])
    assert cli.main(["harness", "drift", "harness", "--out", str(tmp_path)]) == 0
    assert ran == ["harness", "drift"]


def test_unknown_benchmark_name_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-system"])
    assert info.value.code == 2


def test_report_puts_each_figure_beside_its_anchor(tmp_path):
    record = {
        "system": "demo", "description": "d", "quick": False, "status": "ok",
        "dataset": {"name": "toy"}, "config": {}, "git_sha": "abc", "seed": 0,
        "machine": {"cpu": "cpu", "cores": 2, "python": "3.11", "libraries": {"numpy": "2"}},
        "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0, "peak_rss_mb": 10.0,
        "rows": [
            {"variant": "bm25", "table": "main", "metrics": {"ndcg@10": 0.70},
             "timings": {"p50_ms": 1.5}, "ci": {"ndcg@10": [0.65, 0.75]}, "extra": {}},
        ],
        "anchors": [
            {"name": "BEIR BM25", "metric": "ndcg@10", "value": 0.665, "protocol": "p",
             "source": "s", "variant": "bm25", "table": "main"},
            {"name": "latency target", "metric": "p50_ms", "value": 10.0, "protocol": "p",
             "source": "s", "variant": "bm25", "table": "main"},
            {"name": "missing row", "metric": "ndcg@10", "value": 0.5, "protocol": "p",
             "source": "s", "variant": "no-such-variant", "table": "main"},
        ],
        "notes": ["a note"],
    }  # fmt: skip
    (tmp_path / "demo.json").write_text(json.dumps(record))
    text = report.render_dir(tmp_path).read_text()
    assert "| `bm25` | 0.7000 (0.6500–0.7500) | 1.50 |" in text
    assert "| BEIR BM25 | ndcg@10 | 0.6650 | 0.7000 (`bm25`) | +0.0350 |" in text
    assert "| latency target | p50_ms | 10 | 1.50 (`bm25`) | -8.5000 |" in text  # from timings
    assert "| missing row | ndcg@10 | 0.5000 | – | – |" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold\n{report.README_END}\nrest\n")
    report.update_readme(readme, report.render_summary([record]))
    updated = readme.read_text()
    assert "old" not in updated and "### demo" in updated and updated.endswith("rest\n")
    assert "| BEIR BM25 | ndcg@10 | 0.6650 | 0.7000 (`bm25`) | +0.0350 |" in updated


def test_a_record_is_strict_json_with_nan_and_inf_as_null_shown_as_n_a(tmp_path):
    import numpy as np

    record = _record("demo")
    record["rows"] = [
        {"variant": "never", "metrics": {"delay": np.float64("nan"), "m": 0.5},
         "timings": {}, "extra": {"auto": float("inf"), "cuts": np.array([1.0, -np.inf])}},
        {"variant": "other", "metrics": {"m": 0.25}, "timings": {}, "extra": {}},
    ]  # fmt: skip
    rec.write(record, tmp_path / "demo.json")
    text = (tmp_path / "demo.json").read_text()

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    written = json.loads(text, parse_constant=refuse)  # Python's own reader accepts NaN
    assert written["rows"][0]["metrics"] == {"delay": None, "m": 0.5}
    assert written["rows"][0]["extra"] == {"auto": None, "cuts": [1.0, None]}
    table = report.render_dir(tmp_path).read_text()
    # a null figure reads n/a; a metric the row lacks reads –
    assert "| `never` | n/a | 0.5000 |" in table and "| `other` | – | 0.2500 |" in table


def test_dataset_is_refused_for_systems_that_would_ignore_it(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as info:
        cli.main(["drift", "--dataset", str(tmp_path), "--out", str(tmp_path)])
    assert info.value.code == 2 and "read by rag only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--dataset", str(tmp_path), "--out", str(tmp_path)])  # all systems
    ran = []
    monkeypatch.setattr(cli, "run_in_subprocess", lambda name, ctx: (ran.append(name), (0, 0.0))[1])
    assert cli.main(["rag", "--dataset", str(tmp_path), "--out", str(tmp_path)]) == 0
    assert ran == ["rag"]


def test_seed_is_refused_for_systems_that_would_ignore_it(tmp_path, capsys, monkeypatch):
    # recsys's split seeds are fixed (42-44): a --seed would only have changed its record's field
    seeds = []
    monkeypatch.setattr(
        cli, "run_in_subprocess", lambda name, ctx: (seeds.append(ctx.seed), (0, 0.0))[1]
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["recsys", "--seed", "7", "--out", str(tmp_path)])
    assert info.value.code == 2 and "recsys would ignore it" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--seed", "7", "--out", str(tmp_path)])  # all systems
    assert cli.main(["drift", "rag", "--seed", "7", "--out", str(tmp_path)]) == 0
    assert cli.main(["recsys", "--out", str(tmp_path)]) == 0  # no --seed: the default, 0
    assert seeds == [7, 7, 0]


def test_the_git_sha_is_dirty_with_an_untracked_file_but_not_an_ignored_one(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("cache/\n")
    (tmp_path / "bench.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "vectors.npy").write_text("ignored")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bench.json").write_text("{}")  # the run's own record
    assert not rec.git_sha(tmp_path).endswith("-dirty")
    (tmp_path / "new_module.py").write_text("y = 2\n")  # code a run may import, not committed
    assert rec.git_sha(tmp_path).endswith("-dirty")
