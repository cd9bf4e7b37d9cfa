"""The seed's flow on a cluster that grows and shrinks: an ``AmlCompute`` target with
``min_nodes=0, max_nodes=4`` provisioned on a managed Ray cluster on this machine, the Chainer
estimator and a HyperDrive sweep of it submitted to it — worker nodes come for the work and go when
it is done — then the best child's model registered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("ray")

from trainyard.core import Experiment, Workspace
from trainyard.core.compute import AmlCompute, ComputeTarget
from trainyard.testing.fixtures import unique_name
from trainyard.train.dnn import Chainer
from trainyard.train.hyperdrive import (
    BanditPolicy,
    GridParameterSampling,
    HyperDriveConfig,
    PrimaryMetricGoal,
    choice,
)

from .test_dnn_e2e import MNIST, REPO, check_metrics, shared_env_cache

pytestmark = pytest.mark.slow


@pytest.fixture
def ws(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("TRAINYARD_ENV_CACHE", str(shared_env_cache(tmp_path_factory)))
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MIN", "0.05")
    monkeypatch.setenv("TRAINYARD_POLLING_INTERVAL_MAX", "0.3")
    workspace = Workspace.create(unique_name("ws"), path=tmp_path_factory.mktemp("ray-dnn") / "ws")
    workspace.get_default_datastore().upload(
        src_dir=str(MNIST), target_path="mnist", overwrite=True, show_progress=False
    )
    return workspace


@pytest.fixture
def cluster(ws: Workspace) -> Iterator[ComputeTarget]:
    config = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2_V2",
        min_nodes=0,
        max_nodes=4,
        idle_seconds_before_scaledown=6,
        backend="ray",
    )
    target = ComputeTarget.create(ws, "cpu-cluster", config)
    try:
        target.wait_for_completion(show_output=True)
        yield target
    finally:
        target.delete()


class NodeWatch:
    """Counts the cluster's worker nodes from a thread while the work runs."""

    def __init__(self, target: ComputeTarget) -> None:
        self.target = target
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            status = ComputeTarget(self.target.workspace, self.target.name).get_status()
            self.counts.append(int(status.serialize()["current_node_count"]))

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.counts


def estimator(target: ComputeTarget, **params: object) -> Chainer:
    return Chainer(
        source_directory=str(REPO / "examples" / "chainer-mnist"),
        compute_target=target,
        entry_script="chainer_mnist.py",
        script_params={
            "--epochs": 2,
            "--batchsize": 100,
            "--output_dir": "./outputs",
            "--train-slice": 2000,
            "--test-slice": 500,
            **params,
        },
        environment_variables={"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)},
    )


def test_chainer_and_a_sweep_on_an_autoscaling_cluster(
    ws: Workspace, cluster: ComputeTarget
) -> None:
    assert cluster.get_status().serialize()["current_node_count"] == 0
    watch = NodeWatch(cluster)
    experiment = Experiment(ws, "chainer-on-ray")
    run = experiment.submit(estimator(cluster))
    run.wait_for_completion(show_output=False, wait_post_processing=True, raise_on_error=False)
    assert run.get_status() == "Completed", run.get_details().get("error")
    check_metrics(run)  # type: ignore[arg-type]
    assert run.get_details()["node"]["id"]

    sweep = experiment.submit(
        HyperDriveConfig(
            estimator=estimator(cluster),
            hyperparameter_sampling=GridParameterSampling({"--lr": choice(0.01, 0.05, 0.1)}),
            policy=BanditPolicy(slack_factor=0.5, evaluation_interval=1),
            primary_metric_name="Accuracy",
            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
            max_total_runs=3,
            max_concurrent_runs=3,
        )
    )
    sweep.wait_for_completion(show_output=False, raise_on_error=False)
    assert sweep.get_status() == "Completed", sweep.get_details().get("error")
    children = list(sweep.get_children())
    assert len(children) == 3
    assert {c.get_details()["node"]["id"] for c in children} and all(
        c.get_status() in ("Completed", "Canceled") for c in children
    )
    best = sweep.get_best_run_by_primary_metric()  # type: ignore[attr-defined]
    model = best.register_model("mnist-on-ray", "outputs/model.npz")
    assert model.run_id == best.id

    deadline = time.monotonic() + 90
    while cluster.get_status().serialize()["current_node_count"] > 0:
        assert time.monotonic() < deadline, "the idle nodes did not go"
        time.sleep(0.5)
    counts = watch.stop()
    assert max(counts) >= 2, f"nodes came for the concurrent children: {counts}"
    assert counts[0] <= 1, counts  # and none left: the wait above
    print(f"worker nodes over time: {counts}")
