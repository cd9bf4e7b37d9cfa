"""The real MLflow client (2.x and 3.x) against ``trainyard server``'s MLflow endpoint: a typical
script's experiments, runs, params, tags, metrics (NaN/±inf, steps, timestamps), search with
filters, artifacts up and down, MLflow's error codes, and one record seen from both sides."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard.core import Experiment, Run, Workspace
from trainyard.testing.fixtures import unique_name
from trainyard.testing.server import LiveServer, start_server

from .conftest import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("mlflow-server")
    live = start_server(f"sqlite:///{root / 'ty.db'}", root / "files")
    yield live
    live.stop()


@pytest.fixture
def team(server: LiveServer, client: Client) -> tuple[Workspace, Client, dict[str, str]]:
    name = unique_name("ml")
    ws = Workspace.create(name, server=server.url, token=server.admin_token)
    env = client.env(
        MLFLOW_TRACKING_URI=ws.get_mlflow_tracking_uri(),
        MLFLOW_TRACKING_TOKEN=server.admin_token,
    )
    return ws, client, env


SCRIPT = """
mlflow.set_experiment("rest")
with mlflow.start_run(run_name="first") as run:
    mlflow.log_param("lr", "0.1")
    mlflow.log_params({"batch": 64, "opt": "sgd"})
    mlflow.set_tag("stage", "train")
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
    mlflow.log_metrics({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")})
    os.makedirs("out/sub", exist_ok=True)
    open("out/model.txt", "w").write("weights")
    open("out/sub/notes.txt", "w").write("notes")
    mlflow.log_artifacts("out", artifact_path="model")
    run_id = run.info.run_id
client = mlflow.tracking.MlflowClient()
with mlflow.start_run(run_name="second"):
    mlflow.log_param("lr", "0.01")
    mlflow.log_metric("loss", 0.05)
history = client.get_metric_history(run_id, "loss")
got = client.get_run(run_id)
exp = mlflow.get_experiment_by_name("rest")
found = mlflow.search_runs([exp.experiment_id], filter_string="params.lr = '0.1'", output_format="list")
ordered = mlflow.search_runs([exp.experiment_id], order_by=["metrics.loss ASC"], output_format="list")
files = sorted(f.path for f in client.list_artifacts(run_id, "model"))
local = client.download_artifacts(run_id, "model/model.txt", ".")
emit({
    "run_id": run_id,
    "status": got.info.status,
    "params": got.data.params,
    "tags": {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")},
    "name": got.info.run_name,
    "latest": {k: plain(v) for k, v in got.data.metrics.items()},
    "history": [(m.step, m.timestamp, m.value) for m in history],
    "found": [r.info.run_name for r in found],
    "ordered": [r.info.run_name for r in ordered],
    "files": files,
    "downloaded": open(local).read(),
    "missing_run": code_of(lambda: client.get_run("nope")),
    "param_change": code_of(lambda: client.log_param(run_id, "lr", "0.5")),
    "missing_exp": code_of(lambda: client.get_experiment("999999")),
})
"""


def test_the_mlflow_client_drives_the_server(
    team: tuple[Workspace, Client, dict[str, str]],
) -> None:
    ws, client, env = team
    out = client.run(SCRIPT, env=env)
    assert out["status"] == "FINISHED" and out["name"] == "first"
    assert out["params"] == {"lr": "0.1", "batch": "64", "opt": "sgd"}
    assert out["tags"] == {"stage": "train"}
    assert out["latest"]["loss"] == pytest.approx(1 / 3)
    assert out["latest"]["nan"] == "nan" and out["latest"]["inf"] == "inf"
    assert out["latest"]["ninf"] == "-inf"
    assert out["history"] == [
        [0, 1_700_000_000_000, 1.0],
        [1, 1_700_000_000_001, 0.5],
        [2, 1_700_000_000_002, pytest.approx(1 / 3)],
    ]
    assert out["found"] == ["first"]
    assert out["ordered"] == ["second", "first"]
    assert out["files"] == ["model/model.txt", "model/sub"]
    assert out["downloaded"] == "weights"
    assert out["missing_run"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["param_change"] == "INVALID_PARAMETER_VALUE"
    assert out["missing_exp"] == "RESOURCE_DOES_NOT_EXIST"
    # One record, two views: the MLflow run is a trainyard run of the workspace.
    run = Run.get(ws, out["run_id"])
    assert run.get_status() == "Completed"
    assert run.get_metrics()["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert math.isnan(run.get_metrics()["nan"])
    assert run.get_properties()["lr"] == "0.1" and run.get_tags()["stage"] == "train"
    assert "model/model.txt" in run.get_file_names()


def test_a_trainyard_run_is_visible_to_mlflow(
    team: tuple[Workspace, Client, dict[str, str]],
) -> None:
    ws, client, env = team
    with Experiment(ws, "native").start_logging() as run:
        run.log("acc", 0.75)
        run.log("acc", 0.9)
        run.add_properties({"depth": "3"})
    out = client.run(
        f"""
        c = mlflow.tracking.MlflowClient()
        r = c.get_run({run.id!r})
        emit({{"acc": r.data.metrics["acc"], "depth": r.data.params["depth"],
               "status": r.info.status,
               "history": [m.value for m in c.get_metric_history({run.id!r}, "acc")]}})
        """,
        env=env,
    )
    assert out == {"acc": 0.9, "depth": "3", "status": "FINISHED", "history": [0.75, 0.9]}


def test_without_a_token_mlflow_gets_unauthenticated(
    team: tuple[Workspace, Client, dict[str, str]], tmp_path: Path
) -> None:
    _, client, env = team
    env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_TOKEN"}
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    out = client.run('emit({"code": code_of(lambda: mlflow.get_experiment_by_name("x"))})', env=env)
    assert out["code"] == "UNAUTHENTICATED"


def test_a_batch_over_mlflows_limits_is_refused_and_writes_nothing(server: LiveServer) -> None:
    import httpx

    name = unique_name("limits")
    ws = Workspace.create(name, server=server.url, token=server.admin_token)
    run = Experiment(ws, "limits").start_logging()
    base = f"{ws.get_mlflow_tracking_uri()}/api/2.0/mlflow"
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    metrics = [{"key": "m", "value": 1.0, "timestamp": 0, "step": i} for i in range(1001)]
    resp = httpx.post(
        f"{base}/runs/log-batch",
        json={"run_id": run.id, "metrics": metrics, "params": [{"key": "p", "value": "1"}]},
        headers=auth,
    )
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "m" not in run.get_metrics() and "p" not in run.get_properties()
    unknown = httpx.get(f"{base}/runs/get", params={"run_id": "nope"}, headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    run.complete()


MULTIPART = """
import hashlib
from mlflow.store.artifact import http_artifact_repo
parts = []
upload = http_artifact_repo.HttpArtifactRepository._upload_part
def counted(credential, local_file, size, start_byte):
    parts.append(credential.part_number)
    return upload(credential, local_file, size, start_byte)
http_artifact_repo.HttpArtifactRepository._upload_part = staticmethod(counted)
data = os.urandom(5 * 256 * 1024 + 12345)
open("big.bin", "wb").write(data)
mlflow.set_experiment("mpu")
with mlflow.start_run() as run:
    mlflow.log_artifact("big.bin", artifact_path="weights")
    mlflow.log_artifact("big.bin")
local = mlflow.artifacts.download_artifacts(
    run_id=run.info.run_id, artifact_path="weights/big.bin", dst_path="dl")
emit({"run_id": run.info.run_id, "parts": sorted(parts),
      "sha": hashlib.sha256(data).hexdigest(),
      "back": hashlib.sha256(open(local, "rb").read()).hexdigest()})
"""


def test_a_large_artifact_goes_up_in_parts(team: tuple[Workspace, Client, dict[str, str]]) -> None:
    """MLflow's proxy multipart upload: one presigned URL per part, the parts sent at once, the
    file joined on complete — byte for byte what was logged."""
    import hashlib

    ws, client, env = team
    env.update(
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="true",
        MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE=str(1 << 20),
        MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE=str(256 * 1024),
    )
    out = client.run(MULTIPART, env=env)
    assert out["parts"] == sorted([1, 2, 3, 4, 5, 6] * 2), "both files went up in 6 parts"
    assert out["back"] == out["sha"]
    run = Run.get(ws, out["run_id"])
    for name in ("weights/big.bin", "big.bin"):
        got = Path(run.download_file(name, client.cwd / "ty" / name)).read_bytes()
        assert hashlib.sha256(got).hexdigest() == out["sha"], name


def test_multipart_bad_input_is_refused_and_publishes_nothing(server: LiveServer) -> None:
    import httpx

    ws = Workspace.create(unique_name("mpu"), server=server.url, token=server.admin_token)
    run = Experiment(ws, "mpu").start_logging()
    exp_id = 0  # trainyard's experiment ids are not part of the path check below
    base = f"{ws.get_mlflow_tracking_uri()}/api/2.0/mlflow-artifacts/mpu"
    folder = f"{exp_id}/{run.id}/artifacts/w"
    auth = {"Authorization": f"Bearer {server.admin_token}"}
    created = httpx.post(
        f"{base}/create/{folder}", json={"path": "/tmp/x/f.bin", "num_parts": 2}, headers=auth
    )
    assert created.status_code == 200, created.text
    body = created.json()
    upload_id, creds = body["upload_id"], body["credentials"]
    assert [c["part_number"] for c in creds] == [1, 2]
    forged = creds[0]["url"].split("?")[0] + "?sig=forged"
    refused = httpx.put(forged, content=b"a" * 10)
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    outside = httpx.put(creds[1]["url"].replace("/2?", "/3?"), content=b"x")
    assert outside.status_code == 400
    etag1 = httpx.put(creds[0]["url"], content=b"a" * 10).headers["ETag"]
    done = {"path": "/tmp/x/f.bin", "upload_id": upload_id}
    missing = httpx.post(
        f"{base}/complete/{folder}",
        json={
            **done,
            "parts": [{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": "x"}],
        },
        headers=auth,
    )
    assert missing.status_code == 400 and "never received" in missing.json()["message"]
    etag2 = httpx.put(creds[1]["url"], content=b"b" * 3).headers["ETag"]
    wrong = httpx.post(
        f"{base}/complete/{folder}",
        json={
            **done,
            "parts": [{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": etag1}],
        },
        headers=auth,
    )
    assert wrong.status_code == 400 and "ETag" in wrong.json()["message"]
    assert "w/f.bin" not in run.get_file_names(), "nothing published by a failed complete"
    too_many = httpx.post(
        f"{base}/create/{folder}", json={"path": "g.bin", "num_parts": 10_001}, headers=auth
    )
    assert too_many.status_code == 400 and "num_parts" in too_many.json()["message"]
    ok = httpx.post(
        f"{base}/complete/{folder}",
        json={
            **done,
            "parts": [{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": etag2}],
        },
        headers=auth,
    )
    assert ok.status_code == 200, ok.text
    assert run.get_file_names().count("w/f.bin") == 1
    assert httpx.put(creds[0]["url"], content=b"late").status_code == 404, "the session is gone"
    again = httpx.post(f"{base}/abort/{folder}", json=done, headers=auth)
    assert again.status_code == 404 and again.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    run.complete()
