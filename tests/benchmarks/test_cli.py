"""`python -m benchmarks` and `python -m benchmarks.report` as a user runs them: bad arguments are
refused before any system starts (or anything is written), a refused configuration or an
interrupt keeps the records, and Ctrl-C ends in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import __main__ as cli
from benchmarks import report

ROOT = Path(__file__).resolve().parents[2]
RECORD = {
    "system": "toy", "description": "d", "quick": False, "dataset": {"name": "toy"},
    "git_sha": "abc", "machine": {"cpu": "cpu", "cores": 2, "python": "3.11", "libraries": {}},
    "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0, "peak_rss_mb": 10.0,
    "rows": [{"variant": "v", "metrics": {"m": 0.5}, "timings": {}, "extra": {}}],
}  # fmt: skip


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """The systems main() started (none are really run)."""
    started: list[str] = []
    monkeypatch.setattr(
        cli, "run_in_subprocess", lambda name, ctx: (started.append(name), (0, 0.0))[1]
    )
    return started


def _refused(argv: list[str], capsys) -> str:
    """main(argv)'s usage error (exit 2); its stderr."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_an_out_or_cache_folder_that_cannot_be_written_is_refused_before_anything_runs(
    tmp_path, capsys, ran
):
    (tmp_path / "afile").write_text("x")
    under_a_file = tmp_path / "afile" / "bench"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    err = _refused(["harness", "--out", str(under_a_file), *cache], capsys)
    assert f"--out {under_a_file} cannot be created or written: Not a directory" in err
    err = _refused(["harness", "--out", str(tmp_path), "--cache-dir", str(under_a_file)], capsys)
    assert "--cache-dir" in err and "Not a directory" in err
    assert ran == []
    assert cli.main(["harness", "--out", str(tmp_path / "new" / "out"), *cache]) == 0
    assert ran == ["harness"] and (tmp_path / "new" / "out" / "REPORT.md").is_file()


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys")
def test_an_existing_folder_that_refuses_files_is_refused(tmp_path, capsys, ran):
    # /sys refuses new files even to root, for whom a chmod-ed folder would not
    err = _refused(["harness", "--out", "/sys", "--cache-dir", str(tmp_path)], capsys)
    assert "--out /sys cannot be created or written" in err and ran == []


@pytest.mark.parametrize("seed", ["-1", str(2**32), "7.5"])
def test_a_seed_out_of_range_is_refused_before_anything_runs(tmp_path, capsys, ran, seed):
    out = tmp_path / "out"
    err = _refused(["drift", "--seed", seed, "--out", str(out), "--cache-dir", str(out)], capsys)
    assert "must be an integer from 0 to 2**32 - 1" in err and ran == [] and not out.exists()


