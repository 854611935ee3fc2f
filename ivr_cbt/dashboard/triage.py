"""Triage: which patients need their therapist first, and why. Pure rules over a patient's weeks.

The rules (docs/design.md, docs/clinical.md):
* ``safety``: an open safety alert, or a "yes" to the safety question in the latest check-in;
* ``pain_up``: average pain at least 2 points above the baseline (week 0) in the two latest
  weeks that reported pain, and those weeks are consecutive (two weeks running);
* ``missed``: the weeks since the last check-in, counted back from last week (the current
  week is still open); only for active patients, whose calls are being placed;
* ``no_practice``: zero practice days in the latest week that reported practice (from week 1:
  week 0 is the baseline and has no skill to practise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ivr_cbt.clinical import PAIN, PAIN_RISE, PRACTICE, SAFETY, SAFETY_YES, pain_up_two_weeks

__all__ = ["PAIN", "PAIN_RISE", "PRACTICE", "SAFETY", "Flag", "flags", "urgency"]

# How much each flag weighs when sorting a caseload: the most urgent first.
WEIGHTS = {"safety": 100, "pain_up": 50, "missed": 15, "no_practice": 20}
MISSED_WEIGHT_CAP = 4  # a long absence weighs like four missed weeks


@dataclass(frozen=True)
class Flag:
    kind: str
    reason: str
    weight: int


def flags(weeks: Sequence, current: int, *, open_alerts: Mapping[str, int], active: bool = True) -> list[Flag]:
    """The triage flags for one patient, most urgent first.

    ``weeks`` holds Week-like rows (``week``, ``status``, ``value(item)``) sorted by week; week 0
    and the three latest check-ins are enough.
    """
    found = [_safety(weeks, open_alerts), _pain_up(weeks), _missed(weeks, current) if active else None]
    found.append(_no_practice(weeks))
    return sorted((f for f in found if f is not None), key=lambda f: -f.weight)


def urgency(found: Sequence[Flag]) -> int:
    return sum(f.weight for f in found)


def _reported(weeks: Sequence, item: str, *, from_week: int = 0) -> list:
    return [w for w in weeks if w.week >= from_week and w.value(item) is not None]


def _safety(weeks: Sequence, open_alerts: Mapping[str, int]) -> Flag | None:
    count = open_alerts.get("safety", 0)
    if count:
        alerts = "an open safety alert" if count == 1 else f"{count} open safety alerts"
        return Flag("safety", f"safety answer: {alerts}", WEIGHTS["safety"])
    answered = _reported(weeks, SAFETY)
    if answered and answered[-1].value(SAFETY) == SAFETY_YES:
        return Flag("safety", f"safety answer 'yes' in week {answered[-1].week} (alert acknowledged)", 60)
    return None


def _pain_up(weeks: Sequence) -> Flag | None:
    baseline = next((w.value(PAIN) for w in weeks if w.week == 0 and w.value(PAIN) is not None), None)
    later = _reported(weeks, PAIN, from_week=1)
    if baseline is None or len(later) < 2:
        return None
    before, last = later[-2], later[-1]
    if last.week - before.week != 1:
        return None
    if not pain_up_two_weeks(baseline, before.value(PAIN), last.value(PAIN)):
        return None
    return Flag(
        "pain_up",
        f"pain {before.value(PAIN)} and {last.value(PAIN)} in weeks {before.week}-{last.week}, "
        f"baseline {baseline}: up {PAIN_RISE} or more two weeks running",
        WEIGHTS["pain_up"],
    )


def _missed(weeks: Sequence, current: int) -> Flag | None:
    answered = [w.week for w in weeks if w.week < current and w.status not in ("missed", "due")]
    last = max(answered, default=-1)
    streak = current - 1 - last
    if streak <= 0:
        return None
    if streak == 1:
        reason = f"missed week {current - 1}"
    else:
        reason = f"missed {streak} weeks running (weeks {last + 1}-{current - 1})"
    return Flag("missed", reason, WEIGHTS["missed"] * min(streak, MISSED_WEIGHT_CAP))


def _no_practice(weeks: Sequence) -> Flag | None:
    answered = _reported(weeks, PRACTICE, from_week=1)
    if answered and answered[-1].value(PRACTICE) == 0:
        return Flag("no_practice", f"no practice days in week {answered[-1].week}", WEIGHTS["no_practice"])
    return None
