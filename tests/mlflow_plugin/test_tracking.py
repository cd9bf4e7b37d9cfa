"""Real MLflow scripts (2.x and 3.x) against an embedded workspace; then the same records through
trainyard's public API ("one record, two views")."""

from __future__ import annotations

import math
import struct
import subprocess

import pytest

from trainyard.core import Experiment, Run

from .conftest import REPO, Client

pytestmark = pytest.mark.slow


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _float(x: float | str) -> float:
    return float(x)  # 'nan' / 'inf' / '-inf' come back as strings from the scripts


def test_training_script_autolog_and_manual_loop(client: Client) -> None:
    out = client.run(
        """
        import numpy as np
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        mlflow.set_experiment("iris")
        mlflow.autolog()
        X, y = load_iris(return_X_y=True)
        with mlflow.start_run(run_name="fit") as run:
            LogisticRegression(max_iter=200, C=0.5).fit(X, y)
            for epoch in range(10):
                mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
            mlflow.log_params({"batch": 32, "optimizer": "adam"})
            mlflow.set_tags({"team": "vision", "stage": "dev"})
        got = mlflow.get_run(run.info.run_id)
        emit({"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
              "status": got.info.status, "params": got.data.params, "tags": got.data.tags,
              "metrics": {k: plain(v) for k, v in got.data.metrics.items()}})
        """
    )
    run = Run.get(client.workspace, out["run_id"])
    exp = Experiment(client.workspace, "iris")
    assert str(exp.id) == out["experiment_id"]
    assert [r.id for r in exp.get_runs()] == [out["run_id"]]
    assert (run.get_status(), out["status"], run.display_name) == ("Completed", "FINISHED", "fit")
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0 / (e + 1) for e in range(10)]
    assert [p.step for p in run.get_metric_points("loss")] == list(range(10))
    assert "training_accuracy_score" in metrics and 0.8 < metrics["training_accuracy_score"] <= 1.0
    props = run.get_properties()
    # autolog's estimator params and the manual ones are properties, as MLflow sees them as params
    assert props["C"] == "0.5" and props["max_iter"] == "200" and props["optimizer"] == "adam"
    assert out["params"] == props
    tags = run.get_tags()
    assert tags["team"] == "vision" and tags["estimator_name"] == "LogisticRegression"
    assert tags["mlflow.user"] and out["tags"]["mlflow.runName"] == "fit"
    assert out["metrics"]["loss"] == 0.1


def test_exact_round_trip_of_metric_values_steps_and_timestamps(client: Client) -> None:
    out = client.run(
        """
        from mlflow.entities import Metric
        values = [float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1.7976931348623157e308,
                  0.1 + 0.2, -1.5, 3.0]
        steps = [0, 1, 2, -3, 2**40, 7, 7, 8, 9]
        c = mlflow.MlflowClient()
        with mlflow.start_run() as run:
            rid = run.info.run_id
            for v, s in zip(values, steps):
                mlflow.log_metric("x", v, step=s)
            # an explicit client timestamp, as a backfill would give
            c.log_batch(rid, metrics=[Metric("backfill", 2.5, 1_600_000_000_123, 4)])
        hist = c.get_metric_history(rid, "x")
        emit({"run_id": rid, "values": [plain(m.value) for m in hist], "steps": [m.step for m in hist],
              "timestamps": [m.timestamp for m in hist],
              "backfill": [[m.value, m.step, m.timestamp] for m in c.get_metric_history(rid, "backfill")],
              "latest": plain(c.get_run(rid).data.metrics["x"])})
        """
    )
    values = [
        math.nan,
        math.inf,
        -math.inf,
        -0.0,
        5e-324,
        1.7976931348623157e308,
        0.1 + 0.2,
        -1.5,
        3.0,
    ]
    assert [_bits(_float(v)) for v in out["values"]] == [_bits(v) for v in values]
    assert out["steps"] == [0, 1, 2, -3, 2**40, 7, 7, 8, 9]
    assert out["latest"] == 5e-324  # MLflow's rule: the highest step (2**40) wins
    points = Run.get(client.workspace, out["run_id"]).get_metric_points("x")
    assert [_bits(float(p.value)) for p in points] == [_bits(v) for v in values]
    assert [p.step for p in points] == out["steps"]
    assert [round(p.timestamp * 1000) for p in points] == out["timestamps"]
    assert out["timestamps"] == sorted(out["timestamps"])
    assert out["backfill"][0][:2] == [2.5, 4]


