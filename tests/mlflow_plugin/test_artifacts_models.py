"""Artifacts and models logged through MLflow are the run's files in trainyard, and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainyard.core import Model, Run

from .conftest import Client

pytestmark = pytest.mark.slow


def test_artifacts_upload_list_download(client: Client, tmp_path: Path) -> None:
    out = client.run(
        """
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        os.makedirs("data/sub", exist_ok=True)
        open("notes.txt", "w").write("hello")
        open("data/a.csv", "w").write("x,y\\n1,2\\n")
        open("data/sub/b.bin", "wb").write(bytes(range(256)))
        with mlflow.start_run() as run:
            mlflow.log_artifact("notes.txt")
            mlflow.log_artifact("notes.txt", artifact_path="docs")
            mlflow.log_artifacts("data", artifact_path="data")
            mlflow.log_dict({"lr": 0.1, "layers": [1, 2]}, "config/params.json")
            mlflow.log_text("plain", "config/readme.txt")
            fig, ax = plt.subplots()
            ax.plot([1, 2, 3])
            mlflow.log_figure(fig, "plots/line.png")
            mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), "images/black.png")
        rid = run.info.run_id
        c = mlflow.MlflowClient()
        top = [(f.path, f.is_dir) for f in c.list_artifacts(rid)]
        data = [(f.path, f.is_dir) for f in c.list_artifacts(rid, "data")]
        local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data", dst_path="dl")
        one = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="docs/notes.txt", dst_path="dl1")
        missing = code_of(lambda: mlflow.artifacts.download_artifacts(
            run_id=rid, artifact_path="nope.txt", dst_path="dl2"))
        emit({"rid": rid, "top": top, "data": data, "local": local, "one": open(one).read(),
              "b": open(os.path.join(local, "sub", "b.bin"), "rb").read() == bytes(range(256)),
              "dict": mlflow.artifacts.load_dict(f"runs:/{rid}/config/params.json"),
              "uri": mlflow.get_run(rid).info.artifact_uri, "missing": missing})
        """
    )
    assert out["top"] == [
        ["config", True], ["data", True], ["docs", True], ["images", True], ["notes.txt", False], ["plots", True],
    ]  # fmt: skip
    assert out["data"] == [["data/a.csv", False], ["data/sub", True]]
    assert out["one"] == "hello" and out["b"] and out["dict"] == {"lr": 0.1, "layers": [1, 2]}
    assert out["uri"].startswith("trainyard-artifacts:/" + out["rid"] + "?workspace=")
    assert out["missing"] == "RESOURCE_DOES_NOT_EXIST"
    run = Run.get(client.workspace, out["rid"])
    names = set(run.get_file_names())
    assert {"notes.txt", "docs/notes.txt", "data/a.csv", "data/sub/b.bin", "config/params.json",
            "config/readme.txt", "plots/line.png", "images/black.png"} <= names  # fmt: skip
    got = run.download_file("config/params.json", tmp_path / "params.json")
    assert json.loads(Path(got).read_text()) == {"lr": 0.1, "layers": [1, 2]}
    assert (
        Path(run.download_file("plots/line.png", tmp_path)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    )


def test_trainyard_files_are_mlflow_artifacts(client: Client, tmp_path: Path) -> None:
    exp_run = client.workspace.experiments  # no experiments yet: the run below creates one
    assert exp_run == {}
    from trainyard.core import Experiment

    src = tmp_path / "w.txt"
    src.write_text("weights")
    with Experiment(client.workspace, "native").start_logging() as run:
        run.upload_file("outputs/w.txt", src)
    out = client.run(
        f"""
        c = mlflow.MlflowClient()
        p = mlflow.artifacts.download_artifacts(run_id="{run.id}", artifact_path="outputs/w.txt", dst_path="d")
        emit({{"ls": [f.path for f in c.list_artifacts("{run.id}", "outputs")], "text": open(p).read()}})
        """
    )
    assert out == {"ls": ["outputs/w.txt"], "text": "weights"}


def test_sklearn_log_model_load_and_trainyard_registration(client: Client, tmp_path: Path) -> None:
    out = client.run(
        """
        import numpy as np
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        X, y = load_iris(return_X_y=True)
        clf = LogisticRegression(max_iter=300).fit(X, y)
        with mlflow.start_run() as run:
            mlflow.log_metric("acc", float(clf.score(X, y)))
            if MAJOR >= 3:
                info = mlflow.sklearn.log_model(clf, name="model", input_example=X[:2])
            else:
                info = mlflow.sklearn.log_model(clf, artifact_path="model", input_example=X[:2])
        rid = run.info.run_id
        loaded = mlflow.sklearn.load_model(f"runs:/{rid}/model")
        res = {"rid": rid, "same": bool((loaded.predict(X) == clf.predict(X)).all()),
               "expected": clf.predict(X[:5]).tolist(), "model_uri": info.model_uri}
        if MAJOR >= 3:
            c = mlflow.MlflowClient()
            lm = c.get_logged_model(info.model_id)
            by_id = mlflow.sklearn.load_model(f"models:/{info.model_id}")
            found = c.search_logged_models([run.info.experiment_id], filter_string="name = 'model'")
            c.set_logged_model_tags(info.model_id, {"stage": "candidate"})
            res.update(model_id=info.model_id, lm_run=lm.source_run_id, lm_name=lm.name,
                       by_id=bool((by_id.predict(X) == clf.predict(X)).all()),
                       found=[m.model_id for m in found],
                       tags=c.get_logged_model(info.model_id).tags,
                       missing=code_of(lambda: c.get_logged_model("m-0123456789abcdef-nope")),
                       outputs=[o.model_id for o in mlflow.get_run(rid).outputs.model_outputs],
                       run_metrics=[[m.value, m.step] for m in c.get_metric_history(rid, "acc")])
        else:
            res["history"] = json.loads(mlflow.get_run(rid).data.tags["mlflow.log-model.history"])[0]["artifact_path"]
        emit(res)
        """
    )
    assert out["same"]
    run = Run.get(client.workspace, out["rid"])
    names = run.get_file_names()
    assert "model/MLmodel" in names and any(n.startswith("model/model.") for n in names)
    if client.major >= 3:
        assert out["lm_run"] == out["rid"] and out["lm_name"] == "model" and out["by_id"]
        assert out["found"] == [out["model_id"]] and out["tags"]["stage"] == "candidate"
        assert out["missing"] == "RESOURCE_DOES_NOT_EXIST" and out["outputs"] == [out["model_id"]]
        assert len(out["run_metrics"]) == 1  # log_model re-logs with a model id: not doubled
        assert out["run_metrics"][0][1] == 0 and 0.9 < out["run_metrics"][0][0] <= 1.0
    else:
        assert out["history"] == "model"
    # trainyard's own registry takes the same files
    model = run.register_model("iris-tree", model_path="model")
    assert isinstance(model, Model) and model.version == 1
    folder = Path(model.download(tmp_path / "dl"))
    assert (folder / "MLmodel").is_file() and any(
        p.name.startswith("model.") for p in folder.iterdir()
    )
