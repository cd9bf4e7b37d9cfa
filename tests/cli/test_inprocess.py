"""Fast in-process checks of the command app (``typer.testing.CliRunner``) and its helpers."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pytest
import typer
from typer.testing import CliRunner, Result

from trainyard._store.entities import MetricPoint
from trainyard.cli import COMMAND_MODULES, app, register_all
from trainyard.cli._common import (
    TrainyardGroup,
    dumps,
    fmt_duration,
    fmt_value,
    iso_utc,
    wants_json,
)
from trainyard.cli.runs import summarize_metric

if TYPE_CHECKING:
    from conftest import Populated

runner = CliRunner()
ENV: dict[str, str | None] = {"TRAINYARD_WORKSPACE": None, "COLUMNS": "200"}


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, list(args), env={**ENV, **(env or {})})


# -- helpers ----------------------------------------------------------------------------------
def test_json_encoder_writes_non_finite_floats_as_strings() -> None:
    data = {
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "nested": [1.5, {"x": (math.nan, 2)}],
        "point": MetricPoint(step=3, timestamp=1.0, value=math.inf),
    }
    text = dumps(data)
    parsed = json.loads(text, parse_constant=lambda t: pytest.fail(f"bare {t}"))
    assert parsed == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "nested": [1.5, {"x": ["NaN", 2]}],
        "point": {"step": 3, "timestamp": 1.0, "value": "Infinity"},
    }


def test_summarize_metric_shapes() -> None:
    assert summarize_metric([0.5, math.nan, 0.25]) == {
        "count": 3,
        "last": 0.25,
        "min": 0.25,
        "max": 0.5,
    }
    assert summarize_metric(7) == {"count": 1, "last": 7, "min": 7, "max": 7}
    assert summarize_metric("text") == {"count": 1, "last": "text", "min": None, "max": None}
    assert summarize_metric([True, False]) == {"count": 2, "last": False, "min": None, "max": None}
    nan_only = summarize_metric(math.nan)
    assert nan_only["min"] is None and math.isnan(nan_only["last"])
    table = summarize_metric({"epoch": [1, 2], "score": [0.5, 0.6]})
    assert table == {"count": 2, "last": {"epoch": 2, "score": 0.6}, "min": None, "max": None}


def test_formatting() -> None:
    assert fmt_duration(None) == "-"
    assert fmt_duration(3.21) == "3.2s"
    assert fmt_duration(125) == "2m 05s"
    assert fmt_duration(3725) == "1h 02m 05s"
    assert fmt_value(0.123456789) == "0.123457"
    assert fmt_value(-math.inf) == "-Infinity"
    assert fmt_value("x" * 100, limit=10) == "x" * 9 + "…"
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000000Z"


def test_wants_json() -> None:
    assert wants_json(["runs", "list", "--json"])
    assert not wants_json(["runs", "list"])
    assert not wants_json(["runs", "show", "--", "--json"])
    assert not wants_json(None)


def test_every_command_module_registers() -> None:
    root = typer.Typer(cls=TrainyardGroup)

    @root.callback()
    def _cb() -> None:
        """Test root."""

    register_all(root, COMMAND_MODULES)
    result = runner.invoke(root, ["--help"], env=ENV)
    assert result.exit_code == 0
    for group in ("workspace", "experiments", "runs"):
        assert group in result.stdout


# -- commands ---------------------------------------------------------------------------------
def test_version_in_process() -> None:
    from trainyard import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"trainyard {__version__}"


def test_runs_list_filters(populated: Populated) -> None:
    def ids(*args: str) -> list[str]:
        result = invoke("runs", "list", "--json", "-w", str(populated.ws_path), *args)
        assert result.exit_code == 0, result.output
        return [r["runId"] for r in json.loads(result.stdout)]

    assert ids("--experiment", "train") == [populated.failed, populated.done]
    assert ids("-e", "old") == [populated.archived_run]  # a named archived experiment is listed
    assert ids("--status", "completed") == [populated.done]  # any case
    assert ids("-s", "Failed", "-s", "Running") == [populated.running, populated.failed]
    assert ids("--limit", "1") == [populated.running]
    assert ids("--limit", "0") == [populated.running, populated.failed, populated.done]
    with_children = ids("--include-children", "-e", "train")
    assert populated.child in with_children
    assert populated.child not in ids("-e", "train")


def test_errors_in_process(populated: Populated) -> None:
    result = invoke("runs", "show", "missing_run", "-w", str(populated.ws_path))
    assert result.exit_code == 1
    assert "Error [RUN_NOT_FOUND]" in result.stderr
    assert result.stdout == ""
    unknown_exp = invoke("runs", "list", "-e", "nope", "--json", "-w", str(populated.ws_path))
    assert unknown_exp.exit_code == 1
    error: dict[str, Any] = json.loads(unknown_exp.stdout)["error"]
    assert error["code"] == "EXPERIMENT_NOT_FOUND"
    assert "train" in error["message"]  # lists the experiments that exist


def test_workspace_option_forms(populated: Populated) -> None:
    config = populated.project / ".trainyard" / "config.json"
    forms = {
        "folder": ["experiments", "list", "--json", "-w", str(populated.ws_path)],
        "config": ["experiments", "list", "--json", "--workspace", str(config)],
        "search": ["experiments", "list", "--json", "-w", str(populated.project)],
        "root": ["-w", str(populated.ws_path), "experiments", "list", "--json"],
    }
    for form, args in forms.items():
        result = invoke(*args)
        assert result.exit_code == 0, (form, result.output)
        assert {e["name"] for e in json.loads(result.stdout)} == {"train", "eval"}, form
    # a command's own -w wins over the root one
    both = invoke("-w", "/nonexistent", "workspace", "show", "--json", "-w", str(populated.ws_path))
    assert both.exit_code == 0, both.output
    missing = invoke("workspace", "show", "-w", str(populated.ws_path / "nope"))
    assert missing.exit_code == 1
    assert "Error [WORKSPACE_NOT_FOUND]" in missing.stderr


def test_env_variable_names_the_workspace(populated: Populated) -> None:
    result = invoke(
        "workspace", "show", "--json", env={"TRAINYARD_WORKSPACE": str(populated.ws_path)}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(populated.ws_path)
