"""A :class:`~trainyard.widgets._view.RunView` as one self-contained HTML fragment (inline styles
and SVG charts), the content of the notebook output the widget updates in place.

The outer ``div`` carries ``data-run-id`` and ``data-status``, so a test or a front end can read
the state without parsing the table.

Example::

    html = render_html(collect(run))
"""

from __future__ import annotations

from html import escape

from trainyard.widgets._svg import color, line_chart
from trainyard.widgets._view import RunView

_STATUS_COLORS = {
    "Completed": "#2e7d32",
    "Failed": "#c62828",
    "Canceled": "#6d4c41",
    "Running": "#1565c0",
}
_CELL = 'style="padding:2px 8px;text-align:left;border-bottom:1px solid #eee"'


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _row(*cells: str, header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag} {_CELL}>{c}</{tag}>" for c in cells) + "</tr>"


def _table(rows: list[str]) -> str:
    return (
        '<table style="border-collapse:collapse;margin:4px 0 8px 0">' + "".join(rows) + "</table>"
    )


def _head(view: RunView) -> str:
    badge = _STATUS_COLORS.get(view.status, "#555")
    rows = [
        _row("Run", escape(view.run_id + (f" ({view.display_name})" if view.display_name else ""))),
        _row(
            "Status",
            f'<b class="trainyard-status" style="color:{badge}">{escape(view.status)}</b>'
            + ("" if view.terminal else " &#8635;"),
        ),
        _row("Type", escape(view.run_type)),
        _row("Started", escape(view.started or "-")),
        _row("Ended", escape(view.ended or "-")),
        _row("Duration", _fmt_duration(view.duration_s)),
    ]
    if view.error:
        rows.append(_row("Error", f'<span style="color:#c62828">{escape(view.error)}</span>'))
    return _table(rows)


def _sweep(view: RunView) -> str:
    assert view.primary is not None
    name, goal = view.primary
    header = _row(
        "", "Run", "Status", "Hyperparameters", f"Best {escape(name)} ({goal})", header=True
    )
    rows = [header]
    lines: list[tuple[str, tuple[float, ...]]] = []
    for child in view.children:
        swatch = f'<span style="color:{color(len(lines))}">&#9632;</span>' if child.series else ""
        if child.series:
            lines.append((child.run_id, child.series))
        best = "-" if child.best is None else f"{child.best:.4g}"
        rows.append(
            _row(
                swatch,
                escape(child.run_id),
                escape(child.status),
                escape(child.hyperparameters),
                best,
            )
        )
    if not view.children:
        rows.append(_row("", "(no child runs yet)", "", "", ""))
    chart = line_chart(f"{name} by interval", lines) if lines else ""
    return "<h4 style='margin:6px 0'>Child runs</h4>" + _table(rows) + chart


def _metrics(view: RunView) -> str:
    out = []
    if view.series:
        charts = "".join(
            f'<div style="display:inline-block;margin:0 8px 8px 0">'
            f"{line_chart(s.name, [(s.name, s.values)])}</div>"
            for s in view.series
        )
        out.append(f"<div>{charts}</div>")
    if view.scalars:
        rows = [_row("Metric", "Value", header=True)]
        rows += [_row(escape(k), escape(v)) for k, v in view.scalars.items()]
        out.append(_table(rows))
    if not out:
        out.append('<p style="color:#888">(no metrics logged)</p>')
    return "<h4 style='margin:6px 0'>Metrics</h4>" + "".join(out)


def _log(view: RunView) -> str:
    if not view.log_tail:
        return ""
    text = escape("\n".join(view.log_tail))
    return (
        f"<h4 style='margin:6px 0'>{escape(view.log_name or 'log')}</h4>"
        '<pre style="max-height:16em;overflow:auto;background:#f6f6f6;padding:4px;'
        f'font-size:11px">{text}</pre>'
    )


def render_html(view: RunView) -> str:
    """The widget's HTML for ``view``."""
    body = _head(view) + (_sweep(view) if view.primary else _metrics(view) + _log(view))
    return (
        f'<div class="trainyard-run-details" data-run-id="{escape(view.run_id)}" '
        f'data-status="{escape(view.status)}" style="font:12px sans-serif">{body}</div>'
    )
