"""Run: v1's metric, tag/property, file, child, status and details API; the run context inside and
outside a job; the buffered logging path (exit flush, SIGTERM flush, background writes, back-pressure).

Everything runs on SQLite and on PostgreSQL (the ``workspace`` fixture).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainyard.core.experiment import Experiment
from trainyard.core.run import Run
from trainyard.core.workspace import Workspace
from trainyard.exceptions import (
    ArtifactNotFound,
    ImmutablePropertyError,
    InvalidStatusTransition,
    MetricValueError,
    PathSafetyError,
    RunEnvironmentException,
    RunNotFound,
    UserErrorException,
)
from trainyard.settings import load_settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def exp(workspace: Workspace) -> Experiment:
    return Experiment(workspace, "runs")


@pytest.fixture
def run(exp: Experiment) -> Run:
    return exp.start_logging()


def _stored_chunks(run: Run) -> list[Any]:
    """What the store holds right now, without flushing the run's buffer."""
    return run.experiment.workspace.context.store.get_metric_chunks(run.id)


# -- identity and lookup --------------------------------------------------------------------------


def test_identity(exp: Experiment, run: Run) -> None:
    assert run.id.startswith("runs_") and len(run.id.split("_")[-1]) == 8
    assert run.number == 1 and exp.start_logging().number == 2
    assert run.experiment == exp and run.parent is None
    assert run.display_name == run.id
    run.display_name = "nice name"
    assert run.display_name == "nice name"
    assert Run(exp, run.id).display_name == "nice name"


def test_lookup(workspace: Workspace, exp: Experiment, run: Run) -> None:
    assert Run(exp, run.id) == run
    other = Experiment(workspace, "other").start_logging()
    found = Run.get(workspace, other.id)
    assert found == other and found.experiment.name == "other"
    with pytest.raises(RunNotFound):
        Run(exp, "no_such_run")
    with pytest.raises(RunNotFound):
        Run.get(workspace, "no_such_run")


# -- metrics --------------------------------------------------------------------------------------


def test_log_series_rules(run: Run) -> None:
    run.log("once", 0.5)
    for v in (0.1, 0.2, 0.3):
        run.log("many", v)
    run.log("text", "hello")
    run.log("flag", True)
    run.log("words", "a")
    run.log("words", "b")
    run.log("count", 3)
    metrics = run.get_metrics()
    assert metrics == {
        "once": 0.5,
        "many": [0.1, 0.2, 0.3],
        "text": "hello",
        "flag": True,
        "words": ["a", "b"],
        "count": 3,
    }
    assert type(metrics["count"]) is int and type(metrics["flag"]) is bool
    assert run.get_metrics(name="many") == {"many": [0.1, 0.2, 0.3]}
    assert run.get_metrics(name="absent") == {}


def test_numpy_scalars_become_python_values(run: Run) -> None:
    run.log("Batch size", np.int64(128))
    run.log("lr", np.float32(0.25))
    run.log("f64", np.float64(1.5))
    run.log("ok", np.bool_(True))
    run.log_row("row", epoch=np.int32(1), loss=np.float16(0.5))
    metrics = run.get_metrics()
    assert metrics["Batch size"] == 128 and type(metrics["Batch size"]) is int
    assert metrics["lr"] == 0.25 and type(metrics["lr"]) is float
    assert metrics["f64"] == 1.5
    assert metrics["ok"] is True
    assert metrics["row"] == {"epoch": 1, "loss": 0.5}


def test_log_list(run: Run) -> None:
    run.log_list("accuracies", [0.5, 0.6, 0.7])
    run.log_list("labels", ["cat", "dog"])
    run.log_list("arr", np.array([1, 2, 3]))
    run.log("via_log", [1, 2])
    assert run.get_metrics() == {
        "accuracies": [0.5, 0.6, 0.7],
        "labels": ["cat", "dog"],
        "arr": [1, 2, 3],
        "via_log": [1, 2],
    }


