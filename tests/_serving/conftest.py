"""Fixtures for the scoring server: write small scoring apps and run the real server as a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

_LISTENING = re.compile(r"listening on (http://[^ ]+)")
START_TIMEOUT_S = 60.0


def write_app(folder: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (name → source, dedented) into ``folder``; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


class ServerProcess:
    """``python -m trainyard._serving`` as a child process, its stdout/stderr captured in files."""

    def __init__(self, args: list[str], log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / "stdout.log"
        self.stderr_path = log_dir / "stderr.log"
        env = dict(os.environ)
        env.pop("TRAINYARD_SERVING_CONFIG", None)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trainyard._serving", *args],
                stdout=out,
                stderr=err,
                env=env,
                cwd=log_dir,
            )
        self.url = ""

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_listening(self) -> str:
        """Wait for the 'listening on' line; return the base URL."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.stdout)
            if match:
                self.url = match.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.stderr}")
            time.sleep(0.02)
        raise AssertionError(f"server did not start:\n{self.stdout}\n{self.stderr}")

    def wait_ready(self) -> str:
        """Wait until ``GET /ready`` answers 200; return the base URL."""
        url = self.url or self.wait_listening()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.stderr}")
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server never became ready:\n{self.stdout}\n{self.stderr}")

    def wait_exit(self, timeout: float = START_TIMEOUT_S) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not stop within 15 s; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


StartServer = Callable[..., ServerProcess]


def _start_factory(log_root: Path, started: list[ServerProcess]) -> StartServer:
    def start(*args: str | Path, name: str = "server") -> ServerProcess:
        server = ServerProcess([str(a) for a in args], log_root / f"{name}-{len(started)}")
        started.append(server)
        return server

    return start


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Factory: ``start_server("--entry-script", p, ...)`` → a started :class:`ServerProcess`
    (``--port 0`` is added); every server is stopped at teardown."""
    started: list[ServerProcess] = []
    factory = _start_factory(tmp_path / "servers", started)

    def start(*args: str | Path, name: str = "server") -> ServerProcess:
        return factory(*args, "--port", "0", name=name)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Like :func:`start_server`, shared by the tests of one module."""
    started: list[ServerProcess] = []
    factory = _start_factory(tmp_path_factory.mktemp("servers"), started)

    def start(*args: str | Path, name: str = "server") -> ServerProcess:
        return factory(*args, "--port", "0", name=name)

    yield start
    for server in started:
        server.stop()
