"""``HyperDriveRun.wait_for_completion(show_output=True)``: watch a sweep until it ends.

In a terminal or a notebook a ``rich`` live view shows the children (run id, status,
hyperparameters, best primary metric) and the controller's latest decisions; elsewhere (a log file,
CI) the controller's log lines are printed as they come, then the final table. Either way the
view ends with v1's ``Execution Summary``.

Example::

    watch(hyperdrive_run, show_output=True)
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import IO, TYPE_CHECKING, Any

from trainyard._lifecycle import RunStatus
from trainyard.train.hyperdrive._submit import CONTROLLER_LOG

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from trainyard.train.hyperdrive.run import HyperDriveRun

_TABLE_SECONDS = 1.0
_LOG_LINES = 8


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def render_table(rows: list[dict[str, Any]], metric: str, title: str = "") -> Table:
    """A rich table of ``get_children_sorted_by_primary_metric`` rows.

    Example::

        Console().print(render_table(run.get_children_sorted_by_primary_metric(), "Accuracy"))
    """
    from rich.table import Table

    table = Table(title=title or None, show_lines=False)
    table.add_column("Run ID", no_wrap=True)
    table.add_column("Status")
    table.add_column("Hyperparameters")
    table.add_column(f"Best {metric}", justify="right")
    for row in sorted(rows, key=lambda r: _index(str(r["run_id"]))):
        table.add_row(
            str(row["run_id"]),
            str(row["status"]),
            str(row["hyperparameters"] or ""),
            _fmt(row["best_primary_metric"]),
        )
    return table


def _index(run_id: str) -> tuple[int, str]:
    tail = run_id.rsplit("_", 1)[-1]
    return (int(tail), run_id) if tail.isdigit() else (1 << 30, run_id)


class _LogTail:
    """New whole lines of the controller log, read by offset."""

    def __init__(self, run: HyperDriveRun) -> None:
        self._run = run
        self._offset = 0

    def new_lines(self) -> list[str]:
        lines: list[str] = []
        while True:
            chunk = self._run.read_log(CONTROLLER_LOG, self._offset)
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                return lines
            lines.extend(chunk[:cut].decode("utf-8", "replace").splitlines())
            self._offset += cut


def _console(stream: IO[str]) -> Console:
    from rich.console import Console

    isatty = getattr(stream, "isatty", None)
    terminal = bool(callable(isatty) and isatty())
    # Off a terminal rich assumes 80 columns; the hyperparameters column needs more.
    return Console(file=stream, width=None if terminal else 160)


def watch(run: HyperDriveRun, *, show_output: bool, out: IO[str] | None = None) -> None:
    """Poll ``run`` until it is terminal, showing the live view when ``show_output``."""
    stream = out or sys.stdout
    settings = run.experiment.workspace.context.settings
    if not show_output:
        while not RunStatus.parse(run.get_status()).is_terminal():
            time.sleep(settings.polling_interval_max)
        return
    stream.write(f"RunId: {run.id}\nWeb View: {run.get_portal_url()}\n\n")
    stream.flush()
    console = _console(stream)
    metric, _ = run.primary_metric()
    tail = _LogTail(run)
    try:
        if console.is_terminal or console.is_jupyter:
            _watch_live(run, console, tail, metric)
        else:
            _watch_plain(run, stream, tail)
            console.print(render_table(run.get_children_sorted_by_primary_metric(), metric))
    except KeyboardInterrupt:
        stream.write(
            f"\nStopped watching HyperDrive run {run.id}; it keeps running. Watch it again with "
            "run.wait_for_completion(show_output=True).\n"
        )
        stream.flush()
        raise
    details = run.get_details()
    stream.write("\nExecution Summary\n=================\n")
    stream.write(
        f"RunId: {run.id}\nWeb View: {run.get_portal_url()}\nStatus: {details['status']}\n\n"
    )
    stream.flush()


def _watch_plain(run: HyperDriveRun, stream: IO[str], tail: _LogTail) -> None:
    while True:
        done = RunStatus.parse(run.get_status()).is_terminal()
        lines = tail.new_lines()
        if lines:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        if done:
            return
        time.sleep(max(run.experiment.workspace.context.settings.polling_interval_min, 0.2))


def _view(run: HyperDriveRun, metric: str, recent: deque[str], status: str) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    table = render_table(
        run.get_children_sorted_by_primary_metric(), metric, f"{run.id} — {status}"
    )
    return Group(table, Text("\n".join(recent), style="dim"))


def _watch_live(run: HyperDriveRun, console: Console, tail: _LogTail, metric: str) -> None:
    from rich.live import Live

    recent: deque[str] = deque(maxlen=_LOG_LINES)
    status = run.get_status()
    with Live(_view(run, metric, recent, status), console=console, auto_refresh=False) as live:
        while True:
            status = run.get_status()
            recent.extend(tail.new_lines())
            live.update(_view(run, metric, recent, status), refresh=True)
            if RunStatus.parse(status).is_terminal():
                return
            time.sleep(_TABLE_SECONDS)
