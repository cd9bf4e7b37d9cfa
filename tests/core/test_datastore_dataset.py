"""Datastores and file datasets (aml-reference §10): upload, references, ``Dataset.File.from_files``,
``as_mount()`` / ``as_download()`` resolved to a local folder inside a real run, ``download``, and
path safety.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from trainyard.core import (
    Dataset,
    Datastore,
    Environment,
    Experiment,
    ScriptRun,
    ScriptRunConfig,
    Workspace,
)
from trainyard.core.datastore import DataReference
from trainyard.exceptions import AlreadyExistsError, PathSafetyError, UserErrorException
from trainyard.testing.fixtures import unique_name


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.05")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.2")
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A local folder: two .gz files, a .txt and a nested file."""
    root = tmp_path / "data"
    (root / "nested").mkdir(parents=True)
    (root / "a.gz").write_bytes(b"A" * 10)
    (root / "b.gz").write_bytes(b"B" * 20)
    (root / "readme.txt").write_text("read me")
    (root / "nested" / "c.gz").write_bytes(b"C" * 30)
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------ datastores


def test_default_datastore(ws: Workspace) -> None:
    ds = ws.get_default_datastore()
    assert isinstance(ds, Datastore) and ds.name == "workspaceblobstore"
    assert list(ws.datastores) == ["workspaceblobstore"]
    assert Datastore.get(ws, "workspaceblobstore").name == ds.name
    assert Datastore.get_default(ws).name == ds.name
    assert ds.list_files() == []


