"""``trainyard runs metrics RUN RUN...``: several runs' metrics side by side.

``runs metrics`` with one run id prints that run's metrics (``trainyard.cli.runs``); with more it
comes here: a table with a row per metric and a column per run (the last value; ``-`` where a run
did not log it), or with ``--json`` ``{run_id: run.get_metrics()}`` (v1's
``get_metrics(recursive=True)`` shape).

Example::

    $ trainyard runs metrics mnist_1_aaaa mnist_2_bbbb --name Accuracy
    $ trainyard runs metrics mnist_1_aaaa mnist_2_bbbb --json
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trainyard.cli._common import console, fmt_value, print_json
from trainyard.cli.runs import get_run, print_points, summarize_metric

if TYPE_CHECKING:
    from trainyard.core.workspace import Workspace


def collect(ws: Workspace, run_ids: Sequence[str], name: str | None) -> dict[str, dict[str, Any]]:
    """``{run_id: run.get_metrics(name)}`` in the order given (a repeated id counts once).

    ``RunNotFound`` for an unknown id; ``NotFoundError`` when ``name`` is given and no run logged it.

    Example::

        collect(ws, ["a_1", "b_2"], "loss")   # {'a_1': {'loss': [...]}, 'b_2': {}}
    """
    from trainyard.exceptions import NotFoundError

    runs = {run_id: get_run(ws, run_id) for run_id in dict.fromkeys(run_ids)}
    values = {run_id: run.get_metrics(name=name) for run_id, run in runs.items()}
    if name is not None and not any(name in v for v in values.values()):
        known = sorted({n for run in runs.values() for n in run.get_metrics()})
        raise NotFoundError(
            f"None of the runs {', '.join(runs)} has a metric {name!r}. Their metrics: "
            f"{', '.join(known) or '(none)'}.",
            run_ids=list(runs),
            name=name,
        )
    return values


def compare(
    ws: Workspace, run_ids: Sequence[str], name: str | None, points: bool, as_json: bool
) -> None:
    """Print the metrics of several runs side by side (the module docstring says how).

    Example::

        compare(ws, ["a_1", "b_2"], None, points=False, as_json=True)
    """
    values = collect(ws, run_ids, name)
    if points:
        series = {
            run_id: {n: get_run(ws, run_id).get_metric_points(n) for n in metrics}
            for run_id, metrics in values.items()
        }
        if as_json:
            print_json(series)
            return
        for run_id, run_series in series.items():
            console().print(f"Run {run_id}")
            print_points(run_id, run_series)
        return
    if as_json:
        print_json(values)
        return
    out = console()
    names = list(dict.fromkeys(n for metrics in values.values() for n in metrics))
    if not names:
        out.print(f"None of the runs {', '.join(values)} has metrics.")
        return
    from rich.table import Table

    table = Table(title=f"Metrics of {len(values)} runs (last value)", title_justify="left")
    table.add_column("Metric", style="bold", overflow="fold")
    for run_id in values:
        table.add_column(run_id, justify="right", overflow="fold")
    for metric_name in names:
        cells = []
        for metrics in values.values():
            if metric_name not in metrics:
                cells.append("-")
                continue
            summary = summarize_metric(metrics[metric_name])
            cell = fmt_value(summary["last"])
            if summary["count"] > 1:
                cell += f" ({summary['count']})"
            cells.append(cell)
        table.add_row(metric_name, *cells)
    out.print(table)
    out.print("(N): the metric was logged N times; the cell is its last value.")