def test_the_largest_seed_is_accepted(tmp_path, ran):
    argv = ["drift", "--seed", str(2**32 - 1), "--out", str(tmp_path), "--cache-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    assert ran == ["drift"]


def test_a_data_dir_or_dataset_that_is_not_there_is_refused_and_records_stay(tmp_path, capsys, ran):
    out = tmp_path / "out"
    out.mkdir()
    (out / "drift.json").write_text(json.dumps(RECORD))
    (tmp_path / "afile").write_text("x")
    err = _refused(["drift", "--data-dir", str(tmp_path / "dta"), "--out", str(out)], capsys)
    assert f"--data-dir {tmp_path / 'dta'} does not exist" in err
    err = _refused(["drift", "--data-dir", str(tmp_path / "afile"), "--out", str(out)], capsys)
    assert "is a file" in err
    err = _refused(["rag", "--dataset", "scifactt", "--out", str(out)], capsys)
    assert "--dataset scifactt is neither a folder nor a registered dataset (" in err
    assert ran == [] and sorted(p.name for p in out.iterdir()) == ["drift.json"]
    argv = ["rag", "--dataset", "scifact", "--out", str(out), "--cache-dir", str(tmp_path)]
    assert cli.main(argv) == 0  # a registered name


def _toy_registry(tmp_path: Path, monkeypatch, body: str) -> Path:
    """Register one benchmark, ``toy``, whose run() is ``body``; returns its --out folder, which
    holds a record from an earlier run."""
    (tmp_path / "toy_bench.py").write_text(f"DESCRIPTION = 'toy'\ndef run(ctx):\n    {body}\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{ROOT}")
    monkeypatch.syspath_prepend(str(tmp_path))  # for the parent's describe()
    monkeypatch.setattr(cli, "BENCHMARKS", {"toy": "toy_bench"})
    monkeypatch.setattr("benchmarks.runner.BENCHMARKS", cli.BENCHMARKS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "toy.json").write_text(json.dumps(RECORD))
    return out


def test_a_refused_configuration_is_one_line_and_keeps_the_record(tmp_path, monkeypatch, capfd):
    # the review's case: drift's ConfigError for a seed, which set drift.json aside
    body = "from rag.errors import ConfigError; raise ConfigError('k must be >= 1, got 0')"
    out = _toy_registry(tmp_path, monkeypatch, body)
    assert cli.main(["--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 1
    printed = capfd.readouterr()
    assert "[toy] configuration refused, nothing measured: k must be >= 1, got 0" in printed.err
    assert "Traceback" not in printed.err
    assert (out / "toy.json").is_file() and not (out / "stale").exists()
    text = (out / "REPORT.md").read_text()
    assert "toy: configuration refused before anything was measured; its earlier record kept" in (
        text
    )
    assert "## toy" in text


def test_a_system_interrupted_on_its_own_keeps_its_record(tmp_path, monkeypatch, capfd):
    out = _toy_registry(tmp_path, monkeypatch, "raise KeyboardInterrupt")
    assert cli.main(["--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 1
    assert "Traceback" not in capfd.readouterr().err
    assert (out / "toy.json").is_file() and not (out / "stale").exists()
    assert "toy: interrupted; its earlier record kept" in (out / "REPORT.md").read_text()


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job may have inherited SIG_IGN


@pytest.mark.parametrize("to_group", [True, False], ids=["terminal-ctrl-c", "parent-only"])
def test_ctrl_c_stops_the_running_system_and_ends_in_one_line(tmp_path, to_group):
    out = tmp_path / "out"
    out.mkdir()
    (out / "harness.json").write_text(json.dumps({**RECORD, "system": "harness"}))
    command = [sys.executable, "-m", "benchmarks", "harness", "--out", str(out)]
    command += ["--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    parent = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=_sigint_default,
    )
    try:
        assert parent.stdout.readline() == "\n"
        assert parent.stdout.readline().startswith("=== harness")  # then the child starts
        time.sleep(2)  # the full harness run takes ~10 s: the child is mid-run now
        if to_group:  # Ctrl-C: parent and child get SIGINT together
            os.killpg(parent.pid, signal.SIGINT)
        else:  # `kill -INT <parent>`: the parent must stop its child itself
            os.kill(parent.pid, signal.SIGINT)
        _, err = parent.communicate(timeout=30)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert (parent.returncode, err) == (130, "interrupted\n")
    with pytest.raises(ProcessLookupError):  # no child left running in the group
        os.killpg(parent.pid, 0)
    assert sorted(p.name for p in out.iterdir()) == ["harness.json"]  # kept; no report rendered


def _readmes(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "folder.md").mkdir()
    binary = tmp_path / "binary.md"
    binary.write_bytes(b"\xff\xfe binary\n")
    swapped = tmp_path / "swapped.md"
    swapped.write_text(f"{report.README_END}\n{report.README_START}\n")
    none = tmp_path / "none.md"
    none.write_text("no markers\n")
    return {
        "does not exist": tmp_path / "missing.md",
        "is a folder, not a markdown file": tmp_path / "folder.md",
        "is not UTF-8 text (byte 0: invalid start byte)": binary,
        f"has {report.README_END} before {report.README_START}; swap them": swapped,
        f"has no {report.README_START} / {report.README_END} markers": none,
    }


def test_a_readme_that_cannot_take_the_table_is_refused_before_anything_is_written(
    tmp_path, capsys
):
    records = tmp_path / "records"
    records.mkdir()
    (records / "toy.json").write_text(json.dumps(RECORD))
    for problem, readme in _readmes(tmp_path).items():
        before = readme.read_bytes() if readme.is_file() else None
        with pytest.raises(SystemExit) as info:
            report.main([str(records), "--readme", str(readme)])
        assert info.value.code == 2, problem
        assert f"error: --readme {readme} {problem}" in capsys.readouterr().err
        assert not (records / "REPORT.md").exists()
        assert (readme.read_bytes() if readme.is_file() else None) == before
    good = tmp_path / "good.md"
    good.write_text(f"intro\n{report.README_START}\nold\n{report.README_END}\n", encoding="utf-8")
    assert report.main([str(records), "--readme", str(good)]) == 0
    assert (records / "REPORT.md").is_file() and "old" not in good.read_text()