def test_client_timestamps_are_kept(client: Client) -> None:
    out = client.run(
        """
        from mlflow.entities import Metric
        c = mlflow.MlflowClient()
        with mlflow.start_run() as run:
            c.log_batch(run.info.run_id, metrics=[Metric("backfill", 2.5, 1_600_000_000_123, 4)])
        emit({"ts": c.get_metric_history(run.info.run_id, "backfill")[0].timestamp})
        """
    )
    assert out["ts"] == 1_600_000_000_123


def test_trainyard_run_seen_through_mlflow(client: Client) -> None:
    exp = Experiment(client.workspace, "native")
    with exp.start_logging(display_name="v1-style") as run:
        for i in range(4):
            run.log("acc", 0.5 + i / 10, step=i * 10)
        run.log("note", "strings are not MLflow metrics")
        run.add_properties({"lr": "0.01"})
        run.tag("owner", "ana")
    out = client.run(
        f"""
        c = mlflow.MlflowClient()
        runs = mlflow.search_runs(experiment_names=["native"], output_format="list")
        hist = c.get_metric_history("{run.id}", "acc")
        emit({{"ids": [r.info.run_id for r in runs], "status": runs[0].info.status,
               "name": runs[0].info.run_name, "params": runs[0].data.params,
               "tags": runs[0].data.tags, "metrics": runs[0].data.metrics,
               "hist": [[m.value, m.step, m.timestamp] for m in hist]}})
        """
    )
    assert out["ids"] == [run.id] and out["status"] == "FINISHED" and out["name"] == "v1-style"
    assert out["params"] == {"lr": "0.01"} and out["tags"]["owner"] == "ana"
    assert out["metrics"] == {"acc": 0.8}
    points = run.get_metric_points("acc")
    assert out["hist"] == [[p.value, p.step, round(p.timestamp * 1000)] for p in points]


def test_search_runs_filter_order_and_pages(client: Client) -> None:
    out = client.run(
        """
        mlflow.set_experiment("grid")
        ids = {}
        for i, (opt, lr) in enumerate([("adam", 0.1), ("sgd", 0.01), ("adam", 0.001), ("sgd", 0.5)]):
            with mlflow.start_run(run_name=f"trial-{i}") as run:
                mlflow.log_params({"opt": opt, "lr": lr})
                mlflow.log_metric("acc", 0.6 + i / 10)
                mlflow.set_tag("parity", "even" if i % 2 == 0 else "odd")
                ids[run.info.run_id] = i
        with mlflow.start_run(run_name="broken"):
            mlflow.log_metric("acc", 0.99)
            mlflow.end_run(status="FAILED")
        def names(**kw):
            return [r.info.run_name for r in mlflow.search_runs(output_format="list", **kw)]
        page1 = mlflow.MlflowClient().search_runs(
            [mlflow.get_experiment_by_name("grid").experiment_id], order_by=["metrics.acc ASC"],
            max_results=2)
        page2 = mlflow.MlflowClient().search_runs(
            [mlflow.get_experiment_by_name("grid").experiment_id], order_by=["metrics.acc ASC"],
            max_results=2, page_token=page1.token)
        emit({
            "adam_good": names(filter_string="params.opt = 'adam' and metrics.acc > 0.65"),
            "by_acc": names(order_by=["metrics.acc DESC"], filter_string="attributes.status = 'FINISHED'"),
            "odd": names(filter_string="tags.parity = 'odd'", order_by=["params.lr ASC"]),
            "like": names(filter_string="attributes.run_name LIKE 'trial-%'", order_by=["run_name DESC"]),
            "failed": names(filter_string="attributes.status = 'FAILED'"),
            "pages": [[r.info.run_name for r in page1], [r.info.run_name for r in page2], page2.token],
            "df_cols": sorted(c for c in mlflow.search_runs().columns if c.startswith(("metrics.", "params."))),
        })
        """
    )
    assert out["adam_good"] == ["trial-2"]
    assert out["by_acc"] == ["trial-3", "trial-2", "trial-1", "trial-0"]
    assert out["odd"] == ["trial-1", "trial-3"]
    assert out["like"] == ["trial-3", "trial-2", "trial-1", "trial-0"]
    assert out["failed"] == ["broken"]
    assert out["pages"][:2] == [["trial-0", "trial-1"], ["trial-2", "trial-3"]] and out["pages"][2]
    assert out["df_cols"] == ["metrics.acc", "params.lr", "params.opt"]
    exp = Experiment(client.workspace, "grid")
    statuses = sorted(r.get_status() for r in exp.get_runs())
    assert statuses == ["Completed"] * 4 + ["Failed"]


