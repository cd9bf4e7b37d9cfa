"""Concurrent registrations of one model name from several processes never share a version.

Worker processes × 5 registrations each race on one name (on SQLite and on PostgreSQL): every
registration gets its own version and together they are exactly 1..N. The workers start together
on a *go file* the test creates once all of them are ready, so they really overlap. 4 workers run in
the fast suite; the 8-worker variant (1..40) is marked slow (starting 8 interpreters on a loaded
2-core machine takes > 10 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainyard.core import Experiment, Model, Workspace

PER_PROCESS = 5

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from trainyard.core import Model, Run, Workspace

    ws_path, run_id, local_file, go, ready, worker = sys.argv[1:7]
    ws = Workspace(path=ws_path)
    run = Run.get(ws, run_id)
    Path(ready).touch()
    deadline = time.monotonic() + 120
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("never got the go signal")
        time.sleep(0.005)
    out = []
    for i in range({per_process}):
        tags = {{"worker": worker, "i": str(i)}}
        if i % 2:
            m = Model.register(ws, local_file, "race", tags=tags)
        else:
            m = run.register_model("race", model_path="outputs/model.npz", tags=tags)
        out.append(m.version)
    print("VERSIONS=" + json.dumps(out))
    """
).format(per_process=PER_PROCESS)


@pytest.mark.parametrize("processes", [4, pytest.param(8, marks=pytest.mark.slow)])
def test_concurrent_registrations_get_distinct_versions(
    workspace: Workspace, tmp_path: Path, processes: int
) -> None:
    local = tmp_path / "model.npz"
    local.write_bytes(b"weights")
    run = Experiment(workspace, "race").start_logging()
    run.upload_file("outputs/model.npz", local)
    run.complete()

    go = tmp_path / "go"
    procs = []
    for w in range(processes):
        ready = tmp_path / f"ready-{w}"
        args = [str(workspace.path), run.id, str(local), str(go), str(ready), str(w)]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{w}").exists() for w in range(processes)):
        if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    go.touch()

    per_worker: dict[int, list[int]] = {}
    for w, p in enumerate(procs):
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, f"worker {w} failed:\n{err}"
        line = next(x for x in out.splitlines() if x.startswith("VERSIONS="))
        per_worker[w] = json.loads(line[len("VERSIONS=") :])

    versions = [v for vs in per_worker.values() for v in vs]
    total = processes * PER_PROCESS
    assert sorted(versions) == list(range(1, total + 1)), per_worker
    for vs in per_worker.values():
        assert vs == sorted(vs)  # each process sees its own registrations in order

    # The registry agrees with what the workers were told, version by version.
    listed = Model.list(workspace, name="race")
    assert sorted(m.version for m in listed) == list(range(1, total + 1))
    for m in listed:
        w, i = int(m.tags["worker"]), int(m.tags["i"])
        assert per_worker[w][i] == m.version
        assert m.run_id == (run.id if i % 2 == 0 else None)
        assert sorted(m.get_sas_urls()) == ["model.npz"]
    assert Model(workspace, "race").version == total
    assert (
        Path(Model(workspace, "race", version=7).download(tmp_path / "dl")).read_bytes()
        == b"weights"
    )
