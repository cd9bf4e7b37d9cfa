"""Fixtures for the reliability suite: real scoring-server processes on loopback, raw HTTP helpers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 60.0
_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")

#: run() records every input in calls.txt (so a test can prove a request never reached it) and
#: sleeps on "slow".
SCORE_PY = """
import os, sys, time

def init():
    # One write: print() sends the text and its newline separately, and the server's access log
    # (the readiness probe answers 503 meanwhile) can land between them, gluing the two lines.
    sys.stdout.write("init: ready\\n")
    sys.stdout.flush()

def run(raw):
    with open(os.path.join(os.path.dirname(__file__), "calls.txt"), "a") as fh:
        fh.write(raw + "\\n")
    if raw == "slow":
        time.sleep(float(os.environ.get("SLOW_S", "3")))
    return raw
"""


class Server:
    """``python -m trainyard._serving`` as a child process on 127.0.0.1 with a kernel-chosen port."""

    def __init__(
        self,
        folder: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        script: str = SCORE_PY,
    ) -> None:
        self.folder = folder
        self.app = folder / "app"
        self.app.mkdir(parents=True, exist_ok=True)
        (self.app / "score.py").write_text(textwrap.dedent(script))
        self.stdout_path = folder / "stdout.log"
        self.stderr_path = folder / "stderr.log"
        self.log_file = Path(args[args.index("--log-file") + 1]) if "--log-file" in args else None
        full_env = {**os.environ, **(env or {})}
        full_env.pop("TRAINYARD_SERVING_CONFIG", None)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            command = [sys.executable, "-m", "trainyard._serving", "--entry-script", "score.py"]
            command += ["--source-directory", str(self.app), "--port", "0", *args]
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=err,
                env=full_env,
                cwd=folder,
            )
        self.port = 0

    @property
    def calls(self) -> list[str]:
        """Inputs run() has seen."""
        path = self.app / "calls.txt"
        return path.read_text().splitlines() if path.exists() else []

    def output(self) -> str:
        """Everything the server wrote: its log file (with --log-file), else stdout + stderr."""
        parts = [self.stdout_path, self.stderr_path]
        if self.log_file is not None:
            parts.append(self.log_file)
        return "".join(p.read_text(errors="replace") for p in parts if p.exists())

    def wait_ready(self) -> int:
        """Wait until ``GET /ready`` is 200; return the port."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            match = _LISTENING.search(self.output())
            if match:
                self.port = int(match.group(1))
                status, _, _ = request(self.port, b"GET /ready HTTP/1.1\r\nHost: localhost\r\n\r\n")
                if status == 200:
                    return self.port
            time.sleep(0.05)
        raise AssertionError(f"server never became ready:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM, SIGKILL after 15 s; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """``start_server(*flags, env=..., script=...)`` → a started :class:`Server` (``script``: the
    entry script's source, default :data:`SCORE_PY`); all stopped at teardown."""
    started: list[Server] = []

    def start(
        *args: str | Path, env: dict[str, str] | None = None, script: str = SCORE_PY
    ) -> Server:
        server = Server(tmp_path / f"server-{len(started)}", [str(a) for a in args], env, script)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def request(port: int, raw: bytes, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` bytes, read one response (``Connection: close`` is not needed: one response is
    parsed by its Content-Length). Returns ``(status, headers, body)``; status 0 if the server
    closed the connection without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, {}, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def post(path: str, body: bytes, *headers: str, host: str = "localhost") -> bytes:
    """A raw ``POST`` request (``headers``: extra ``Name: value`` lines)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs to fill up (mounting needs root: skipped with the reason otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        pytest.skip(
            "needs a small real disk to fill: mounting a tmpfs failed "
            f"({(proc.stderr or proc.stdout).strip() or proc.returncode}); run as root to include it"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder carries the ``reliability`` marker (``-m reliability`` runs the
    standing fault and attack suite alone)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.path)).resolve().is_relative_to(here):
            item.add_marker(pytest.mark.reliability)
