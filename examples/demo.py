"""trainyard's main demo: Azure ML's "train and register Chainer models at scale", on this machine.

1. opens (or creates) the embedded workspace ``./.trainyard-demo`` and uploads MNIST to its datastore;
2. submits ``examples/chainer-mnist/chainer_mnist.py`` with the ``Chainer`` estimator to local compute
   (Chainer 7.8.1 in a uv-built, cached environment) and streams its log;
3. prints the run's metrics table;
4. registers ``outputs/model.npz`` as ``chainer-dnn-mnist`` and downloads it;
5. loads it in a fresh process with the example's scoring module and reports test accuracy;
6. deploys it as the web service ``chainer-mnist-1`` (the notebook's ``InferenceConfig`` +
   ``AciWebservice.deploy_configuration`` + ``Model.deploy``), scores test digits over HTTP with the
   Bearer key, by index and by pixels, checks the answers against step 5, prints the service log
   and deletes the service.

``python examples/demo.py [--epochs N] [--workspace DIR] [--no-deploy]``; runs again without error
(new run, next model version).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trainyard.core import Dataset, Experiment, Model, Workspace
from trainyard.core.model import InferenceConfig
from trainyard.core.webservice import AciWebservice, Webservice
from trainyard.train.dnn import Chainer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCE = HERE / "chainer-mnist"

_EVAL = """
import json, sys, numpy as np
sys.path.insert(0, {source!r})
import chainer_score
from trainyard._data.mnist import load_split
chainer_score.init()
_, labels = load_split("test", {data!r})
correct = 0
for start in range(0, len(labels), 1000):
    idx = list(range(start, min(start + 1000, len(labels))))
    pred = chainer_score.run(json.dumps({{"data": idx}}))
    correct += int((np.asarray(pred) == labels[idx]).sum())
first = chainer_score.run(json.dumps({{"data": list(range({n_compare}))}}))
print(json.dumps({{"accuracy": correct / len(labels), "n": len(labels),
                   "sample": chainer_score.run(json.dumps({{"data": [0]}})),
                   "first": first}}))
