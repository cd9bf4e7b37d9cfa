"""trainyard's main demo on the embedded default workspace.

For now: a tracking demo — opens (or creates) a workspace in ./.trainyard-demo, logs a run the way a
training script would, and prints its metrics table. (The seed workflow — Chainer MNIST trained,
registered and deployed — replaces this as the features land.)
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trainyard.core import Experiment, Workspace


def main() -> int:
    console = Console()
    home = Path(sys.argv[1] if len(sys.argv) > 1 else ".trainyard-demo").resolve()
    ws = Workspace.create("demo", path=home, exist_ok=True)
    ws.write_config(home)
    console.print(f"[bold]Workspace[/] {ws.name} at {ws.path}")
    exp = Experiment(ws, "tracking-demo")
    rng = random.Random(0)
    t0 = time.perf_counter()
    with exp.start_logging(display_name="demo run") as run:
        run.log("Batch size", 128)
        run.log("Epochs", 10)
        for epoch in range(10):
            for step in range(10_000):
                run.log("train_loss", 2.3 * math.exp(-(epoch * 10_000 + step) / 30_000) + rng.random() * 0.05)
            run.log("Accuracy", 1 - 0.5 * math.exp(-epoch / 2) + rng.random() * 0.01)
        run.log_row("per_class", digit=7, precision=0.98)
        run.tag("demo", "tracking")
    elapsed = time.perf_counter() - t0
    metrics = run.get_metrics()
    table = Table(title=f"Run {run.id} ({run.get_status()}) — {100_012} points in {elapsed:.2f} s")
    for col in ("metric", "points", "last", "min", "max"):
        table.add_column(col)
    for name, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        nums = [v for v in values if isinstance(v, (int, float))]
        table.add_row(
            name,
            str(len(values)),
            str(values[-1]) if not isinstance(values[-1], float) else f"{values[-1]:.4f}",
            f"{min(nums):.4f}" if nums else "",
            f"{max(nums):.4f}" if nums else "",
        )
    console.print(table)
    console.print(f"{len(list(exp.get_runs()))} run(s) recorded in experiment {exp.name}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
