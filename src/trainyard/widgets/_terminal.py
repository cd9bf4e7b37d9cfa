"""A :class:`~trainyard.widgets._view.RunView` as rich renderables, for a terminal (one ``Live``
view redrawn in place) or a plain print.

Metric series are drawn as one-line sparklines with their last value.

Example::

    Console().print(render_rich(collect(run)))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from trainyard.widgets._view import RunView

_BARS = "▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 40


def sparkline(values: Sequence[float], width: int = _SPARK_WIDTH) -> str:
    """``values`` as at most ``width`` block characters (the last value of each bucket)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    if len(finite) > width:
        finite = [finite[(b + 1) * len(finite) // width - 1] for b in range(width)]
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    return "".join(_BARS[min(7, int((v - lo) / span * 7.999))] for v in finite)


def _last(values: Sequence[float]) -> str:
    return f"{values[-1]:.4f}" if values else "-"


def render_rich(view: RunView) -> RenderableType:
    """The widget's terminal view of ``view``."""
    head = Table(title=f"Run {view.run_id}", show_header=False, title_justify="left")
    head.add_row("Status", Text(view.status, style="bold"))
    head.add_row("Type", view.run_type)
    head.add_row("Started", view.started or "-")
    head.add_row("Ended", view.ended or "-")
    if view.duration_s is not None:
        head.add_row("Duration", f"{view.duration_s:.1f} s")
    if view.error:
        head.add_row("Error", Text(view.error, style="red"))
    parts: list[RenderableType] = [head]
    if view.primary is not None:
        name, goal = view.primary
        kids = Table(title="Child runs", title_justify="left")
        for col in ("run id", "status", "hyperparameters", f"best {name} ({goal})", name):
            kids.add_column(col)
        for c in view.children:
            best = "-" if c.best is None else f"{c.best:.4g}"
            kids.add_row(c.run_id, c.status, c.hyperparameters, best, sparkline(c.series, 20))
        if not view.children:
            kids.add_row("(no child runs yet)", "", "", "", "")
        parts.append(kids)
    else:
        metrics = Table(title="Metrics", title_justify="left")
        metrics.add_column("name")
        metrics.add_column("value")
        metrics.add_column("chart")
        for s in view.series:
            metrics.add_row(
                s.name, f"{len(s.values)} values, last {_last(s.values)}", sparkline(s.values)
            )
        for k, v in view.scalars.items():
            metrics.add_row(k, v, "")
        if not view.series and not view.scalars:
            metrics.add_row("(no metrics logged)", "", "")
        parts.append(metrics)
        if view.log_tail:
            parts.append(Text(view.log_name or "log", style="bold"))
            parts.append(Text("\n".join(view.log_tail[-10:])))
    return Group(*parts)
