"""``trainyard runs metrics RUN RUN...``: several runs' metrics side by side (table and --json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from trainyard.core.run import Run
from trainyard.core.workspace import Workspace

if TYPE_CHECKING:
    from conftest import CliRun, Populated


def _cells(stdout: str, columns: int) -> dict[str, list[str]]:
    return {
        ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:-1]]
        for ln in stdout.splitlines()
        if ln.count("│") == columns + 2
    }


def test_metrics_of_several_runs_side_by_side(cli: CliRun, populated: Populated) -> None:
    w = ["-w", str(populated.ws_path)]
    ids = [populated.done, populated.child, populated.running]
    proc = cli("runs", "metrics", *ids, *w)
    assert proc.returncode == 0, proc.stderr
    header = next(ln for ln in proc.stdout.splitlines() if "┃ Metric" in ln)
    assert [c.strip() for c in header.split("┃")[2:-1]] == ids  # a column per run, in order
    cells = _cells(proc.stdout, 3)
    assert cells["acc"] == ["0.9 (3)", "0.42", "-"]
    assert cells["loss"] == ["0.25 (3)", "-", "-"]
    assert cells["seen"] == ["-", "-", "3"]


def test_metrics_of_several_runs_as_json(cli: CliRun, populated: Populated) -> None:
    w = ["-w", str(populated.ws_path)]
    ws = Workspace(path=populated.ws_path)
    proc = cli("runs", "metrics", populated.done, populated.child, "--json", *w)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert list(data) == [populated.done, populated.child]
    assert data[populated.child] == Run.get(ws, populated.child).get_metrics()
    assert data[populated.done]["loss"] == [2.0, "NaN", 0.25]
    only = json.loads(
        cli("runs", "metrics", populated.done, populated.child, "-m", "acc", "--json", *w).stdout
    )
    assert only == {populated.done: {"acc": [0.5, 0.75, 0.9]}, populated.child: {"acc": 0.42}}
    pts = json.loads(
        cli(
            "runs",
            "metrics",
            populated.done,
            populated.child,
            "-m",
            "acc",
            "--points",
            "--json",
            *w,
        ).stdout
    )
    assert [p["value"] for p in pts[populated.done]["acc"]] == [0.5, 0.75, 0.9]
    assert [p["value"] for p in pts[populated.child]["acc"]] == [0.42]
    # one id (even repeated) keeps the single-run shape
    same = json.loads(cli("runs", "metrics", populated.child, populated.child, "--json", *w).stdout)
    assert same == {"acc": 0.42}


def test_metrics_of_several_runs_errors(
    cli: CliRun, populated: Populated, clean_error: Callable[..., None]
) -> None:
    w = ["-w", str(populated.ws_path)]
    missing = cli("runs", "metrics", populated.done, populated.child, "-m", "nope", *w)
    clean_error(missing, "NOT_FOUND")
    assert "acc" in missing.stderr
    clean_error(cli("runs", "metrics", populated.done, "no_such_run_1", *w), "RUN_NOT_FOUND")
