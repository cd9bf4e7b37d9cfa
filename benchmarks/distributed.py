"""Distributed training on one machine: trainyard's launch against ``mpirun`` / ``torchrun`` by hand.

Run it with ``scripts/bench.sh distributed`` or directly with
``python benchmarks/distributed.py [--strict] [--quick] [--rounds N] [--json FILE]``.

What is measured, for 1, 2 and 4 processes (1 and 2 with ``--quick``), and for 2 nodes × 1 process
on a simulated Ray cluster (two worker nodes of this machine, ChainerMN over one mpirun across them
and PyTorch DDP; ``--no-cluster`` skips it):

* **Throughput** (images/s): the ChainerMN MNIST MLP (``examples/chainermn-mnist/train_mnist.py``,
  784-100-100-10, ``naive`` communicator, 12,000 training images, 1 epoch) and the small PyTorch
  CNN over gloo (``examples/pytorch-ddp-mnist/train_ddp.py``, 4,000 images, 1 epoch). Each script
  measures its own training loop between barriers and prints ``IMAGES_PER_SEC=``; the same
  script, arguments and interpreter run (a) submitted to trainyard with ``MpiConfiguration`` /
  ``PyTorchConfiguration('Gloo')`` and (b) by hand with ``mpirun --oversubscribe --bind-to none
  -np N`` / ``python -m torch.distributed.run --nproc-per-node N``. ``OMP_NUM_THREADS=1`` for
  both. The overhead is 1 − trainyard's ÷ by hand's; target ≤ 2 %. Medians of ``--rounds``
  (default 3, 1 with ``--quick``); the two launchers alternate.
* **Start-up** (submit → all ranks running): a script whose first statement appends
  ``time.time()`` to a file; the latest of the N stamps minus the time taken just before
  ``experiment.submit`` (trainyard) or ``Popen`` (by hand).

The environments (Chainer 7.8.1 + mpi4py; torch 2.13.0) are built once by trainyard's own
builder into ``$TRAINYARD_ENV_CACHE`` before timing; the by-hand runs use the same interpreters.

Exit code 0 even when a target is missed (it is a report); ``--strict`` makes a miss exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import _common

_common.bootstrap("distributed", modules=("rich", "trainyard"))

ROOT = _common.ROOT
MNIST = ROOT / "data" / "mnist"
CHAINER_ARGS = ["--epoch", "1", "--unit", "100", "--train-slice", "12000", "--test-slice", "1000"]
TORCH_ARGS = ["--epochs", "1", "--train-slice", "4000", "--test-slice", "500"]
ENV_VARS = {"OMP_NUM_THREADS": "1", "TRAINYARD_MNIST_DIR": str(MNIST)}
_RATE = re.compile(r"IMAGES_PER_SEC=([0-9.]+)")

STAMP = """import os, sys, time
with open(os.path.join(sys.argv[1], str(os.getpid())), "w") as fh:
    fh.write(repr(time.time()))
