"""System metrics sampled by a run's supervisor: a real busy process is measured, a run's samples
land in its files and never in its own metrics, and a torn file is read safely."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from trainyard._execution.sysmetrics import SYSTEM_METRICS_LOG, SystemSampler, read_samples

BUSY = "import time\nend = time.time() + {seconds}\nx = bytearray(40 << 20)\nwhile time.time() < end:\n    pass\n"


def _busy(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", BUSY.format(seconds=seconds)], start_new_session=True
    )


def test_a_busy_process_is_measured(tmp_path: Path) -> None:
    proc = _busy(2.5)
    path = tmp_path / "system_metrics.jsonl"
    sampler = SystemSampler(path, proc.pid, interval=0.25)
    watched = psutil.Process(proc.pid)
    try:
        time.sleep(0.2)
        cpu_before, wall_before = sum(watched.cpu_times()[:2]), time.monotonic()
        sampler.start()
        time.sleep(1.6)
        got = (sum(watched.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        sampler.stop()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) >= 4
    cpu = [s["cpu_percent"] for s in lines if "cpu_percent" in s]
    # One core spinning, shared with the rest of the machine: the samples show the share it got.
    assert got > 0 and cpu and max(cpu) > 50 * got
    assert min(s["rss_mb"] for s in lines) > 40  # its 40 MiB buffer is resident
    assert all(s["processes"] == 1 for s in lines)
    assert [s["t"] for s in lines] == sorted(s["t"] for s in lines)


def test_no_sample_is_written_while_no_process_of_the_session_lives(tmp_path: Path) -> None:
    proc = _busy(0.1)
    proc.wait()
    path = tmp_path / "system_metrics.jsonl"
    sampler = SystemSampler(path, proc.pid, interval=0.05)
    sampler.start()
    time.sleep(0.4)
    sampler.stop()
    assert not path.exists() or path.read_text() == ""


def test_interval_zero_samples_nothing(tmp_path: Path) -> None:
    sampler = SystemSampler(tmp_path / "m.jsonl", os.getpid(), interval=0)
    sampler.start()
    sampler.stop()
    assert not (tmp_path / "m.jsonl").exists()


def test_torn_and_foreign_lines_are_skipped() -> None:
    data = (
        b'{"t": 1.0, "rss_mb": 10, "cpu_percent": 50}\n'
        b"not json\n"
        b'[1, 2]\n{"t": "x", "rss_mb": 3}\n{"t": 2.0, "rss_mb": NaN, "gpu_percent": true}\n'
        b'{"t": 3.0, "rss_mb": 12}\n{"t": 4.0, "rss'
    )
    got = read_samples(data)
    assert got == {"rss_mb": ([1.0, 3.0], [10.0, 12.0]), "cpu_percent": ([1.0], [50.0])}


@pytest.mark.slow
def test_a_submitted_runs_samples_are_in_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainyard.core import Experiment, ScriptRunConfig, Workspace
    from trainyard.testing.fixtures import unique_name

    monkeypatch.setenv("TRAINYARD_SYSTEM_METRICS_SECONDS", "0.2")
    monkeypatch.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        textwrap.dedent(
            """
            import time
            from trainyard.core import Run
            Run.get_context().log("loss", 0.5)
            end = time.time() + 1.5
            while time.time() < end:
                pass
            """
        )
    )
    run = Experiment(ws, "sys").submit(ScriptRunConfig(source_directory=src, script="train.py"))
    run.wait_for_completion(raise_on_error=True)
    assert SYSTEM_METRICS_LOG in run.get_file_names()
    samples = read_samples(run.read_log(SYSTEM_METRICS_LOG))
    assert max(samples["cpu_percent"][1]) > 30
    assert len(samples["rss_mb"][1]) >= 4
    assert set(run.get_metrics()) == {"loss"}
    # Not a log a user reads: the log list is what it was.
    assert SYSTEM_METRICS_LOG not in run.get_log_names()


class _StandInNvml:
    """NVML's Python binding (``pynvml``) as a two-GPU machine answers: this machine has no GPU,
    so the sampler's reading of NVML is checked against a stand-in of the external library."""

    def __init__(self) -> None:
        self.shut = False

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> object:
        return type("Util", (), {"gpu": (30, 50)[handle]})()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> object:
        return type("Mem", (), {"used": (1 << 30, 2 << 30)[handle]})()

    def nvmlShutdown(self) -> None:
        self.shut = True


def test_gpus_are_sampled_through_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = _StandInNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    path = tmp_path / "system_metrics.jsonl"
    sampler = SystemSampler(path, os.getsid(0), interval=0.1)
    sampler.start()
    time.sleep(0.5)
    sampler.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and all(s["gpu_percent"] == 40 for s in lines)  # the mean over the GPUs
    assert all(s["gpu_memory_mb"] == 3072 for s in lines)  # summed
    assert nvml.shut, "NVML is shut down when the sampler stops"


def test_without_nvml_no_gpu_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    path = tmp_path / "system_metrics.jsonl"
    sampler = SystemSampler(path, os.getsid(0), interval=0.1)
    sampler.start()
    time.sleep(0.3)
    sampler.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and not any("gpu_percent" in s or "gpu_memory_mb" in s for s in lines)
