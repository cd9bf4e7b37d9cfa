"""Tests for the command line: argument errors and exit codes that need no running app."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trainyard._serving.__main__ import build_parser, main
from trainyard._serving.launcher import EXIT_BIND_FAILED
from trainyard._serving.process import EXIT_USAGE

from .conftest import write_app


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["--entry-script", "score.py"])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 5001, 1)
    assert args.keys_file is None and args.max_request_bytes == 10 * 1024 * 1024
    assert args.run_concurrency == 1 and not args.enable_docs


@pytest.mark.parametrize(
    "extra",
    [
        ["--workers", "0"],
        ["--port", "70000"],
        ["--max-request-bytes", "0"],
        ["--run-concurrency", "0"],
    ],
)
def test_bad_values_exit_2(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--entry-script", "/nonexistent/score.py", *extra]) == EXIT_USAGE
    assert "trainyard-serving:" in capsys.readouterr().err


def test_malformed_keys_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"key_hashes": ["plain-key-not-a-hash"]}')
    assert (
        main(["--entry-script", str(tmp_path / "score.py"), "--keys-file", str(keys)]) == EXIT_USAGE
    )
    assert "keys.json" in capsys.readouterr().err


def test_port_in_use_exits_4(tmp_path: Path) -> None:
    app = write_app(
        tmp_path / "app", {"score.py": "def init():\n    pass\n\ndef run(d):\n    return d\n"}
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "trainyard._serving",
                "--entry-script",
                str(app / "score.py"),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == EXIT_BIND_FAILED
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_missing_entry_script_flag_is_argparse_error() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([])
    assert info.value.code == 2


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_remote_bind_without_auth_is_refused(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--entry-script", str(tmp_path / "score.py"), "--host", host]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"refusing to listen on {host} with auth off" in err
    assert "--keys-file" in err and "--allow-remote-without-auth" in err


def test_new_flags_reach_the_config() -> None:
    argv = "--entry-script s.py --allowed-host a --allowed-host b --allowed-origin"
    argv += " https://x.example --run-timeout 0 --log-file l.log"
    args = build_parser().parse_args(argv.split())
    assert args.allowed_host == ["a", "b"] and args.allowed_origin == ["https://x.example"]
    assert args.run_timeout == 0 and args.log_file == "l.log"
    assert args.body_timeout == 30.0 and args.header_timeout == 10.0
    assert not args.allow_remote_without_auth
