"""Charts as SVG, drawn on the server: no script, no external request, styled by the page's CSS.

Pure functions from (week, value) points to markup. Missing weeks break the line rather than
being drawn through. Every chart carries a <title> and a <desc> naming its values, for screen
readers; the log table beside it holds the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 30

Point = tuple[int, int | None]


@dataclass(frozen=True)
class Reference:
    """A horizontal line worth seeing, e.g. the baseline or a goal."""

    label: str
    value: float


def nice_max(values: Sequence[int | None], floor: int) -> int:
    """A round upper bound for the y axis: at least ``floor``, rounded up to half its order of magnitude."""
    top = max([v for v in values if v is not None] + [floor, 1])
    step = 10 ** int(math.log10(top)) / 2
    return int(math.ceil(top / step) * step)


class _Frame:
    def __init__(self, weeks: int, y_min: float, y_max: float):
        self.weeks, self.y_min, self.y_max = max(weeks, 2), y_min, y_max

    def x(self, week: float) -> float:
        return round(LEFT + (WIDTH - LEFT - RIGHT) * week / (self.weeks - 1), 1)

    def y(self, value: float) -> float:
        span = (self.y_max - self.y_min) or 1
        return round(HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * (value - self.y_min) / span, 1)

    def axes(self, y_ticks: Sequence[float]) -> list[str]:
        parts = []
        for tick in y_ticks:
            y = self.y(tick)
            parts.append(f'<line class="chart-grid" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>')
            parts.append(f'<text class="chart-tick" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{tick:g}</text>')
        every = 1 if self.weeks <= 13 else 4 if self.weeks <= 53 else 8
        for week in range(0, self.weeks, every):
            parts.append(
                f'<text class="chart-tick" x="{self.x(week)}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{week}</text>'
            )
        base = HEIGHT - BOTTOM
        parts.append(f'<line class="chart-axis" x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}"/>')
        parts.append(
            f'<text class="chart-label" x="{WIDTH - RIGHT}" y="{HEIGHT - 2}" text-anchor="end">program week</text>'
        )
        return parts


def _svg(chart_id: str, title: str, description: str, parts: list[str]) -> Markup:
    head = (
        f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>'
        f'<text class="chart-title" x="{LEFT}" y="14">{escape(title)}</text>'
    )
    return Markup(head + "".join(parts) + "</svg>")


def _describe(points: Sequence[Point], unit: str) -> str:
    known = [f"week {w}: {v}" for w, v in points if v is not None]
    return f"{unit} by program week. " + ("; ".join(known) if known else "No answers yet.")


def line_chart(
    chart_id: str,
    title: str,
    points: Sequence[Point],
    *,
    weeks: int,
    y_max: float,
    y_min: float = 0,
    y_ticks: Sequence[float] | None = None,
    references: Sequence[Reference] = (),
    unit: str = "",
) -> Markup:
    """A line over program weeks, broken where a week has no value, with optional reference lines."""
    frame = _Frame(weeks, y_min, y_max)
    parts = frame.axes(y_ticks if y_ticks is not None else (y_min, (y_min + y_max) / 2, y_max))
    for ref in references:
        y = frame.y(ref.value)
        parts.append(f'<line class="chart-ref" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>')
        parts.append(f'<text class="chart-ref-label" x="{WIDTH - RIGHT - 2}" y="{y - 4}" text-anchor="end">')
        parts.append(f"{escape(ref.label)}</text>")
    segment: list[str] = []
    segments = [segment]
    for week, value in points:
        if value is None:
            segment = []
            segments.append(segment)
        else:
            segment.append(f"{frame.x(week)},{frame.y(value)}")
    parts += [f'<polyline class="chart-line" points="{" ".join(s)}"/>' for s in segments if len(s) > 1]
    for week, value in points:
        if value is not None:
            parts.append(
                f'<circle class="chart-point" cx="{frame.x(week)}" cy="{frame.y(value)}" r="3.5">'
                f"<title>week {week}: {value:g}</title></circle>"
            )
    return _svg(chart_id, title, _describe(points, unit or title), parts)


def bar_chart(
    chart_id: str, title: str, points: Sequence[Point], *, weeks: int, y_max: float, unit: str = ""
) -> Markup:
    """Bars over program weeks (e.g. practice days out of 7)."""
    frame = _Frame(weeks, 0, y_max)
    parts = frame.axes((0, y_max / 2, y_max))
    slot = (WIDTH - LEFT - RIGHT) / max(frame.weeks - 1, 1)
    bar = max(2.0, min(24.0, slot * 0.6))
    for week, value in points:
        if value is None:
            continue
        top = frame.y(value)
        parts.append(
            f'<rect class="chart-bar" x="{round(frame.x(week) - bar / 2, 1)}" y="{top}" width="{round(bar, 1)}" '
            f'height="{round(HEIGHT - BOTTOM - top, 1)}"><title>week {week}: {value:g}</title></rect>'
        )
    return _svg(chart_id, title, _describe(points, unit or title), parts)
