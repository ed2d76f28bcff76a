"""The CLI (`python -m drift`) on synthetic hours: one run per workdir, flag checks, the header."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drift.__main__ import main
from drift.registry import ModelRegistry
from evals.datasets import load_bike_sharing

SMALL = ["--windows", "5", "--window-rows", "200", "--onset", "2"]


@pytest.fixture(autouse=True)
def synthetic_dataset(hour_csv, monkeypatch):
    """The CLI loads hour.csv through evals.datasets; serve it the synthetic hours instead."""
    monkeypatch.setattr("evals.datasets.load_bike_sharing", lambda data_dir=None: hour_csv.copy())


def test_reused_workdir_is_refused_and_fresh_replaces_the_old_run(tmp_path, capsys):
    workdir = tmp_path / "run"
    args = ["--workdir", str(workdir), *SMALL]
    assert main(["simulate", "--scenario", "bad_deployment", *args]) == 0
    capsys.readouterr()

    assert main(["simulate", "--scenario", "concept_drift", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(workdir) in err and "--fresh" in err
    assert len(ModelRegistry(workdir / "registry").versions()) == 2  # nothing was overwritten

    out = tmp_path / "triage"
    assert (
        main(["report", "--scenario", "bad_deployment", *args, "--fresh", "--out", str(out)]) == 0
    )
    assert "--fresh: deleted" in capsys.readouterr().err
    summary = json.loads((out / "triage.json").read_text())
    versions = {e["to_version"] for e in summary["2_deployments"]}
    assert versions == {"v0001", "v0002"}  # one run's deployments, not two runs' mixed


def test_windows_is_checked_before_onset(capsys):
    for windows in ("0", "-3"):
        assert main(["simulate", "--windows", windows]) == 2
        err = capsys.readouterr().err
        assert f"n_windows must be >= 2, got {windows}" in err and "onset" not in err


def test_flags_a_scenario_ignores_are_refused(capsys):
    assert main(["simulate", "--scenario", "real_2011_2012", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "real_2011_2012 does not use --windows, --window-rows, --onset" in err
    assert main(["simulate", "--scenario", "stationary", "--onset", "3"]) == 2
    assert "does not use --onset; remove it (it reads only --windows" in capsys.readouterr().err
    assert main(["simulate", "--scenario", "bad_deployment", "--shift-sd", "1"]) == 2
    assert "does not use --shift-sd" in capsys.readouterr().err


def test_stationary_header_has_no_onset(tmp_path, capsys):
    args = ["--windows", "3", "--window-rows", "100", "--workdir", str(tmp_path / "run")]
    assert main(["simulate", "--scenario", "stationary", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "scenario stationary: 3 windows x 100 rows, seed 0; no onset; acting"
    assert lines[-1].startswith("served MAE all windows:") and "<- onset" not in "".join(lines)
    assert lines[-1].endswith(f"(state in {tmp_path / 'run'})")


@pytest.mark.parametrize("command", ["simulate", "report"])
def test_without_a_workdir_the_runs_temp_dir_is_deleted(tmp_path, monkeypatch, capsys, command):
    # a review found 47 /tmp/drift-* folders: every run without --workdir left its registry
    # and log behind, with nothing pointing to it after `report`
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    out = ["--out", str(tmp_path / "report")] if command == "report" else []
    assert main([command, "--scenario", "bad_deployment", *SMALL, *out]) == 0
    assert list(temp.iterdir()) == []
    if command == "simulate":
        last = capsys.readouterr().out.splitlines()[-1]
        assert last.endswith("(state deleted with its temp dir; --workdir DIR keeps it)")


def test_a_workdir_that_is_a_file_is_refused(tmp_path, capsys):
    workdir = tmp_path / "notes.txt"
    workdir.write_text("the user's own file")
    for fresh in ([], ["--fresh"]):  # it was a FileExistsError traceback from mkdir
        assert main(["simulate", "--workdir", str(workdir), *SMALL, *fresh]) == 2
        assert "is a file; pass a directory" in capsys.readouterr().err
    assert workdir.read_text() == "the user's own file"


def test_fresh_needs_a_workdir(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--scenario", "bad_deployment", "--fresh"])
    assert info.value.code == 2 and "--fresh clears a --workdir" in capsys.readouterr().err


def test_observe_only_prints_the_decisions_it_did_not_execute(tmp_path, capsys):
    args = ["--scenario", "bad_deployment", "--workdir", str(tmp_path / "run"), *SMALL]
    assert main(["simulate", "--observe-only", *args]) == 0
    out = capsys.readouterr().out
    assert "; observe-only" in out.splitlines()[0]
    assert "recommend:rollback" in out and "| rollback" not in out


def test_a_data_dir_without_the_dataset_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("evals.datasets.load_bike_sharing", load_bike_sharing)  # the real one
    monkeypatch.setenv("AIS_NO_DOWNLOAD", "1")
    assert main(["simulate", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'bike-sharing' is not available")


def test_an_out_that_is_a_file_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    """It was a FileExistsError traceback (exit 1), after the whole run had been played."""
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's own file")

    def never(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr("drift.__main__.train_models", never)
    for out in (notes, notes / "report"):
        assert main(["report", *SMALL, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"error: report folder {out} cannot be written: {notes} is a file; pass a directory "
            "you can write to, new or existing\n"
        )
    assert notes.read_text() == "the user's own file"


@pytest.fixture
def unwritable_folder(tmp_path):
    """An existing folder no file can be created in. Root ignores permission bits, so as root
    it is /sys, where even root cannot create files (skipped where /sys is not like that)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    folder = Path("/sys")
    try:
        (folder / "drift-probe").mkdir()
    except OSError:
        yield folder
        return
    (folder / "drift-probe").rmdir()
    pytest.skip("/sys is writable here; no folder that root cannot write to")


