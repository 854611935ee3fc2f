"""Assemble the outcome report from extracted counts: pure, takes ``now``, returns the JSON form.

The definitions the numbers rest on are written into the report itself (``definitions``) and
into README's "Outcome report" section; keep the three in step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ivr_cbt.calls import MACHINE
from ivr_cbt.models import CheckinStatus, FeedbackMode
from ivr_cbt.report import stats
from ivr_cbt.report.extract import BASELINE_WEEK, PAIN_ITEM, Extract, Timepoint, target_week

ARM_ORDER = tuple(mode.value for mode in FeedbackMode)
DEFAULT_REFERENCE = FeedbackMode.GUIDED.value
RESPONDER_SHARE = "0.30"  # RESOLVE (docs/clinical.md) and IMMPACT's "moderately important" change
FOLLOW_UP_MONTHS = (3, 6, 9)  # when COPES measured outcomes


@dataclass(frozen=True)
class Options:
    months: int = 3
    window: int = 2
    margin: float = 1.0
    reference_arm: str | None = None
    confidence: float = stats.CONFIDENCE
    synthetic: bool = False  # label the report synthetic even if the database carries no mark

    def timepoints(self) -> list[int]:
        return sorted({self.months, *FOLLOW_UP_MONTHS})


class ReportError(ValueError):
    """Options the data cannot answer, e.g. a reference arm nobody is enrolled in."""


def arms_of(extract: Extract) -> list[str]:
    """Arms with at least one enrolled patient, in the order monitoring, automated, guided."""
    known = [arm for arm in ARM_ORDER if extract.enrolled.get(arm)]
    return known + sorted(arm for arm in extract.enrolled if arm not in ARM_ORDER and extract.enrolled[arm])


def choose_reference(arms: Sequence[str], requested: str | None) -> str | None:
    """The arm every other arm is compared with: as requested, else guided, else the first arm."""
    if requested is not None:
        if requested not in arms:
            raise ReportError(
                f"reference arm {requested!r} has no enrolled patients (arms: {', '.join(arms) or 'none'})"
            )
        return requested
    if not arms:
        return None
    return DEFAULT_REFERENCE if DEFAULT_REFERENCE in arms else arms[0]


def build(extract: Extract, options: Options, *, now: datetime, as_of: datetime, items: Sequence[str] = ()) -> dict:
    """Compute the whole report (the JSON form) from the extracted counts.

    ``now`` stamps it; ``as_of`` decides which program weeks each patient has reached.
    """
    arms = arms_of(extract)
    reference = choose_reference(arms, options.reference_arm)
    primary = _timepoint_section(extract.timepoints[options.months], arms, reference, extract.enrolled, options)
    follow_ups = [
        _timepoint_section(tp, arms, reference, extract.enrolled, options)
        for months, tp in sorted(extract.timepoints.items())
        if months != options.months and any(cnt for _a, _b, f, _w, cnt in tp.counts if f is not None)
    ]
    synthetic = options.synthetic or bool(extract.synthetic)
    return {
        "report": "outcomes",
        "generated_at": now.isoformat(),
        "as_of": as_of.isoformat(),
        "synthetic": synthetic,
        "synthetic_sources": extract.synthetic,
        "definitions": definitions(options, reference),
        "primary": {"months": options.months, "week": primary["week"], "window": options.window},
        "reference_arm": reference,
        "arms": primary["arms"],
        "comparisons": primary["comparisons"],
        "follow_ups": follow_ups,
        "pain_by_week": _pain_by_week(extract, arms, options),
        "adherence": [_adherence(extract, arm, as_of, _ordered(items, extract)) for arm in arms],
        "plots": [],
    }


def definitions(options: Options, reference: str | None) -> dict:
    """The report's definitions, in words, with the numbers this run used."""
    week = target_week(options.months)
    pct = f"{options.confidence:.0%}"
    return {
        "outcome": f"average pain, item {PAIN_ITEM!r} (0-10, 0 = no pain, higher is worse)",
        "baseline": f"the {PAIN_ITEM} answer of program week {BASELINE_WEEK}",
        "follow_up": (
            f"{options.months} months = program week {week} (round(months x 52 / 12)); the {PAIN_ITEM} answer in the "
            f"week nearest it within +-{options.window} weeks, the earlier week on a tie"
        ),
        "missing": (
            "complete case: a patient enters the change analysis only with both a baseline and a follow-up value; "
            "a skipped pain item counts as missing; no imputation, no last observation carried forward"
        ),
        "change": "follow-up minus baseline (negative = less pain)",
        "mean_ci": f"{pct} Student t interval",
        "difference": "arm minus reference arm, in mean pain change",
        "difference_ci": f"{pct} Welch t interval (variances not assumed equal)",
        "noninferiority": (
            f"non-inferior when the upper bound of the {pct} interval of (arm - reference) is below "
            f"+{options.margin:g} (the margin); superior when it is below 0; inferior when the lower bound is "
            "above the margin; inconclusive otherwise"
        ),
        "responder": (
            f"pain fell by at least {float(RESPONDER_SHARE):.0%} of baseline; patients with baseline 0 excluded"
        ),
        "responder_ci": f"{pct} Wilson score interval; differences: Newcombe hybrid score interval",
        "hedges_g": (
            "(mean change arm - mean change reference) / pooled SD x (1 - 3 / (4N - 9)); negative favours the arm; "
            f"{pct} normal-approximation interval"
        ),
        "adherence": (
            "calls placed = outbound calls; answered = picked up by a person (not voicemail); a patient counts "
            "toward week w once 7w days have passed since their program start (UTC date) or once they have a "
            "check-in at week w or later"
        ),
        "margin": options.margin,
        "confidence": options.confidence,
        "reference_arm": reference,
    }


