"""LocalLLMServer reports ready only when *its own* server answers and survives a generation.

The fake servers below are real processes on loopback standing in for llama.cpp (which takes
seconds to load); like uvicorn, they log ``Uvicorn running on http://127.0.0.1:PORT`` once bound.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from llm_client import local_server
from llm_client.__main__ import main
from llm_client.errors import ConfigurationError
from llm_client.local_server import LocalLLMServer, LocalServerError

# A server that is up (whoever it is), or with --busy llama.cpp generating: see the script.
STAND_IN = Path(__file__).with_name("stand_in_server.py")

# Stands in for a llama.cpp build compiled for kernels the machine cannot run: it starts, lists
# its model, and segfaults on the first prompt (what session 14's AMX build did).
CRASHING_SERVER = textwrap.dedent(
    """
    import os, signal, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"object": "list", "data": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            os.kill(os.getpid(), signal.SIGSEGV)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"INFO:     Uvicorn running on http://127.0.0.1:{sys.argv[1]}", flush=True)
    server.serve_forever()
    """
)

# The race a port check cannot close: another server takes the port while ours is still loading
# its model, answers every probe, and then ours fails to bind (uvicorn's message) and exits 3.
LATE_BIND_FAILURE = textwrap.dedent(
    """
    import subprocess, sys, time

    port, other_script, pid_file = sys.argv[1:4]
    other = subprocess.Popen([sys.executable, other_script, port])
    with open(pid_file, "w") as f:
        f.write(str(other.pid))
    time.sleep(2.0)  # "loading the model"
    print(f"ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', {port}):"
          " address already in use", flush=True)
    sys.exit(3)
    """
)


# Never says it is listening (as if a future uvicorn logged its startup line differently); `exec`
# keeps the pid it wrote, so a test can check the process is gone.
NEVER_READY_SERVER = (
    'echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; echo "loading the model"; exec sleep 60'
)


def use_fake_server(monkeypatch, script, *extra_args) -> None:
    """Start ``script PORT *extra_args`` instead of llama.cpp."""
    monkeypatch.setattr(
        local_server,
        "server_command",
        lambda model_path, port, alias: [
            sys.executable,
            str(script),
            str(port),
            *map(str, extra_args),
        ],
    )


def test_a_server_that_crashes_on_its_first_generation_is_not_ready(monkeypatch, tmp_path):
    script = tmp_path / "crashing_server.py"
    script.write_text(CRASHING_SERVER)
    use_fake_server(monkeypatch, script)
    server = LocalLLMServer(model_path=tmp_path / "unused.gguf", startup_timeout=30.0)
    with pytest.raises(LocalServerError, match=r"crashed \(exit -11\) on its first generation"):
        server.start()
    assert server._proc is None  # stopped, nothing left running


@pytest.fixture
def listening_port():
    """A port a plain socket listens on: another server, as far as anyone can tell."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_refused_before_anything_starts(listening_port):
    server = LocalLLMServer(port=listening_port)
    with pytest.raises(LocalServerError, match=rf"port {listening_port} is already in use"):
        server.start()
    assert server._proc is None  # refused before any model was loaded or process started


def test_serve_local_on_a_port_in_use_exits_2_naming_the_port(listening_port, capsys):
    assert main(["serve-local", "--port", str(listening_port)]) == 2
    err = capsys.readouterr().err
    assert f"port {listening_port} is already in use" in err and "CPU" not in err


def test_a_probe_answered_by_another_server_is_not_taken_for_ours(monkeypatch, tmp_path):
    script, pid_file = tmp_path / "late.py", tmp_path / "other.pid"
    script.write_text(LATE_BIND_FAILURE)
    use_fake_server(monkeypatch, script, STAND_IN, pid_file)
    server = LocalLLMServer(model_path=tmp_path / "unused.gguf", startup_timeout=30.0)
    try:
        with pytest.raises(LocalServerError, match="already in use") as info:
            server.start()
        assert "CPU" not in str(info.value)
    finally:
        server.stop()
        if pid_file.exists():  # the other server is the fake's child: end it by its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)


