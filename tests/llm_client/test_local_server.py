"""LocalLLMServer does not report ready when the server dies on its first generation."""

from __future__ import annotations

import sys
import textwrap

import pytest

from llm_client import local_server
from llm_client.local_server import LocalLLMServer, LocalServerError

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

    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def test_a_server_that_crashes_on_its_first_generation_is_not_ready(monkeypatch, tmp_path):
    script = tmp_path / "crashing_server.py"
    script.write_text(CRASHING_SERVER)
    monkeypatch.setattr(
        local_server,
        "server_command",
        lambda model_path, port, alias: [sys.executable, str(script), str(port)],
    )
    server = LocalLLMServer(model_path=tmp_path / "unused.gguf", startup_timeout=30.0)
    with pytest.raises(LocalServerError, match=r"crashed \(exit -11\) on its first generation"):
        server.start()
    assert server._proc is None  # stopped, nothing left running
