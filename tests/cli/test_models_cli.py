"""``trainyard models list|show|download`` on models registered through the Python API."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from trainyard.cli.models import parse_model_ref
from trainyard.core.experiment import Experiment
from trainyard.core.model import Model
from trainyard.core.workspace import Workspace
from trainyard.exceptions import ValidationError

if TYPE_CHECKING:
    from conftest import CliRun


@dataclass(frozen=True)
class Registry:
    ws_path: Path
    run_id: str


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """``mnist`` v1 (a folder, from local files) and v2 (a file, from a run), ``other`` v1."""
    root = tmp_path_factory.mktemp("models-cli")
    ws = Workspace.create("modelws", path=root / "ws")
    folder = root / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01\x02")
    (folder / "sub" / "config.json").write_text('{"layers": 3}')
    Model.register(ws, folder, "mnist", tags={"stage": "dev"}, description="first try")
    run = Experiment(ws, "train").start_logging()
    run.upload_file("outputs/model.npz", io.BytesIO(b"npz-bytes"))
    run.complete()
    run.register_model(
        "mnist",
        model_path="outputs/model.npz",
        tags={"stage": "prod"},
        properties={"acc": "0.97"},
        model_framework="Chainer",
        model_framework_version="7.8.1",
    )
    single = root / "other.txt"
    single.write_text("other")
    Model.register(ws, single, "other")
    return Registry(ws_path=ws.path, run_id=run.id)


@pytest.fixture
def ty(cli: CliRun, registry: Registry) -> CliRun:
    """The console script on the registry's workspace."""

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return cli(*args, cwd=cwd, env={"TRAINYARD_WORKSPACE": str(registry.ws_path)})

    return run


def test_parse_model_ref() -> None:
    assert parse_model_ref("mnist") == ("mnist", None)
    assert parse_model_ref("mnist:12") == ("mnist", 12)
    for bad in ("mnist:", "mnist:0", "mnist:x", "mnist:-1"):
        with pytest.raises(ValidationError):
            parse_model_ref(bad)


