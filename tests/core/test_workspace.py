"""Workspace: create/get/open, config discovery (v1's from_config), attributes and dict views."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainyard._store.sql.store import SqlTrackingStore
from trainyard.core.experiment import Experiment
from trainyard.core.workspace import Workspace, find_config, normalize_store_url
from trainyard.exceptions import (
    AlreadyExistsError,
    ConfigError,
    InvalidNameError,
    StoreError,
    UserErrorException,
    WorkspaceException,
    WorkspaceNotFound,
)
from trainyard.settings import load_settings
from trainyard.testing.fixtures import unique_name

CONFIG_DIRS = (".trainyard", ".azureml", "aml_config", "")


def _config(folder: Path, ws: Workspace, file_name: str = "config.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name
    target.write_text(
        json.dumps({"workspace_name": ws.name, "workspace_path": str(ws.path), "extra": "ignored"})
    )
    return target


def _no_stray_configs_above(path: Path) -> None:
    for parent in path.resolve().parents:
        for sub in CONFIG_DIRS:
            for name in ("config.json", "project.json"):
                if (parent / sub / name).is_file():
                    pytest.skip(
                        f"a stray {parent / sub / name} would be found by the upward search"
                    )


# -- create / open --------------------------------------------------------------------------------


def test_create_in_default_root_and_open_by_name() -> None:
    name = unique_name("ws")
    ws = Workspace.create(name, subscription_id="sub", resource_group="rg", location="westeurope")
    assert ws.path == (load_settings().home / "workspaces" / name).resolve()
    assert (ws.name, ws.subscription_id, ws.resource_group, ws.location) == (
        name,
        "sub",
        "rg",
        "westeurope",
    )
    assert ws.path.is_relative_to(Path(os.environ["TRAINYARD_HOME"]).resolve())
    again = Workspace("sub", "rg", name)
    assert again == ws and again.location == "westeurope"
    assert Workspace.get(name) == ws
    assert Workspace.get(name, path=ws.path) == ws


def test_attributes_default_to_local(tmp_path: Path) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    assert (ws.location, ws.subscription_id, ws.resource_group) == ("local", "local", "local")
    assert ws.tracking_uri == f"sqlite:///{ws.path / 'trainyard.db'}"
    details = ws.get_details()
    assert details["name"] == ws.name and details["location"] == "local"
    assert details["subscriptionId"] == "local" and details["resourceGroup"] == "local"
    assert details["path"] == str(ws.path)
    assert (ws.path / "workspace.json").is_file() and (ws.path / "artifacts").is_dir()


def test_missing_workspace(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFound):
        Workspace.get(unique_name("nope"))
    with pytest.raises(WorkspaceNotFound):
        Workspace(path=tmp_path)
    with pytest.raises(UserErrorException):
        Workspace()


def test_exist_ok(tmp_path: Path) -> None:
    name = unique_name("ws")
    ws = Workspace.create(name, path=tmp_path / "ws")
    with pytest.raises(AlreadyExistsError):
        Workspace.create(name, path=tmp_path / "ws")
    assert Workspace.create(name, path=tmp_path / "ws", exist_ok=True) == ws
    with pytest.raises(WorkspaceException) as info:
        Workspace.create("someone-else", path=tmp_path / "ws", exist_ok=True)
    assert name in str(info.value)
    with pytest.raises(WorkspaceException):
        Workspace(workspace_name="someone-else", path=tmp_path / "ws")


def test_workspace_path_that_is_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    with pytest.raises(WorkspaceException) as info:
        Workspace.create("ws", path=a_file)
    assert str(a_file) in str(info.value)
    with pytest.raises(WorkspaceException):
        Workspace(path=a_file)
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("bad", ["", "-ws", "a b", "a/b", "x" * 256, "ws\n"])
def test_bad_workspace_names(bad: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError):
        Workspace.create(bad, path=tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_corrupt_workspace_json(tmp_path: Path) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    meta = ws.path / "workspace.json"
    meta.write_text("{broken")
    with pytest.raises(ConfigError) as info:
        Workspace(path=ws.path)
    assert str(meta) in str(info.value) and "not valid JSON" in str(info.value)


def test_unreachable_store_leaves_no_half_workspace(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Workspace.create(
            "ws", path=tmp_path / "ws", tracking_uri="postgresql://nobody@127.0.0.1:1/x"
        )
    assert not (tmp_path / "ws" / "workspace.json").exists()
    with pytest.raises(StoreError):
        Workspace.create(
            "ws2", path=tmp_path / "ws2", tracking_uri=f"sqlite:///{tmp_path}/no/such/t.db"
        )


def test_normalize_store_url() -> None:
    assert normalize_store_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_store_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_store_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_store_url("sqlite:///x.db") == "sqlite:///x.db"


# -- PostgreSQL-backed workspace ------------------------------------------------------------------


@pytest.mark.postgres
def test_workspace_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    name = unique_name("ws")
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    ws = Workspace.create(name, path=tmp_path / "ws", tracking_uri=plain)
    assert ws.tracking_uri == postgres_url
    assert not (ws.path / "trainyard.db").exists()
    assert json.loads((ws.path / "workspace.json").read_text())["tracking_uri"] == postgres_url
    Experiment(ws, "in-postgres")
    store = SqlTrackingStore(postgres_url)
    info = store.get_workspace(name)
    assert [e.name for e in store.list_experiments(info.id)] == ["in-postgres"]
    ws.write_config(tmp_path / "project")
    reopened = Workspace.from_config(tmp_path / "project")
    assert reopened == ws and list(reopened.experiments) == ["in-postgres"]


def test_workspace_fixture_on_both_backends(workspace: Workspace) -> None:
    exp = Experiment(workspace, "fixture")
    assert list(workspace.experiments) == ["fixture"]
    assert workspace.experiments["fixture"] == exp


# -- config files ---------------------------------------------------------------------------------


def test_write_config_and_from_config(tmp_path: Path) -> None:
    ws = Workspace.create(
        unique_name("ws"), path=tmp_path / "ws", subscription_id="s", resource_group="r"
    )
    written = ws.write_config(tmp_path / "project")
    assert written == tmp_path / "project" / ".trainyard" / "config.json"
    data = json.loads(written.read_text())
    assert {k: data[k] for k in ("subscription_id", "resource_group", "workspace_name")} == {
        "subscription_id": "s",
        "resource_group": "r",
        "workspace_name": ws.name,
    }
    assert Workspace.from_config(tmp_path / "project") == ws
    assert Workspace.from_config(written) == ws
    other = ws.write_config(tmp_path / "project", file_name="other.json")
    assert other.name == "other.json"
    assert Workspace.from_config(tmp_path / "project", _file_name="other.json") == ws


def test_write_config_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    (tmp_path / "proj" / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "proj")
    assert ws.write_config() == tmp_path / "proj" / ".trainyard" / "config.json"
    monkeypatch.chdir(tmp_path / "proj" / "src" / "deep")
    assert Workspace.from_config() == ws  # walks up from the cwd


@pytest.fixture(scope="module")
def four_workspaces(tmp_path_factory: pytest.TempPathFactory) -> list[Workspace]:
    root = tmp_path_factory.mktemp("four")
    return [Workspace.create(unique_name(f"ws{i}"), path=root / f"ws{i}") for i in range(4)]


def test_discovery_order_within_a_folder(tmp_path: Path, four_workspaces: list[Workspace]) -> None:
    project = tmp_path / "project"
    files = [
        _config(project / sub, ws) for sub, ws in zip(CONFIG_DIRS, four_workspaces, strict=True)
    ]
    for expected, config in zip(four_workspaces, files, strict=True):
        assert find_config(project) == config
        assert Workspace.from_config(project) == expected
        config.unlink()


def test_config_json_before_project_json(tmp_path: Path, four_workspaces: list[Workspace]) -> None:
    a, b = four_workspaces[:2]
    legacy = _config(tmp_path / ".azureml", b, "project.json")
    current = _config(tmp_path / ".azureml", a, "config.json")
    assert Workspace.from_config(tmp_path) == a
    current.unlink()
    assert Workspace.from_config(tmp_path) == b
    assert find_config(tmp_path) == legacy


def test_walks_up_and_nearest_level_wins(tmp_path: Path, four_workspaces: list[Workspace]) -> None:
    a, b = four_workspaces[:2]
    _config(tmp_path / ".trainyard", a)
    deep = tmp_path / "x" / "y" / "z"
    deep.mkdir(parents=True)
    assert Workspace.from_config(deep) == a
    _config(tmp_path / "x" / "aml_config", b)  # lower priority folder, but one level nearer
    assert Workspace.from_config(deep) == b
    assert Workspace.from_config(tmp_path) == a


def test_path_may_be_the_config_file(tmp_path: Path, four_workspaces: list[Workspace]) -> None:
    config = _config(tmp_path / "anywhere", four_workspaces[2], "whatever.json")
    assert Workspace.from_config(config) == four_workspaces[2]


def test_file_name_override(tmp_path: Path, four_workspaces: list[Workspace]) -> None:
    _config(tmp_path / ".azureml", four_workspaces[0])
    _config(tmp_path / "aml_config", four_workspaces[3], "custom.json")
    assert Workspace.from_config(tmp_path, _file_name="custom.json") == four_workspaces[3]
    assert Workspace.from_config(tmp_path) == four_workspaces[0]


def test_v1_config_opens_the_default_root_workspace(tmp_path: Path) -> None:
    name = unique_name("ws")
    ws = Workspace.create(name)
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(
        json.dumps({"subscription_id": "x", "resource_group": "y", "workspace_name": name})
    )
    assert Workspace.from_config(tmp_path) == ws


def test_relative_workspace_path_is_relative_to_the_config(tmp_path: Path) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    (tmp_path / ".trainyard").mkdir()
    (tmp_path / ".trainyard" / "config.json").write_text(json.dumps({"workspace_path": "../ws"}))
    assert Workspace.from_config(tmp_path) == ws


def test_no_config_anywhere(tmp_path: Path) -> None:
    start = tmp_path / "empty" / "deeper"
    start.mkdir(parents=True)
    _no_stray_configs_above(start)
    with pytest.raises(UserErrorException) as info:
        Workspace.from_config(start)
    assert "config.json" in str(info.value) and str(start) in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('"text"', "must hold a JSON object"),
        ("{}", "names no workspace"),
        ('{"subscription_id": "s"}', "names no workspace"),
    ],
)
def test_corrupt_config_json(tmp_path: Path, content: str, problem: str) -> None:
    config = tmp_path / ".azureml" / "config.json"
    config.parent.mkdir()
    config.write_text(content)
    with pytest.raises(ConfigError) as info:
        Workspace.from_config(tmp_path)
    message = str(info.value)
    assert str(config) in message and problem in message
    assert info.value.details["file"] == str(config)


# -- dict views -----------------------------------------------------------------------------------


def test_experiments_view(workspace: Workspace) -> None:
    assert workspace.experiments == {}
    a = Experiment(workspace, "a")
    Experiment(workspace, "b").archive()
    view = workspace.experiments
    assert list(view) == ["a"] and view["a"] == a and isinstance(view["a"], Experiment)


def test_compute_targets_view(tmp_path: Path) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    try:
        targets = ws.compute_targets
    except ImportError as err:
        pytest.skip(f"trainyard.core.compute is not available yet: {err}")
    assert "local" in targets


def test_models_and_webservices_start_empty(tmp_path: Path) -> None:
    ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
    assert ws.models == {}
    assert ws.webservices == {}
