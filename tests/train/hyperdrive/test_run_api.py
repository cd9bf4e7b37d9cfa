"""``HyperDriveRun``'s query API on one finished sweep (shared by every test of this module).

The sweep's four children, in creation order: quality 0.6 (Completed), 0.95 (logs the best value,
then fails), 0.0 (logs no metric) and 0.4 (Completed).
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from trainyard.core import Experiment, Run, ScriptRunConfig, Workspace
from trainyard.exceptions import UserErrorException
from trainyard.testing.fixtures import unique_name
from trainyard.train.hyperdrive import (
    GridParameterSampling,
    HyperDriveConfig,
    HyperDriveRun,
    PrimaryMetricGoal,
    choice,
)
from trainyard.train.hyperdrive._display import render_table

TRAIN = """
import argparse, time
from trainyard.core import Run

p = argparse.ArgumentParser()
p.add_argument("--quality", type=float)
a = p.parse_args()
run = Run.get_context()
for epoch in range(2):
    if a.quality:
        run.log("Accuracy", a.quality)
    run.log("epoch", epoch)
    time.sleep(0.1)
if a.quality == 0.95:
    raise RuntimeError("fails after logging the best value")
"""

QUALITIES = [0.6, 0.95, 0.0, 0.4]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HyperDriveRun, str]]:
    """The finished sweep and what ``wait_for_completion(show_output=True)`` printed."""
    tmp = tmp_path_factory.mktemp("hd_api")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINYARD_HEARTBEAT_SECONDS", "0.3")
        mp.setenv("TRAINYARD_HEARTBEAT_TIMEOUT", "10")
        mp.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.1")
        mp.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.5")
        ws = Workspace.create(unique_name("ws"), path=tmp / "ws")
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text(textwrap.dedent(TRAIN))
        config = HyperDriveConfig(
            run_config=ScriptRunConfig(source_directory=tmp / "src", script="train.py"),
            hyperparameter_sampling=GridParameterSampling({"--quality": choice(*QUALITIES)}),
            primary_metric_name="Accuracy",
            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
            max_total_runs=4,
            max_concurrent_runs=2,
            custom_run_id=f"HD_api_{unique_name('x')}",
        )
        run = Experiment(ws, "api").submit(config)
        out = io.StringIO()
        details = run.wait_for_completion(show_output=True, _out=out)
        assert details["status"] == "Completed"
        yield run, out.getvalue()


@pytest.fixture
def hd(sweep: tuple[HyperDriveRun, str]) -> HyperDriveRun:
    return sweep[0]


def child(hd: HyperDriveRun, i: int) -> str:
    return f"{hd.id}_{i}"


def test_custom_run_id_and_type(hd: HyperDriveRun) -> None:
    assert hd.id.startswith("HD_api_")
    loaded = Run.get(hd.experiment.workspace, hd.id)
    assert isinstance(loaded, HyperDriveRun) and loaded.type == "hyperdrive"
    assert [r.id for r in hd.experiment.get_runs(type="hyperdrive")] == [hd.id]


def test_children_sorted_by_primary_metric(hd: HyperDriveRun) -> None:
    rows = hd.get_children_sorted_by_primary_metric()
    assert [r["run_id"] for r in rows] == [child(hd, i) for i in (1, 0, 3, 2)]
    assert rows[0] == {
        "run_id": child(hd, 1),
        "hyperparameters": '{"--quality": 0.95}',
        "best_primary_metric": 0.95,
        "status": "Failed",
    }
    assert rows[-1]["best_primary_metric"] is None  # no metric: last
    assert [r["run_id"] for r in hd.get_children_sorted_by_primary_metric(top=2)] == [
        child(hd, 1),
        child(hd, 0),
    ]
    worst_first = hd.get_children_sorted_by_primary_metric(reverse=True, discard_no_metric=True)
    assert [r["run_id"] for r in worst_first] == [child(hd, i) for i in (3, 0, 1)]


def test_get_hyperparameters_from_parent_tags(hd: HyperDriveRun) -> None:
    assert hd.get_hyperparameters() == {
        child(hd, i): json.dumps({"--quality": q}) for i, q in enumerate(QUALITIES)
    }


def test_get_metrics_is_keyed_by_child(hd: HyperDriveRun) -> None:
    metrics = hd.get_metrics()
    assert set(metrics) == {child(hd, i) for i in range(4)}
    assert metrics[child(hd, 0)] == {"Accuracy": [0.6, 0.6], "epoch": [0, 1]}
    assert metrics[child(hd, 2)] == {"epoch": [0, 1]}
    assert hd.get_metrics(name="epoch")[child(hd, 3)] == {"epoch": [0, 1]}


def test_best_run_honours_the_status_flags(hd: HyperDriveRun) -> None:
    best = hd.get_best_run_by_primary_metric()
    assert best is not None and best.id == child(hd, 1)
    fallback = hd.get_best_run_by_primary_metric(include_failed=False)
    assert fallback is not None and fallback.id == child(hd, 0)
    assert fallback.get_details()["runDefinition"]["arguments"] == ["--quality", "0.6"]


def test_best_child_table_has_one_final_row(hd: HyperDriveRun) -> None:
    table = Run.get_metrics(hd)["best_child_by_primary_metric"]
    assert table["final"][-1] is True and table["final"].count(True) == 1
    assert (table["run_id"][-1], table["metric_value"][-1]) == (child(hd, 1), 0.95)


def test_hyperdrive_config_is_rebuilt_from_the_run(hd: HyperDriveRun) -> None:
    config = hd.hyperdrive_config
    assert config.primary_metric_config == {"name": "Accuracy", "goal": "maximize"}
    assert (config.max_total_runs, config.max_concurrent_runs) == (4, 2)
    assert config.hyperparameter_sampling.to_json() == {
        "name": "GRID",
        "parameter_space": {"--quality": ["choice", [QUALITIES]]},
    }
    assert config.run_config is not None and config.run_config.script == "train.py"


def test_wait_for_completion_printed_the_sweep(sweep: tuple[HyperDriveRun, str]) -> None:
    run, text = sweep
    assert text.startswith(f"RunId: {run.id}\nWeb View: ")
    assert "child 1 (" in text and "Failed" in text
    assert run.id + "_3" in text and "Execution Summary" in text
    assert "Status: Completed" in text


def test_render_table_lists_each_child(hd: HyperDriveRun) -> None:
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(render_table(hd.get_children_sorted_by_primary_metric(), "Accuracy"))
    text = console.export_text()
    assert "Best Accuracy" in text
    lines = [ln for ln in text.splitlines() if hd.id in ln]
    assert [ln.split()[1] for ln in lines] == [child(hd, i) for i in range(4)]


def test_unsupported_and_final_state_operations(hd: HyperDriveRun) -> None:
    with pytest.raises(UserErrorException, match="not implemented"):
        hd.fail()
    with pytest.raises(UserErrorException, match="not implemented"):
        hd.get_diagnostics()
    assert hd.cancel() is False
    with pytest.raises(UserErrorException, match="nothing to resume"):
        hd.resume()


def test_wait_for_completion_returns_details_at_once_when_finished(hd: HyperDriveRun) -> None:
    details: dict[str, Any] = hd.wait_for_completion()
    assert details["runId"] == hd.id and details["status"] == "Completed"
    assert "system_logs/hyperdrive.txt" in details["logFiles"]


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal (so the rich live view is used)."""

    def isatty(self) -> bool:
        return True


def test_live_view_on_a_terminal(hd: HyperDriveRun) -> None:
    out = _Terminal()
    hd.wait_for_completion(show_output=True, _out=out)
    text = out.getvalue()
    assert f"{hd.id} — Completed" in text and "Best Accuracy" in text
    assert "sweep Completed" in text and "Execution Summary" in text