def test_log_row_and_table(run: Run) -> None:
    run.log_row("single", x=1, y="a")
    run.log_row("table", epoch=1, loss=0.9)
    run.log_row("table", epoch=2, loss=0.4)
    run.log_table("cols", {"a": [1, 2, 3], "b": [0.1, 0.2, 0.3]})
    assert run.get_metrics() == {
        "single": {"x": 1, "y": "a"},
        "table": {"epoch": [1, 2], "loss": [0.9, 0.4]},
        "cols": {"a": [1, 2, 3], "b": [0.1, 0.2, 0.3]},
    }


def test_log_keeps_a_given_timestamp(run: Run) -> None:
    import datetime as dt

    run.log("backfill", 1.0, step=0, timestamp=1_600_000_000.123)
    run.log("backfill", 2.0, step=1, timestamp=dt.datetime(2021, 1, 1, tzinfo=dt.UTC))
    run.log("backfill", 3.0, step=2)
    stamps = [p.timestamp for p in run.get_metric_points("backfill")]
    assert stamps[:2] == [pytest.approx(1_600_000_000.123), 1_609_459_200.0]
    assert stamps[2] > 1_700_000_000
    with pytest.raises(MetricValueError):
        run.log("backfill", 4.0, step=3, timestamp=float("nan"))


def test_get_metric_points_with_steps_and_timestamps(run: Run) -> None:
    t0 = time.time()
    for step, value in ((10, 0.9), (20, 0.5), (30, 0.2)):
        run.log("loss", value, step=step)
    run.log("plain", 1.0)
    run.log("plain", 2.0)
    t1 = time.time()
    points = run.get_metric_points("loss")
    assert [(p.step, p.value) for p in points] == [(10, 0.9), (20, 0.5), (30, 0.2)]
    stamps = [p.timestamp for p in points]
    assert t0 <= stamps[0] <= stamps[1] <= stamps[2] <= t1
    assert [p.step for p in run.get_metric_points("plain")] == [0, 1]
    assert run.get_metric_points("absent") == []
    run.log("np_step", 1.0, step=np.int64(5))  # type: ignore[arg-type]
    assert [p.step for p in run.get_metric_points("np_step")] == [5]


def test_step_must_be_used_for_every_value(run: Run) -> None:
    run.log("a", 1.0, step=1)
    with pytest.raises(MetricValueError) as info:
        run.log("a", 2.0)
    assert "'a'" in str(info.value)
    run.log("b", 1.0)
    run.log("b", 1.5)
    with pytest.raises(MetricValueError):
        run.log("b", 2.0, step=2)
    with pytest.raises(MetricValueError):
        run.log("c", 1.0, step="three")  # type: ignore[arg-type]
    assert run.get_metrics() == {"a": 1.0, "b": [1.0, 1.5]}


def test_log_image_file_and_figure(run: Run, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    png = tmp_path / "plot.png"
    fig.savefig(png)
    run.log_image("from_file", path=str(png))
    run.log_image("from_figure", plot=fig)
    plt.close(fig)
    metrics = run.get_metrics()
    names = run.get_file_names()
    for metric in ("from_file", "from_figure"):
        artifact = metrics[metric]
        assert isinstance(artifact, str) and artifact.startswith("images/") and artifact in names
        local = run.download_file(artifact, tmp_path / f"{metric}.png")
        assert local.read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "from_file.png").read_bytes() == png.read_bytes()


def test_log_image_needs_exactly_one_source(run: Run, tmp_path: Path) -> None:
    with pytest.raises(MetricValueError):
        run.log_image("img")
    with pytest.raises(MetricValueError):
        run.log_image("img", path=str(tmp_path / "a.png"), plot=object())
    with pytest.raises(MetricValueError):
        run.log_image("img", path=str(tmp_path / "missing.png"))
    with pytest.raises(MetricValueError):
        run.log_image("img", plot="not a figure")
    assert run.get_metrics() == {} and run.get_file_names() == []


def test_log_confusion_matrix(run: Run, tmp_path: Path) -> None:
    data = {"class_labels": ["0", "1"], "matrix": [[5, 1], [2, 7]]}
    run.log_confusion_matrix("cm", data)
    run.log_accuracy_table("acc", json.dumps({"schema_type": "accuracy_table", "data": {"x": [1]}}))
    metrics = run.get_metrics()
    cm = metrics["cm"]
    assert cm["schema_type"] == "confusion_matrix" and cm["schema_version"] == "1.0.0"
    assert cm["data"] == data
    assert cm["artifact"] in run.get_file_names()
    stored = json.loads(run.download_file(cm["artifact"], tmp_path / "cm.json").read_text())
    assert stored == {"schema_type": "confusion_matrix", "schema_version": "1.0.0", "data": data}
    assert metrics["acc"]["schema_type"] == "accuracy_table"
    with pytest.raises(MetricValueError):
        run.log_confusion_matrix("bad", "{not json")


