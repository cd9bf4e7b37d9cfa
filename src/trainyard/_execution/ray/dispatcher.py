"""A target's dispatcher: one long-lived Ray job that turns handed-over runs into Ray tasks.

``python -m trainyard._execution.ray.dispatcher --workspace HOME --target NAME`` (a Ray job started
by :class:`~trainyard._execution.ray.backend.RayBackend`; it is the job's driver)

A Ray job per run costs a JobSupervisor actor — a new worker process — for every run (about a
second of CPU here). The dispatcher pays that once: it takes the runs the backend queued for its
target (:class:`~trainyard._execution.ray.runqueue.RunQueue`, oldest first) and submits one task per
run with the resources the run needs (:func:`hold`). Ray queues the tasks, places each on a node
with a free slot — asking the autoscaler for a node when none has one — and runs it in a pooled
worker process. The task starts the run's supervisor on its node (warm, from the node's fork server
when one answers) and holds the slot until the supervisor exits.

It also acts for runs still waiting in Ray's queue: one whose cancel was requested has its task
cancelled and is ended Canceled; one whose task was lost before it started (its node died while the
task was placed) is submitted again, up to three times. It exits after ``--idle-seconds`` with
nothing queued or running; the next submission starts a new one.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from trainyard._execution.ray.runqueue import ERROR_FILE, STARTED_FILE, Entry, RunQueue

_TICK_S = 0.05
#: How often running tasks are looked at (ended, lost, a waiting run cancelled).
_CHECK_S = 0.25
_BEAT_S = 1.0
#: A task lost before it started the run is submitted this many times in all.
PLACEMENT_ATTEMPTS = 3
NODE_MODULE = "trainyard._execution.ray.node"


def _entrypoint(home: Path, run_id: str, env: dict[str, str]) -> Any:
    from trainyard._execution.daemon import Entrypoint
    from trainyard._execution.runfiles import RunPaths

    return Entrypoint(
        NODE_MODULE,
        home,
        ("--run-id", run_id),
        RunPaths(home, run_id).supervisor_log,
        env=tuple(sorted(env.items())),
    )


def hold(home: str, run_id: str, env: dict[str, str]) -> int:
    """The Ray task of one run, on the node Ray chose: start the run's supervisor there and hold
    the task's resources (the node's slot) until it exits. Returns the supervisor's pid."""
    import ray

    from trainyard._execution import daemon
    from trainyard._execution.processes import ProcessId
    from trainyard._execution.runfiles import RunPaths

    live = RunPaths(Path(home), run_id).live
    context = ray.get_runtime_context()
    node = {
        "TRAINYARD_RAY_NODE_ID": context.get_node_id(),
        "TRAINYARD_RAY_NODE_IP": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
    }
    try:
        live.mkdir(parents=True, exist_ok=True)
        (live / STARTED_FILE).write_text(node["TRAINYARD_RAY_NODE_ID"])
        pid = daemon.spawn(_entrypoint(Path(home), run_id, {**env, **node}))
    except Exception as err:
        with contextlib.suppress(OSError):
            (live / ERROR_FILE).write_text(
                f"Ray node {node['TRAINYARD_RAY_NODE_ID']} could not start the run's supervisor: "
                f"{type(err).__name__}: {err}\n{traceback.format_exc()[-1500:]}"
            )
        raise
    ident = ProcessId.of(pid)
    while ident.alive():
        time.sleep(0.25)
    return pid


