"""`python -m benchmarks` stopped mid-run leaves nothing running and nothing behind.

Each test starts the real runner in a subprocess (its own session, as a terminal's job) on a toy
benchmark, signals it, and then checks by pid that the benchmark's process, and anything that
process started, is gone. The local LLM is a stand-in (a loopback HTTP server that logs uvicorn's
"running on" line and, like llama.cpp's uvicorn mid-generation, ignores SIGTERM and SIGINT):
the real one takes seconds to load and both cores to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks import __main__ as cli

ROOT = Path(__file__).resolve().parents[2]
RECORD = {"system": "toy", "description": "d", "rows": []}  # an earlier run's record

# Registers the toy benchmark, then runs the CLI as `python -m benchmarks` does.
LAUNCHER = textwrap.dedent(
    """
    import sys
    from benchmarks import __main__ as cli
    from benchmarks.registry import BENCHMARKS
    from evals.cli import run

    BENCHMARKS["toy"] = "toy_bench"
    sys.exit(run(lambda: cli.main(sys.argv[1:])))
    """
)

# llama.cpp busy generating: it answers, and shrugs off SIGTERM and SIGINT.
BUSY_SERVER = ROOT / "tests" / "llm_client" / "stand_in_server.py"

# Shaped like benchmarks/rag_answers.py's answer check: start the local LLM, wait on an answer,
# stop the server in `finally`. STUCK: the benchmark ignores the runner's SIGINT and never
# unwinds, so the runner's grace ends and it is killed (a second Ctrl-C does the same).
LLM_BENCH = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from llm_client import local_server

    DESCRIPTION = "toy: waits on a local LLM"
    here = Path(__file__).parent

    def run(ctx):
        local_server.server_command = lambda model_path, port, alias: [
            sys.executable, os.environ["BUSY_SERVER"], str(port), "--busy"]
        server = local_server.LocalLLMServer(model_path=here / "unused.gguf").start()
        (here / "pids.tmp").write_text(f"{os.getpid()} {server._proc.pid}")
        (here / "pids.tmp").rename(here / "pids")  # whole, for the test polling for it
        if os.environ.get("STUCK"):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            time.sleep(120)  # "generating"
        finally:
            server.stop()
    """
)

# A long benchmark that notes whether its `finally` ran (it unwound, rather than being killed).
SLOW_BENCH = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    DESCRIPTION = "toy: measures for two minutes"
    here = Path(__file__).parent

    def run(ctx):
        (here / "pids.tmp").write_text(str(os.getpid()))
        (here / "pids.tmp").rename(here / "pids")  # whole, for the test polling for it
        try:
            time.sleep(120)
        finally:
            (here / "unwound").write_text("yes")
    """
)


def _running(pid: int) -> bool:
    """Is ``pid`` a live process? A zombie (dead, not yet reaped) is not."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended, allowing a moment for a killed process to be reaped."""
    for _ in range(50):
        if not _running(pid):
            return True
        time.sleep(0.1)
    return False


