"""Tune the Chainer MNIST MLP with HyperDrive: the Azure ML v1 notebook's sweep, on this machine.

The v1 "train, tune, register, deploy" notebook (aml-reference §1.1 rows 17-28), ported by renaming
``azureml`` to ``trainyard``:

1. a ``Chainer`` estimator for ``examples/chainer-mnist/chainer_mnist.py`` on local compute;
2. ``RandomParameterSampling({"--batchsize": choice(128, 256), "--epochs": choice(5, 10, 20, 40)})``
   with ``BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3)``, primary metric
   ``Accuracy`` maximised, ``max_total_runs=8``, ``max_concurrent_runs=4``;
3. ``experiment.submit(config)`` and ``wait_for_completion(show_output=True)``;
4. the best run, its arguments and files, and ``register_model('chainer-dnn-mnist',
   'outputs/model.npz')``.

Run it::

    python examples/hyperdrive-chainer-mnist/sweep.py            # the notebook's values (~5-10 min here)
    python examples/hyperdrive-chainer-mnist/sweep.py --quick    # 1-4 epochs on a slice (~1 min)

``--quick`` samples ``--epochs`` from ``choice(1, 2, 3, 4)``, trains on the first 6,000 images and
tests on the first 1,000, and runs 2 children at a time. The local compute target runs at most as
many children at once as the machine has cores; the others wait Queued.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from trainyard.core import Experiment, Workspace
from trainyard.train.dnn import Chainer
from trainyard.train.hyperdrive import (
    BanditPolicy,
    HyperDriveConfig,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SOURCE = REPO / "examples" / "chainer-mnist"
MNIST = REPO / "data" / "mnist"
MODEL_NAME = "chainer-dnn-mnist"
MODEL_PATH = "outputs/model.npz"


def build_config(quick: bool) -> HyperDriveConfig:
    """The notebook's HyperDriveConfig (or its ``--quick`` variant).

    Example::

        config = build_config(quick=True)
        config.hyperparameter_sampling.parameter_space["--epochs"]   # ['choice', [[1, 2, 3, 4]]]
    """
    script_params: dict[str, object] = {
        # The notebook hands HyperDrive the same estimator as its single run: --epochs and
        # --batchsize are in the parameter space too, so HyperDrive drops them (with a warning).
        "--epochs": 10,
        "--batchsize": 128,
        "--output_dir": "./outputs",
    }
    if quick:
        script_params.update({"--train-slice": 6000, "--test-slice": 1000})
    estimator = Chainer(
        source_directory=str(SOURCE),
        script_params=script_params,
        compute_target="local",
        entry_script="chainer_mnist.py",
        # One BLAS thread per child: several children share this machine's cores.
        environment_variables={"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)},
    )
    epochs = choice(1, 2, 3, 4) if quick else choice(5, 10, 20, 40)
    sampling = RandomParameterSampling({"--batchsize": choice(128, 256), "--epochs": epochs})
    return HyperDriveConfig(
        estimator=estimator,
        hyperparameter_sampling=sampling,
        primary_metric_name="Accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=3),
        max_total_runs=8,
        max_concurrent_runs=2 if quick else 4,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, show the best run and register its model; returns the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--workspace", default=".trainyard-hyperdrive", help="workspace folder (created if missing)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1-4 epochs on a slice of MNIST, 2 children at a time"
    )
    args = parser.parse_args(argv)
    console = Console(soft_wrap=True)  # long ids and argument lists stay on one line
    started = time.perf_counter()

    ws = Workspace.create("hyperdrive-demo", path=Path(args.workspace).resolve(), exist_ok=True)
    console.rule(f"[bold]Workspace {ws.name}[/] at {ws.path}")
    experiment = Experiment(ws, name="chainer-mnist")

    config = build_config(args.quick)
    hyperdrive_run = experiment.submit(config)
    console.print(f"Submitted HyperDrive run [bold]{hyperdrive_run.id}[/]")
    hyperdrive_run.wait_for_completion(show_output=True)
    status = hyperdrive_run.get_status()
    assert status == "Completed", status

    best_run = hyperdrive_run.get_best_run_by_primary_metric()
    if best_run is None:
        console.print("[red]No child run logged Accuracy.[/]")
        return 1
    if MODEL_PATH not in best_run.get_file_names():
        # A child cancelled before its last epoch never wrote its model; take the best one that did.
        best_run = hyperdrive_run.get_best_run_by_primary_metric(
            include_failed=False, include_canceled=False
        )
        assert best_run is not None
    metrics = best_run.get_metrics()
    accuracy = metrics["Accuracy"]
    best_accuracy = max(accuracy) if isinstance(accuracy, list) else accuracy
    console.print(f"Best run: [bold]{best_run.id}[/] ({best_run.get_status()})")
    console.print(f"  best Accuracy: {best_accuracy:.4f} after {metrics.get('Epochs')} epochs")
    console.print(
        f"  arguments: {best_run.get_details()['runDefinition']['arguments']}", markup=False
    )
    console.print(f"  files: {best_run.get_file_names()}", markup=False)

    model = best_run.register_model(model_name=MODEL_NAME, model_path=MODEL_PATH)
    console.print(f"Registered model [bold]{model.id}[/] from run {model.run_id}")
    console.print(f"Sweep took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
