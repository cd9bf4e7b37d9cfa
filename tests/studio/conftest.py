"""Fixtures of the studio's browser tests: a real workspace with real runs, a real ``trainyard ui``
process over it, and Debian's Chromium driven by Playwright (its own browser download is never
used). Screenshots of every page go to ``tests/studio/screenshots/`` (gitignored)."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainyard.testing.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
FAST = {
    "TRAINYARD_HEARTBEAT_SECONDS": "0.3",
    "TRAINYARD_HEARTBEAT_TIMEOUT": "10",
    "TRAINYARD_POLLING_INTERVAL_MIN": "0.1",
    "TRAINYARD_POLLING_INTERVAL_MAX": "0.5",
    # Several system-metric samples even for the sweep's short children.
    "TRAINYARD_SYSTEM_METRICS_SECONDS": "0.1",
}
#: A 2×2 PNG (red, green, blue, white).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
TRAIN = """
import argparse, time
from trainyard.core import Run
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.02)
a = p.parse_args()
run = Run.get_context()
for epoch in range(a.epochs):
    run.log("accuracy", min(0.99, a.lr * (epoch + 1)))
    print(f"epoch {epoch} accuracy {a.lr * (epoch + 1):.3f}", flush=True)
    time.sleep(a.sleep)
"""


@dataclass
class Studio:
    url: str
    ws: Any
    ws_name: str
    metrics_run: str
    failed_run: str
    sweep_run: str
    lr_runs: dict[str, float]
    src: Path
    process: subprocess.Popen[bytes]

    def sweep_child(self) -> Any:
        """The record of one of the sweep's children (a submitted run with a snapshot)."""
        ctx = self.ws.context
        return ctx.store.search_runs(ctx.workspace_id, parent_run_id=self.sweep_run, limit=1).runs[
            0
        ]


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("trainyard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trainyard.cli"]


def wait_terminal(run: Any, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := run.get_status()) not in ("Completed", "Failed", "Canceled"):
        if time.monotonic() > deadline:
            pytest.fail(f"{run.id} did not finish in {timeout} s (status {status})")
        time.sleep(0.1)
    return str(status)


@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    from trainyard.core import Experiment, ScriptRunConfig, Workspace
    from trainyard.testing.fixtures import unique_name
    from trainyard.train.hyperdrive import (
        GridParameterSampling,
        HyperDriveConfig,
        PrimaryMetricGoal,
        choice,
    )

    base = tmp_path_factory.mktemp("studio")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAST.items():
            mp.setenv(key, value)
        ws = Workspace.create(unique_name("studio"), path=base / "ws")
        exp = Experiment(ws, "mnist")
        run = exp.start_logging(display_name="metrics run")
        for i in range(500):
            run.log("loss", 1.0 / (i + 1), step=i)
        for i in range(5):
            run.log("accuracy", 0.5 + i / 10)
        run.log_table("confusion", {"label": [0, 1], "count": [40, 60]})
        (base / "pic.png").write_bytes(PNG)
        run.log_image("sample", path=str(base / "pic.png"))
        run.add_properties({"lr": "0.05", "batch": "64"})
        run.set_tags({"team": "vision"})
        run.upload_file("outputs/model.txt", str(base / "pic.png"))
        run.complete()
        lr_runs = {run.id: 0.05}
        for lr in (10.0, 0.01, 2.0):  # "10.0" < "2.0" as text: the sort must be numeric
            other = exp.start_logging(display_name=f"lr {lr}")
            other.add_properties({"lr": str(lr)})
            other.log("loss", lr)
            other.complete()
            lr_runs[other.id] = lr
        bad = exp.start_logging(display_name="broken")
        bad.fail(error_details="ValueError: the data folder is empty")
        src = base / "src"
        src.mkdir()
        (src / "train.py").write_text(textwrap.dedent(TRAIN))
        sweep = Experiment(ws, "tune").submit(
            HyperDriveConfig(
                run_config=ScriptRunConfig(source_directory=src, script="train.py"),
                hyperparameter_sampling=GridParameterSampling({"--lr": choice(0.1, 0.2, 0.3)}),
                primary_metric_name="accuracy",
                primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                max_total_runs=3,
                max_concurrent_runs=3,
            )
        )
        wait_terminal(sweep, 120)
        port = free_port()
        log = open(base / "ui.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [*_cli(), "ui", "--workspace", str(base / "ws"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **FAST},
        )
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "api/session", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"trainyard ui did not start:\n{(base / 'ui.log').read_text()}")
                time.sleep(0.1)
        try:
            yield Studio(
                url=url,
                ws=ws,
                ws_name=ws.name,
                metrics_run=run.id,
                failed_run=bad.id,
                sweep_run=sweep.id,
                lr_runs=lr_runs,
                src=src,
                process=proc,
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
            log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; the test fails if any page logged a console error or threw."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"console errors: {errors}"
