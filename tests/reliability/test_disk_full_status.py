"""Faults end in the right status (issue 11, item 7): a disk that fills up while a run's files are
uploaded ends the run Failed with that cause, never as a lost supervisor or a crash "at Queued".

The workspace lives on a 48 MiB tmpfs (``small_disk``; skipped with the reason where mounting is
impossible). The script fills the disk itself, so the upload of its outputs and logs — and the
first attempt to record the failure in the workspace's SQLite database — meet a full disk.
"""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest

from trainyard.core import Experiment, Run, ScriptRunConfig, Workspace

pytestmark = pytest.mark.reliability

TERMINAL = {"Completed", "Failed", "Canceled"}

#: Writes a small output, then a file in its working folder until the disk is full; exits 0.
FILL = """
import os
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.bin", "wb") as fh:
    fh.write(os.urandom(1 << 20))
with open("junk.bin", "wb", buffering=0) as fh:
    try:
        while True:
            fh.write(b"0" * 65536)
    except OSError as err:
        print("disk full:", err, flush=True)
"""
#: Outputs larger than what is left: the copy into the artifact store cannot fit.
BIG_OUTPUT = """
import os, shutil
os.makedirs("outputs", exist_ok=True)
free = shutil.disk_usage(".").free
with open("outputs/model.bin", "wb") as fh:
    fh.write(os.urandom(int(free * 0.6)))
"""


def _wait_terminal(run: Run, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := run.get_status()) not in TERMINAL:
        assert time.monotonic() < deadline, f"run still {status} after {timeout} s"
        time.sleep(0.2)
    return status


@pytest.mark.parametrize("body", [FILL, BIG_OUTPUT], ids=["disk-filled-by-script", "big-output"])
def test_disk_full_while_uploading_fails_the_run_with_the_real_cause(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str
) -> None:
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_TIMEOUT", "6")
    ws = Workspace.create("full", path=small_disk / "ws")
    src = tmp_path / "src"  # the source is not on the small disk: only the run's files are
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent(body))
    run = Experiment(ws, "disk-full").submit(ScriptRunConfig(str(src), "train.py"))
    assert _wait_terminal(run) == "Failed"
    error = run.get_details()["error"]
    assert error["code"] not in ("SupervisorLost", "SupervisorCrashed"), error
    # the cause as the first write that met the full disk saw it: an artifact or the database
    assert re.search("No space left on device|disk is full", error["message"]), error
    assert error["stage"] in ("Running", "Finalizing"), error
