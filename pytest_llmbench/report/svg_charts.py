"""Small inline-SVG charts for the HTML report: no JavaScript library, nothing fetched, prints.

Each chart is one ``<svg class="chart" data-chart="ID">`` whose marks carry a ``<title>``
tooltip; a chart without data is drawn as a frame that says why, so the layout never jumps and
a reader sees "not measured" rather than a missing figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 34, 52
LEGEND_ROW = 18
# Legend text is 11px; a sans-serif character of a cell label ("Q4_K_M", digits, capitals) is at
# most about 0.65 em wide.  Laid out with this width, an entry never runs past the SVG's edge.
LEGEND_CHAR = 7.2
LEGEND_SWATCH = 14  # the colour square and the gap before the text
LEGEND_GAP = 10
LEGEND_DESCENT = 8  # room under the last row's baseline for descenders
# Okabe–Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#999933")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    tip: str
    hollow: bool = False  # e.g. a context size that failed
    y_low: float | None = None  # the value's interval, drawn as an error bar
    y_high: float | None = None


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[Point, ...]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10ⁿ steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(s * magnitude for s in (1, 2, 5, 10) if s * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(chart_id: str, title: str, body: str, height: int = HEIGHT, empty: bool = False) -> str:
    flag = ' data-empty="true"' if empty else ""
    return (
        f'<svg class="chart" data-chart="{escape(chart_id)}"{flag} role="img" '
        f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text class="chart-title" x="{WIDTH / 2}" y="20" text-anchor="middle">{escape(title)}</text>'
        f"{body}</svg>"
    )


def empty_chart(chart_id: str, title: str, message: str) -> str:
    body = (
        f'<rect class="plot-area" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}"/>'
        f'<text class="empty-note" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
        f"{escape(message)}</text>"
    )
    return _frame(chart_id, title, body, empty=True)


def _legend_text(name: str) -> str:
    """The name as shown: cut with an ellipsis when even a row of its own could not hold it."""
    room = int((WIDTH - RIGHT - LEFT - LEGEND_SWATCH) / LEGEND_CHAR)
    return name if len(name) <= room else name[: room - 1] + "…"


def _legend(names: Sequence[str], y: float) -> tuple[str, int]:
    """Legend entries laid out left to right from ``y`` (the first row's baseline), wrapping
    before an entry would cross the right edge; returns the markup and rows used."""
    parts, x, row = [], float(LEFT), 0
    for i, name in enumerate(names):
        shown = _legend_text(name)
        width = LEGEND_SWATCH + LEGEND_CHAR * len(shown)
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, row = float(LEFT), row + 1
        top = y + row * LEGEND_ROW
        colour = PALETTE[i % len(PALETTE)]
        tip = f"<title>{escape(name)}</title>" if shown != name else ""
        parts.append(
            f'<g class="legend-item">{tip}<rect x="{x:.1f}" y="{top - 9:.1f}" width="10" '
            f'height="10" fill="{colour}"/><text x="{x + LEGEND_SWATCH:.1f}" y="{top:.1f}" '
            f'data-width="{width - LEGEND_SWATCH:.1f}">{escape(shown)}</text></g>'
        )
        x += width + LEGEND_GAP
    return "".join(parts), row + 1


def _axes(
    xt: Sequence[float] | None,
    yt: Sequence[float],
    sx: object,
    sy: object,
    x_label: str,
    y_label: str,
    bottom: float,
    x_names: Sequence[tuple[float, str]] = (),
) -> str:
    parts = [
        f'<rect class="plot-area" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{bottom - TOP}"/>'
    ]
    for tick in yt:
        y = sy(tick)  # type: ignore[operator]
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
        )
    for tick in xt or ():
        x = sx(tick)  # type: ignore[operator]
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">{_label(tick)}</text>'
        )
    for x, name in x_names:
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">{escape(name)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{bottom + 34:.1f}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    mid = (TOP + bottom) / 2
    parts.append(
        f'<text class="axis-label" x="14" y="{mid:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {mid:.1f})">{escape(y_label)}</text>'
    )
    return "".join(parts)


def _layout(names: Sequence[str]) -> tuple[float, float, int]:
    """(plot bottom, legend's first baseline, SVG height): the legend sits under the x-axis
    label, and the SVG grows by a row for each legend row so none is cut at its edge."""
    bottom = HEIGHT - BOTTOM
    legend_y = bottom + BOTTOM + 4
    rows = _legend(names, 0)[1]
    return bottom, legend_y, int(legend_y + (rows - 1) * LEGEND_ROW + LEGEND_DESCENT)


def xy_chart(
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    *,
    lines: bool = True,
    y_from_zero: bool = True,
    empty_message: str = "not measured",
) -> str:
    """Scatter (and, with ``lines``, a polyline per series in x order) on linear axes."""
    points = [p for s in series for p in s.points]
    if not points:
        return empty_chart(chart_id, title, empty_message)
    names = [s.name for s in series]
    bottom, legend_y, height = _layout(names)
    xs = [p.x for p in points]
    ys = [p.y for p in points] + [p.y_high for p in points if p.y_high is not None]
    span = max(xs) - min(xs)
    pad = span * 0.08 if span else (abs(xs[0]) * 0.25 or 1.0)
    low = min(xs) - pad
    xt = nice_ticks(max(low, 0.0) if min(xs) >= 0 else low, max(xs) + pad)
    yt = nice_ticks(0.0 if y_from_zero else min(ys), max(ys) * 1.05 if max(ys) > 0 else 1.0)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(v: float) -> float:
        return LEFT + (v - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT)

    def sy(v: float) -> float:
        return bottom - (v - y0) / (y1 - y0) * (bottom - TOP)

    parts = [_axes(xt, yt, sx, sy, x_label, y_label, bottom)]
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        ordered = sorted(s.points, key=lambda p: p.x)
        if lines and len(ordered) > 1:
            path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in ordered if not p.hollow)
            parts.append(f'<polyline class="series-line" points="{path}" stroke="{colour}"/>')
        for p in ordered:
            fill = "#fff" if p.hollow else colour
            if p.y_low is not None and p.y_high is not None:
                x, top, end = sx(p.x), sy(p.y_high), sy(p.y_low)
                parts.append(
                    f'<path class="error-bar" d="M{x:.1f},{top:.1f}V{end:.1f}'
                    f'M{x - 4:.1f},{top:.1f}h8M{x - 4:.1f},{end:.1f}h8" stroke="{colour}"/>'
                )
            parts.append(
                f'<circle class="mark" cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="4.5" fill="{fill}" '
                f'stroke="{colour}"><title>{escape(p.tip)}</title></circle>'
            )
    legend, _ = _legend(names, legend_y)
    parts.append(legend)
    return _frame(chart_id, title, "".join(parts), height)


def bar_chart(
    chart_id: str,
    title: str,
    y_label: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[tuple[float | None, str]]]],
    *,
    x_label: str = "",
    y_max: float | None = None,
    empty_message: str = "not measured",
) -> str:
    """Grouped bars: one group per category, one bar per series (None: no bar)."""
    values = [v for _, bars in series for v, _ in bars if v is not None]
    if not values or not categories:
        return empty_chart(chart_id, title, empty_message)
    names = [name for name, _ in series]
    bottom, legend_y, height = _layout(names)
    yt = nice_ticks(0.0, max(y_max or 0.0, max(values) * 1.05) or 1.0)
    y1 = yt[-1]

    def sy(v: float) -> float:
        return bottom - v / y1 * (bottom - TOP)

    group = (WIDTH - LEFT - RIGHT) / len(categories)
    bar = min(28.0, group * 0.8 / max(len(series), 1))
    centres = [(LEFT + group * (i + 0.5), name) for i, name in enumerate(categories)]
    parts = [_axes(None, yt, None, sy, x_label, y_label, bottom, centres)]
    for si, (_, bars) in enumerate(series):
        colour = PALETTE[si % len(PALETTE)]
        for ci, (value, tip) in enumerate(bars):
            if value is None:
                continue
            x = centres[ci][0] - bar * len(series) / 2 + si * bar
            parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{sy(value):.1f}" width="{bar - 2:.1f}" '
                f'height="{bottom - sy(value):.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
    legend, _ = _legend(names, legend_y)
    parts.append(legend)
    return _frame(chart_id, title, "".join(parts), height)
