"""The weekly summary: a patient's numbers for one program week, their trend and goals. Pure.

A week's values come from its weekly check-in; for a patient on the daily cadence, an item
the weekly call did not get is taken from that week's daily calls (mean pain, mean steps,
days practised).

The check-in of week ``w`` reports on the 7 days before its call, when the patient practised
module ``w - 1`` (see ivr_cbt/feedback/program.py). Its goals are the ones that came with
that module: what the message of week ``w - 2`` announced (what the patient was told), or, if
there was none, the module file's; a therapist's goals for week ``w - 1`` win. The message of
week ``w`` introduces module ``w + 1`` with its goals: practice days from the module file,
steps (from the walking module on) the latest reported average + 10%; a therapist's goals
for week ``w + 1`` win.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from ivr_cbt import clinical
from ivr_cbt.feedback.program import Program

DAILY_PAIN, DAILY_STEPS, DAILY_PRACTICE = "pain_today", "steps_yesterday", "practiced_today"
YES = 1
COMPLETE, MISSED = "complete", "missed"


@dataclass(frozen=True)
class WeekData:
    """What one program week's check-ins hold."""

    week: int
    status: str | None = None  # the weekly check-in's status; None when there is none
    answers: Mapping[str, int | None] = field(default_factory=dict)  # weekly items -> value (None: skipped)
    daily: Sequence[Mapping[str, int | None]] = ()  # the answers of each daily check-in that week
    daily_completed: int = 0

    def value(self, item: str) -> float | int | None:
        """The week's value of a weekly item, filled in from the daily calls where they can."""
        value = self.answers.get(item)
        if value is not None or not self.daily:
            return value
        if item == clinical.PAIN:
            return _mean([d.get(DAILY_PAIN) for d in self.daily], 1)
        if item == clinical.STEPS:
            return _mean([d.get(DAILY_STEPS) for d in self.daily], 0)
        if item == clinical.PRACTICE:
            reported = [d.get(DAILY_PRACTICE) for d in self.daily if d.get(DAILY_PRACTICE) is not None]
            return sum(1 for v in reported if v == YES) if reported else None
        return None

    @property
    def reported(self) -> bool:
        """Did the patient give any answer this week?"""
        return any(v is not None for v in self.answers.values()) or any(
            v is not None for day in self.daily for v in day.values()
        )


def _mean(values: Sequence[int | None], digits: int) -> float | int | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    mean = round(sum(known) / len(known), digits)
    return int(mean) if digits == 0 or mean == int(mean) else mean


@dataclass(frozen=True)
class Goals:
    steps: int | None = None
    practice_days: int | None = None

    def over(self, other: Goals | None) -> Goals:
        """These goals, with what they leave unset taken from ``other``."""
        if other is None:
            return self
        return Goals(
            self.steps if self.steps is not None else other.steps,
            self.practice_days if self.practice_days is not None else other.practice_days,
        )


@dataclass(frozen=True)
class History:
    """What the summary of ``week`` needs to know about the patient."""

    week: int
    weeks: Mapping[int, WeekData]  # at least weeks 0, week - 2, week - 1 and week, where they exist
    checkins_completed: int = 0  # weekly check-ins completed in weeks 0..week
    missed_before: int = 0  # weeks missed in a row just before ``week``
    announced: Goals | None = None  # the goals the message of week - 2 gave with the module practised
    overrides: Mapping[int, Goals] = field(default_factory=dict)  # set by the therapist, by module week
    daily_cadence: bool = False

    def data(self, week: int) -> WeekData:
        return self.weeks.get(week) or WeekData(week)


