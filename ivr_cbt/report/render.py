"""Render the report's JSON form as Markdown, HTML or JSON, with its figures.

The document is laid out once as a list of blocks (headings, paragraphs, tables, figures);
Markdown and HTML only serialise those blocks, so the two formats always say the same thing.
The report is aggregate by construction: it holds no names, phone numbers or patient ids.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass

from ivr_cbt.report import plots

BASENAME = "outcomes"


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class FigureRef:
    name: str  # key of plots.FIGURES
    alt: str


# --- formatting ------------------------------------------------------------------------------------


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ci(interval: list[float] | None, digits: int = 2) -> str:
    return "-" if interval is None else f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def pct_ci(interval: list[float] | None) -> str:
    return "-" if interval is None else f"[{100 * interval[0]:.1f}%, {100 * interval[1]:.1f}%]"


def synthetic_note(report: dict) -> str:
    sources = "; ".join(", ".join(f"{k} {v}" for k, v in s.items()) for s in report["synthetic_sources"] if s)
    detail = f" ({sources})" if sources else ""
    return f"SYNTHETIC DATA: computed from a simulated cohort{detail}. Not evidence about real patients."


# --- the document ------------------------------------------------------------------------------------


def _arm_table(section: dict, months: int) -> Table:
    return Table(
        [
            "arm",
            "enrolled",
            "with baseline",
            f"with {months}-month value",
            "analysed (n)",
            "baseline mean (analysed)",
            f"{months}-month mean (analysed)",
            "mean change [95% CI]",
            "responders >= 30% [95% CI]",
        ],
        [
            [
                a["name"],
                str(a["n_enrolled"]),
                str(a["n_with_baseline"]),
                str(a["n_with_followup"]),
                str(a["n"]),
                num(a["pain_baseline_mean"]),
                num(a["pain_followup_mean"]),
                f"{num(a['pain_change_mean'])} {ci(a['pain_change_ci'])}",
                f"{a['responders_30pct_count']}/{a['responders_30pct_n']} = {pct(a['responders_30pct'])} "
                f"{pct_ci(a['responders_30pct_ci'])}",
            ]
            for a in section["arms"]
        ],
    )


def _comparison_table(section: dict) -> Table:
    return Table(
        [
            "arm - reference",
            "difference in change [95% CI]",
            "margin",
            "verdict",
            "Hedges' g [95% CI]",
            "responder difference [95% CI]",
        ],
        [
            [
                f"{c['arms'][0]} - {c['arms'][1]}",
                f"{num(c['difference'])} {ci(c['ci'])}",
                f"+{c['margin']:g}",
                c["verdict"],
                f"{num(c['hedges_g'])} {ci(c['hedges_g_ci'])}",
                f"{pct(c['responders_30pct_difference'])} {pct_ci(c['responders_30pct_difference_ci'])}",
            ]
            for c in section["comparisons"]
        ],
    )


def _timepoint_blocks(section: dict, months: int, title: str) -> list:
    blocks = [Heading(2, title), _arm_table(section, months)]
    if section["comparisons"]:
        blocks.append(_comparison_table(section))
    return blocks


def _by_week_table(report: dict) -> Table:
    arms = [a["name"] for a in report["arms"]]
    cells = {(r["arm"], r["week"]): r for r in report["pain_by_week"]}
    weeks = sorted({r["week"] for r in report["pain_by_week"]})
    rows = []
    for week in weeks:
        row = [str(week)]
        for arm in arms:
            r = cells.get((arm, week))
            row.append("-" if r is None else f"{num(r['mean'])} {ci(r['ci'])} n={r['n']}")
        rows.append(row)
    return Table(["week", *(f"{arm}: mean [95% CI]" for arm in arms)], rows)


def _adherence_table(report: dict) -> Table:
    retention = {a["name"]: a for a in report["arms"]}
    months = report["primary"]["months"]
    rows = [
        ["calls placed", *(str(a["calls_placed"]) for a in report["adherence"])],
        [
            "answered by a person",
            *(f"{a['calls_answered']} ({pct(a['answer_rate'])})" for a in report["adherence"]),
        ],
        ["reached voicemail", *(str(a["calls_voicemail"]) for a in report["adherence"])],
        ["inbound calls", *(str(a["calls_inbound"]) for a in report["adherence"])],
        ["check-ins started", *(str(a["checkins_started"]) for a in report["adherence"])],
        ["check-ins completed", *(str(a["checkins_completed"]) for a in report["adherence"])],
        ["check-ins left partial", *(str(a["checkins_partial"]) for a in report["adherence"])],
        ["check-ins missed", *(str(a["checkins_missed"]) for a in report["adherence"])],
        [
            "weeks completed per patient: mean (median)",
            *(f"{num(a['weeks_completed_mean'])} ({num(a['weeks_completed_median'], 1)})" for a in report["adherence"]),
        ],
        [
            f"retained: {months}-month value",
            *(
                f"{retention[a['arm']]['n_with_followup']}/{a['n_enrolled']} "
                f"({pct(retention[a['arm']]['retention_rate'])})"
                for a in report["adherence"]
            ),
        ],
    ]
    return Table(["", *(a["arm"] for a in report["adherence"])], rows)


def _weekly_adherence_table(report: dict) -> Table:
    weeks = sorted({p["week"] for a in report["adherence"] for p in a["by_week"]})
    per_arm = {a["arm"]: {p["week"]: p for p in a["by_week"]} for a in report["adherence"]}
    rows = []
    for week in weeks:
        row = [str(week)]
        for arm in per_arm:
            p = per_arm[arm].get(week)
            row.append("-" if p is None else f"{p['completed']}/{p['eligible']} ({pct(p['rate'])})")
        rows.append(row)
    return Table(["week", *(f"{arm}: completed/reached" for arm in per_arm)], rows)


def _drop_off_table(report: dict) -> Table:
    items: list[str] = []
    for a in report["adherence"]:
        items += [i for i in [*a["answered"], *a["stopped_at"]] if i not in items]
    rows = []
    for item in items:
        row = [item]
        for a in report["adherence"]:
            row.append(f"{a['stopped_at'].get(item, 0)} / {a['skipped'].get(item, 0)} / {a['answered'].get(item, 0)}")
        rows.append(row)
    return Table(["question", *(f"{a['arm']}: stopped / skipped / answered" for a in report["adherence"])], rows)


def document(report: dict) -> list:
    """Lay the report out as blocks."""
    primary = report["primary"]
    d = report["definitions"]
    blocks: list = [Heading(1, "Outcome report" + (" (SYNTHETIC DATA)" if report["synthetic"] else ""))]
    if report["synthetic"]:
        blocks.append(Para(synthetic_note(report), strong=True))
    blocks.append(
        Para(
            f"Generated {report['generated_at']} (program weeks reached as of {report['as_of']}). "
            f"Primary outcome: change in average pain from baseline (week 0) to {primary['months']} months "
            f"(week {primary['week']} +-{primary['window']}). Reference arm: {report['reference_arm'] or '-'}; "
            f"non-inferiority margin +{d['margin']:g} point(s) on the 0-10 scale."
        )
    )
    if not report["arms"]:
        blocks.append(Para("No patients are enrolled: nothing to report."))
        return blocks
    blocks += _timepoint_blocks(
        report, primary["months"], f"Primary outcome: pain change at {primary['months']} months"
    )
    blocks += [FigureRef("responders", "Responders per arm with 95% Wilson intervals")]
    for section in report["follow_ups"]:
        blocks += _timepoint_blocks(section, section["months"], f"Follow-up: pain change at {section['months']} months")
    blocks += [
        Heading(2, "Mean pain by program week"),
        FigureRef("pain_by_week", "Mean pain by week per arm with 95% t intervals"),
        _by_week_table(report),
        Heading(2, "Retention and adherence"),
        _adherence_table(report),
        FigureRef("adherence_by_week", "Completed check-ins by week per arm"),
        _weekly_adherence_table(report),
        Heading(2, "Drop-off per question"),
        Para(
            "Stopped: check-ins left partial with this as the next unanswered question (the call ended there). "
            "Skipped: the question was asked but got no usable answer after its re-prompts. Answered: a value recorded."
        ),
        _drop_off_table(report),
        Heading(2, "Definitions"),
        *(Para(f"{key.replace('_', ' ')}: {value}") for key, value in d.items() if isinstance(value, str)),
    ]
    return blocks


# --- serialisers ---------------------------------------------------------------------------------------


def to_markdown(blocks: list, figures: dict[str, str]) -> str:
    """Markdown; a figure appears only if ``figures`` names its file."""
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            out.append(f"**{block.text}**" if block.strong else block.text)
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(block.headers) + " |", "|" + "---|" * len(block.headers)]
            lines += ["| " + " | ".join(row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, FigureRef) and block.name in figures:
            out.append(f"![{block.alt}]({figures[block.name]})")
    return "\n\n".join(out) + "\n"


def _html_figure(name: str, content: bytes) -> str:
    if name.endswith(".svg"):
        svg = content.decode("utf-8")
        return svg[svg.index("<svg") :]
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(content).decode("ascii")}">'


_STYLE = (
    "body{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}"
    "th{background:#f4f4f4}.synthetic{background:#fff3cd;padding:.5rem;border:1px solid #e0b000}"
    "figure{margin:1rem 0}svg{max-width:100%;height:auto}"
)


def to_html(blocks: list, figures: dict[str, bytes], title: str) -> str:
    """A self-contained HTML page; figures are inlined (SVG) or embedded (PNG)."""
    esc = html.escape
    out = [f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"]
    out.append(f"<style>{_STYLE}</style></head><body>")
    by_name = {name.rsplit(".", 1)[0]: name for name in figures}
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(
                f"<p class='synthetic'><strong>{esc(block.text)}</strong></p>"
                if block.strong
                else f"<p>{esc(block.text)}</p>"
            )
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
            body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, FigureRef) and block.name in by_name:
            file = by_name[block.name]
            out.append(f"<figure>{_html_figure(file, figures[file])}<figcaption>{esc(block.alt)}</figcaption></figure>")
    out.append("</body></html>\n")
    return "\n".join(out)


def render(report: dict, fmt: str, plot_format: str = "svg", *, with_files: bool = True) -> dict[str, bytes]:
    """The report as files ``{name: content}``: ``outcomes.<fmt>`` first, then its figures.

    Figures are drawn when they have somewhere to go: always for HTML (inlined), and for the
    other formats only ``with_files`` (written beside the document). ``report["plots"]`` lists
    the figure files written beside it.
    """
    figures = (
        {} if plot_format == "none" else plots.render_all(report, plot_format) if with_files or fmt == "html" else {}
    )
    files = figures if with_files and fmt != "html" else {}
    report = {**report, "plots": sorted(files)}
    if fmt == "json":
        main = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "md":
        main = to_markdown(document(report), {name.rsplit(".", 1)[0]: name for name in files})
    else:
        title = "Outcome report" + (" (SYNTHETIC DATA)" if report["synthetic"] else "")
        main = to_html(document(report), figures, title)
    return {f"{BASENAME}.{fmt}": main.encode("utf-8"), **files}