class Dispatcher:
    """The loop of the dispatcher job (see the module docstring)."""

    def __init__(self, home: Path, target: str, idle_seconds: float) -> None:
        import ray

        self.ray = ray
        self.home = home
        self.queue = RunQueue(home, target)
        self.idle_seconds = idle_seconds
        from trainyard._execution.ray.ranks import follow

        self.remote_hold = ray.remote(num_cpus=0, max_retries=0)(hold)
        self.remote_follow = ray.remote(num_cpus=0, max_retries=0)(follow)
        self.running: dict[Any, Entry] = {}
        self._next_check = 0.0
        #: A multi-node run's placement group and its followers' tasks, by its leader's task.
        self.groups: dict[Any, tuple[Any, list[Any]]] = {}

    def submit(self, entry: Entry) -> None:
        if entry.nodes > 1:
            self.submit_group(entry)
            return
        ref = self.remote_hold.options(resources=entry.resources).remote(
            str(self.home), entry.run_id, entry.env
        )
        self.running[ref] = entry

    def submit_group(self, entry: Entry) -> None:
        """A multi-node run: one bundle per node, each on a different node (``STRICT_SPREAD``);
        bundle 0 starts the run's supervisor, the others follow its rendezvous."""
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        group = placement_group([dict(entry.resources)] * entry.nodes, strategy="STRICT_SPREAD")

        def on(bundle: int) -> Any:
            return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=bundle)

        env = {**entry.env, "TRAINYARD_RAY_NODE_RANK": "0"}
        ref = self.remote_hold.options(resources=entry.resources, scheduling_strategy=on(0))
        leader = ref.remote(str(self.home), entry.run_id, env)
        layout = {"node_count": entry.nodes}
        followers = [
            self.remote_follow.options(
                resources=entry.resources, scheduling_strategy=on(node)
            ).remote(str(self.home), entry.run_id, node, layout, entry.env)
            for node in range(1, entry.nodes)
        ]
        self.running[leader] = entry
        self.groups[leader] = (group, followers)

    def release(self, ref: Any, cancel: bool = False) -> None:
        """A multi-node run's leader ended: its followers end with its stop file (or are
        cancelled), and its placement group is removed."""
        found = self.groups.pop(ref, None)
        if found is None:
            return
        from ray.util.placement_group import remove_placement_group

        group, followers = found
        if cancel:
            for follower in followers:
                self.ray.cancel(follower)
        else:
            _, late = self.ray.wait(followers, num_returns=len(followers), timeout=10)
            for follower in late:
                self.ray.cancel(follower)
        with contextlib.suppress(Exception):
            remove_placement_group(group)

    def end_canceled(self, entry: Entry) -> None:
        """A run cancelled before any node started it: its supervisor, started here, sees the
        request and ends it Canceled without starting anything."""
        from trainyard._execution import daemon

        daemon.spawn(_entrypoint(self.home, entry.run_id, entry.env))
        self.queue.done(entry)

    def step(self) -> None:
        for entry in self.queue.take():
            if self.queue.cancel_requested(entry.run_id):
                self.end_canceled(entry)
            else:
                self.submit(entry)
        # Ray starts a queued task as soon as a slot frees: what follows is bookkeeping (ended
        # tasks, cancels of waiting runs), done a few times a second so that the dispatcher
        # takes little of the CPU the runs use.
        now = time.monotonic()
        if not self.running or now < self._next_check:
            return
        self._next_check = now + _CHECK_S
        refs = list(self.running)
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            entry = self.running.pop(ref)
            self.release(ref, cancel=not self.queue.started(entry.run_id))
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayError as err:
                if not self.queue.started(entry.run_id) and entry.attempts < PLACEMENT_ATTEMPTS:
                    entry.attempts += 1
                    print(f"run {entry.run_id}: task lost before it started ({err}); again")
                    self.submit(entry)
                    continue
                print(f"run {entry.run_id}: task ended with {type(err).__name__}: {err}")
            self.queue.done(entry)
        for ref, entry in list(self.running.items()):
            if not self.queue.started(entry.run_id) and self.queue.cancel_requested(entry.run_id):
                self.ray.cancel(ref)
                del self.running[ref]
                self.release(ref, cancel=True)
                self.end_canceled(entry)

    def serve(self) -> int:
        last_work = time.monotonic()
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now >= next_beat:
                self.queue.beat()
                next_beat = now + _BEAT_S
            try:
                self.step()
            except Exception:  # one bad entry or a Ray hiccup must not end every queued run
                traceback.print_exc()
                time.sleep(1.0)
            if self.running or self.queue.pending():
                last_work = now
            elif now - last_work > self.idle_seconds:
                # No longer alive first, then a last look: a run queued meanwhile either is seen
                # here or finds no live dispatcher and starts a new one.
                self.queue.retire()
                if not self.queue.pending():
                    return 0
                next_beat = 0.0
            time.sleep(_TICK_S)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m trainyard._execution.ray.dispatcher --workspace HOME --target NAME``."""
    parser = argparse.ArgumentParser(prog="trainyard-ray-dispatcher")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    import ray

    ray.init(logging_level=logging.ERROR, log_to_driver=False)
    try:
        return Dispatcher(Path(args.workspace), args.target, args.idle_seconds).serve()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
