"""The report's figures, drawn from its JSON form with matplotlib.

No pyplot: each figure is a plain ``Figure`` on an Agg canvas (SVG through matplotlib's SVG
backend), so nothing touches global state, opens a window or needs a display. SVG output is
byte-for-byte reproducible (fixed hash salt, no date), so the same data gives the same files.
"""

from __future__ import annotations

import io

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLOURS = {"monitoring": "#7f7f7f", "automated": "#1f77b4", "guided": "#d95f02"}
FALLBACK_COLOURS = ("#1b9e77", "#7570b3", "#e7298a", "#66a61e")
_RC = {"svg.hashsalt": "ivr-cbt-report", "svg.fonttype": "none", "font.size": 9}


def colour(arm: str, arms: list[str]) -> str:
    if arm in COLOURS:
        return COLOURS[arm]
    others = [a for a in arms if a not in COLOURS]
    return FALLBACK_COLOURS[others.index(arm) % len(FALLBACK_COLOURS)]


def _title(text: str, report: dict) -> str:
    return f"SYNTHETIC DATA - {text}" if report["synthetic"] else text


def _save(figure: Figure, fmt: str) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}
    with matplotlib.rc_context(_RC):
        figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def _figure(title: str, report: dict, xlabel: str, ylabel: str):
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(7, 3.8), layout="constrained")
        axes = figure.add_subplot()
    axes.set_title(_title(title, report))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    return figure, axes


def _error_bars(points: list[dict], value: str, ci: str) -> tuple[list, list]:
    """Points with an interval as matplotlib's (below, above) distances; others get none."""
    below = [p[value] - p[ci][0] if p[ci] else 0.0 for p in points]
    above = [p[ci][1] - p[value] if p[ci] else 0.0 for p in points]
    return below, above


def pain_by_week(report: dict, fmt: str) -> bytes | None:
    """Mean pain per program week and arm, with the mean's confidence interval."""
    arms = [arm["name"] for arm in report["arms"]]
    rows = report["pain_by_week"]
    if not rows:
        return None
    figure, axes = _figure("Mean pain by program week", report, "program week", "average pain (0-10)")
    offsets = {arm: (i - (len(arms) - 1) / 2) * 0.12 for i, arm in enumerate(arms)}
    for arm in arms:
        points = [r for r in rows if r["arm"] == arm]
        if not points:
            continue
        axes.errorbar(
            [p["week"] + offsets[arm] for p in points],
            [p["mean"] for p in points],
            yerr=_error_bars(points, "mean", "ci"),
            label=arm,
            color=colour(arm, arms),
            marker="o",
            markersize=3,
            capsize=2,
            linewidth=1.2,
        )
    axes.set_ylim(0, 10)
    axes.legend(title="arm", loc="upper right")
    return _save(figure, fmt)


def responders(report: dict, fmt: str) -> bytes | None:
    """Share of responders (>= 30% less pain than baseline) per arm at the primary timepoint."""
    arms = [a for a in report["arms"] if a["responders_30pct"] is not None]
    if not arms:
        return None
    months = report["primary"]["months"]
    figure, axes = _figure(f"Responders (>= 30% less pain) at {months} months", report, "arm", "responders (%)")
    names = [a["name"] for a in arms]
    below, above = _error_bars(arms, "responders_30pct", "responders_30pct_ci")
    axes.bar(
        names,
        [100 * a["responders_30pct"] for a in arms],
        yerr=[[100 * b for b in below], [100 * a for a in above]],
        color=[colour(n, names) for n in names],
        capsize=4,
    )
    for i, arm in enumerate(arms):
        axes.annotate(f"{arm['responders_30pct_count']}/{arm['responders_30pct_n']}", (i, 1), ha="center")
    axes.set_ylim(0, 100)
    return _save(figure, fmt)


def adherence_by_week(report: dict, fmt: str) -> bytes | None:
    """Share of patients who had reached each week and completed its check-in, per arm."""
    if not any(a["by_week"] for a in report["adherence"]):
        return None
    arms = [a["arm"] for a in report["adherence"]]
    figure, axes = _figure("Completed check-ins by program week", report, "program week", "completed (%)")
    for arm in report["adherence"]:
        points = [p for p in arm["by_week"] if p["rate"] is not None]
        axes.plot(
            [p["week"] for p in points],
            [100 * p["rate"] for p in points],
            label=arm["arm"],
            color=colour(arm["arm"], arms),
            marker="o",
            markersize=3,
        )
    axes.set_ylim(0, 105)
    axes.legend(title="arm", loc="lower left")
    return _save(figure, fmt)


FIGURES = {"pain_by_week": pain_by_week, "responders": responders, "adherence_by_week": adherence_by_week}


def render_all(report: dict, fmt: str) -> dict[str, bytes]:
    """Every figure the data allow, as ``{file name: content}``."""
    out = {}
    for name, draw in FIGURES.items():
        content = draw(report, fmt)
        if content is not None:
            out[f"{name}.{fmt}"] = content
    return out
