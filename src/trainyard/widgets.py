"""v1's ``azureml.widgets.RunDetails``: a live view of a run, with no install step.

``RunDetails(run).show()`` renders the run's status, duration, metrics and (for a HyperDrive parent)
its children, refreshing every ``refresh_seconds`` until the run is terminal. In Jupyter / VS Code it
updates one HTML output in place (``IPython.display`` handles, no extension needed); elsewhere it
prints a rich table on each change. ``show(block=False)`` renders once.

Example::

    from trainyard.widgets import RunDetails
    RunDetails(run).show()
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from trainyard._lifecycle import RunStatus


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        if not value:
            return "[]"
        last = value[-1]
        tail = f"{last:.4f}" if isinstance(last, float) else str(last)
        return f"{len(value)} values, last {tail}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


class RunDetails:
    """Live view of a run (script run or HyperDrive sweep)."""

    def __init__(self, run_instance: Any, refresh_seconds: float = 10.0) -> None:
        self.run = run_instance
        self.refresh_seconds = refresh_seconds

    def _tables(self) -> list[Table]:
        details = self.run.get_details()
        status = details.get("status", "")
        head = Table(title=f"Run {self.run.id}", show_header=False)
        head.add_row("Status", status)
        head.add_row("Type", getattr(self.run, "type", ""))
        head.add_row("Started", str(details.get("startTimeUtc") or "-"))
        head.add_row("Ended", str(details.get("endTimeUtc") or "-"))
        if details.get("error"):
            head.add_row("Error", str(details["error"].get("message", "")))
        tables = [head]
        children = list(self.run.get_children()) if hasattr(self.run, "get_children") else []
        if children:
            kids = Table(title="Child runs")
            for col in ("run id", "status", "hyperparameters", "metrics"):
                kids.add_column(col)
            props_key = "hyperparameters"
            for child in children[:50]:
                hp = child.get_properties().get(props_key, "")
                metrics = child.get_metrics()
                kids.add_row(
                    child.id,
                    child.get_status(),
                    hp,
                    "; ".join(f"{k}: {_fmt(v)}" for k, v in metrics.items()),
                )
            tables.append(kids)
        metrics = self.run.get_metrics() if getattr(self.run, "type", "") != "hyperdrive" else {}
        if metrics or not children:
            mt = Table(title="Metrics")
            mt.add_column("name")
            mt.add_column("value")
            for name, value in metrics.items():
                mt.add_row(name, _fmt(value))
            if not metrics:
                mt.add_row("(no metrics logged)", "")
            tables.append(mt)
        return tables

    def _render_html(self) -> str:
        console = Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
        for t in self._tables():
            console.print(t)
        return console.export_html(inline_styles=True)

    def get_widget_data(self, widget_settings: Any = None) -> dict[str, Any]:
        """The data the view shows (for custom front ends)."""
        return {"details": self.run.get_details(), "metrics": self.run.get_metrics()}

    def show(self, block: bool = True) -> None:
        """Render now and, with ``block``, refresh until the run is terminal."""
        notebook = _in_notebook()
        handle = None
        last = None
        while True:
            if notebook:
                from IPython.display import HTML, display

                html = HTML(self._render_html())
                if handle is None:
                    handle = display(html, display_id=True)
                else:
                    handle.update(html)
            else:
                console = Console()
                snapshot = [str(t.rows) for t in self._tables()]
                if snapshot != last:
                    for t in self._tables():
                        console.print(t)
                    last = snapshot
            status = self.run.get_status()
            if not block or RunStatus.parse(status).is_terminal():
                return
            time.sleep(self.refresh_seconds)


__all__ = ["RunDetails"]