def test_non_finite_values_are_stored_faithfully(run: Run) -> None:
    for v in (math.nan, math.inf, -math.inf):
        run.log("x", v)
    run.log_list("l", [math.nan, 1.0, -math.inf])
    run.log_row("r", a=math.inf)
    metrics = run.get_metrics()
    x = metrics["x"]
    assert math.isnan(x[0]) and x[1:] == [math.inf, -math.inf]
    assert math.isnan(metrics["l"][0]) and metrics["l"][1:] == [1.0, -math.inf]
    assert metrics["r"] == {"a": math.inf}


# -- tags and properties --------------------------------------------------------------------------


def test_tags(run: Run) -> None:
    run.tag("flag")
    run.tag("lr", 0.01)
    run.set_tags({"a": "1", "b": 2})
    assert run.get_tags() == {"flag": "", "lr": "0.01", "a": "1", "b": "2"}
    run.set_tags({"a": "changed"})
    run.remove_tags(["b", "never-set"])
    assert run.get_tags() == {"flag": "", "lr": "0.01", "a": "changed"}
    assert run.tags == run.get_tags()


def test_properties_are_add_only(run: Run) -> None:
    run.add_properties({"source": "git", "n": 1})
    run.add_properties({"source": "git"})
    assert run.get_properties() == {"source": "git", "n": "1"}
    with pytest.raises(ImmutablePropertyError):
        run.add_properties({"new": "x", "source": "changed"})
    assert run.get_properties() == {"source": "git", "n": "1"}
    assert run.properties == run.get_properties()


# -- files ----------------------------------------------------------------------------------------