"""
#: Test digits scored over HTTP (in batches) and compared with the fresh-process answers.
N_COMPARE = 1000
HTTP_BATCH = 100


def metrics_table(run_id: str, metrics: dict[str, object]) -> Table:
    table = Table(title=f"Metrics of run {run_id}")
    table.add_column("metric")
    table.add_column("values")
    for name, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        shown = ", ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in values)
        table.add_row(name, shown)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default=".trainyard-demo", help="workspace folder")
    parser.add_argument(
        "--server",
        metavar="URL",
        help="use workspace 'demo' on this team server instead (created if missing; the token "
        "comes from $TRAINYARD_TOKEN or `trainyard login`)",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batchsize", type=int, default=128)
    parser.add_argument(
        "--no-deploy", action="store_true", help="stop after the fresh-process check"
    )
    args = parser.parse_args(argv)
    console = Console()
    t0 = time.perf_counter()

    if args.server:
        ws = Workspace.create("demo", server=args.server, exist_ok=True)
        console.rule(f"[bold]Workspace {ws.name}[/] on {args.server}")
    else:
        ws = Workspace.create("demo", path=Path(args.workspace).resolve(), exist_ok=True)
        console.rule(f"[bold]Workspace {ws.name}[/] at {ws.path}")
    datastore = ws.get_default_datastore()
    datastore.upload(
        src_dir=str(REPO / "data" / "mnist"),
        target_path="mnist",
        overwrite=True,
        show_progress=True,
    )
    mnist = Dataset.File.from_files(path=(datastore, "mnist/*.gz"))

    estimator = Chainer(
        source_directory=str(SOURCE),
        compute_target="local",
        entry_script="chainer_mnist.py",
        script_params={
            "--epochs": args.epochs,
            "--batchsize": args.batchsize,
            "--output_dir": "./outputs",
            "--data-folder": mnist.as_mount(),
        },
        environment_variables={"OMP_NUM_THREADS": "1"},
    )
    experiment = Experiment(ws, name="chainer-mnist")
    run = experiment.submit(estimator)
    console.print(f"Submitted run [bold]{run.id}[/] (status {run.get_status()})")
    run.wait_for_completion(show_output=True)
    details = run.get_details()
    console.print(metrics_table(run.id, run.get_metrics()))
    runtime = run._refresh().runtime
    console.print(
        f"Environment: {'cached' if runtime.get('environment_cached') else 'built'} in "
        f"{runtime.get('prepare_seconds')} s; chainer {runtime.get('resolved_packages', {}).get('chainer')}"
    )

    model = run.register_model(
        model_name="chainer-dnn-mnist",
        model_path="outputs/model.npz",
        tags={"framework": "Chainer", "dataset": "mnist"},
        model_framework="Chainer",
        model_framework_version=details["runDefinition"].get("frameworkInfo", {}).get("version"),
        description="Chainer MLP 784-100-100-10 on MNIST",
    )
    console.print(
        f"Registered [bold]{model.id}[/] from run {model.run_id}; models: {sorted(ws.models)}"
    )
    target = Path(tempfile.mkdtemp(prefix="chainer-dnn-mnist-"))
    local = model.download(target_dir=target, exist_ok=True)
    console.print(f"Downloaded to {local}")

    python = runtime.get("python")
    if not python or not Path(python).exists():  # a server on another machine built it there
        python = sys.executable
    code = _EVAL.format(source=str(SOURCE), data=str(REPO / "data" / "mnist"), n_compare=N_COMPARE)
    proc = subprocess.run(
        [python, "-c", code],
        env={"AZUREML_MODEL_DIR": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        console.print(proc.stderr)
        raise SystemExit("Loading the model in a fresh process failed.")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = result["accuracy"] >= 0.97
    console.print(
        f"Fresh process: test accuracy [bold]{result['accuracy']:.4f}[/] on {result['n']} digits "
        f"({'≥' if ok else '<'} 0.97); test digit 0 → {result['sample']}"
    )
    console.print(f"Latest model: {Model(ws, 'chainer-dnn-mnist').id}")
    served_ok = True
    if not args.no_deploy:
        served_ok = deploy_and_score(console, ws, run, model, result["first"])
    console.print(f"Demo took {time.perf_counter() - t0:.1f} s")
    return 0 if (ok or args.epochs < 10) and served_ok else 1


def deploy_and_score(
    console: Console, ws: Workspace, run: object, model: Model, expected: list[int]
) -> bool:
    """The notebook's deployment cells: deploy, wait, score over HTTP with the key, log tail, delete."""
    import httpx
    import numpy as np

    from trainyard._data.mnist import load_split

    console.rule("[bold]Deploy chainer-dnn-mnist as a web service")
    environment = run.get_environment()  # type: ignore[attr-defined]  # the run's Chainer pins
    inference_config = InferenceConfig(
        entry_script="chainer_score.py", source_directory=str(SOURCE), environment=environment
    )
    aciconfig = AciWebservice.deploy_configuration(
        cpu_cores=1,
        memory_gb=1,
        auth_enabled=True,
        tags={"name": "mnist", "framework": "Chainer"},
        description="Chainer DNN with MNIST",
    )
    t_deploy = time.perf_counter()
    service = Model.deploy(
        workspace=ws,
        name="chainer-mnist-1",
        models=[model],
        inference_config=inference_config,
        deployment_config=aciconfig,
        overwrite=True,
    )
    console.print(
        f"Model.deploy returned in {time.perf_counter() - t_deploy:.2f} s: {service.state}"
    )
    service.wait_for_deployment(True)
    console.print(f"Deployed in {time.perf_counter() - t_deploy:.1f} s")
    print(service.state)
    print(service.scoring_uri)
    console.print(
        f"ws.webservices['chainer-mnist-1'].scoring_uri = {ws.webservices['chainer-mnist-1'].scoring_uri}"
    )
    key1, _key2 = service.get_keys()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + key1}
    images, labels = load_split("test", str(REPO / "data" / "mnist"))
    ok = True
    with httpx.Client(timeout=60) as client:
        # the notebook's cell: one random test index, the digit is resp.text[1]
        index = random.randrange(len(labels))
        resp = client.post(
            service.scoring_uri, content=json.dumps({"data": [index]}), headers=headers
        )
        console.print(
            f"POST {{'data': [{index}]}} → {resp.status_code} {resp.text}; label {labels[index]}, "
            f"resp.text[1] = {resp.text[1]!r}"
        )
        denied = client.post(
            service.scoring_uri,
            content=json.dumps({"data": [index]}),
            headers={"Content-Type": "application/json"},
        )
        console.print(f"Without the key → {denied.status_code} {denied.text}")
        ok &= resp.status_code == 200 and denied.status_code == 401
        # by index, in batches, compared with the fresh-process answers for the same digits
        predicted: list[int] = []
        t_http = time.perf_counter()
        for start in range(0, N_COMPARE, HTTP_BATCH):
            batch = list(range(start, start + HTTP_BATCH))
            r = client.post(
                service.scoring_uri, content=json.dumps({"data": batch}), headers=headers
            )
            r.raise_for_status()
            predicted += r.json()
        http_s = time.perf_counter() - t_http
        agree = predicted == expected[:N_COMPARE]
        http_acc = float(np.mean(np.asarray(predicted) == labels[:N_COMPARE]))
        fresh_acc = float(np.mean(np.asarray(expected[:N_COMPARE]) == labels[:N_COMPARE]))
        console.print(
            f"HTTP, by index: {N_COMPARE} digits in {N_COMPARE // HTTP_BATCH} requests ({http_s:.2f} s): "
            f"accuracy [bold]{http_acc:.4f}[/] vs {fresh_acc:.4f} in the fresh process; "
            f"identical predictions: {agree}"
        )
        # by pixels: 16 images as float arrays in one request
        pixels = images[:16].reshape(16, 784).astype(float).tolist()  # floats: not indices
        r = client.post(service.scoring_uri, content=json.dumps({"data": pixels}), headers=headers)
        by_pixels = r.json() if r.status_code == 200 else r.text
        console.print(f"HTTP, by pixels (16 images): {by_pixels}; labels {labels[:16].tolist()}")
        ok &= agree and by_pixels == expected[:16]
        # the SDK call (retries with a fresh key on 401, follows the service after an update)
        console.print(
            f"service.run('{{\"data\": [0]}}') → {service.run(json.dumps({'data': [0]}))}"
        )
    logs = service.get_logs(num_lines=12)
    console.print("[bold]service.get_logs()[/] (last lines):")
    console.print(logs, markup=False, highlight=False)
    service.delete()
    console.print(f"Deleted; web services left: {sorted(Webservice.list(ws), key=str) or 'none'}")
    if not ok:
        console.print("[bold red]Scoring over HTTP did not match the fresh-process evaluation.[/]")
    return ok


if __name__ == "__main__":
    sys.exit(main())
