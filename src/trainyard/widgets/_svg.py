"""Inline SVG line charts for the notebook widget: no JavaScript, no network, no extension.

A series longer than the chart is wide is cut into equal-count buckets; each keeps its last value
(the line) and its minimum and maximum (a light band), so a spike stays visible. Non-finite values
are left out of the line.

Example::

    svg = line_chart("loss", [("run 1", [0.9, 0.5, 0.3])])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 360, 170
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 46, 10, 22, 22
_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def color(i: int) -> str:
    """The ``i``-th line colour (the children table uses the same ones)."""
    return _COLORS[i % len(_COLORS)]


def _buckets(values: Sequence[float], n: int) -> list[tuple[int, float, float, float]]:
    """``(index of the last point, last, min, max)`` per bucket, finite values only."""
    points = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if len(points) <= n:
        return [(i, v, v, v) for i, v in points]
    out = []
    for b in range(n):
        part = points[b * len(points) // n : (b + 1) * len(points) // n]
        if part:
            vs = [v for _, v in part]
            out.append((part[-1][0], part[-1][1], min(vs), max(vs)))
    return out


def _label(v: float) -> str:
    return f"{v:.4g}"


def line_chart(title: str, lines: Sequence[tuple[str, Sequence[float]]]) -> str:
    """An SVG chart of ``lines`` (label, values by index) titled ``title``."""
    plot_w = WIDTH - _PAD_L - _PAD_R
    plot_h = HEIGHT - _PAD_T - _PAD_B
    drawn = [(label, _buckets(values, plot_w)) for label, values in lines]
    finite = [p for _, b in drawn for p in b]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'style="font:11px sans-serif;background:#fff">',
        f'<text x="{_PAD_L}" y="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not finite:
        parts.append(f'<text x="{_PAD_L}" y="{HEIGHT // 2}" fill="#888">no values yet</text>')
        return "".join(parts) + "</svg>"
    lo = min(p[2] for p in finite)
    hi = max(p[3] for p in finite)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    last_x = max(max(len(v) for _, v in lines) - 1, 1)

    def sx(i: int) -> float:
        return _PAD_L + plot_w * i / last_x

    def sy(v: float) -> float:
        return _PAD_T + plot_h * (hi - v) / (hi - lo)

    parts.append(
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#ccc"/>'
    )
    for v, y in ((hi, _PAD_T + 4), (lo, _PAD_T + plot_h)):
        parts.append(f'<text x="{_PAD_L - 4}" y="{y}" text-anchor="end">{_label(v)}</text>')
    parts.append(
        f'<text x="{WIDTH - _PAD_R}" y="{HEIGHT - 6}" text-anchor="end">{last_x}</text>'
        f'<text x="{_PAD_L}" y="{HEIGHT - 6}">0</text>'
    )
    for n, (label, buckets) in enumerate(drawn):
        if not buckets:
            continue
        c = color(n)
        if any(b[2] != b[3] for b in buckets):
            upper = " ".join(f"{sx(i):.1f},{sy(mx):.1f}" for i, _, _, mx in buckets)
            lower = " ".join(f"{sx(i):.1f},{sy(mn):.1f}" for i, _, mn, _ in reversed(buckets))
            parts.append(f'<polygon points="{upper} {lower}" fill="{c}" opacity="0.15"/>')
        pts = " ".join(f"{sx(i):.1f},{sy(v):.1f}" for i, v, _, _ in buckets)
        if len(buckets) == 1:
            i, v, _, _ = buckets[0]
            parts.append(f'<circle cx="{sx(i):.1f}" cy="{sy(v):.1f}" r="3" fill="{c}"/>')
        else:
            parts.append(
                f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.5">'
                f"<title>{escape(label)}</title></polyline>"
            )
    return "".join(parts) + "</svg>"