def test_upload_a_folder(ws: Workspace, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = ws.get_default_datastore()
    ref = ds.upload(src_dir=str(data), target_path="mnist", overwrite=False, show_progress=True)
    assert isinstance(ref, DataReference) and ref.path_on_datastore == "mnist"
    assert "Uploaded 4 files to datastore workspaceblobstore" in capsys.readouterr().out
    assert sorted(ds.list_files("mnist")) == [
        "mnist/a.gz",
        "mnist/b.gz",
        "mnist/nested/c.gz",
        "mnist/readme.txt",
    ]
    ds.upload(src_dir=str(data), show_progress=False)  # no target_path: the store's root
    assert capsys.readouterr().out == ""
    assert "a.gz" in ds.list_files()


def test_upload_without_overwrite_refuses_clashes(ws: Workspace, data: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="d", show_progress=False)
    (data / "a.gz").write_bytes(b"new")
    (data / "z.gz").write_bytes(b"z")
    with pytest.raises(AlreadyExistsError, match="overwrite=True"):
        ds.upload(str(data), target_path="d", overwrite=False, show_progress=False)
    # Nothing of the refused call was written, not even the new file.
    assert "d/z.gz" not in ds.list_files("d")
    assert Dataset.File.from_files((ds, "d/a.gz")).download(Path(data.parent / "chk"))
    assert (data.parent / "chk" / "a.gz").read_bytes() == b"A" * 10
    ds.upload(str(data), target_path="d", overwrite=True, show_progress=False)
    out = data.parent / "chk2"
    Dataset.File.from_files((ds, "d/a.gz")).download(out)
    assert (out / "a.gz").read_bytes() == b"new"
    assert "d/z.gz" in ds.list_files("d")


def test_upload_a_missing_folder(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(UserErrorException, match="not a folder"):
        ws.get_default_datastore().upload(str(tmp_path / "nope"), show_progress=False)


def test_upload_files(ws: Workspace, data: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload_files(
        [str(data / "a.gz"), str(data / "nested" / "c.gz")], target_path="flat", show_progress=False
    )
    assert sorted(ds.list_files("flat")) == ["flat/a.gz", "flat/c.gz"]
    ds.upload_files(
        [str(data / "a.gz"), str(data / "nested" / "c.gz")],
        relative_root=str(data),
        target_path="kept",
        show_progress=False,
    )
    assert sorted(ds.list_files("kept")) == ["kept/a.gz", "kept/nested/c.gz"]
    with pytest.raises(AlreadyExistsError):
        ds.upload_files([str(data / "a.gz")], target_path="flat", show_progress=False)
    with pytest.raises(UserErrorException, match="No file"):
        ds.upload_files([str(data / "missing.gz")], show_progress=False)


def test_upload_files_outside_relative_root_is_a_user_error(ws: Workspace, data: Path) -> None:
    ds = ws.get_default_datastore()
    with pytest.raises(UserErrorException, match="relative_root"):
        ds.upload_files(
            [str(data / "a.gz")], relative_root=str(data / "nested"), show_progress=False
        )
    assert ds.list_files() == []


def test_datastore_path_references(ws: Workspace, data: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="mnist", show_progress=False)
    ref = ds.path("mnist")
    assert (ref.datastore.name, ref.path_on_datastore, ref.mode) == (
        "workspaceblobstore",
        "mnist",
        "mount",
    )
    assert ref.as_download().mode == "download" and ref.as_mount().mode == "mount"
    assert str(ref) == "$AZUREML_DATAREFERENCE_workspaceblobstore_mnist"
    dataset = Dataset.File.from_files(ref)
    assert sorted(dataset.to_path()) == ["a.gz", "b.gz", "nested/c.gz", "readme.txt"]


# ------------------------------------------------------------------------------ datasets


def test_from_files_with_a_glob_and_a_folder(ws: Workspace, data: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="mnist", show_progress=False)
    gz = Dataset.File.from_files(path=(ds, "mnist/*.gz"))
    assert {"a.gz", "b.gz"} <= set(gz.to_path()) and "readme.txt" not in gz.to_path()
    folder = Dataset.File.from_files(path=(ds, "mnist"))
    assert sorted(folder.to_path()) == ["a.gz", "b.gz", "nested/c.gz", "readme.txt"]
    assert sorted(Dataset.File.from_files(path=(ds, "mnist/")).to_path()) == sorted(
        folder.to_path()
    )
    one = Dataset.File.from_files(path=(ds, "mnist/readme.txt"))
    assert one.to_path() == ["readme.txt"] and len(one) == 1
    both = Dataset.File.from_files(path=[(ds, "mnist/a.gz"), (ds, "mnist/readme.txt")])
    assert sorted(both.to_path()) == ["a.gz", "readme.txt"]


def test_from_files_errors(ws: Workspace, data: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="mnist", show_progress=False)
    with pytest.raises(UserErrorException, match="matched no files"):
        Dataset.File.from_files(path=(ds, "mnist/*.csv"))
    assert len(Dataset.File.from_files(path=(ds, "mnist/*.csv"), validate=False)) == 0
    with pytest.raises(UserErrorException, match="from_files"):
        Dataset.File.from_files(path="https://example.com/x.gz")
    # A folder name is not a prefix of a longer name.
    with pytest.raises(UserErrorException):
        Dataset.File.from_files(path=(ds, "mnis"))


def test_dataset_download(ws: Workspace, data: Path, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="mnist", show_progress=False)
    dataset = Dataset.File.from_files(path=(ds, "mnist"))
    target = tmp_path / "dl"
    paths = dataset.download(target_path=str(target))
    assert sorted(paths) == sorted(
        str(target / p) for p in ["a.gz", "b.gz", "nested/c.gz", "readme.txt"]
    )
    assert _tree(target) == _tree(data)
    with pytest.raises(AlreadyExistsError, match="overwrite"):
        dataset.download(target_path=str(target))
    assert sorted(dataset.download(target_path=str(target), overwrite=True)) == sorted(paths)
    # Downloaded files are copies: writable, and changing them leaves the datastore alone.
    Path(paths[0]).write_bytes(b"changed")
    again = tmp_path / "again"
    dataset.download(again)
    assert _tree(again) == _tree(data)
    default = dataset.download()  # a new temporary folder
    assert len(default) == 4 and all(os.path.isfile(p) for p in default)


# ------------------------------------------------------------------------------ inside a run

LISTER = textwrap.dedent(
    """
    import argparse, json, os
    p = argparse.ArgumentParser()
    p.add_argument("--mount")
    p.add_argument("--download")
    a = p.parse_args()
    out = {}
    for key in ("mount", "download"):
        folder = getattr(a, key)
        files = {}
        for root, _, names in os.walk(folder):
            for n in names:
                full = os.path.join(root, n)
                files[os.path.relpath(full, folder)] = open(full, "rb").read().decode()
        out[key] = {"folder": folder, "isabs": os.path.isabs(folder), "files": files,
                    "in_cwd": os.path.realpath(folder).startswith(os.path.realpath(os.getcwd())),
                    "writable": bool(os.stat(os.path.join(folder, sorted(files)[0])).st_mode & 0o222)}
    os.makedirs("outputs", exist_ok=True)
    json.dump(out, open("outputs/listing.json", "w"))
    print("LISTED", json.dumps(sorted(out["mount"]["files"])))
    """
)


def _this_python() -> Environment:
    env = Environment("this-python")
    env.python.user_managed_dependencies = True
    return env


def test_mount_and_download_resolve_to_local_folders_in_a_run(
    ws: Workspace, tmp_path: Path
) -> None:
    local = tmp_path / "mnist"
    local.mkdir()
    for name in ("t10k.gz", "train.gz", "SOURCE.md"):
        (local / name).write_text(f"content of {name}")
    ds = ws.get_default_datastore()
    ds.upload(str(local), target_path="mnist", show_progress=False)
    gz = Dataset.File.from_files(path=(ds, "mnist/*.gz"))
    everything = Dataset.File.from_files(path=ds.path("mnist"))

    src = tmp_path / "src"
    src.mkdir()
    (src / "lister.py").write_text(LISTER)
    config = ScriptRunConfig(
        source_directory=str(src),
        script="lister.py",
        arguments=[
            "--mount",
            gz.as_mount(),
            "--download",
            everything.as_download(path_on_compute="inputs/all"),
        ],
        compute_target="local",
        environment=_this_python(),
    )
    run = Experiment(ws, "datasets").submit(config)
    assert isinstance(run, ScriptRun)
    run.wait_for_completion(show_output=False, wait_post_processing=True)
    assert run.get_status() == "Completed"
    args = run.get_details()["runDefinition"]["arguments"]
    assert args[0] == "--mount" and args[1].startswith(
        "$TRAINYARD_DATASET_"
    )  # a token until run time

    out = tmp_path / "listing.json"
    run.download_file("outputs/listing.json", str(out))
    listing = json.loads(out.read_text())
    mount, download = listing["mount"], listing["download"]
    assert mount["files"] == {"t10k.gz": "content of t10k.gz", "train.gz": "content of train.gz"}
    assert download["files"] == {n: f"content of {n}" for n in ("t10k.gz", "train.gz", "SOURCE.md")}
    for placeholder in (mount, download):
        assert placeholder["isabs"] and placeholder["in_cwd"]
        assert not placeholder["folder"].startswith("$")
    assert download["folder"].endswith("/inputs/all")
    assert mount["writable"] is False  # a mount is read-only (no write bit)
    assert download["writable"] is True
    # The mounted bytes were shared read-only: the datastore's files are unchanged and still writable.
    stored = ws.path / "artifacts" / "datastores" / "workspaceblobstore" / "mnist" / "train.gz"
    assert stored.read_text() == "content of train.gz"


def test_a_script_cannot_change_the_datastore_through_a_mount(
    ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("original")
    ds = ws.get_default_datastore()
    ds.upload(str(tmp_path / "d"), target_path="d", show_progress=False)
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            path = os.path.join(sys.argv[1], "x.txt")
            try:
                with open(path, "w") as f:  # works for root (file modes do not stop it)
                    f.write("changed by the script")
                print("WROTE")
            except PermissionError:
                print("REFUSED")
            """
        )
    )
    config = ScriptRunConfig(
        str(src),
        "w.py",
        arguments=[Dataset.File.from_files((ds, "d")).as_mount()],
        environment=_this_python(),
    )
    run = Experiment(ws, "mount-write").submit(config)
    assert isinstance(run, ScriptRun)
    run.wait_for_completion(show_output=False, wait_post_processing=True)
    log = ws.context.artifacts.read_bytes(f"runs/{run.id}/user_logs/std_log.txt").decode()
    assert ("WROTE" in log) == (hasattr(os, "geteuid") and os.geteuid() == 0), log
    out = tmp_path / "check"
    Dataset.File.from_files((ds, "d")).download(out)
    assert (out / "x.txt").read_text() == "original"


def test_dataset_in_estimator_script_params_is_a_placeholder(ws: Workspace, tmp_path: Path) -> None:
    from trainyard.train.estimator import Estimator

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.gz").write_text("x")
    ds = ws.get_default_datastore()
    ds.upload(str(tmp_path / "d"), target_path="d", show_progress=False)
    src = tmp_path / "src"
    src.mkdir()
    (src / "s.py").write_text("import sys, os; print(sorted(os.listdir(sys.argv[2])))\n")
    est = Estimator(
        str(src),
        entry_script="s.py",
        environment_definition=_this_python(),
        script_params={"--data-folder": Dataset.File.from_files((ds, "d/*.gz")).as_mount()},
    )
    run = Experiment(ws, "est-ds").submit(est)
    assert isinstance(run, ScriptRun)
    run.wait_for_completion(show_output=False, wait_post_processing=True)
    log = ws.context.artifacts.read_bytes(f"runs/{run.id}/user_logs/std_log.txt").decode()
    assert "['x.gz']" in log


# ------------------------------------------------------------------------------ path safety


@pytest.mark.parametrize(
    "target", ["../escape", "a/../../escape", "/abs", "a\\..\\..\\b", "%2e%2e/x"]
)
def test_unsafe_target_paths_are_rejected(ws: Workspace, data: Path, target: str) -> None:
    ds = ws.get_default_datastore()
    with pytest.raises(PathSafetyError):
        ds.upload(str(data), target_path=target, show_progress=False)
    with pytest.raises(PathSafetyError):
        ds.upload_files([str(data / "a.gz")], target_path=target, show_progress=False)
    with pytest.raises(PathSafetyError):
        ds.path(target)
    assert ds.list_files() == []
    assert not (ws.path / "escape").exists() and not (ws.path / "artifacts" / "escape").exists()


def test_unsafe_dataset_paths_are_rejected(ws: Workspace, data: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="mnist", show_progress=False)
    dataset = Dataset.File.from_files((ds, "mnist"))
    with pytest.raises(PathSafetyError):
        dataset.as_mount(path_on_compute="../../outside")
    with pytest.raises(PathSafetyError):
        Dataset.File.from_files((ds, "../mnist"))


def test_bad_datastore_names(ws: Workspace) -> None:
    for name in ("../x", "a/b", "with space"):
        with pytest.raises(UserErrorException):
            Datastore(ws, name)
