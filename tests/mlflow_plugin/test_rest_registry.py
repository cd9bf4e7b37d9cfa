"""The real MLflow client (2.x and 3.x) against ``trainyard server``: a scikit-learn script with
autolog, ``log_model`` + ``register_model`` + loading back through ``models:/``, the registry's
calls (rename, tags, aliases, search, delete), one model seen from both sides, experiment rename,
run delete/restore, search filters, and roles (a reader reads and cannot write; basic auth)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from trainyard.core import Experiment, Model, Run, Workspace
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer, start_server

from .conftest import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("mlflow-registry-server")
    live = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    yield live
    live.stop()


@pytest.fixture
def team(server: LiveServer, client: Client) -> tuple[Workspace, Client, dict[str, str]]:
    ws = Workspace.create(unique_name("reg"), server=server.url, token=server.admin_token)
    env = client.env(
        MLFLOW_TRACKING_URI=ws.get_mlflow_tracking_uri(),
        MLFLOW_TRACKING_TOKEN=server.admin_token,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    return ws, client, env


SKLEARN = """
import numpy as np
from sklearn.linear_model import LogisticRegression
mlflow.set_experiment("sk")
mlflow.sklearn.autolog(log_models=False)
X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]] * 5)
y = np.array([0, 1, 0, 1] * 5)
with mlflow.start_run(run_name="auto") as run:
    clf = LogisticRegression(max_iter=50).fit(X, y)
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    kw = {"name": "model"} if MAJOR >= 3 else {"artifact_path": "model"}
    info = mlflow.sklearn.log_model(clf, input_example=X[:2], **kw)
    run_id = run.info.run_id
mv = mlflow.register_model(f"runs:/{run_id}/model", "clf")
mv2 = mlflow.register_model(f"runs:/{run_id}/model", "clf")
c = mlflow.MlflowClient()
c.set_registered_model_alias("clf", "champion", mv.version)
c.set_registered_model_tag("clf", "team", "vision")
c.set_model_version_tag("clf", mv.version, "checked", "yes")
c.update_registered_model("clf", description="a classifier")
c.update_model_version("clf", mv.version, description="first")
loaded = mlflow.pyfunc.load_model("models:/clf/1")
by_alias = mlflow.sklearn.load_model("models:@champion".replace("models:", "models:/clf"))
rm = c.get_registered_model("clf")
found = c.search_registered_models(filter_string="name LIKE 'cl%'")
versions = c.search_model_versions("name = 'clf'")
runs = mlflow.search_runs(output_format="list", filter_string="params.C = '1.0'",
                          order_by=["attributes.start_time DESC"])