def test_upload_and_download(run: Run, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    info = run.upload_file("outputs/model.bin", str(src / "a.txt"))
    assert info["name"] == "outputs/model.bin"
    run.upload_file("outputs/stream.bin", io.BytesIO(b"streamed"))
    run.upload_files(["extra/1.txt", "extra/2.txt"], [src / "a.txt", src / "sub" / "b.txt"])
    uploaded = run.upload_folder("folder", src)
    assert sorted(uploaded) == ["folder/a.txt", "folder/sub/b.txt"]
    names = run.get_file_names()
    assert sorted(names) == sorted(
        [
            "outputs/model.bin",
            "outputs/stream.bin",
            "extra/1.txt",
            "extra/2.txt",
            "folder/a.txt",
            "folder/sub/b.txt",
        ]
    )
    out = tmp_path / "out"
    out.mkdir()
    assert run.download_file("outputs/stream.bin", out).read_bytes() == b"streamed"
    assert run.download_file("folder/sub/b.txt", out / "renamed.txt").read_text() == "B"
    got = run.download_files(prefix="folder", output_directory=tmp_path / "all")
    assert sorted(p.relative_to(tmp_path / "all").as_posix() for p in got) == [
        "folder/a.txt",
        "folder/sub/b.txt",
    ]
    flat = run.download_files(
        prefix="folder", output_directory=tmp_path / "flat", append_prefix=False
    )
    assert sorted(p.relative_to(tmp_path / "flat").as_posix() for p in flat) == [
        "a.txt",
        "sub/b.txt",
    ]
    everything = run.download_files(output_directory=tmp_path / "every")
    assert len(everything) == 6


def test_file_errors(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound):
        run.download_file("missing.txt", tmp_path)
    with pytest.raises(UserErrorException):
        run.upload_file("x.txt", str(tmp_path / "does-not-exist"))
    with pytest.raises(UserErrorException):
        run.upload_folder("x", tmp_path / "no-folder")
    with pytest.raises(PathSafetyError):
        run.upload_file("../escape.txt", io.BytesIO(b"x"))
    with pytest.raises(PathSafetyError):
        run.upload_files(["ok.txt", "/abs.txt"], [__file__, __file__])
    assert run.get_file_names() == []  # the rejected batch wrote nothing


# -- children -------------------------------------------------------------------------------------


def test_child_run(exp: Experiment, run: Run) -> None:
    with run.child_run("child") as child:
        child.log("c", 1)
    assert child.id.startswith(run.id + "_")
    assert child.display_name == "child" and child.get_status() == "Completed"
    assert child.parent == run
    assert [c.id for c in run.get_children()] == [child.id]
    assert Run(exp, child.id).get_metrics() == {"c": 1}
    assert [r.id for r in exp.get_runs()] == [run.id]


def test_create_children_and_get_children(run: Run) -> None:
    plain = run.create_children(count=2)
    tagged = run.create_children(tag_key="lr", tag_values=["0.1", "0.2"])
    assert [c.get_tags() for c in tagged] == [{"lr": "0.1"}, {"lr": "0.2"}]
    grandchild = plain[0].child_run()
    direct = [c.id for c in run.get_children()]
    assert direct == [c.id for c in reversed(plain + tagged)]
    assert [c.id for c in run.get_children(tags={"lr": "0.2"})] == [tagged[1].id]
    assert grandchild.id in {c.id for c in run.get_children(recursive=True)}
    assert grandchild.id not in direct
    assert grandchild.parent == plain[0]
    assert run.get_metrics(recursive=True) == {r: {} for r in [run.id, *direct, grandchild.id]}


# -- status and details ---------------------------------------------------------------------------


def test_complete_and_details(run: Run) -> None:
    run.upload_file("user_logs/std_log.txt", io.BytesIO(b"hello\n"))
    run.upload_file("outputs/other.txt", io.BytesIO(b"x"))
    run.add_properties({"p": "v"})
    details = run.get_details()
    assert details["status"] == "Running" and "endTimeUtc" not in details and "error" not in details
    run.complete()
    assert run.get_status() == "Completed"
    details = run.get_details()
    for key in (
        "runId",
        "target",
        "status",
        "startTimeUtc",
        "endTimeUtc",
        "properties",
        "runDefinition",
        "logFiles",
    ):
        assert key in details, key
    assert details["runId"] == run.id and details["status"] == "Completed"
    assert details["target"] == "local" and details["properties"] == {"p": "v"}
    assert details["startTimeUtc"] <= details["endTimeUtc"]
    assert details["startTimeUtc"].endswith("Z")
    assert list(details["logFiles"]) == ["user_logs/std_log.txt"]
    assert isinstance(details["runDefinition"], dict)


def test_fail_records_the_error(run: Run) -> None:
    run.fail(error_details="data was bad", error_code="BadData")
    assert run.get_status() == "Failed"
    assert run.get_details()["error"] == {"message": "data was bad", "code": "BadData"}


def test_cancel(run: Run) -> None:
    assert run.cancel() is True
    assert run.get_status() == "Canceled"
    assert run.cancel() is False
    assert [e["status"] for e in run.get_details()["statusHistory"]] == [
        "Running",
        "CancelRequested",
        "Canceled",
    ]


def test_finished_runs_stay_finished(run: Run) -> None:
    run.complete()
    with pytest.raises(InvalidStatusTransition):
        run.fail("too late")
    assert run.get_status() == "Completed"


# -- the run context ------------------------------------------------------------------------------


@pytest.fixture
def no_run_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TRAINYARD_RUN_ID", "AZUREML_RUN_ID", "TRAINYARD_WORKSPACE_PATH"):
        monkeypatch.delenv(var, raising=False)
    assert Run._context_run is None


def test_offline_context_prints(no_run_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    run = Run.get_context()
    assert run.id.startswith("OfflineRun_")
    run.log("accuracy", 0.97)
    run.log_list("l", [1, 2])
    run.upload_file("outputs/x", "/tmp/x")
    out = capsys.readouterr().out
    assert "Attempted to log scalar metric accuracy:\n0.97\n" in out
    assert "Attempted to log list metric l:\n[1, 2]\n" in out
    assert "Attempted to track file outputs/x at /tmp/x" in out
    assert run.get_metrics() == {"accuracy": 0.97, "l": [1, 2]}
    with run.child_run() as child:
        assert child.id.startswith("OfflineRun_")
    assert "[START]" in capsys.readouterr().out


def test_strict_context_outside_a_run(no_run_env: None) -> None:
    with pytest.raises(RunEnvironmentException):
        Run.get_context(allow_offline=False)
    with pytest.raises(RunEnvironmentException):
        Run.get_submitted_run()


def _job(
    workspace: Workspace, run: Run, script: str, tmp_path: Path, **extra: str
) -> subprocess.Popen[str]:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(script))
    env = {
        **os.environ,
        "TRAINYARD_RUN_ID": run.id,
        "TRAINYARD_WORKSPACE_PATH": str(workspace.path),
        **extra,
    }
    return subprocess.Popen(
        [sys.executable, str(path)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_job_points_are_flushed_at_exit(workspace: Workspace, run: Run, tmp_path: Path) -> None:
    script = """
        from trainyard.core.run import Run
        import os
        run = Run.get_context(allow_offline=False)
        assert run.id == os.environ["TRAINYARD_RUN_ID"], run.id
        for i in range(1000):
            run.log("loss", float(i))
        run.log("note", "last")
        # no complete(): the interpreter's exit flushes the buffer
    """
    # An hour-long flush interval: only the exit flush can have written the points.
    proc = _job(workspace, run, script, tmp_path, TRAINYARD_LOG_FLUSH_INTERVAL="3600")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert run.get_metrics() == {"loss": [float(i) for i in range(1000)], "note": "last"}
    assert run.get_status() == "Running"  # a job's process does not decide its run's status


def test_complete_inside_a_job_only_flushes(workspace: Workspace, run: Run, tmp_path: Path) -> None:
    script = """
        from trainyard.core.run import Run
        run = Run.get_context()
        run.log("x", 1)
        run.complete()
        print("status", run.get_status())
    """
    proc = _job(workspace, run, script, tmp_path, TRAINYARD_LOG_FLUSH_INTERVAL="3600")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "status Running" in out
    assert run.get_status() == "Running" and run.get_metrics() == {"x": 1}


_SIGTERM_SCRIPT = """
    import sys, time
    from trainyard.core.run import Run
    run = Run.get_context()
    i = 0
    while True:
        run.log("n", i)
        i += 1
        if i == {announce}:
            print("logged", i, flush=True)
            if {idle}:
                time.sleep(600)
"""


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "busy"])
def test_sigterm_keeps_buffered_metrics(
    workspace: Workspace, run: Run, tmp_path: Path, idle: bool
) -> None:
    script = _SIGTERM_SCRIPT.replace("{announce}", "20000").replace("{idle}", str(idle))
    proc = _job(workspace, run, script, tmp_path, TRAINYARD_LOG_FLUSH_INTERVAL="3600")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("logged"), line + (proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail("the job did not die after SIGTERM (flush handler hung)")
    assert proc.returncode == -signal.SIGTERM
    values = run.get_metrics()["n"]
    if idle:
        assert values == list(range(20000))
    else:  # everything logged before the signal, in order, without gaps
        assert len(values) >= 20000 and values == list(range(len(values)))


def test_background_thread_writes_without_flush(run: Run) -> None:
    run.log("x", 1.0)
    deadline = time.monotonic() + 5
    while not _stored_chunks(run) and time.monotonic() < deadline:
        time.sleep(0.02)
    chunks = _stored_chunks(run)
    assert [c.name for c in chunks] == ["x"], "the background writer never wrote the point"


def test_back_pressure_bounds_the_buffer(workspace: Workspace) -> None:
    settings = load_settings({**os.environ, "TRAINYARD_LOG_BUFFER_POINTS": "1000"})
    assert settings.log_buffer_points == 1000
    small = Workspace(path=workspace.path, _settings=settings)
    run = Experiment(small, "bp").start_logging()
    run.log("x", 0.0)
    buffer = run._buffer_obj
    assert buffer is not None
    most = 0
    for i in range(1, 200_000):
        run.log("x", float(i))
        most = max(most, buffer.pending)
    assert most <= 1000
    run.complete()
    points = run.get_metric_points("x")
    assert len(points) == 200_000 and points[-1].value == 199_999.0
