"""The model registry (aml-reference §8), on SQLite and PostgreSQL (the ``workspace`` fixture).

Runs are interactive runs whose files are uploaded with ``run.upload_file``: the registry only sees
a run's files, so no script has to execute.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from trainyard.core import Experiment, Model, Run, Workspace
from trainyard.exceptions import (
    AlreadyExistsError,
    ImmutablePropertyError,
    InvalidNameError,
    ModelNotFoundException,
    ModelPathNotFoundException,
    UserErrorException,
)

MODEL_BYTES = b"\x93NUMPY fake weights " * 64


@pytest.fixture
def run(workspace: Workspace, tmp_path: Path) -> Run:
    """A completed run with ``outputs/model.npz``, a folder ``outputs/model/`` and a log file."""
    local = tmp_path / "local"
    (local / "model" / "sub").mkdir(parents=True)
    (local / "model.npz").write_bytes(MODEL_BYTES)
    (local / "model" / "weights.bin").write_bytes(b"w" * 100)
    (local / "model" / "sub" / "config.json").write_text('{"layers": 3}')
    (local / "log.txt").write_text("hello")
    r = Experiment(workspace, "train").start_logging()
    r.upload_file("outputs/model.npz", local / "model.npz")
    r.upload_folder("outputs/model", local / "model")
    r.upload_file("logs/log.txt", local / "log.txt")
    r.complete()
    return r


def _path_of(url: str) -> Path:
    assert url.startswith("file://"), url
    return Path(unquote(urlparse(url).path))


def _registry(ws: Workspace) -> list[str]:
    return sorted(m.id for m in Model.list(ws))


def _staged_model_files(ws: Workspace) -> list[str]:
    return ws.context.artifacts.list("models")


@pytest.fixture
def clean_model_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh cwd and no model-directory variables, for ``Model.get_model_path``."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for var in ("AZUREML_MODEL_DIR", "TRAINYARD_MODEL_DIR"):
        monkeypatch.delenv(var, raising=False)
    return cwd


# ------------------------------------------------------------------------------ registering


def test_register_a_file_from_a_run(workspace: Workspace, run: Run, tmp_path: Path) -> None:
    model = run.register_model(
        model_name="chainer-dnn-mnist",
        model_path="outputs/model.npz",
        tags={"framework": "Chainer", "epochs": 10},
        properties={"accuracy": 0.97},
        model_framework="Chainer",
        model_framework_version="7.8.1",
        description="MLP on MNIST",
    )
    assert (model.name, model.version, model.id) == ("chainer-dnn-mnist", 1, "chainer-dnn-mnist:1")
    assert model.tags == {"framework": "Chainer", "epochs": "10"}
    assert model.properties == {"accuracy": "0.97"}
    assert model.description == "MLP on MNIST"
    assert (model.model_framework, model.model_framework_version) == ("Chainer", "7.8.1")
    assert model.created_time > 0
    assert model.url.startswith("file://")
    # lineage
    assert model.run_id == run.id and model.experiment_name == "train"
    assert model.run == run
    assert list(model.get_sas_urls()) == ["model.npz"]
    out = model.download(tmp_path / "dl")
    assert out == str(tmp_path / "dl" / "model.npz")
    assert Path(out).read_bytes() == MODEL_BYTES
    serialized = model.serialize()
    assert serialized["id"] == "chainer-dnn-mnist:1" and serialized["runId"] == run.id


def test_register_a_folder_from_a_run_keeps_its_layout(
    workspace: Workspace, run: Run, tmp_path: Path
) -> None:
    model = run.register_model("folder-model", model_path="outputs/model/")
    assert sorted(model.get_sas_urls()) == ["model/sub/config.json", "model/weights.bin"]
    # Without the slash it is the same folder, and never the sibling file outputs/model.npz.
    same = run.register_model("folder-model", model_path="outputs/model")
    assert sorted(same.get_sas_urls()) == sorted(model.get_sas_urls())
    out = Path(model.download(tmp_path / "dl"))
    assert out == tmp_path / "dl" / "model"
    assert (out / "weights.bin").read_bytes() == b"w" * 100
    assert (out / "sub" / "config.json").read_text() == '{"layers": 3}'
    assert sorted(
        p.relative_to(tmp_path / "dl").as_posix()
        for p in (tmp_path / "dl").rglob("*")
        if p.is_file()
    ) == [
        "model/sub/config.json",
        "model/weights.bin",
    ]


def test_model_path_defaults_to_the_model_name(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("x")
    r = Experiment(workspace, "defaults").start_logging()
    r.upload_file("mymodel", tmp_path / "m.txt")
    r.complete()
    model = r.register_model("mymodel")
    assert list(model.get_sas_urls()) == ["mymodel"]


def test_backslashes_in_model_path_are_normalised(workspace: Workspace, run: Run) -> None:
    model = run.register_model("bs", model_path="outputs\\model.npz")
    assert list(model.get_sas_urls()) == ["model.npz"]


def test_registering_from_a_run_stores_the_bytes_once(workspace: Workspace, run: Run) -> None:
    run_file = workspace.path / "artifacts" / "runs" / run.id / "outputs" / "model.npz"
    assert run_file.stat().st_nlink == 1
    first = run.register_model("once", model_path="outputs/model.npz")
    second = run.register_model("once", model_path="outputs/model.npz")
    paths = [_path_of(m.get_sas_urls()["model.npz"]) for m in (first, second)]
    for p in paths:
        assert p.is_relative_to((workspace.path / "artifacts").resolve())
        assert os.path.samefile(p, run_file)
    assert run_file.stat().st_nlink == 3  # the run's name plus one per model version
    # Deleting one version drops its reference only; the run's file and the other version stay.
    first.delete()
    assert run_file.stat().st_nlink == 2
    assert run_file.read_bytes() == MODEL_BYTES
    assert paths[1].read_bytes() == MODEL_BYTES


def test_versions_count_from_one_per_name(workspace: Workspace, run: Run) -> None:
    a = [run.register_model("a", model_path="outputs/model.npz").version for _ in range(3)]
    b = run.register_model("b", model_path="outputs/model.npz").version
    assert a == [1, 2, 3] and b == 1
    assert _registry(workspace) == ["a:1", "a:2", "a:3", "b:1"]


def test_a_deleted_version_is_never_reused(workspace: Workspace, run: Run) -> None:
    for _ in range(2):
        run.register_model("d", model_path="outputs/model.npz")
    Model(workspace, "d", version=2).delete()
    with pytest.raises(ModelNotFoundException):
        Model(workspace, "d", version=2)
    assert Model(workspace, "d").version == 1  # latest of what is left
    assert run.register_model("d", model_path="outputs/model.npz").version == 3
    Model(workspace, "d", version=1).delete()
    Model(workspace, "d", version=3).delete()
    assert Model.list(workspace, name="d") == []
    assert run.register_model("d", model_path="outputs/model.npz").version == 4


def test_register_local_file_and_folder(workspace: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "clf.pkl"
    f.write_bytes(b"pickle")
    m = Model.register(workspace, model_path=str(f), model_name="clf", tags={"k": "v"})
    assert m.id == "clf:1" and m.run_id is None and m.experiment_name is None and m.run is None
    assert list(m.get_sas_urls()) == ["clf.pkl"]
    # The bytes were uploaded: changing the local file does not change the model.
    f.write_bytes(b"changed")
    assert Path(m.download(tmp_path / "out1")).read_bytes() == b"pickle"

    folder = tmp_path / "bundle"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "b.txt").write_text("b")
    (folder / "nested" / "c.txt").write_text("c")
    whole = Model.register(workspace, str(folder), "bundle")
    assert sorted(whole.get_sas_urls()) == ["bundle/a.txt", "bundle/b.txt", "bundle/nested/c.txt"]
    some = Model.register(workspace, str(folder), "bundle", child_paths=["a.txt", "nested/c.txt"])
    assert some.version == 2
    assert sorted(some.get_sas_urls()) == ["bundle/a.txt", "bundle/nested/c.txt"]
    out = Path(some.download(tmp_path / "out2"))
    assert out == tmp_path / "out2" / "bundle"
    assert (out / "nested" / "c.txt").read_text() == "c" and not (out / "b.txt").exists()


# ------------------------------------------------------------------------------ lookups


def test_lookup_by_name_version_and_id(workspace: Workspace, run: Run) -> None:
    for i in range(3):
        run.register_model("m", model_path="outputs/model.npz", tags={"i": i})
    assert Model(workspace, "m").version == 3
    assert Model(workspace, "m", version=1).tags == {"i": "0"}
    assert Model(workspace, id="m:2").tags == {"i": "1"}
    assert Model(workspace, "m", version=1) == Model(workspace, id="m:1")
    assert Model(workspace, id="m").version == 3  # an id without a version is the latest
    assert Model(workspace, "m", version="2").version == 2
    assert workspace.models["m"].version == 3
    with pytest.raises(ModelNotFoundException, match="m:9"):
        Model(workspace, "m", version=9)
    with pytest.raises(ModelNotFoundException):
        Model(workspace, id="m:9")
    with pytest.raises(ModelNotFoundException, match="nobody"):
        Model(workspace, "nobody")
    with pytest.raises(UserErrorException):
        Model(workspace)


def test_list_filters_are_anded(workspace: Workspace, run: Run, tmp_path: Path) -> None:
    run.register_model(
        "x",
        model_path="outputs/model.npz",
        tags={"stage": "dev", "team": "a"},
        properties={"acc": "0.9"},
    )
    run.register_model("x", model_path="outputs/model.npz", tags={"stage": "prod"})
    run.register_model(
        "y",
        model_path="outputs/model.npz",
        tags={"stage": "prod", "team": "b"},
        properties={"acc": "0.8"},
    )
    (tmp_path / "f").write_text("f")
    Model.register(workspace, str(tmp_path / "f"), "z", tags={"stage": "prod"})

    def ids(**kw: object) -> list[str]:
        return sorted(m.id for m in Model.list(workspace, **kw))

    assert ids() == ["x:1", "x:2", "y:1", "z:1"]
    assert ids(name="x") == ["x:1", "x:2"]
    assert ids(tags=[["stage", "prod"]]) == ["x:2", "y:1", "z:1"]
    assert ids(tags=["team"]) == ["x:1", "y:1"]
    assert ids(tags=[["stage", "prod"], "team"]) == ["y:1"]
    assert ids(properties=["acc"]) == ["x:1", "y:1"]
    assert ids(properties=[["acc", "0.8"]]) == ["y:1"]
    assert ids(run_id=run.id) == ["x:1", "x:2", "y:1"]
    assert ids(run_id=run.id, tags=[["stage", "prod"]]) == ["x:2", "y:1"]
    assert ids(latest=True) == ["x:2", "y:1", "z:1"]
    assert ids(name="x", latest=True) == ["x:2"]
    assert ids(tags=[["stage", "dev"]], latest=True) == ["x:1"]
    assert ids(name="nothing") == []
    assert sorted(workspace.models) == ["x", "y", "z"]
    assert {n: m.version for n, m in workspace.models.items()} == {"x": 2, "y": 1, "z": 1}
    assert Model(workspace, tags=[["team", "b"]]).id == "y:1"
    assert Model(workspace, run_id=run.id, tags=["team"]).id in {"x:1", "y:1"}


def test_ws_models_is_empty_before_any_registration(workspace: Workspace) -> None:
    assert workspace.models == {}
    assert Model.list(workspace) == []


# ------------------------------------------------------------------------------ tags, properties


def test_tags_are_mutable(workspace: Workspace, run: Run) -> None:
    m = run.register_model("t", model_path="outputs/model.npz", tags={"a": "1", "b": "2"})
    m.add_tags({"c": 3, "a": "one"})
    assert m.tags == {"a": "one", "b": "2", "c": "3"}
    m.remove_tags(["b", "not-there"])
    assert m.tags == {"a": "one", "c": "3"}
    m.update(tags={"only": "this"}, description="new")
    assert (m.tags, m.description) == ({"only": "this"}, "new")
    fresh = Model(workspace, "t", version=1)
    assert (fresh.tags, fresh.description) == ({"only": "this"}, "new")
    m.update(description="again")  # tags left alone when not given
    assert Model(workspace, "t").tags == {"only": "this"}


def test_properties_are_add_only(workspace: Workspace, run: Run) -> None:
    m = run.register_model("p", model_path="outputs/model.npz", properties={"acc": "0.9"})
    m.add_properties({"loss": 0.1})
    assert m.properties == {"acc": "0.9", "loss": "0.1"}
    m.add_properties({"acc": "0.9"})  # the same value again is not a change
    with pytest.raises(ImmutablePropertyError, match="acc"):
        m.add_properties({"acc": "0.95", "new": "x"})
    assert Model(workspace, "p").properties == {
        "acc": "0.9",
        "loss": "0.1",
    }  # nothing of the call stuck


# ------------------------------------------------------------------------------ download, paths


def test_download_refuses_to_overwrite_without_exist_ok(
    workspace: Workspace, run: Run, tmp_path: Path
) -> None:
    m = run.register_model("dl", model_path="outputs/model.npz")
    target = tmp_path / "t"
    target.mkdir()
    (target / "model.npz").write_bytes(b"mine")
    with pytest.raises(AlreadyExistsError, match="exist_ok"):
        m.download(target)
    assert (target / "model.npz").read_bytes() == b"mine"
    assert m.download(target, exist_ok=True) == str(target / "model.npz")
    assert (target / "model.npz").read_bytes() == MODEL_BYTES


def test_download_onto_a_file_is_an_error(workspace: Workspace, run: Run, tmp_path: Path) -> None:
    m = run.register_model("dl", model_path="outputs/model.npz")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserErrorException, match="not a folder"):
        m.download(tmp_path / "afile", exist_ok=True)


@pytest.mark.parametrize("cache", ["trainyard-models", "azureml-models"])
def test_get_model_path_finds_the_local_cache(cache: str, clean_model_dirs: Path) -> None:
    for version in (1, 2):
        folder = clean_model_dirs / cache / "mnist" / str(version)
        folder.mkdir(parents=True)
        (folder / "model.npz").write_text(str(version))
    assert Model.get_model_path("mnist") == str(
        clean_model_dirs / cache / "mnist" / "2" / "model.npz"
    )
    assert Model.get_model_path("mnist", version=1) == str(
        clean_model_dirs / cache / "mnist" / "1" / "model.npz"
    )
    # A version folder holding several entries is returned as the folder.
    (clean_model_dirs / cache / "mnist" / "2" / "extra.txt").write_text("x")
    assert Model.get_model_path("mnist", version=2) == str(clean_model_dirs / cache / "mnist" / "2")


def test_get_model_path_prefers_trainyard_models(clean_model_dirs: Path) -> None:
    for cache in ("azureml-models", "trainyard-models"):
        folder = clean_model_dirs / cache / "m" / "1"
        folder.mkdir(parents=True)
        (folder / "w.bin").write_text(cache)
    assert Path(Model.get_model_path("m")).read_text() == "trainyard-models"


def test_get_model_path_prefers_the_cache_over_a_same_named_folder(clean_model_dirs: Path) -> None:
    """v1 looks in the model cache first and only then at ``./<name>``."""
    (clean_model_dirs / "mnist").mkdir()
    (clean_model_dirs / "mnist" / "train.log").write_text("not the model")
    cached = clean_model_dirs / "trainyard-models" / "mnist" / "1"
    cached.mkdir(parents=True)
    (cached / "model.npz").write_text("model")
    assert Model.get_model_path("mnist") == str(cached / "model.npz")
    # Without a cache entry, ./<name> is the answer.
    (clean_model_dirs / "other").mkdir()
    assert Model.get_model_path("other") == str(clean_model_dirs / "other")


def test_get_model_path_under_the_model_dir_variable(
    clean_model_dirs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "deployed"
    (base / "azureml-models" / "m" / "4").mkdir(parents=True)
    (base / "azureml-models" / "m" / "4" / "model.pt").write_text("x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(base))
    assert Model.get_model_path("m") == str(base / "azureml-models" / "m" / "4" / "model.pt")


@pytest.mark.parametrize("var", ["AZUREML_MODEL_DIR", "TRAINYARD_MODEL_DIR"])
def test_get_model_path_in_a_service_of_one_model(
    clean_model_dirs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    """A service of one model points the variable at ``<root>/<name>/<version>`` (v1's layout):
    that model, and any other under the same root, resolve by name."""
    root = tmp_path / "gen" / "trainyard-models"
    for name, version in (("m", "2"), ("n", "1")):
        (root / name / version).mkdir(parents=True)
        (root / name / version / "model.pt").write_text(name)
    monkeypatch.setenv(var, str(root / "m" / "2"))
    assert Model.get_model_path("m") == str(root / "m" / "2" / "model.pt")
    assert Model.get_model_path("m", version=2) == str(root / "m" / "2" / "model.pt")
    assert Model.get_model_path("n") == str(root / "n" / "1" / "model.pt")
    with pytest.raises(ModelNotFoundException):
        Model.get_model_path("m", version=3)


def test_get_model_path_downloads_with_a_workspace(
    workspace: Workspace, run: Run, clean_model_dirs: Path
) -> None:
    with pytest.raises(ModelNotFoundException, match="_workspace"):
        Model.get_model_path("gp")
    run.register_model("gp", model_path="outputs/model.npz")
    run.register_model("gp", model_path="outputs/model/")
    path = Model.get_model_path("gp", _workspace=workspace)
    assert path == str(clean_model_dirs / "trainyard-models" / "gp" / "2" / "model")
    assert (Path(path) / "weights.bin").is_file()
    path1 = Model.get_model_path("gp", version=1, _workspace=workspace)
    assert Path(path1).read_bytes() == MODEL_BYTES
    # Now cached: found without the workspace.
    assert Model.get_model_path("gp", version=1) == path1


# ------------------------------------------------------------------------------ bad inputs


def test_missing_model_path_lists_the_runs_files(workspace: Workspace, run: Run) -> None:
    with pytest.raises(ModelPathNotFoundException) as info:
        run.register_model("m", model_path="outputs/nope.npz")
    message = str(info.value)
    assert "Could not locate the provided model_path outputs/nope.npz" in message
    assert "outputs/model.npz" in message and "logs/log.txt" in message
    # A prefix of a file name is not a folder of the model.
    with pytest.raises(ModelPathNotFoundException):
        run.register_model("m", model_path="outputs/mod")
    assert _registry(workspace) == [] and _staged_model_files(workspace) == []


@pytest.mark.parametrize(
    "name", ["", "-lead", "has space", "slash/name", "a" * 256, "ünïcode", ".hidden"]
)
def test_illegal_model_names(workspace: Workspace, run: Run, tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidNameError):
        run.register_model(name, model_path="outputs/model.npz")
    (tmp_path / "f").write_text("f")
    with pytest.raises(InvalidNameError):
        Model.register(workspace, str(tmp_path / "f"), name)
    assert _registry(workspace) == [] and _staged_model_files(workspace) == []


def test_legal_model_names(workspace: Workspace, run: Run) -> None:
    for name in ("a", "A.b_c-d", "9lives", "x" * 255):
        assert run.register_model(name, model_path="outputs/model.npz").id == f"{name}:1"


@pytest.mark.parametrize("path", ["../outputs/model.npz", "/etc/passwd", "outputs/../../x"])
def test_unsafe_model_paths_are_rejected(workspace: Workspace, run: Run, path: str) -> None:
    with pytest.raises(UserErrorException):
        run.register_model("m", model_path=path)
    assert _registry(workspace) == [] and _staged_model_files(workspace) == []


def test_bad_local_registrations_leave_nothing(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ModelPathNotFoundException):
        Model.register(workspace, str(tmp_path / "missing"), "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPathNotFoundException, match="no files"):
        Model.register(workspace, str(tmp_path / "empty"), "m")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a").write_text("a")
    with pytest.raises(ModelPathNotFoundException, match="b"):
        Model.register(workspace, str(tmp_path / "dir"), "m", child_paths=["a", "b"])
    with pytest.raises(UserErrorException):
        Model.register(workspace, str(tmp_path / "dir"), "m", tags=["not", "a", "dict"])
    assert _registry(workspace) == [] and _staged_model_files(workspace) == []


def test_operations_on_a_deleted_version(workspace: Workspace, run: Run) -> None:
    m = run.register_model("gone", model_path="outputs/model.npz")
    m.delete()
    with pytest.raises(ModelNotFoundException):
        m.add_tags({"a": "b"})
    with pytest.raises(ModelNotFoundException):
        m.delete()
    assert workspace.models == {}
