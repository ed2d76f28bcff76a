"""The CLI against the fault server: streams to stdout, stats to stderr, errors as exit code 2."""

from __future__ import annotations

from llm_client.__main__ import main
from llm_client.fault_server import Fault


def test_chat_streams_to_stdout(fault_server, capsys):
    code = main(["chat", "hello there", "--base-url", fault_server.base_url, "--model", "m"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == "echo: hello there" and "attempt" in err


def test_chat_no_stream_and_error_exit_code(fault_server, capsys):
    assert (
        main(["chat", "x", "--base-url", fault_server.base_url, "--model", "m", "--no-stream"]) == 0
    )
    fault_server.script(Fault.status_code(401))
    assert main(["chat", "x", "--base-url", fault_server.base_url, "--model", "m"]) == 2
    assert "HTTP 401" in capsys.readouterr().err