@pytest.mark.parametrize("port", [-1, 65536, 99999])
def test_ports_outside_1_to_65535_are_refused(port, capsys):
    with pytest.raises(ConfigurationError, match=r"1\.\.65535"):
        LocalLLMServer(port=port)
    with pytest.raises(SystemExit) as info:
        main(["serve-local", "--port", str(port)])
    assert info.value.code == 2 and "1..65535" in capsys.readouterr().err


def test_port_0_picks_a_free_port_and_reports_it():
    server = LocalLLMServer(port=0)
    assert 1 <= server.port <= 65535 and server.base_url.endswith(f":{server.port}/v1")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def never_ready(monkeypatch, tmp_path):
    """Start NEVER_READY_SERVER instead of llama.cpp; yields the file it writes its pid to."""
    pid_file = tmp_path / "server.pid"
    monkeypatch.setattr(
        local_server,
        "server_command",
        lambda model_path, port, alias: ["sh", "-c", NEVER_READY_SERVER, "sh", str(pid_file)],
    )
    yield pid_file
    if pid_file.exists():  # whatever the test did, leave nothing running
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_server_not_ready_in_time_is_stopped_and_its_log_shown(never_ready, tmp_path):
    # before: stop() deleted the log before the message read it ("not ready after 0s:\n")
    server = LocalLLMServer(model_path=tmp_path / "unused.gguf", startup_timeout=0.5)
    with pytest.raises(LocalServerError, match=r"not ready after .*\n.*loading the model"):
        server.start()
    assert server._proc is None and not _alive(int(never_ready.read_text()))


def test_a_kill_during_startup_stops_the_server_too(never_ready, tmp_path):
    # serve-local turns SIGTERM into sys.exit(0) so that `kill <pid>` stops llama.cpp too; before,
    # a kill while the model was loading left the server running, orphaned, holding the port
    server = LocalLLMServer(model_path=tmp_path / "unused.gguf", startup_timeout=30.0)

    def kill_us_once_it_runs() -> None:
        for _ in range(500):
            if server._proc is not None and never_ready.exists():
                break
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    killer = threading.Thread(target=kill_us_once_it_runs)
    try:
        killer.start()
        with pytest.raises(SystemExit):
            server.start()
    finally:
        killer.join()
        signal.signal(signal.SIGTERM, previous)
    assert server._proc is None and not _alive(int(never_ready.read_text()))


def test_a_port_we_may_not_bind_is_one_line_and_exit_2():
    # before: the port check re-raised PermissionError, so serve-local died with a traceback
    command = [sys.executable, "-m", "llm_client", "serve-local", "--port", "1"]
    unprivileged = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if not unprivileged.exists() or int(unprivileged.read_text()) <= 1:
        pytest.skip("this machine lets anyone bind port 1")
    if os.geteuid() == 0:  # root may bind it: drop that one capability
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop CAP_NET_BIND_SERVICE")
        drop = ["--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service"]
        command = ["setpriv", *drop, *command]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=root)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: cannot listen on 127.0.0.1:1: ")
    assert "Traceback" not in done.stderr


@pytest.fixture
def busy_server(monkeypatch, tmp_path):
    """A started LocalLLMServer running the busy stand-in, with the temporary folder
    ``tmp_path/tmp``; whatever the test does, its process is gone afterwards."""
    use_fake_server(monkeypatch, STAND_IN, "--busy")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    server = LocalLLMServer(model_path=tmp_path / "unused.gguf", startup_timeout=30.0).start()
    yield server
    if server._proc is not None:  # the test did not stop it: no need to wait out the grace
        server._proc.kill()
    server.stop()


def test_the_server_log_is_never_a_file_a_killed_caller_could_leave_behind(busy_server, tmp_path):
    # before: llama-server-*.log in /tmp, deleted by stop() only, so a caller killed before or
    # during stop() (the benchmark runner's kill after its grace) left it there for good
    assert "Uvicorn running on" in busy_server.log_tail()  # still read for error messages
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_second_ctrl_c_while_stop_waits_still_kills_and_reaps_the_server(busy_server):
    # before: the KeyboardInterrupt left stop() mid-wait, and llama.cpp running, orphaned
    pid = busy_server._proc.pid
    # (pytest may run as a background job, which ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))  # stop() waits 2 s
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            busy_server.stop()
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert busy_server._proc is None and not _alive(pid)