def test_nested_runs_are_trainyard_children(client: Client) -> None:
    out = client.run(
        """
        with mlflow.start_run(run_name="parent") as parent:
            with mlflow.start_run(run_name="child", nested=True) as child:
                mlflow.log_metric("m", 1.0)
        got = mlflow.get_run(child.info.run_id)
        emit({"parent": parent.info.run_id, "child": child.info.run_id,
              "tag": got.data.tags["mlflow.parentRunId"],
              "found": [r.info.run_name for r in mlflow.search_runs(
                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list")]})
        """
    )
    parent = Run.get(client.workspace, out["parent"])
    assert [c.id for c in parent.get_children()] == [out["child"]] == [out["child"]]
    assert out["tag"] == out["parent"] and out["found"] == ["child"]


def test_experiments_lifecycle_and_errors(client: Client) -> None:
    out = client.run(
        """
        c = mlflow.MlflowClient()
        eid = c.create_experiment("lifecycle")
        dup = code_of(lambda: c.create_experiment("lifecycle"))
        c.delete_experiment(eid)
        deleted = c.get_experiment(eid).lifecycle_stage
        active_names = [e.name for e in c.search_experiments()]
        deleted_names = [e.name for e in c.search_experiments(view_type=2)]
        start_in_deleted = code_of(lambda: c.create_run(eid))
        c.restore_experiment(eid)
        with mlflow.start_run(experiment_id=eid) as run:
            pass
        emit({
            "eid": eid, "dup": dup, "deleted": deleted, "active": active_names, "deleted_names": deleted_names,
            "start_in_deleted": start_in_deleted,
            "restored": c.get_experiment(eid).lifecycle_stage,
            "missing_by_name": c.get_experiment_by_name("nope") is None,
            "missing_id": code_of(lambda: c.get_experiment("987654")),
            "bad_id": code_of(lambda: c.get_experiment("abc")),
            "rename": code_of(lambda: c.rename_experiment(eid, "Default")),  # MLflow's "0"
            "default_run_exp": run.info.experiment_id,
            "filtered": [e.name for e in c.search_experiments(filter_string="name LIKE 'life%'")],
        })
        """
    )
    assert out["dup"] == "RESOURCE_ALREADY_EXISTS"
    assert out["deleted"] == "deleted" and "lifecycle" not in out["active"]
    assert (
        out["deleted_names"] == ["lifecycle"]
        and out["start_in_deleted"] == "INVALID_PARAMETER_VALUE"
    )
    assert out["restored"] == "active" and out["missing_by_name"]
    assert out["missing_id"] == out["bad_id"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["rename"] == "INVALID_PARAMETER_VALUE"
    assert out["filtered"] == ["lifecycle"] and out["default_run_exp"] == out["eid"]
    exp = Experiment(client.workspace, "lifecycle")
    assert str(exp.id) == out["eid"] and not exp.archived


def test_bad_input_gives_mlflow_codes_and_writes_nothing(client: Client) -> None:
    out = client.run(
        """
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking._tracking_service.utils import _get_store
        store = _get_store()
        c = mlflow.MlflowClient()
        rid = c.create_run(c.create_experiment("bad")).info.run_id
        c.log_param(rid, "lr", "0.1")
        ms = [Metric("m", 1.0, 0, i) for i in range(1001)]
        res = {
            "store": type(store).__module__,
            "unknown_run": code_of(lambda: c.get_run("no_such_run")),
            "unknown_log": code_of(lambda: c.log_metric("no_such_run", "m", 1.0)),
            "too_many_metrics": code_of(lambda: store.log_batch(rid, ms, [], [])),
            "too_many_params": code_of(lambda: store.log_batch(
                rid, [], [Param(f"p{i}", "v") for i in range(101)], [])),
            "too_many_tags": code_of(lambda: store.log_batch(
                rid, [], [], [RunTag(f"t{i}", "v") for i in range(101)])),
            "changed_param": code_of(lambda: c.log_batch(
                rid, metrics=[Metric("m", 2.0, 0, 0)], params=[Param("new", "1"), Param("lr", "0.2")],
                tags=[RunTag("t", "v")])),
            "same_param_again": code_of(lambda: c.log_param(rid, "lr", "0.1")),
            "dup_key_in_batch": code_of(lambda: c.log_batch(rid, params=[Param("k", "1"), Param("k", "2")])),
            "bad_value": code_of(lambda: store.log_batch(rid, [Metric("m", "x", 0, 0)], [], [])),
            "missing_tag": code_of(lambda: c.delete_tag(rid, "nope")),
            "history_unknown": code_of(lambda: c.get_metric_history("no_such_run", "m")),
            "rid": rid,
        }
        c.set_terminated(rid)
        res["after_end"] = code_of(lambda: c.log_metric(rid, "late", 1.0))
        res["reopen"] = code_of(lambda: c.update_run(rid, "RUNNING"))
        emit(res)
        """
    )
    assert out["store"] == "trainyard.mlflow_plugin.store"
    assert (
        out["unknown_run"]
        == out["unknown_log"]
        == out["history_unknown"]
        == "RESOURCE_DOES_NOT_EXIST"
    )
    assert (
        out["too_many_metrics"]
        == out["too_many_params"]
        == out["too_many_tags"]
        == "INVALID_PARAMETER_VALUE"
    )
    assert (
        out["changed_param"]
        == out["dup_key_in_batch"]
        == out["bad_value"]
        == "INVALID_PARAMETER_VALUE"
    )
    assert out["same_param_again"] is None and out["missing_tag"] == "RESOURCE_DOES_NOT_EXIST"
    run = Run.get(client.workspace, out["rid"])
    assert run.get_metrics() == {}  # nothing of the rejected batches was written
    assert run.get_properties() == {"lr": "0.1"}
    assert not {"t", "t0", "new", "k"} & (set(run.get_tags()) | set(run.get_properties()))
    assert out["after_end"] == out["reopen"] == "INVALID_STATE"
    assert run.get_status() == "Completed"


@pytest.mark.parametrize("where", ["src", "src/trainyard", "src/trainyard/mlflow_plugin", "tests"])
def test_plugin_never_shadows_mlflow(client: Client, where: str) -> None:
    """Python run from anywhere in the checkout imports the real MLflow, with the plugin loaded."""
    code = (
        "import mlflow, sys; from mlflow.tracking._tracking_service.utils import _get_store; "
        "s = _get_store(); print(mlflow.__file__, type(s).__module__)"
    )
    proc = subprocess.run(
        [str(client.python), "-c", code],
        cwd=REPO / where,
        env=client.env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    path, module = proc.stdout.split()
    assert "site-packages/mlflow/" in path and module == "trainyard.mlflow_plugin.store"


def test_experiment_rename_and_run_delete_restore(client: Client) -> None:
    out = client.run(
        """
        c = mlflow.MlflowClient()
        exp_id = c.create_experiment("before")
        c.rename_experiment(exp_id, "after")
        r = c.create_run(exp_id)
        c.delete_run(r.info.run_id)
        hidden = [x.info.run_id for x in c.search_runs([exp_id])]
        deleted = [x.info.run_id for x in c.search_runs([exp_id], run_view_type=2)]
        stage = c.get_run(r.info.run_id).info.lifecycle_stage
        c.restore_run(r.info.run_id)
        emit({"name": c.get_experiment(exp_id).name, "hidden": hidden, "deleted": deleted,
              "stage": stage, "back": [x.info.run_id for x in c.search_runs([exp_id])],
              "run": r.info.run_id})
        """
    )
    assert out["name"] == "after"
    assert out["hidden"] == [] and out["deleted"] == [out["run"]] and out["stage"] == "deleted"
    assert out["back"] == [out["run"]]
    assert "after" in [e.name for e in Experiment.list(client.workspace)]