"""


def build_envs() -> dict[str, tuple[Any, str]]:
    """``{"chainer": (Environment, python), "torch": (...)}`` built (or reused) by trainyard."""
    from trainyard._execution.prepare import prepare_environment
    from trainyard.core import Environment
    from trainyard.core.conda_dependencies import CondaDependencies
    from trainyard.settings import load_settings

    out = {}
    for name, packages, extra in (
        ("chainer", ["chainer==7.8.1"], ("mpi4py",)),
        ("torch", ["torch==2.13.0", "numpy"], ()),
    ):
        env = Environment(f"bench-{name}")
        env.python.conda_dependencies = CondaDependencies.create(pip_packages=packages)
        env.environment_variables = dict(ENV_VARS)
        built = prepare_environment(
            env.to_dict(), load_settings(), lambda _line: None, extra_requirements=extra
        )
        out[name] = (env, built.python)
    return out


def mpirun() -> list[str]:
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return [shutil.which("mpirun") or "mpirun", *root, "--oversubscribe", "--bind-to", "none"]


def by_hand(kind: str, python: str, script: Path, args: list[str], n: int) -> float:
    if kind == "chainer":
        argv = [*mpirun(), "-np", str(n), python, str(script), *args]
    else:
        argv = [python, "-m", "torch.distributed.run", "--nproc-per-node", str(n), str(script)]
        argv += args
    env = {**os.environ, **ENV_VARS, "GLOO_SOCKET_IFNAME": "lo"}
    with tempfile.TemporaryDirectory() as wd:
        done = subprocess.run(argv, cwd=wd, env=env, capture_output=True, text=True, check=False)
    found = _RATE.findall(done.stdout)
    if done.returncode != 0 or not found:
        raise _common.BenchmarkError(f"{argv[:6]} failed:\n{done.stdout[-2000:]}{done.stderr}")
    return float(found[-1])


def dist_config(kind: str, n: int, nodes: int = 1) -> Any:
    from trainyard.core.runconfig import MpiConfiguration, PyTorchConfiguration

    if kind == "chainer":
        return MpiConfiguration(process_count_per_node=n // nodes, node_count=nodes)
    return PyTorchConfiguration("Gloo", process_count=n, node_count=nodes)


def with_trainyard(
    ws: Any,
    kind: str,
    env: Any,
    script: Path,
    args: list[str],
    n: int,
    target: str = "local",
    nodes: int = 1,
) -> float:
    from trainyard.core import Experiment, ScriptRunConfig

    config = ScriptRunConfig(
        str(script.parent),
        script.name,
        arguments=args,
        environment=env,
        compute_target=target,
        distributed_job_config=dist_config(kind, n, nodes),
    )
    run = Experiment(ws, f"bench-{kind}").submit(config)
    run.wait_for_completion(raise_on_error=False)
    if run.get_status() != "Completed":
        raise _common.BenchmarkError(f"{run.id}: {run.get_details().get('error')}")
    rate = run.get_metrics()["images_per_sec"]
    return float(rate[-1] if isinstance(rate, list) else rate)


def wait_stamps(folder: Path, n: int, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stamps = [p for p in folder.iterdir() if p.name.isdigit()]
        if len(stamps) == n:
            with_text = [p.read_text() for p in stamps]
            if all(with_text):
                return max(float(t) for t in with_text)
        time.sleep(0.01)
    raise _common.BenchmarkError(f"only {len(list(folder.iterdir()))} of {n} ranks started")


def startup(ws: Any, kind: str, env: Any, python: str, src: Path, n: int) -> tuple[float, float]:
    """(trainyard, by hand) seconds from launch to the last rank running."""
    from trainyard.core import Experiment, ScriptRunConfig

    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, hand_dir = Path(tmp, "ours"), Path(tmp, "hand")
        ours_dir.mkdir()
        hand_dir.mkdir()
        config = ScriptRunConfig(
            str(src),
            "stamp.py",
            arguments=[str(ours_dir)],
            environment=env,
            distributed_job_config=dist_config(kind, n),
        )
        t0 = time.time()
        run = Experiment(ws, f"startup-{kind}").submit(config)
        ours = wait_stamps(ours_dir, n) - t0
        run.wait_for_completion(raise_on_error=False)
        script = str(src / "stamp.py")
        if kind == "chainer":
            argv = [*mpirun(), "-np", str(n), python, script, str(hand_dir)]
        else:
            argv = [python, "-m", "torch.distributed.run", "--nproc-per-node", str(n), script]
            argv.append(str(hand_dir))
        t0 = time.time()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hand = wait_stamps(hand_dir, n) - t0
        proc.wait()
    return ours, hand


def two_nodes(
    ws: Any, work: Path, envs: dict[str, tuple[Any, str]], rounds: int, table: Any
) -> dict[str, Any]:
    """The ChainerMN MLP (one mpirun over both nodes) and the PyTorch CNN as 2 nodes × 1 process
    on a simulated Ray cluster (two worker nodes of this machine, one rank each, placed by a
    STRICT_SPREAD placement group) beside mpirun / torchrun starting the same 2 ranks by hand."""
    from trainyard.testing.ray_cluster import LocalRayCluster, NodeType

    jobs = {
        "chainer": (ROOT / "examples" / "chainermn-mnist" / "train_mnist.py", CHAINER_ARGS),
        "torch": (ROOT / "examples" / "pytorch-ddp-mnist" / "train_ddp.py", TORCH_ARGS),
    }
    os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    cluster = LocalRayCluster.start(
        work / "ray", {"w": NodeType({"CPU": 1, "trainyard_slot": 1}, 2, 2)}
    )
    results: dict[str, Any] = {}
    try:
        cluster.wait_for_workers(2, timeout=120)
        ws.context.store.put_compute_target(
            ws.context.workspace_id,
            "ray2",
            "raycompute",
            {
                "backend": "ray",
                "max_nodes": 2,
                "max_concurrent_runs": 2,
                "ray": {
                    "managed": True,
                    "address": cluster.address,
                    "dashboard_url": cluster.dashboard_url,
                    "token_file": str(cluster.root / "token"),
                    "node_resources": {"CPU": 1, "trainyard_slot": 1},
                },
            },
        )
        for kind, (script, args) in jobs.items():
            env, python = envs[kind]
            ours = [
                with_trainyard(ws, kind, env, script, args, 2, target="ray2", nodes=2)
                for _ in range(rounds)
            ]
            hand = [by_hand(kind, python, script, args, 2) for _ in range(rounds)]
            o, h = _common.median(ours), _common.median(hand)
            label = "ChainerMN MLP (mpirun)" if kind == "chainer" else "PyTorch CNN (torchrun)"
            table.add(
                f"{label}, 2 nodes × 1 proc (Ray) images/s",
                ours=f"{o:,.0f}",
                peer=f"{h:,.0f}",
                ratio=f"{o / h:.3f}",
                target="overhead ≤ 2 %",
                passed=1.0 - o / h <= 0.02,
            )
            results[f"{kind}-2-nodes"] = {
                "trainyard_images_per_s": ours,
                "by_hand_images_per_s": hand,
                "overhead": 1 - o / h,
            }
    finally:
        cluster.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--no-cluster", action="store_true", help="skip 2 nodes × 1 process on a Ray cluster"
    )
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    counts = (1, 2) if args.quick else (1, 2, 4)

    from trainyard.core import Workspace

    load_before = os.getloadavg()[0]
    envs = build_envs()
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    src = work / "src"
    src.mkdir()
    (src / "stamp.py").write_text(textwrap.dedent(STAMP))
    os.environ.setdefault("TRAINYARD_POLLING_INTERVAL_MIN", "0.05")
    os.environ.setdefault("TRAINYARD_POLLING_INTERVAL_MAX", "0.2")
    ws = Workspace.create("bench-distributed", path=work / "ws")
    scripts = {
        "chainer": (ROOT / "examples" / "chainermn-mnist" / "train_mnist.py", CHAINER_ARGS),
        "torch": (ROOT / "examples" / "pytorch-ddp-mnist" / "train_ddp.py", TORCH_ARGS),
    }
    table = _common.ResultTable("Distributed training on one machine", peer="by hand")
    results: dict[str, Any] = {}
    try:
        for kind, (script, script_args) in scripts.items():
            env, python = envs[kind]
            label = "ChainerMN MLP (mpirun)" if kind == "chainer" else "PyTorch CNN (torchrun)"
            for n in counts:
                ours: list[float] = []
                hand: list[float] = []
                for i in range(rounds):
                    order = (0, 1) if i % 2 == 0 else (1, 0)
                    for which in order:
                        if which == 0:
                            ours.append(with_trainyard(ws, kind, env, script, script_args, n))
                        else:
                            hand.append(by_hand(kind, python, script, script_args, n))
                o, h = _common.median(ours), _common.median(hand)
                overhead = 1.0 - o / h
                table.add(
                    f"{label}, {n} proc images/s",
                    ours=f"{o:,.0f}",
                    peer=f"{h:,.0f}",
                    ratio=f"{o / h:.3f}",
                    target="overhead ≤ 2 %",
                    passed=overhead <= 0.02,
                )
                up_ours, up_hand = startup(ws, kind, env, python, src, n)
                table.add(
                    f"{label}, {n} proc start-up",
                    ours=f"{up_ours:.2f} s",
                    peer=f"{up_hand:.2f} s",
                    ratio=f"{up_ours / up_hand:.2f}",
                )
                results[f"{kind}-{n}"] = {
                    "trainyard_images_per_s": ours,
                    "by_hand_images_per_s": hand,
                    "overhead": overhead,
                    "startup_trainyard_s": up_ours,
                    "startup_by_hand_s": up_hand,
                }
        if not args.no_cluster:
            results.update(two_nodes(ws, work, envs, rounds, table))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table.note("images/s: the script's own training loop between barriers, rank 0's figure.")
    table.note("start-up: launch (submit / Popen) to the last rank's first statement.")
    table.note(
        f"medians of {rounds} round(s); launchers alternate. {_common.busy_warning(load_before)}"
    )
    _common.print_machine_info({"chainer": "7.8.1", "torch": "2.13.0", "open mpi": "mpirun"})
    table.print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if args.strict and table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