def test_an_out_that_cannot_be_written_is_refused_before_the_run(
    unwritable_folder, monkeypatch, capsys
):
    """--out passed the "is it a file" check, the whole run played, then write_triage's mkdir
    ended in a PermissionError traceback (exit 1; found by a review). An existing folder that
    cannot be written is caught too: the check writes and deletes a probe file."""

    def never(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr("drift.__main__.train_models", never)
    for out in (unwritable_folder, unwritable_folder / "drift-report"):
        assert main(["report", *SMALL, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith(f"error: report folder {out} cannot be written: ")
        assert err.endswith("; pass a directory you can write to, new or existing\n")


def test_a_reused_out_keeps_no_html_of_an_earlier_run(tmp_path, capsys):
    """A run without an alert wrote only triage.json and left the earlier incident's
    evidently_drift.html beside it, silently (found by a review)."""
    out = tmp_path / "report"
    args = ["--out", str(out), "--window-rows", "200"]
    assert (
        main(["report", "--scenario", "bad_deployment", "--windows", "5", "--onset", "2", *args])
        == 0
    )
    assert (out / "evidently_drift.html").is_file()
    capsys.readouterr()

    assert main(["report", "--scenario", "stationary", "--windows", "3", *args]) == 0
    captured = capsys.readouterr()
    assert json.loads((out / "triage.json").read_text())["alert"] is None
    assert sorted(p.name for p in out.iterdir()) == ["triage.json"]
    assert captured.out == f"triage summary: {out / 'triage.json'}\n"
    assert captured.err == (
        f"deleted {out / 'evidently_drift.html'}: an earlier run's report; this run has no alert "
        "to report on\n"
    )


def test_a_workdir_under_a_file_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    """It was a NotADirectoryError traceback (exit 1) from mkdir, after the models had trained."""
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's own file")
    workdir = notes / "run"  # can never be created: its parent is a file

    def never(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr("drift.__main__.train_models", never)
    for fresh in ([], ["--fresh"]):
        assert main(["simulate", "--workdir", str(workdir), *SMALL, *fresh]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: workdir {workdir} cannot be")
        assert f"{notes} is a file" in err
    assert notes.read_text() == "the user's own file"
    assert list(tmp_path.iterdir()) == [notes]  # nothing was written


def test_a_seed_out_of_range_is_one_error_line_before_the_workdir_exists(tmp_path, capsys):
    """-1 passed argparse, created the workdir and died in numpy's SeedSequence (exit 1; found by
    a review); 2**32 is refused by the library (check_seed), so argparse refuses it up front."""
    workdir = tmp_path / "run"
    for seed, shown in (("-1", "-1"), ("x", "'x'"), ("4294967296", "4294967296")):
        with pytest.raises(SystemExit) as info:
            main(["simulate", "--seed", seed, "--workdir", str(workdir), *SMALL])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --seed: must be an integer from 0 to 2**32 - 1, got {shown}" in err
    assert not workdir.exists()


@pytest.mark.slow
def test_ctrl_c_during_a_run_is_one_line_and_status_130(tmp_path):
    """A real SIGINT to a real ``python -m drift simulate`` on the real data, once the run has
    begun (its workdir exists, the models are about to train). It was a 27-line KeyboardInterrupt
    traceback and status -2 (found by a review); evals.cli.run makes it one line and 130."""
    workdir = tmp_path / "run"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "drift", "simulate", "--workdir", str(workdir)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A job started in the background inherits SIGINT ignored; a terminal's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while not workdir.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert workdir.exists() and proc.poll() is None, "the run did not start, or ended"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert err.endswith("interrupted\n") and "Traceback" not in err
    assert out == ""  # interrupted before the timeline printed
