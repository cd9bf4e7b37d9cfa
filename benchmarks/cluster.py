"""Cluster: trainyard's Ray backend beside Ray Tune on the same simulated Ray cluster, in one run.

Run it with ``scripts/bench.sh cluster [--quick]`` or
``python benchmarks/cluster.py [--quick] [--strict] [--children N] [--concurrency N] [--json FILE]``.

The cluster is real Ray on this machine (:class:`trainyard.testing.ray_cluster.LocalRayCluster`: a
head on loopback with token authentication and Ray's fake multi-node autoscaler), with 4 worker nodes
of 4 CPUs / 4 trainyard slots each kept up for the sweeps, and one more node type (1 slot) that scales
from zero for the scale-up measurement. Its nodes are processes of this 2-core machine: "4 nodes"
simulates the scheduling, not the compute.

What is measured:

* **Sweep efficiency.** A HyperDrive sweep of 100 children (``--children``) of a script that sleeps
  1 s and logs a score, ``max_concurrent_runs=16``, submitted to a ``raycompute`` target on the
  cluster: submit → sweep ``Completed``. Ideal = ceil(children / concurrency) × 1 s; efficiency =
  ideal / wall. Beside it **Ray Tune** runs the same 100 trials (``grid_search``) on the same
  cluster (a driver connected with ``ray.init(address=…)``, ``max_concurrent_trials=16``, 1 CPU a
  trial), each trial running *the same script as a subprocess* (a trainyard child is a process
  too), timed around ``Tuner.fit()``. Targets: efficiency ≥ 90 % and not below Ray Tune's.
* **Scale-up latency**: submit → the run is ``Running`` on a node the autoscaler started for it (the
  1-slot node type had none). Target < 15 s. **Idle scale-down**: the run's end → its node gone,
  with the configured idle timeout (6 s) shown beside it.
* **Per-run overhead, Ray vs local**: a trivial script submitted alone, submit → ``Completed``,
  median of 5 (3 with ``--quick``) on the Ray target and on ``local``.

Every Ray process this benchmark starts is a process of its head's session and is stopped by PID
at the end (never ``ray stop``). Exit code 0 even when a target is missed (it is a report);
``--strict`` makes a miss exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

SCRIPT = """
import argparse, time
from trainyard.core import Run
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, default=0.0)
x = p.parse_args().x
time.sleep({seconds})
score = -(x - 50) ** 2
Run.get_context().log("score", score)
print("score", score, flush=True)
"""
IDLE_SECONDS = 6.0
TERMINAL = ("Completed", "Failed", "Canceled")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="32 children, 3 overhead repetitions")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--children", type=int, default=None, help="sweep size (default 100)")
    p.add_argument("--concurrency", type=int, default=16, help="max concurrent children")
    p.add_argument("--nodes", type=int, default=4, help="worker nodes for the sweeps")
    p.add_argument("--seconds", type=float, default=1.0, help="how long each child sleeps")
    p.add_argument("--skip-tune", action="store_true", help="do not run Ray Tune")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    return p.parse_args(argv)


def wait_status(run: Any, wanted: tuple[str, ...], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (status := run.get_status()) not in wanted:
        if time.monotonic() > deadline:
            raise _common.BenchmarkError(f"run {run.id} still {status} after {timeout:g} s")
        time.sleep(0.05)
    return str(status)


class Bench:
    """The cluster, a workspace with a Ray target and a scale-from-zero target, and the runs."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        from trainyard.core import Workspace
        from trainyard.testing.ray_cluster import LocalRayCluster, NodeType

        self.root = root
        self.args = args
        slots = max(1, math.ceil(args.concurrency / args.nodes))
        self.cluster = LocalRayCluster.start(
            root / "ray",
            {
                "w": NodeType(
                    {"CPU": slots, "trainyard_slot": slots},
                    min_workers=args.nodes,
                    max_workers=args.nodes,
                ),
                "scale": NodeType({"CPU": 1, "scale_slot": 1}, min_workers=0, max_workers=1),
            },
            idle_timeout_minutes=IDLE_SECONDS / 60,
        )
        self.cluster.wait_for_workers(args.nodes, timeout=180)
        self.ws = Workspace.create("cluster-bench", path=root / "ws")
        self.target("cluster", "trainyard_slot", {"CPU": slots, "trainyard_slot": slots})
        self.target("scale", "scale_slot", {"CPU": 1, "scale_slot": 1})
        from trainyard.core.compute import ComputeTarget, LocalCompute

        # The same sweep on local processes, as many at once: what this machine's cores allow.
        ComputeTarget.create(
            self.ws,
            "local-wide",
            LocalCompute.provisioning_configuration(max_concurrent_runs=args.concurrency),
        )
        self.src = root / "src"
        self.src.mkdir()
        (self.src / "train.py").write_text(SCRIPT.format(seconds=args.seconds))
        (root / "trivial").mkdir()
        (root / "trivial" / "train.py").write_text("print('hello')\n")

    def target(self, name: str, slot: str, node: dict[str, float]) -> None:
        self.ws.context.store.put_compute_target(
            self.ws.context.workspace_id,
            name,
            "raycompute",
            {
                "backend": "ray",
                "max_nodes": self.args.nodes,
                "max_concurrent_runs": self.args.nodes * int(node[slot]),
                "ray": {
                    "managed": True,
                    "address": self.cluster.address,
                    "dashboard_url": self.cluster.dashboard_url,
                    "token_file": str(self.cluster.root / "token"),
                    "slot_resource": slot,
                    "node_resources": node,
                },
            },
        )

    # -- the sweep -------------------------------------------------------------------------------
    def sweep(self, children: int, target: str = "cluster") -> dict[str, Any]:
        from trainyard.core import Experiment, ScriptRunConfig
        from trainyard.train.hyperdrive import (
            GridParameterSampling,
            HyperDriveConfig,
            PrimaryMetricGoal,
            choice,
        )

        config = HyperDriveConfig(
            run_config=ScriptRunConfig(self.src, "train.py", compute_target=target),
            hyperparameter_sampling=GridParameterSampling({"--x": choice(*range(children))}),
            primary_metric_name="score",
            primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
            max_total_runs=children,
            max_concurrent_runs=self.args.concurrency,
        )
        t0 = time.perf_counter()
        sweep = Experiment(self.ws, f"sweep-{target}").submit(config)
        status = wait_status(sweep, TERMINAL, 60 + 30 * children)
        wall = time.perf_counter() - t0
        runs = list(sweep.get_children())
        done = sum(r.get_status() == "Completed" for r in runs)
        if status != "Completed" or done != children:
            raise _common.BenchmarkError(f"the sweep ended {status} with {done}/{children} done")
        nodes = {str((r.get_details().get("node") or {}).get("id")) for r in runs}
        return {"wall_s": wall, "children": children, "nodes_used": len(nodes)}

    def tune(self, children: int) -> dict[str, Any]:
        import ray
        from ray import tune

        ray.init(address=self.cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            script, python = str(self.src / "train.py"), sys.executable
            env = {**os.environ, "TRAINYARD_RUN_ID": ""}

            def trial(config: dict[str, Any]) -> None:
                out = subprocess.run(
                    [python, script, "--x", str(config["x"])],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                score = float(out.stdout.split()[-1])
                tune.report({"score": score})

            tuner = tune.Tuner(
                tune.with_resources(trial, {"cpu": 1}),
                param_space={"x": tune.grid_search(list(range(children)))},
                tune_config=tune.TuneConfig(
                    metric="score", mode="max", max_concurrent_trials=self.args.concurrency
                ),
                run_config=tune.RunConfig(
                    storage_path=str(self.root / "tune"), name="sweep", verbose=0
                ),
            )
            t0 = time.perf_counter()
            grid = tuner.fit()
            wall = time.perf_counter() - t0
            errors = [grid[i].error for i in range(len(grid)) if grid[i].error]
            if errors:
                raise _common.BenchmarkError(f"Ray Tune trials failed: {errors[0]}")
            return {"wall_s": wall, "children": len(grid)}
        finally:
            ray.shutdown()

    # -- scaling ---------------------------------------------------------------------------------
    def scale_nodes(self) -> list[dict[str, Any]]:
        return [
            n
            for n in self.cluster.alive_workers()
            if "scale_slot" in (n.get("resources_total") or {})
        ]

    def scaling(self) -> dict[str, float]:
        from trainyard.core import Experiment, ScriptRunConfig

        deadline = time.monotonic() + 120
        while self.scale_nodes():
            if time.monotonic() > deadline:
                raise _common.BenchmarkError("the scale-from-zero node type already has a node")
            time.sleep(0.2)
        t0 = time.perf_counter()
        run = Experiment(self.ws, "scale").submit(
            ScriptRunConfig(self.src, "train.py", compute_target="scale")
        )
        wait_status(run, ("Running", *TERMINAL), 120)
        up = time.perf_counter() - t0
        if wait_status(run, TERMINAL, 120) != "Completed":
            raise _common.BenchmarkError(f"the scale-up run ended {run.get_status()}")
        ended = run.get_info().end_time or time.time()
        deadline = time.monotonic() + 180
        while self.scale_nodes():
            if time.monotonic() > deadline:
                raise _common.BenchmarkError("the idle node was not removed within 180 s")
            time.sleep(0.2)
        return {"scale_up_s": up, "scale_down_s": time.time() - ended}

    def overhead(self, repeat: int) -> dict[str, float]:
        from trainyard.core import Experiment, ScriptRunConfig

        times: dict[str, list[float]] = {"ray": [], "local": []}
        for _ in range(repeat):
            for label, target in (("ray", "cluster"), ("local", "local")):
                t0 = time.perf_counter()
                run = Experiment(self.ws, f"overhead-{label}").submit(
                    ScriptRunConfig(self.root / "trivial", "train.py", compute_target=target)
                )
                if wait_status(run, TERMINAL, 120) != "Completed":
                    raise _common.BenchmarkError(f"a trivial {label} run ended {run.get_status()}")
                times[label].append(time.perf_counter() - t0)
        return {k: _common.median(v) for k, v in times.items()}

    def stop(self) -> None:
        self.cluster.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _common.bootstrap("cluster", modules=("ray", "rich", "trainyard", "psutil"))
    # Before Ray is imported anywhere: loopback only, no usage reports.
    os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    children = args.children or (32 if args.quick else 100)
    repeat = 3 if args.quick else 5
    console = _common.make_console()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    def say(msg: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:6.1f} s[/] {msg}", highlight=False)

    root = Path(tempfile.mkdtemp(prefix="ty-cluster-bench-"))
    figures: dict[str, Any] = {"children": children, "concurrency": args.concurrency}
    bench: Bench | None = None
    try:
        bench = Bench(root, args)
        say(f"cluster up: {args.nodes} worker nodes ({bench.cluster.dashboard_url})")
        figures["sweep"] = bench.sweep(children)
        say(f"trainyard sweep: {figures['sweep']['wall_s']:.1f} s")
        if not args.skip_tune:
            # Tune's driver joins the token-authenticated cluster like any Ray client.
            os.environ.update(bench.cluster.env)
            figures["tune"] = bench.tune(children)
            say(f"Ray Tune: {figures['tune']['wall_s']:.1f} s")
        figures["local_sweep"] = bench.sweep(children, "local-wide")
        say(f"the same sweep on local processes: {figures['local_sweep']['wall_s']:.1f} s")
        figures["scaling"] = bench.scaling()
        say(f"scale-up {figures['scaling']['scale_up_s']:.1f} s")
        figures["overhead"] = bench.overhead(repeat)
    finally:
        if bench is not None:
            bench.stop()
        shutil.rmtree(root, ignore_errors=True)

    import ray

    _common.print_machine_info({"ray": ray.__version__})
    ideal = math.ceil(children / args.concurrency) * args.seconds
    ours = ideal / figures["sweep"]["wall_s"]
    table = _common.ResultTable(
        f"Cluster: {children}-child sweep of a {args.seconds:g} s script at concurrency "
        f"{args.concurrency} on {args.nodes} simulated nodes",
        peer="Ray Tune",
    )
    tune_eff = None
    if "tune" in figures:
        tune_eff = ideal / figures["tune"]["wall_s"]
        figures["tune"]["efficiency"] = tune_eff
    figures["sweep"]["efficiency"] = ours
    table.add(
        "sweep wall",
        f"{figures['sweep']['wall_s']:.1f} s",
        f"{figures['tune']['wall_s']:.1f} s" if tune_eff else "",
        _common.fmt_ratio(figures["sweep"]["wall_s"] / figures["tune"]["wall_s"])
        if tune_eff
        else "",
        f"ideal {ideal:.1f} s",
    )
    table.add(
        "sweep efficiency (ideal / wall)",
        f"{ours:.0%}",
        f"{tune_eff:.0%}" if tune_eff else "",
        "",
        "≥ 90 %, ≥ Ray Tune's",
        passed=ours >= 0.9 and (tune_eff is None or ours >= tune_eff),
    )
    local_eff = ideal / figures["local_sweep"]["wall_s"]
    table.add(
        "same sweep on local processes (this machine)",
        f"{figures['local_sweep']['wall_s']:.1f} s",
        "",
        "",
        f"efficiency {local_eff:.0%}: the cores' bound",
    )
    sc = figures["scaling"]
    table.add(
        "scale-up: submit → Running on a new node",
        f"{sc['scale_up_s']:.1f} s",
        target="< 15 s",
        passed=sc["scale_up_s"] < 15,
    )
    table.add(
        "idle scale-down: run end → node gone",
        f"{sc['scale_down_s']:.1f} s",
        target=f"idle timeout {IDLE_SECONDS:g} s",
    )
    ov = figures["overhead"]
    table.add(
        "trivial run submit → Completed (Ray vs local)",
        f"{ov['ray']:.2f} s",
        f"local {ov['local']:.2f} s",
        _common.fmt_ratio(ov["ray"] / ov["local"]),
    )
    table.note(
        "The nodes are processes of this machine: each child costs a Ray task (in a pooled "
        "worker of the target's dispatcher job), trainyard's supervisor (forked warm on its "
        "node) and the script's interpreter, all on these 2 cores; Ray Tune's trials run the "
        "same script as a subprocess."
    )
    table.print()
    busy = _common.busy_warning(load_before)
    if busy:
        console.print(f"[yellow]{busy}[/]", highlight=False)
    console.print(f"Benchmark took {time.perf_counter() - started:.0f} s.", highlight=False)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 1 if (args.strict and table.failed) else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