# --- change from baseline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pairs:
    baseline: np.ndarray
    followup: np.ndarray
    with_baseline: int
    with_followup: int
    followup_weeks: dict[str, int]

    @property
    def change(self) -> np.ndarray:
        return self.followup - self.baseline


def _pairs(tp: Timepoint, arm: str) -> _Pairs:
    rows = [(b, f, w, n) for a, b, f, w, n in tp.counts if a == arm]
    complete = [(b, f, n) for b, f, _w, n in rows if b is not None and f is not None]
    counts = [n for _b, _f, n in complete]
    weeks: Counter[int] = Counter()
    for _b, f, w, n in rows:
        if f is not None:
            weeks[w] += n
    return _Pairs(
        baseline=np.repeat(np.array([b for b, _f, _n in complete], dtype=np.int64), counts),
        followup=np.repeat(np.array([f for _b, f, _n in complete], dtype=np.int64), counts),
        with_baseline=sum(n for b, _f, _w, n in rows if b is not None),
        with_followup=sum(weeks.values()),
        followup_weeks={str(w): weeks[w] for w in sorted(weeks)},
    )


def _responders(pairs: _Pairs, options: Options) -> stats.Proportion:
    count, eligible = stats.responders(pairs.baseline, pairs.followup, RESPONDER_SHARE)
    return stats.wilson(count, eligible, options.confidence)


def _arm_summary(arm: str, enrolled: int, pairs: _Pairs, options: Options) -> dict:
    change = stats.mean_ci(pairs.change, options.confidence)
    responders = _responders(pairs, options)
    return {
        "name": arm,
        "n": change.n,
        "n_enrolled": enrolled,
        "n_with_baseline": pairs.with_baseline,
        "n_with_followup": pairs.with_followup,
        "retention_rate": pairs.with_followup / enrolled if enrolled else None,
        "followup_weeks": pairs.followup_weeks,
        "pain_baseline_mean": stats.mean_ci(pairs.baseline).mean,
        "pain_followup_mean": stats.mean_ci(pairs.followup).mean,
        "pain_change_mean": change.mean,
        "pain_change_sd": change.sd,
        "pain_change_ci": _list(change.ci),
        "responders_30pct": responders.rate,
        "responders_30pct_ci": _list(responders.ci),
        "responders_30pct_count": responders.count,
        "responders_30pct_n": responders.n,
        "responders_30pct_excluded_zero_baseline": int(np.count_nonzero(pairs.baseline == 0)),
    }


def _comparison(arm: str, reference: str, pairs: dict[str, _Pairs], options: Options) -> dict:
    a, b = pairs[arm], pairs[reference]
    difference = stats.welch_difference(a.change, b.change, options.confidence)
    g = stats.hedges_g(a.change, b.change, options.confidence)
    responders = stats.proportion_difference(_responders(a, options), _responders(b, options), options.confidence)
    return {
        "arms": [arm, reference],
        "difference": difference.difference,
        "ci": _list(difference.ci),
        "df": difference.df,
        "margin": options.margin,
        "noninferior": stats.noninferior(difference.ci, options.margin),
        "superior": None if difference.ci is None else difference.ci[1] < 0,
        "verdict": stats.verdict(difference.ci, options.margin),
        "hedges_g": g.value,
        "hedges_g_ci": _list(g.ci),
        "responders_30pct_difference": responders.value,
        "responders_30pct_difference_ci": _list(responders.ci),
    }


