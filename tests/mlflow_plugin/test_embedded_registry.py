"""The real MLflow client (2.x and 3.x) on an embedded workspace's model registry (the
``mlflow.model_registry_store`` entry point): ``register_model`` + loading back through
``models:/``, the registry's calls (tags, aliases, stages, search, download URI, delete), one model
seen from both sides, and bad input refused with MLflow's codes and nothing written.
(``test_rest_registry.py`` is the team server's twin.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard.core import Experiment, Model

from .conftest import Client

pytestmark = pytest.mark.slow

SKLEARN = """
import numpy as np
from sklearn.linear_model import LogisticRegression
from mlflow.tracking._model_registry.utils import _get_store_registry
store = mlflow.MlflowClient()._get_registry_client().store
mlflow.set_experiment("sk")
X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]] * 5)
y = np.array([0, 1, 0, 1] * 5)
with mlflow.start_run(run_name="fit") as run:
    clf = LogisticRegression(max_iter=50).fit(X, y)
    kw = {"name": "model"} if MAJOR >= 3 else {"artifact_path": "model"}
    mlflow.sklearn.log_model(clf, input_example=X[:2], **kw)
    run_id = run.info.run_id
mv = mlflow.register_model(f"runs:/{run_id}/model", "clf")
mv2 = mlflow.register_model(f"runs:/{run_id}/model", "clf")
c = mlflow.MlflowClient()
c.set_registered_model_alias("clf", "champion", mv.version)
c.set_registered_model_tag("clf", "team", "vision")
c.set_model_version_tag("clf", mv.version, "checked", "yes")
c.update_registered_model("clf", description="a classifier")
c.update_model_version("clf", mv.version, description="first")
staged = c.transition_model_version_stage("clf", mv2.version, "Staging")
loaded = mlflow.pyfunc.load_model("models:/clf/1")
by_alias = mlflow.sklearn.load_model("models:/clf@champion")
rm = c.get_registered_model("clf")
emit({
    "store": type(store).__module__ + "." + type(store).__name__,
    "scheme_known": "trainyard" in _get_store_registry()._registry,
    "run_id": run_id,
    "version": mv.version, "version2": mv2.version, "status": mv.status,
    "predict": [int(p) for p in loaded.predict(X[:4])],
    "alias_predict": [int(p) for p in by_alias.predict(X[:4])],
    "rm_tags": rm.tags, "rm_desc": rm.description,
    "latest": [v.version for v in rm.latest_versions],
    "found": [m.name for m in c.search_registered_models(filter_string="name LIKE 'cl%'")],
    "versions": sorted(v.version for v in c.search_model_versions("name = 'clf'")),
    "by_run": sorted(v.version for v in c.search_model_versions(f"run_id = '{run_id}'")),
    "by_alias": c.get_model_version_by_alias("clf", "champion").version,
    "mv_tags": c.get_model_version("clf", "1").tags,
    "mv_desc": c.get_model_version("clf", "1").description,
    "mv_aliases": list(c.get_model_version("clf", "1").aliases),
    "stage": staged.current_stage,
    "staging": [v.version for v in c.get_latest_versions("clf", stages=["Staging"])],
    "download_uri": c.get_model_version_download_uri("clf", "1"),
})
"""


def test_register_load_and_registry_calls(client: Client) -> None:
    out = client.run(SKLEARN)
    assert out["store"] == "trainyard.mlflow_plugin.registry.TrainyardRegistryStore"
    assert out["scheme_known"]
    assert (out["version"], out["version2"], out["status"]) == ("1", "2", "READY")
    assert out["predict"] == [0, 1, 0, 1] and out["alias_predict"] == [0, 1, 0, 1]
    assert out["rm_tags"] == {"team": "vision"} and out["rm_desc"] == "a classifier"
    assert out["latest"] == ["2"] and out["found"] == ["clf"]
    assert out["versions"] == ["1", "2"] and out["by_run"] == ["1", "2"]
    assert out["by_alias"] == "1" and out["mv_aliases"] == ["champion"]
    assert out["mv_tags"] == {"checked": "yes"} and out["mv_desc"] == "first"
    assert out["stage"] == "Staging" and out["staging"] == ["2"]
    assert out["download_uri"].startswith("trainyard-artifacts:/_registry/clf/1/model?")
    # One record, two views: the MLflow version is a trainyard model version of the run.
    model = Model(client.workspace, "clf", version=1)
    assert model.run_id == out["run_id"] and model.description == "first"
    assert model.tags["checked"] == "yes"
    assert any(f.endswith("MLmodel") for f in model.get_info().files)
    assert Model(client.workspace, "clf").version == 2


def test_native_models_rename_and_delete(client: Client) -> None:
    ws = client.workspace
    with Experiment(ws, "native").start_logging() as run:
        run.upload_file("outputs/weights.txt", __file__)
        run.register_model("native-model", model_path="outputs/weights.txt")
    out = client.run(
        """
        c = mlflow.MlflowClient()
        native = c.get_registered_model("native-model")
        path = mlflow.artifacts.download_artifacts("models:/native-model/1")
        c.create_registered_model("empty", tags={"k": "v"}, description="d")
        empty = c.get_registered_model("empty")
        c.rename_registered_model("empty", "renamed")
        gone = code_of(lambda: c.get_registered_model("empty"))
        renamed = c.get_registered_model("renamed").name
        c.delete_registered_model("renamed")
        c.set_registered_model_alias("native-model", "prod", "1")
        c.delete_registered_model_alias("native-model", "prod")
        emit({
            "native": [v.version for v in native.latest_versions],
            "native_run": native.latest_versions[0].run_id,
            "downloaded": sorted(os.listdir(path)) if os.path.isdir(path) else [os.path.basename(path)],
            "content": open(path if os.path.isfile(path) else os.path.join(path, "weights.txt")).read()[:40],
            "empty": [empty.description, empty.tags, empty.latest_versions],
            "gone": gone, "renamed": renamed,
            "after_delete": code_of(lambda: c.get_registered_model("renamed")),
            "aliases": dict(c.get_registered_model("native-model").aliases),
        })
        """
    )
    assert out["native"] == ["1"] and out["native_run"] == run.id
    assert out["downloaded"] == ["weights.txt"]
    assert out["content"] == Path(__file__).read_text()[:40]
    assert out["empty"] == ["d", {"k": "v"}, []]
    assert out["gone"] == out["after_delete"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["renamed"] == "renamed" and out["aliases"] == {}


def test_delete_version_and_bad_input_writes_nothing(client: Client) -> None:
    ws = client.workspace
    out = client.run(
        """
        c = mlflow.MlflowClient()
        with mlflow.start_run() as run:
            mlflow.log_text("w", "model/weights.txt")
            mlflow.log_text("x", "empty-dir-marker.txt")
            rid = run.info.run_id
        c.create_registered_model("m")
        v1 = c.create_model_version("m", f"runs:/{rid}/model", rid)
        v2 = c.create_model_version("m", f"runs:/{rid}/model", rid)
        c.set_registered_model_alias("m", "best", v2.version)
        c.delete_model_version("m", v2.version)
        codes = {
            "dup": code_of(lambda: c.create_registered_model("m")),
            "unknown_model": code_of(lambda: c.get_registered_model("nope")),
            "unknown_version": code_of(lambda: c.get_model_version("m", "99")),
            "deleted_version": code_of(lambda: c.get_model_version("m", v2.version)),
            "alias_unknown_model": code_of(lambda: c.set_registered_model_alias("nope", "a", "1")),
            "alias_unknown_version": code_of(lambda: c.set_registered_model_alias("m", "a", "7")),
            "no_files": code_of(lambda: c.create_model_version("m", f"runs:/{rid}/missing", rid)),
            "unknown_run": code_of(lambda: c.create_model_version("m", "runs:/nope-run/model")),
            "bad_name": code_of(lambda: c.create_registered_model("bad name/x")),
            "bad_stage": code_of(lambda: c.transition_model_version_stage("m", "1", "Nowhere", False)),
            "tag_unknown": code_of(lambda: c.set_model_version_tag("nope", "1", "k", "v")),
            "bad_filter": code_of(lambda: c.search_model_versions("name ~ 'm'")),
            "delete_unknown": code_of(lambda: c.delete_registered_model("nope")),
        }
        emit(codes | {"rid": rid, "versions": sorted(v.version for v in c.search_model_versions("name = 'm'")),
                      "aliases": dict(c.get_registered_model("m").aliases),
                      "stage": c.get_model_version("m", "1").current_stage})
        """
    )
    assert out["dup"] == "RESOURCE_ALREADY_EXISTS"
    for key in (
        "unknown_model",
        "unknown_version",
        "deleted_version",
        "alias_unknown_model",
        "alias_unknown_version",
        "unknown_run",
        "tag_unknown",
        "delete_unknown",
    ):
        assert out[key] == "RESOURCE_DOES_NOT_EXIST", key
    for key in ("no_files", "bad_name", "bad_stage", "bad_filter"):
        assert out[key] == "INVALID_PARAMETER_VALUE", key
    # Nothing partially written: one version left, no alias to the deleted one, no stray names.
    assert out["versions"] == ["1"] and out["aliases"] == {} and out["stage"] == "None"
    assert [(m.name, m.version) for m in Model.list(ws)] == [("m", 1)]
    staged = ws.context.artifacts.list("models/")
    assert staged and all(
        p.startswith(Model(ws, "m", version=1).get_info().storage_prefix) for p in staged
    )