@dataclass(frozen=True)
class Summary:
    """One program week, as the feedback rules and the therapist see it."""

    week: int
    practised: str  # the module (skill) id the week's practice question asked about
    next_module: str | None  # the module the message introduces; None after the last program week
    reported: bool
    status: str | None
    pain: float | int | None
    pain_last_week: float | int | None
    pain_baseline: float | int | None
    sleep: float | int | None
    sleep_last_week: float | int | None
    steps: float | int | None
    practice_days: float | int | None
    goals: Goals  # those of the module practised (judged against this week's answers)
    next_goals: Goals  # those of the module introduced
    checkins_completed: int
    daily_completed: int | None  # daily calls completed this week (daily cadence only)
    missed_before: int
    flags: tuple[str, ...] = ()

    @property
    def pain_change_last_week(self) -> float | None:
        return _change(self.pain, self.pain_last_week)

    @property
    def pain_change_baseline(self) -> float | None:
        return _change(self.pain, self.pain_baseline) if self.week > 0 else None

    @property
    def steps_goal_met(self) -> bool | None:
        return None if self.goals.steps is None or self.steps is None else self.steps >= self.goals.steps

    @property
    def practice_goal_met(self) -> bool | None:
        if not self.goals.practice_days or self.practice_days is None:
            return None
        return self.practice_days >= self.goals.practice_days

    def to_json(self) -> dict:
        # By hand, not dataclasses.asdict: that deep-copies, and the job writes 100,000 of these.
        data = {name: getattr(self, name) for name in _FIELDS}
        data["goals"] = {"steps": self.goals.steps, "practice_days": self.goals.practice_days}
        data["next_goals"] = {"steps": self.next_goals.steps, "practice_days": self.next_goals.practice_days}
        data["flags"] = list(self.flags)
        data.update(
            pain_change_last_week=self.pain_change_last_week,
            pain_change_baseline=self.pain_change_baseline,
            steps_goal_met=self.steps_goal_met,
            practice_goal_met=self.practice_goal_met,
        )
        return data


_FIELDS = tuple(f.name for f in fields(Summary))


def _change(value, reference) -> float | None:
    if value is None or reference is None:
        return None
    change = round(value - reference, 1)
    return int(change) if change == int(change) else change


# Flags (the same rules as the dashboard's triage, ivr_cbt/dashboard/triage.py):
PAIN_UP = "pain_up_two_weeks"  # pain >= baseline + 2 this week and last week
NO_PRACTICE = "no_practice"  # zero practice days of a skill (from week 2, the first that asks about one)
MISSED_WEEKS = "missed_weeks"  # no answers this week, or two or more weeks missed in a row before it
MISSED_THIS_WEEK = "missed_this_week"
FIRST_SKILL_WEEK = 2  # the first check-in whose practice question names a skill (module 1)


def summarize(history: History, program: Program) -> Summary:
    """Summarise program week ``history.week``."""
    week = history.week
    this, last, base = history.data(week), history.data(week - 1), history.data(0)
    pain, pain_last, baseline = this.value(clinical.PAIN), last.value(clinical.PAIN), base.value(clinical.PAIN)
    steps, practice = this.value(clinical.STEPS), this.value(clinical.PRACTICE)
    practised = program.practice_module(week)
    goals = Goals()
    if week >= FIRST_SKILL_WEEK:
        from_file = Goals(
            program.step_goal(week - 1, history.data(week - 2).value(clinical.STEPS)),
            practised.practice_days_goal or None,
        )
        goals = history.overrides.get(week - 1, Goals()).over(history.announced or from_file)
    final = week + 1 >= program.weeks
    next_module = None if final else program.module(week + 1)
    next_goals = Goals()
    if next_module is not None:
        latest_steps = steps if steps is not None else last.value(clinical.STEPS)
        steps_goal = program.step_goal(week + 1, latest_steps)
        if steps_goal is None and week + 1 >= program.step_goal_from_week:
            steps_goal = goals.steps  # no steps reported lately: the goal stays where it was
        computed = Goals(steps_goal, next_module.practice_days_goal or None)
        next_goals = history.overrides.get(week + 1, Goals()).over(computed)

    flags = []
    if week > 0 and clinical.pain_up_two_weeks(baseline, pain_last, pain):
        flags.append(PAIN_UP)
    if week >= FIRST_SKILL_WEEK and practice == 0:
        flags.append(NO_PRACTICE)
    if not this.reported:
        flags.append(MISSED_THIS_WEEK)
    if history.missed_before + (0 if this.reported else 1) >= 2:
        flags.append(MISSED_WEEKS)
    return Summary(
        week=week,
        practised=practised.id,
        next_module=next_module.id if next_module else None,
        reported=this.reported,
        status=this.status,
        pain=pain,
        pain_last_week=pain_last if week > 0 else None,
        pain_baseline=baseline,
        sleep=this.value(clinical.SLEEP),
        sleep_last_week=last.value(clinical.SLEEP) if week > 0 else None,
        steps=steps,
        practice_days=practice,
        goals=goals,
        next_goals=next_goals,
        checkins_completed=history.checkins_completed,
        daily_completed=this.daily_completed if history.daily_cadence else None,
        missed_before=history.missed_before,
        flags=tuple(flags),
    )


def goals_from_json(data: Mapping | None) -> Goals | None:
    """The Goals stored in a summary's JSON (``next_goals`` of an earlier message)."""
    if not data:
        return None
    return Goals(data.get("steps"), data.get("practice_days"))
