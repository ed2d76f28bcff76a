"""evals.cli.run: Ctrl-C and a closed pipe end a command with one line, not a traceback.

Both are checked on real processes: a real SIGINT, and a real pipe whose reader exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SLOW = """
import sys, time
from evals.cli import run
def main():
    print("started", flush=True)
    time.sleep(60)
    return 0
sys.exit(run(main))
"""

SWALLOWED = """
import sys, time
from evals.cli import run
def main():
    try:
        print("started", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:  # as pandas' C parser does inside read_csv: another error, no trace
        raise ValueError("Error tokenizing data. C error: Calling read(nbytes) failed") from None
    return 0
sys.exit(run(main))
"""

CHATTY = """
import sys
from evals.cli import run
def main():
    for i in range(200_000):
        print(f"line {i}")
    return 0
sys.exit(run(main))
"""


def _python(code: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, text=True, **kwargs,
        # a background job (CI's, a nohup'd run) ignores SIGINT and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


@pytest.mark.parametrize(
    "code",
    [
        SLOW,
        # found while testing the CLIs: a SIGINT inside pandas.read_csv came out as ParserError
        SWALLOWED,
    ],
    ids=["interrupt", "interrupt-a-library-turned-into-another-error"],
)
def test_ctrl_c_is_one_line_and_status_130(code):
    proc = _python(code, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err == "interrupted\n"  # no traceback


def test_without_ctrl_c_an_error_is_still_a_traceback():
    proc = _python(
        "from evals.cli import run\nimport sys\nsys.exit(run(lambda: 1 / 0))",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "ZeroDivisionError" in err


def test_a_reader_that_goes_away_is_status_1_without_a_traceback():
    proc = _python(CHATTY, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == "line 0\n"
    proc.stdout.close()  # like `| head -1`: the reader exits after one line
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    err = proc.stderr.read()
    assert proc.returncode == 1
    assert err == ""  # no BrokenPipeError traceback, none from the final flush either


def test_the_status_of_main_is_returned():
    from evals.cli import run

    assert run(lambda: 0) == 0
    assert run(lambda: 2) == 2


def test_shown_escapes_control_characters_but_tab_and_newline():
    import doctest

    import evals.cli
    from evals.cli import shown

    assert shown("a\tb\nc") == "a\tb\nc"
    assert shown("\x00\x1b\x7f\x9b\u202e") == "\\x00\\x1b\\x7f\\x9b\u202e"  # C0, DEL, C1 only
    pieces = ["title \x1b", "[2J end"]  # a sequence split across two streamed pieces
    assert "\x1b" not in "".join(shown(p) for p in pieces)
    assert doctest.testmod(evals.cli).failed == 0