def _start(tmp_path: Path, bench: str, *, sigint: object = signal.SIG_DFL, **env: str):
    """Start the runner on the toy benchmark ``bench`` with an earlier record in ``out``, and wait
    until the benchmark is running; returns (runner process, pids the benchmark wrote, out)."""
    (tmp_path / "toy_bench.py").write_text(bench)
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "toy.json").write_text(json.dumps(RECORD))
    environ = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}", "TMPDIR": str(tmp_path / "tmp")}
    environ["BUSY_SERVER"] = str(BUSY_SERVER)
    command = [sys.executable, str(tmp_path / "launcher.py"), "toy", "--out", str(out)]
    with (tmp_path / "stderr").open("w") as stderr:  # not a pipe: an orphan would hold it open
        runner = subprocess.Popen(
            [*command, "--cache-dir", str(tmp_path / "cache"), "--no-progress"],
            cwd=tmp_path,
            env={**environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # as a terminal's job
            preexec_fn=lambda: _as_a_terminal_job(sigint),
        )
    pids_file = tmp_path / "pids"
    for _ in range(600):
        if pids_file.exists() or runner.poll() is not None:
            break
        time.sleep(0.1)
    assert pids_file.exists(), (tmp_path / "stderr").read_text()
    return runner, [int(p) for p in pids_file.read_text().split()], out


def _as_a_terminal_job(sigint: object) -> None:
    """In the runner before it starts: SIGTERM and SIGHUP as a terminal's job has them (the test
    run itself may ignore SIGHUP, under ``nohup``, and a child inherits that), SIGINT as asked."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, sigint)  # type: ignore[arg-type]


def _signal(tmp_path: Path, runner: subprocess.Popen, signum: int, pids: list[int]):
    """Send ``signum`` to the runner alone and let it finish; returns its exit code, its stderr
    and which of ``pids`` had ended. Whatever is found, nothing is left running afterwards
    (before the fix: the orphans)."""
    try:
        runner.send_signal(signum)
        code = runner.wait(timeout=60)
        ended = [pid for pid in pids if _gone(pid)]
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.wait()
        for pid in filter(_running, pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return code, (tmp_path / "stderr").read_text(), ended


@pytest.mark.parametrize(
    ("sigint", "signum"),
    [
        (signal.SIG_DFL, signal.SIGTERM),
        (signal.SIG_IGN, signal.SIGTERM),
        (signal.SIG_DFL, signal.SIGHUP),
    ],
    ids=["kill", "kill-a-script-background-job", "terminal-closed"],
)
def test_sigterm_or_sighup_stops_the_running_system_and_keeps_the_records(tmp_path, sigint, signum):
    # before: SIGTERM ended the runner alone (-15); the benchmark ran on to its end, orphaned.
    # A script's `python -m benchmarks & ... kill $!` starts it with SIGINT ignored, which the
    # benchmark inherits; it must still hear the runner's SIGINT and unwind.
    runner, (child,), out = _start(tmp_path, SLOW_BENCH, sigint=sigint)
    code, err, ended = _signal(tmp_path, runner, signum, [child])  # SIGTERM: `kill`, `timeout`, CI
    assert (code, err) == (128 + signum, f"terminated ({signal.Signals(signum).name})\n")
    assert ended == [child]
    assert (tmp_path / "unwound").exists()  # stopped through its `finally`, not killed
    assert json.loads((out / "toy.json").read_text()) == RECORD
    assert sorted(p.name for p in out.iterdir()) == ["toy.json"]  # none set aside, no report


@pytest.mark.parametrize("stuck", [False, True], ids=["child-unwinds", "child-killed-after-grace"])
def test_an_interrupted_run_leaves_no_llm_server_and_no_log(tmp_path, stuck):
    # before: the runner killed the benchmark after 5 s, while LocalLLMServer.stop() still waited
    # (10 s) for llama.cpp to heed SIGTERM; llama.cpp ran on, orphaned, and its log stayed in /tmp
    runner, pids, _ = _start(tmp_path, LLM_BENCH, **({"STUCK": "1"} if stuck else {}))
    # Ctrl-C (it reaches the runner's group, which is the runner alone), or `kill -INT`
    code, err, ended = _signal(tmp_path, runner, signal.SIGINT, pids)
    assert code == 130 and err.splitlines()[-1] == "interrupted"  # after the benchmark's log
    assert "Traceback" not in err
    assert ended == pids  # the benchmark's process and the server it started
    assert list((tmp_path / "tmp").iterdir()) == []  # the server's log was never a file there


def test_the_signal_handlers_are_ours_only_while_systems_run(tmp_path, monkeypatch):
    during = []

    def run_in_subprocess(name, ctx):
        during.append(signal.getsignal(signal.SIGTERM))
        return 0, 0.0

    monkeypatch.setattr(cli, "run_in_subprocess", run_in_subprocess)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert cli.main(["harness", "--out", str(tmp_path)]) == 0
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a caller that ignores it
        assert cli.main(["harness", "--out", str(tmp_path)]) == 0
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert during[0] not in (signal.SIG_DFL, signal.SIG_IGN)  # ours, while the system ran
    assert during[1] is signal.SIG_IGN  # a caller's choice is left alone
