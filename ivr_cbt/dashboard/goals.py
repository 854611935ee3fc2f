"""A patient's module and goals, as the therapist sees and sets them (the "Module and goals" section).

During program week ``v`` the patient practises module ``v`` (ivr_cbt/feedback/program.py). Its
goals were announced by the message of week ``v - 1``; they are judged when week ``v``'s
check-in arrives. For this module week and the next the section shows:

* the program's goals: practice days from the module file; from the walking module on, the step
  goal is the latest reported weekly average (of the two weeks before) + 10%, rounded up;
* what the patient was told (the announcing message's goals, if it has been made);
* the therapist's override (``GoalOverride``), which wins over both, field by field;
* and so the goals in effect.

Setting goals goes through ivr_cbt/feedback/review.py ``set_goals`` (validated, audited; it
rebuilds the announcing message if it has not played yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.clinical import STEPS
from ivr_cbt.dashboard.weekly import PatientWeeks
from ivr_cbt.feedback.program import Module, Program
from ivr_cbt.feedback.summary import Goals, goals_from_json
from ivr_cbt.models import FeedbackMessage, FeedbackMode, GoalOverride, Patient
from ivr_cbt.patients import program_week


class GoalInputError(ValueError):
    """A goal typed in a way that is not a number; the message says which."""


@dataclass(frozen=True)
class GoalWeek:
    week: int  # the module week
    module: Module
    program: Goals
    steps_basis: str  # how the program's step goal comes about, in words
    announced: Goals | None  # what the message of week - 1 says (None: not made yet)
    announced_status: str | None
    override: Goals | None
    override_by: str | None

    @property
    def effective(self) -> Goals:
        base = self.announced if self.announced is not None else self.program
        return self.override.over(base) if self.override is not None else base


@dataclass(frozen=True)
class GoalsSection:
    current_week: int
    module: Module  # this week's module
    practised: Module  # what this week's check-in asks about (the module of the week before)
    weeks: list[GoalWeek]  # this module week and the next
    monitoring: bool


def program_goals(program: Program, week: int, steps_by_week: dict[int, int | None]) -> tuple[Goals, str]:
    """The program's goals for module week ``week`` from the reported weekly step averages. Pure."""
    practice = program.module(week).practice_days_goal or None
    if week < program.step_goal_from_week:
        return Goals(None, practice), f"no step goal before week {program.step_goal_from_week}"
    for reported in (week - 1, week - 2):
        steps = steps_by_week.get(reported)
        if steps is not None:
            goal = program.step_goal(week, steps)
            rise = round(program.step_goal_increase * 100)
            return Goals(goal, practice), f"week {reported}'s average {steps:,} + {rise}%, rounded up"
    return Goals(None, practice), "no steps reported in the two weeks before: the earlier goal stands"


def load(session: orm.Session, patient: Patient, now: datetime, program: Program, log: PatientWeeks) -> GoalsSection:
    """The section's data: two queries (the announcing messages and the overrides)."""
    current = program_week(patient.program_start, patient.timezone, now)
    weeks = (current, current + 1)
    steps = {w.week: w.value(STEPS) for w in log.weeks}
    announced = {
        row.week + 1: row
        for row in session.execute(
            sa.select(FeedbackMessage.week, FeedbackMessage.summary, FeedbackMessage.status).where(
                FeedbackMessage.patient_id == patient.id, FeedbackMessage.week.in_([w - 1 for w in weeks])
            )
        )
    }
    overrides = {
        o.week: o
        for o in session.scalars(
            sa.select(GoalOverride).where(GoalOverride.patient_id == patient.id, GoalOverride.week.in_(weeks))
        )
    }
    rows = []
    for week in weeks:
        goals, basis = program_goals(program, week, steps)
        message, override = announced.get(week), overrides.get(week)
        rows.append(
            GoalWeek(
                week=week,
                module=program.module(week),
                program=goals,
                steps_basis=basis,
                announced=goals_from_json((message.summary or {}).get("next_goals")) or Goals()
                if message is not None
                else None,
                announced_status=str(message.status) if message is not None else None,
                override=Goals(override.steps_goal, override.practice_days_goal) if override is not None else None,
                override_by=override.set_by if override is not None else None,
            )
        )
    return GoalsSection(
        current_week=current,
        module=program.module(current),
        practised=program.practice_module(current),
        weeks=rows,
        monitoring=patient.feedback_mode == FeedbackMode.MONITORING,
    )


def parse_goal(text: str | None, what: str, low: int, high: int) -> int | None:
    """A goal typed in a form: blank means the program's; otherwise a whole number."""
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    if not text.isdigit():
        raise GoalInputError(f"the {what} goal must be a whole number from {low:,} to {high:,}, or blank")
    return int(text)
