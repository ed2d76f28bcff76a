"""The CLI against the fault server: streams to stdout, stats to stderr, errors as exit code 2."""

from __future__ import annotations

import socket

import pytest

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


def test_a_missing_model_names_the_flag(fault_server, capsys, monkeypatch):
    monkeypatch.delenv("AIS_LLM_MODEL", raising=False)
    assert main(["chat", "x", "--base-url", fault_server.base_url]) == 2
    err = capsys.readouterr().err
    assert "pass --model NAME" in err and "model=..." not in err


def test_a_missing_base_url_names_the_flag(capsys, monkeypatch):
    for name in ("AIS_LLM_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["chat", "x", "--model", "m"]) == 2
    assert "pass --base-url" in capsys.readouterr().err


def test_a_base_url_without_v1_says_where_it_asked_and_hints_v1(fault_server, capsys):
    base = fault_server.base_url.removesuffix("/v1")
    assert main(["chat", "x", "--base-url", base, "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert f"{base}/chat/completions" in err and "usually end in /v1" in err
    assert "HTTP 404: HTTP 404" not in err and err.count("HTTP 404") == 1


def test_a_cache_dir_that_is_a_file_is_one_line_and_exit_2(fault_server, capsys, tmp_path):
    not_a_dir = tmp_path / "f.txt"
    not_a_dir.write_text("")
    args = ["chat", "x", "--base-url", fault_server.base_url, "--model", "m"]
    assert main([*args, "--cache-dir", str(not_a_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cache_dir") and err.count("\n") == 1


def test_help_lists_only_subcommands_that_exist(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "chat|serve-local|serve-fault" in out and "stats" not in out


def test_serve_fault_on_a_busy_port_is_one_line_and_exit_2(capsys):
    # before: FaultServer's bind raised OSError past main(): a 22-line traceback and exit 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve-fault", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: port {port} is already in use") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--transient-rate", "2", "must be a share in [0, 1]"),
        ("--transient-rate", "-1", "must be a share in [0, 1]"),
        ("--fatal-rate", "nan", "must be a share in [0, 1]"),
        ("--rpm", "0", "must be >= 1"),
        ("--tpm", "-5", "must be >= 1"),
        ("--window", "0", "must be a finite number of seconds > 0"),
        ("--window", "inf", "must be a finite number of seconds > 0"),
    ],
)
def test_serve_fault_refuses_impossible_settings_before_serving(capsys, flag, value, says):
    # before: each started a server silently (--rpm 0 answered every request with a 429)
    with pytest.raises(SystemExit) as info:
        main(["serve-fault", "--port", "0", flag, value])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"argument {flag}: {says}" in err


@pytest.mark.parametrize("stream", [True, False])
def test_escape_sequences_in_the_answer_are_printed_escaped(fault_server, capsys, stream):
    # the echo model repeats the prompt: a model's answer could clear the screen or set the
    # clipboard (OSC 52) if printed raw (security review)
    prompt = "hi \x1b[2J\x1b]52;c;Y3VybA==\x07 there"
    argv = ["chat", prompt, "--base-url", fault_server.base_url, "--model", "m"]
    assert main(argv if stream else [*argv, "--no-stream"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert out.strip() == "echo: hi \\x1b[2J\\x1b]52;c;Y3VybA==\\x07 there"
