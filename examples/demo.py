"""trainyard's main demo: Azure ML's "train and register Chainer models at scale", on this machine.

1. opens (or creates) the embedded workspace ``./.trainyard-demo`` and uploads MNIST to its datastore;
2. submits ``examples/chainer-mnist/chainer_mnist.py`` with the ``Chainer`` estimator to local compute
   (Chainer 7.8.1 in a uv-built, cached environment) and streams its log;
3. prints the run's metrics table;
4. registers ``outputs/model.npz`` as ``chainer-dnn-mnist`` and downloads it;
5. loads it in a fresh process with the example's scoring module and reports test accuracy.

``python examples/demo.py [--epochs N] [--workspace DIR]``; runs again without error (new run, next
model version).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trainyard.core import Dataset, Experiment, Model, Workspace
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
print(json.dumps({{"accuracy": correct / len(labels), "n": len(labels),
                   "sample": chainer_score.run(json.dumps({{"data": [0]}}))}}))
"""


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
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batchsize", type=int, default=128)
    args = parser.parse_args(argv)
    console = Console()
    t0 = time.perf_counter()

    ws = Workspace.create("demo", path=Path(args.workspace).resolve(), exist_ok=True)
    console.rule(f"[bold]Workspace {ws.name}[/] at {ws.path}")
    datastore = ws.get_default_datastore()
    datastore.upload(src_dir=str(REPO / "data" / "mnist"), target_path="mnist", overwrite=True, show_progress=True)
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
        model_name="chainer-dnn-mnist", model_path="outputs/model.npz",
        tags={"framework": "Chainer", "dataset": "mnist"}, model_framework="Chainer",
        model_framework_version=details["runDefinition"].get("frameworkInfo", {}).get("version"),
        description="Chainer MLP 784-100-100-10 on MNIST",
    )
    console.print(f"Registered [bold]{model.id}[/] from run {model.run_id}; models: {sorted(ws.models)}")
    target = Path(tempfile.mkdtemp(prefix="chainer-dnn-mnist-"))
    local = model.download(target_dir=target, exist_ok=True)
    console.print(f"Downloaded to {local}")

    python = runtime.get("python") or sys.executable
    code = _EVAL.format(source=str(SOURCE), data=str(REPO / "data" / "mnist"))
    proc = subprocess.run(
        [python, "-c", code], env={"AZUREML_MODEL_DIR": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False,
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
    console.print(f"Latest model: {Model(ws, 'chainer-dnn-mnist').id}; demo took {time.perf_counter() - t0:.1f} s")
    return 0 if ok or args.epochs < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