def _timepoint_section(
    tp: Timepoint, arms: list[str], reference: str | None, enrolled: dict[str, int], options: Options
) -> dict:
    pairs = {arm: _pairs(tp, arm) for arm in arms}
    return {
        "months": tp.months,
        "week": tp.week,
        "window": tp.window,
        "arms": [_arm_summary(arm, enrolled[arm], pairs[arm], options) for arm in arms],
        "comparisons": [_comparison(arm, reference, pairs, options) for arm in arms if arm != reference],
    }


# --- by week ------------------------------------------------------------------------------------------


def _pain_by_week(extract: Extract, arms: list[str], options: Options) -> list[dict]:
    cells: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for arm, week, value, n in extract.pain_by_week:
        cells.setdefault((arm, week), []).append((value, n))
    out = []
    for arm in arms:
        for week in sorted(w for a, w in cells if a == arm):
            values, counts = zip(*cells[arm, week], strict=True)
            mean = stats.mean_ci(np.repeat(values, counts), options.confidence)
            out.append({"arm": arm, "week": week, "n": mean.n, "mean": mean.mean, "ci": _list(mean.ci)})
    return out


def _adherence(extract: Extract, arm: str, as_of: datetime, items: list[str]) -> dict:
    calls = [(d, answered, by, n) for a, d, answered, by, n in extract.calls if a == arm]
    placed = sum(n for d, _ans, _by, n in calls if d.startswith("outbound"))
    answered = sum(n for d, ans, by, n in calls if d.startswith("outbound") and ans and by not in MACHINE)
    statuses: Counter[str] = Counter()
    completed_by_week: Counter[int] = Counter()
    for a, week, status, n in extract.checkins:
        if a == arm:
            statuses[status] += n
            if status == CheckinStatus.COMPLETE:
                completed_by_week[week] += n
    progress = [(start, done, last, n) for a, start, done, last, n in extract.progress if a == arm]
    distribution: Counter[int] = Counter()
    for _start, done, _last, n in progress:
        distribution[done] += n
    weeks_completed = np.repeat(list(distribution), list(distribution.values()))
    today = as_of.date()
    reached = [(max((today - start).days // 7, -1 if last is None else last), n) for start, _d, last, n in progress]
    all_weeks = sorted({week for _a, week, _s, _n in extract.checkins})
    by_week = []
    for week in all_weeks:
        eligible = sum(n for r, n in reached if r >= week)
        done = completed_by_week[week]
        by_week.append(
            {"week": week, "eligible": eligible, "completed": done, "rate": done / eligible if eligible else None}
        )
    answers = {(item, skipped): n for a, item, skipped, n in extract.items if a == arm}
    stopped = {item or "(none)": n for a, item, n in extract.stopped_at if a == arm}
    return {
        "arm": arm,
        "n_enrolled": extract.enrolled[arm],
        "calls_placed": placed,
        "calls_answered": answered,
        "calls_voicemail": sum(n for _d, ans, by, n in calls if ans and by in MACHINE),
        "calls_inbound": sum(n for d, _ans, _by, n in calls if d == "inbound"),
        "answer_rate": answered / placed if placed else None,
        "checkins_started": sum(statuses.values()),
        "checkins_completed": statuses[CheckinStatus.COMPLETE.value],
        "checkins_partial": statuses[CheckinStatus.PARTIAL.value],
        "checkins_missed": statuses[CheckinStatus.MISSED.value],
        "weeks_completed_mean": float(weeks_completed.mean()) if weeks_completed.size else None,
        "weeks_completed_median": float(np.median(weeks_completed)) if weeks_completed.size else None,
        "weeks_completed_distribution": {str(k): distribution[k] for k in sorted(distribution)},
        "by_week": by_week,
        "stopped_at": {item: stopped[item] for item in [*items, "(none)"] if item in stopped},
        "answered": {item: answers.get((item, False), 0) for item in items},
        "skipped": {item: answers.get((item, True), 0) for item in items},
    }


def _ordered(items: Sequence[str], extract: Extract) -> list[str]:
    """The flow's item order, then any other item the data holds (an older flow's), sorted."""
    seen = {item for _a, item, _s, _n in extract.items} | {i for _a, i, _n in extract.stopped_at if i}
    return [*items, *sorted(seen - set(items))]


def _list(interval: stats.Interval | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]