def test_models_list(ty: CliRun, registry: Registry) -> None:
    rows = json.loads(ty("models", "list", "--json").stdout)
    assert sorted(r["id"] for r in rows) == ["mnist:1", "mnist:2", "other:1"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["mnist:2"]["runId"] == registry.run_id
    assert by_id["mnist:2"]["experimentName"] == "train"
    assert by_id["mnist:2"]["modelFramework"] == "Chainer"
    assert by_id["mnist:1"]["tags"] == {"stage": "dev"}
    assert by_id["mnist:1"]["createdTime"].endswith("Z")
    named = json.loads(ty("models", "list", "--name", "mnist", "--json").stdout)
    assert sorted(r["version"] for r in named) == [1, 2]
    latest = json.loads(ty("models", "list", "--latest", "--json").stdout)
    assert sorted(r["id"] for r in latest) == ["mnist:2", "other:1"]
    table = ty("models", "list")
    assert table.returncode == 0
    assert "mnist" in table.stdout and registry.run_id in table.stdout
    assert "stage=prod" in table.stdout
    none = ty("models", "list", "--name", "nothing")
    assert none.returncode == 0 and "No registered models named nothing" in none.stdout


def test_models_show(ty: CliRun, registry: Registry) -> None:
    latest = json.loads(ty("models", "show", "mnist", "--json").stdout)
    assert latest["id"] == "mnist:2"
    assert latest["properties"] == {"acc": "0.97"}
    assert latest["files"] == ["model.npz"]
    first = json.loads(ty("models", "show", "mnist:1", "--json").stdout)
    assert first["description"] == "first try"
    assert sorted(first["files"]) == ["model/sub/config.json", "model/weights.bin"]
    table = ty("models", "show", "mnist:2")
    assert table.returncode == 0
    for text in ("Model mnist:2", "Chainer 7.8.1", registry.run_id, "acc: 0.97", "model.npz"):
        assert text in table.stdout


def test_models_show_errors(ty: CliRun, clean_error: Callable[..., None]) -> None:
    missing = ty("models", "show", "mnist:7")
    clean_error(missing, "MODEL_NOT_FOUND")
    assert "Its versions: 1, 2." in missing.stderr
    clean_error(ty("models", "show", "nothing"), "MODEL_NOT_FOUND")
    clean_error(ty("models", "show", "mnist:x"), "INVALID_VALUE")
    as_json = ty("models", "show", "nothing", "--json")
    assert json.loads(as_json.stdout)["error"]["code"] == "MODEL_NOT_FOUND"


def test_models_download(ty: CliRun, tmp_path: Path, clean_error: Callable[..., None]) -> None:
    out = tmp_path / "dl"
    proc = ty("models", "download", "mnist:1", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str((out / "model").resolve())
    assert (out / "model" / "weights.bin").read_bytes() == b"\x00\x01\x02"
    assert (out / "model" / "sub" / "config.json").read_text() == '{"layers": 3}'
    again = ty("models", "download", "mnist:1", "--output", str(out))
    clean_error(again, "ALREADY_EXISTS")
    assert "--exist-ok" in again.stderr
    (out / "model" / "weights.bin").write_bytes(b"changed")
    over = ty("models", "download", "mnist:1", "-o", str(out), "--exist-ok", "--json")
    assert over.returncode == 0, over.stderr
    data = json.loads(over.stdout)
    assert data["id"] == "mnist:1"
    assert len(data["files"]) == 2
    assert (out / "model" / "weights.bin").read_bytes() == b"\x00\x01\x02"
    # the latest version, from a run's outputs/model.npz, lands as DIR/model.npz (v1 layout);
    # the default folder is the current one
    here = tmp_path / "here"
    here.mkdir()
    latest = ty("models", "download", "mnist", cwd=here)
    assert latest.returncode == 0, latest.stderr
    assert (here / "model.npz").read_bytes() == b"npz-bytes"
    clean_error(ty("models", "download", "nothing", "-o", str(out)), "MODEL_NOT_FOUND")


def test_models_download_name_dir_and_version(
    ty: CliRun, tmp_path: Path, clean_error: Callable[..., None]
) -> None:
    """``models download NAME DIR [--version N]``: DIR as a positional, the version as an option."""
    first = tmp_path / "v1"
    proc = ty("models", "download", "mnist", str(first), "--version", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["id"] == "mnist:1" and data["path"] == str((first / "model").resolve())
    assert (first / "model" / "weights.bin").read_bytes() == b"\x00\x01\x02"
    latest = tmp_path / "latest"
    assert ty("models", "download", "mnist", str(latest)).returncode == 0
    assert (latest / "model.npz").read_bytes() == b"npz-bytes"
    shown = json.loads(ty("models", "show", "mnist", "--version", "1", "--json").stdout)
    assert shown["id"] == "mnist:1"
    clean_error(
        ty("models", "download", "mnist", str(tmp_path / "x"), "--version", "9"), "MODEL_NOT_FOUND"
    )
    both = ty("models", "download", "mnist:2", str(tmp_path / "y"), "--version", "1")
    assert both.returncode == 2 and "--version" in both.stderr
    clash = ty("models", "download", "mnist", str(tmp_path / "a"), "-o", str(tmp_path / "b"))
    assert clash.returncode == 2


def test_models_register_from_a_file_and_from_a_run(
    ty: CliRun, registry: Registry, tmp_path: Path, clean_error: Callable[..., None]
) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w")
    out = ty("models", "register", "cli-model", str(weights), "-t", "stage=dev", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["id"] == "cli-model:1" and data["tags"] == {"stage": "dev"}
    again = ty("models", "register", "cli-model", "outputs/model.npz", "--run", registry.run_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "cli-model:2"
    model = Model(Workspace(path=registry.ws_path), "cli-model", version=2)
    assert model.run_id == registry.run_id
    clean_error(ty("models", "register", "cli-model", str(tmp_path / "nope")), "MODEL_PATH")
    bad = ty("models", "register", "cli-model", str(weights), "-t", "novalue")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
