"""``ft-core serve`` on the command line (``ft_core.cli.main``): its flags, the settings it hands the app, and clear
``ft-core: error:`` messages (exit 2) for a folder that is not a run, a port in use, an unknown engine and bad limits."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import ft_core_serve
from ft_core.cli import main


def test_serve_help_lists_its_flags(make_plugins, capsys):
    from ft_core.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser(make_plugins(ft_core_serve)).parse_args(["serve", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--port", "--api-key", "--max-tokens", "--max-body-bytes", "--max-batch-size", "--engine"):
        assert flag in out


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ft-core: error: " in err and "is neither a run folder (no manifest.json)" in err


def test_a_port_in_use_is_a_clear_error_before_the_model_loads(tiny_model_dir, capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        assert main(["serve", tiny_model_dir, "--port", str(port)]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert f"ft-core: error: port {port} on 127.0.0.1 is already in use" in err and "loading" not in err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--engine", "vlm"], "unknown inference engine 'vlm'"),
        (["--max-tokens", "0"], "serve: max_tokens must be >= 1"),
        (["--port", "70000"], "--port must be in 0..65535"),
        (["--host", "no-such-host.invalid"], "--host no-such-host.invalid: cannot resolve it"),
    ],
)
def test_bad_flags_are_clear_errors(tiny_model_dir, capsys, flags, words):
    assert main(["serve", tiny_model_dir, *flags]) == 2
    err = capsys.readouterr().err
    assert "ft-core: error: " in err and words in err


def test_serve_builds_the_app_from_its_flags(tiny_model_dir, monkeypatch, capsys):
    from fastapi.testclient import TestClient

    import ft_core_serve.command

    seen: dict[str, Any] = {}

    def fake_run_server(app: Any, sock: socket.socket) -> None:
        seen["port"] = sock.getsockname()[1]
        with TestClient(app) as http:
            seen["denied"] = http.get("/v1/models").status_code
            headers = {"Authorization": "Bearer from-env"}
            seen["models"] = http.get("/v1/models", headers=headers).json()
            body = {"model": "mine", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
            seen["reply"] = http.post("/v1/chat/completions", json=body, headers=headers).json()

    monkeypatch.setattr(ft_core_serve.command, "run_server", fake_run_server)
    monkeypatch.setenv("FT_CORE_API_KEY", "from-env")
    argv = ["serve", tiny_model_dir, "--port", "0", "--model-name", "mine", "--system", "Be Nova."]
    assert main(argv) == 0
    assert seen["port"] > 0 and seen["denied"] == 401
    assert [m["id"] for m in seen["models"]["data"]] == ["mine"]
    assert seen["reply"]["usage"]["completion_tokens"] == 3
    assert f"serving 'mine' at http://127.0.0.1:{seen['port']}/v1" in capsys.readouterr().err
