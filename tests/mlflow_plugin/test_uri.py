"""URI parsing and the record mapping: pure functions, no MLflow needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard.exceptions import ValidationError
from trainyard.mlflow_plugin import _mapping as m
from trainyard.mlflow_plugin._uri import (
    artifact_uri,
    parse_artifact_uri,
    parse_tracking_uri,
    tracking_uri_for,
)


@pytest.mark.parametrize(
    ("uri", "path", "name"),
    [
        ("trainyard:///data/my ws", Path("/data/my ws"), None),
        ("trainyard:///data/my%20ws", Path("/data/my ws"), None),
        ("trainyard:/data/ws", Path("/data/ws"), None),
        ("trainyard://team", None, "team"),
        ("TRAINYARD:///x", Path("/x"), None),
    ],
)
def test_tracking_uri_forms(uri: str, path: Path | None, name: str | None) -> None:
    ref = parse_tracking_uri(uri)
    assert (ref.path, ref.name, ref.discover) == (path, name, False)


def test_relative_and_discovery_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_tracking_uri("trainyard:ws").path == tmp_path / "ws"
    assert parse_tracking_uri("trainyard:").discover


@pytest.mark.parametrize(
    "uri", ["sqlite:///x.db", "trainyard", "trainyard://", "trainyard://name/extra"]
)
def test_bad_tracking_uris(uri: str) -> None:
    with pytest.raises(ValidationError):
        parse_tracking_uri(uri)


def test_tracking_uri_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "a b#c"
    folder.mkdir()
    assert parse_tracking_uri(tracking_uri_for(folder)).path == folder.resolve()


def test_artifact_uri_round_trip_and_appended_paths(tmp_path: Path) -> None:
    uri = artifact_uri(tmp_path / "w s", "exp_1_abc")
    loc = parse_artifact_uri(uri)
    assert (loc.workspace, loc.run_id, loc.path) == ((tmp_path / "w s").resolve(), "exp_1_abc", "")
    # MLflow appends sub-paths to the URI's path and keeps the query (append_to_uri_path).
    base, _, query = uri.partition("?")
    nested = parse_artifact_uri(f"{base}/model/MLmodel?{query}")
    assert (nested.run_id, nested.path) == ("exp_1_abc", "model/MLmodel")
    assert parse_artifact_uri(nested.uri()) == nested


@pytest.mark.parametrize(
    "uri", ["file:///x", "trainyard-artifacts:/run", "trainyard-artifacts:/?workspace=/x"]
)
def test_bad_artifact_uris(uri: str) -> None:
    with pytest.raises(ValidationError):
        parse_artifact_uri(uri)


def test_status_and_id_mapping() -> None:
    assert [m.mlflow_status(s) for s in ("Queued", "Running", "Completed", "Failed", "Canceled")] == [
        "SCHEDULED", "RUNNING", "FINISHED", "FAILED", "KILLED",
    ]  # fmt: skip
    assert m.to_trainyard_experiment_id("0") is None
    assert m.to_trainyard_experiment_id("12") == 12
    with pytest.raises(ValueError):
        m.to_trainyard_experiment_id("abc")
    assert not m.visible_tag(m.LOGGED_MODEL_TAG + "m-1") and not m.visible_tag(m.RUN_NAME_TAG)
    assert m.visible_tag("mlflow.user")
    assert (m.ms(1.25), m.ms(None)) == (1250, None)


def test_plugin_package_imports_without_mlflow() -> None:
    """``import trainyard.mlflow_plugin`` must never need MLflow (the dev venv has none)."""
    import importlib.util

    import trainyard.mlflow_plugin

    assert trainyard.mlflow_plugin.__doc__
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(ImportError):
            importlib.import_module("trainyard.mlflow_plugin.store")