emit({
    "run_id": run_id,
    "version": mv.version, "version2": mv2.version, "status": mv.status,
    "predict": [int(p) for p in loaded.predict(X[:4])],
    "alias_predict": [int(p) for p in by_alias.predict(X[:4])],
    "rm_tags": rm.tags, "rm_desc": rm.description,
    "aliases": dict(rm.aliases) if isinstance(rm.aliases, dict) else {},
    "latest": [v.version for v in rm.latest_versions],
    "found": [m.name for m in found],
    "versions": sorted(v.version for v in versions),
    "by_alias": c.get_model_version_by_alias("clf", "champion").version,
    "mv_tags": c.get_model_version("clf", "1").tags,
    "mv_desc": c.get_model_version("clf", "1").description,
    "runs": [r.info.run_name for r in runs],
    "params": c.get_run(run_id).data.params,
    "dup": code_of(lambda: c.create_registered_model("clf")),
    "missing": code_of(lambda: c.get_registered_model("nope")),
    "missing_version": code_of(lambda: c.get_model_version("clf", "99")),
})
"""


def test_sklearn_log_register_and_load(team: tuple[Workspace, Client, dict[str, str]]) -> None:
    ws, client, env = team
    out = client.run(SKLEARN, env=env)
    assert (out["version"], out["version2"], out["status"]) == ("1", "2", "READY")
    assert out["predict"] == [0, 1, 0, 1] and out["alias_predict"] == [0, 1, 0, 1]
    assert out["rm_tags"] == {"team": "vision"} and out["rm_desc"] == "a classifier"
    assert out["latest"] == ["2"]
    assert out["found"] == ["clf"] and out["versions"] == ["1", "2"]
    assert out["by_alias"] == "1"
    assert out["mv_tags"] == {"checked": "yes"} and out["mv_desc"] == "first"
    assert out["runs"] == ["auto"] and out["params"]["C"] == "1.0"
    assert out["dup"] == "RESOURCE_ALREADY_EXISTS"
    assert out["missing"] == out["missing_version"] == "RESOURCE_DOES_NOT_EXIST"
    # One record, two views: the MLflow version is a trainyard model version of the run.
    model = Model(ws, "clf", version=1)
    assert model.run_id == out["run_id"] and model.description == "first"
    assert model.tags["checked"] == "yes"
    assert any(f.endswith("MLmodel") for f in model.get_info().files)
    run = Run.get(ws, out["run_id"])
    assert run.get_metrics()["loss"] == [1.0, 0.5, pytest.approx(1 / 3), 0.25, 0.2]
    assert any(n.startswith("model/") for n in run.get_file_names())


def test_registry_lifecycle_and_native_models(
    team: tuple[Workspace, Client, dict[str, str]],
) -> None:
    ws, client, env = team
    with Experiment(ws, "native").start_logging() as run:
        run.upload_file("outputs/weights.txt", __file__)
        run.register_model("native-model", model_path="outputs/weights.txt")
    out = client.run(
        """
        c = mlflow.MlflowClient()
        native = c.get_registered_model("native-model")
        files = c.download_artifacts if False else None
        path = mlflow.artifacts.download_artifacts("models:/native-model/1")
        c.create_registered_model("empty", tags={"k": "v"}, description="d")
        empty = c.get_registered_model("empty")
        c.rename_registered_model("empty", "renamed")
        renamed = c.get_registered_model("renamed")
        gone = code_of(lambda: c.get_registered_model("empty"))
        c.delete_registered_model("renamed")
        exp_id = mlflow.create_experiment("before")
        c.rename_experiment(exp_id, "after")
        with mlflow.start_run(experiment_id=exp_id) as r:
            pass
        c.delete_run(r.info.run_id)
        hidden = [x.info.run_id for x in c.search_runs([exp_id])]
        deleted = [x.info.run_id for x in c.search_runs([exp_id], run_view_type=2)]
        stage = c.get_run(r.info.run_id).info.lifecycle_stage
        c.restore_run(r.info.run_id)
        back = [x.info.run_id for x in c.search_runs([exp_id])]
        emit({
            "native": [v.version for v in native.latest_versions],
            "native_run": native.latest_versions[0].run_id,
            "downloaded": sorted(os.listdir(path)) if os.path.isdir(path) else [os.path.basename(path)],
            "empty": [empty.description, empty.tags, empty.latest_versions],
            "renamed": renamed.name, "gone": gone,
            "after": c.get_experiment(exp_id).name,
            "hidden": hidden, "deleted": deleted, "stage": stage, "back": back,
            "run_id": r.info.run_id,
            "after_missing": code_of(lambda: c.get_registered_model("renamed")),
        })
        """,
        env=env,
    )
    assert out["native"] == ["1"] and out["native_run"] == run.id
    assert out["downloaded"] == ["weights.txt"]
    assert out["empty"] == ["d", {"k": "v"}, []]
    assert out["renamed"] == "renamed" and out["gone"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["after_missing"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["after"] == "after"
    assert Experiment(ws, "after").id is not None
    assert out["hidden"] == [] and out["deleted"] == [out["run_id"]]
    assert out["stage"] == "deleted" and out["back"] == [out["run_id"]]


def test_logged_models_over_rest(team: tuple[Workspace, Client, dict[str, str]]) -> None:
    _, client, env = team
    if client.major < 3:
        pytest.skip("MLflow 2 has no logged-model API")
    out = client.run(
        """
        import numpy as np
        from sklearn.linear_model import LinearRegression
        c = mlflow.MlflowClient()
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]),
                                            name="reg")
        lm = c.get_logged_model(info.model_id)
        c.set_logged_model_tags(info.model_id, {"stage": "candidate"})
        found = c.search_logged_models([run.info.experiment_id], filter_string="name = 'reg'")
        loaded = mlflow.sklearn.load_model(info.model_uri)
        by_run = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/reg")
        emit({"status": str(lm.status), "run": lm.source_run_id == run.info.run_id,
              "tags": c.get_logged_model(info.model_id).tags,
              "found": [m.model_id for m in found] == [info.model_id],
              "predict": float(loaded.predict([[2.0]])[0]),
              "by_run": float(by_run.predict([[3.0]])[0]),
              "missing": code_of(lambda: c.get_logged_model("m-0123456789abcdef-nope"))})
        """,
        env=env,
    )
    assert out["status"] == "READY" and out["run"] and out["found"]
    assert out["tags"]["stage"] == "candidate"
    assert out["predict"] == pytest.approx(2.0) and out["by_run"] == pytest.approx(3.0)
    assert out["missing"] == "RESOURCE_DOES_NOT_EXIST"


def test_bad_input_writes_nothing(
    server: LiveServer, team: tuple[Workspace, Client, dict[str, str]]
) -> None:
    ws, client, env = team
    out = client.run(
        """
        from mlflow.entities import Metric, Param
        c = mlflow.MlflowClient()
        with mlflow.start_run() as r:
            mlflow.log_param("lr", "0.1")
            rid = r.info.run_id
            codes = {
                "unknown_run": code_of(lambda: c.log_metric("nope-run", "m", 1.0)),
                "dup": code_of(lambda: c.log_batch(rid, metrics=[Metric("later", 1.0, 0, 0)],
                                                   params=[Param("lr", "0.5"), Param("new", "x")])),
            }
        emit(codes | {"rid": rid})
        """,
        env=env,
    )
    assert out["unknown_run"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["dup"] == "INVALID_PARAMETER_VALUE"
    # The client cuts big batches itself; a raw request over MLflow's limits is refused whole.
    base = f"{ws.get_mlflow_tracking_uri()}/api/2.0/mlflow/runs/log-batch"
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    over = {
        "params": [{"key": f"p{i}", "value": "1"} for i in range(101)],
        "tags": [{"key": f"t{i}", "value": "1"} for i in range(101)],
        "metrics": [{"key": "m", "value": 1.0, "timestamp": 0, "step": i} for i in range(1001)],
    }
    for field, items in over.items():
        resp = httpx.post(base, json={"run_id": out["rid"], field: items}, headers=auth)
        assert resp.status_code == 400, field
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    run = Run.get(ws, out["rid"])
    assert run.get_properties() == {"lr": "0.1"}
    assert not any(k.startswith(("p", "t")) and k[1:].isdigit() for k in run.get_tags())
    assert run.get_metrics() == {}


def test_a_reader_reads_and_cannot_write(
    server: LiveServer, team: tuple[Workspace, Client, dict[str, str]]
) -> None:
    ws, client, env = team
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    name = unique_name("reader")
    httpx.post(f"{server.url}/api/v1/users", json={"name": name}, headers=admin).raise_for_status()
    httpx.put(
        f"{server.url}/api/v1/workspaces/{ws.name}/roles/{name}",
        json={"role": "reader"},
        headers=admin,
    ).raise_for_status()
    secret = httpx.post(f"{server.url}/api/v1/tokens", json={"user": name}, headers=admin).json()[
        "secret"
    ]
    with Experiment(ws, "shared").start_logging() as run:
        run.log("acc", 0.5)
    reader = {k: x for k, x in env.items() if k != "MLFLOW_TRACKING_TOKEN"}
    reader.update(MLFLOW_TRACKING_USERNAME=name, MLFLOW_TRACKING_PASSWORD=secret)
    out = client.run(
        f"""
        c = mlflow.MlflowClient()
        emit({{"acc": c.get_run({run.id!r}).data.metrics["acc"],
               "write": code_of(lambda: c.set_tag({run.id!r}, "k", "v")),
               "create": code_of(lambda: c.create_registered_model("nope"))}})
        """,
        env=reader,
    )
    assert out == {"acc": 0.5, "write": "PERMISSION_DENIED", "create": "PERMISSION_DENIED"}
    assert "k" not in run.get_tags()
