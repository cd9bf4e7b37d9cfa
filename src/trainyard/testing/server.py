"""A real ``trainyard server`` process for tests: started on a free loopback port, stopped by pid.

Example::

    server = start_server("sqlite:////tmp/t/ty.db", Path("/tmp/t/files"))
    store = RestTrackingStore(server.url, server.admin_token)
    ...
    server.stop()
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TOKEN = re.compile(r"^\s+(ty_\S+)\s*$", re.M)


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its URL, the bootstrap admin's token, its process and folders."""

    url: str
    admin_token: str
    process: subprocess.Popen[bytes]
    store_url: str
    artifacts: Path
    log: Path
    port: int

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM (graceful: requests in flight finish), SIGKILL after ``grace``."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port and store (the admin token stays valid)."""
        self.stop()
        again = start_server(self.store_url, self.artifacts, port=self.port, log=self.log)
        self.process = again.process


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("trainyard")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from trainyard.cli import main; main()"]


def start_server(
    store_url: str,
    artifacts: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 60.0,
) -> LiveServer:
    """Start ``trainyard server`` and wait until ``/readyz`` answers."""
    port = port or free_port()
    artifacts.mkdir(parents=True, exist_ok=True)
    log = log or artifacts.parent / f"server-{port}.log"
    argv = [
        *_cli(),
        "server",
        "--store",
        store_url,
        "--artifacts",
        str(artifacts),
        "--port",
        str(port),
        "--workers",
        str(workers),
        *extra_args,
    ]
    child_env = {**os.environ, **(env or {})}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=child_env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"trainyard server exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"trainyard server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    found = _TOKEN.findall(log.read_text())
    return LiveServer(
        url=url,
        admin_token=found[0] if found else "",
        process=proc,
        store_url=store_url,
        artifacts=artifacts,
        log=log,
        port=port,
    )
