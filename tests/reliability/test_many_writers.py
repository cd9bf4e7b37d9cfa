"""64 processes logging at once into one workspace, on SQLite and PostgreSQL: every point comes
back and no store error reaches a user (issue: nothing lost, nobody in — item 9)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from trainyard.core import Workspace

WRITERS = 64
POINTS = 4_000

CHILD = textwrap.dedent(
    f"""
    import sys, time
    from pathlib import Path
    from trainyard._context import open_context
    from trainyard.core import Experiment, Workspace
    ws = Workspace.from_context(open_context(Path(sys.argv[1])))
    me = int(sys.argv[2])
    gate = Path(sys.argv[3])
    while not gate.exists():
        time.sleep(0.01)
    run = Experiment(ws, "many").start_logging(display_name=f"w{{me}}")
    for i in range({POINTS}):
        run.log("x", me * 1_000_000 + i)
        if i % 500 == 499:
            time.sleep(0.01)
    run.complete()
    """
)


def test_sixty_four_writers_lose_nothing(workspace: Workspace, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    env = {**os.environ, "TRAINYARD_HEARTBEAT_TIMEOUT": "120"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(workspace.path), str(me), str(gate)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for me in range(WRITERS)
    ]
    gate.touch()
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            errors.append(err[-2000:])
    assert not errors, errors[0]
    runs = list(workspace.experiments["many"].get_runs())
    assert len(runs) == WRITERS
    total = 0
    for run in runs:
        me = int(str(run.display_name)[1:])
        values = run.get_metrics()["x"]
        assert values == [me * 1_000_000 + i for i in range(POINTS)], run.id
        assert run.get_status() == "Completed"
        total += len(values)
    assert total == WRITERS * POINTS
