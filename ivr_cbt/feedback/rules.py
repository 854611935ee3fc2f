"""The feedback rules: a weekly summary in, the message's segments out. Pure.

The message follows the COPES therapists' weekly messages (CLINICAL.md): the patient's own
numbers and their trend, praise or encouragement, then this week's skill and goals. It is
heard on the call after the check-in it reviews, so it speaks of "last week's check-in".
Each rule below adds segments; tests/test_feedback_rules.py holds the table of summaries and
the segment lists they must give, which is the specification.

1. Week 0 opens with a welcome (the baseline); a week after missed ones with "welcome back".
2. A week without any answer: say we missed them (and, after two or more, that the care team
   will be in touch), then go straight to this week's skill.
3. Pain: the week's average, then the change from the week before, then the baseline; then
   one judgement: pain up 2+ over the baseline two weeks running (reassure, the team will
   look) > an important improvement over the baseline (2 points or 30%) > better than the
   baseline > otherwise steady. A skipped pain question: ask them to answer every question.
4. Sleep, out of 10, and "better than the week before" when it is.
5. Steps a day, against the goal that came with the module practised: reached or not.
6. Practice (from week 2, the first check-in that asks about a skill): days out of 7
   practising the module's skill: none > goal met > some.
7. Check-ins completed so far (from the second one on).
8. This week's skill (the next module), what it is, where the handbook and recordings help,
   its practice-days goal and step goal, and
   (from module 2) keep using the earlier skills; after the last week, the end of the program.
9. A closing line.
"""

from __future__ import annotations

from ivr_cbt import clinical
from ivr_cbt.feedback.program import Program
from ivr_cbt.feedback.segments import number, prompt
from ivr_cbt.feedback.summary import FIRST_SKILL_WEEK, MISSED_WEEKS, PAIN_UP, Summary


def message(summary: Summary, program: Program) -> list[dict]:
    """The segments of the message for ``summary``'s week."""
    segments: list[dict] = []
    if summary.week == 0:
        segments.append(prompt("fb_welcome"))
    elif summary.reported and summary.missed_before:
        segments.append(prompt("fb_welcome_back"))
    if summary.reported:
        segments += _pain(summary)
        segments += _sleep(summary)
        segments += _steps(summary)
        segments += _practice(summary, program)
        if summary.checkins_completed >= 2:
            segments += [prompt("fb_checkins_done"), number(summary.checkins_completed), prompt("fb_checkins_done_end")]
    else:
        segments.append(prompt("fb_missed_week"))
        if MISSED_WEEKS in summary.flags:
            segments.append(prompt("fb_missed_weeks_team"))
    segments += _next_week(summary, program)
    segments.append(prompt("fb_closing"))
    return segments


def _pain(summary: Summary) -> list[dict]:
    if summary.pain is None:
        return [prompt("fb_pain_skipped")]
    out = [prompt("fb_pain_was_first" if summary.week == 0 else "fb_pain_was"), number(summary.pain)]
    out.append(prompt("fb_out_of_10"))
    change, last_week = summary.pain_change_last_week, summary.pain_last_week
    if summary.week > 0 and change is not None and last_week is not None:
        if change < 0:
            out += [prompt("fb_down_from"), number(last_week), prompt("fb_last_week")]
        elif change > 0:
            out += [prompt("fb_up_from"), number(last_week), prompt("fb_last_week")]
        else:
            out.append(prompt("fb_same_as_last_week"))
    if summary.week == 0 or summary.pain_baseline is None:
        return out
    out += [prompt("fb_baseline_was"), number(summary.pain_baseline, end=".")]
    if PAIN_UP in summary.flags:
        out.append(prompt("fb_pain_up"))
    elif clinical.important_improvement(summary.pain_baseline, summary.pain):
        out.append(prompt("fb_pain_much_better"))
    elif summary.pain < summary.pain_baseline:
        out.append(prompt("fb_pain_better"))
    else:
        out.append(prompt("fb_pain_steady"))
    return out


def _sleep(summary: Summary) -> list[dict]:
    if summary.sleep is None:
        return []
    out = [prompt("fb_sleep_was"), number(summary.sleep), prompt("fb_out_of_10")]
    if summary.sleep_last_week is not None and summary.sleep > summary.sleep_last_week:
        out.append(prompt("fb_sleep_better"))
    return out


def _steps(summary: Summary) -> list[dict]:
    if summary.steps is None:
        return []
    out = [prompt("fb_steps_were"), number(summary.steps), prompt("fb_steps_a_day")]
    if summary.goals.steps is not None:
        out += [prompt("fb_steps_goal_was"), number(summary.goals.steps, end=".")]
        out.append(prompt("fb_steps_goal_met" if summary.steps_goal_met else "fb_steps_goal_not_met"))
    return out


def _practice(summary: Summary, program: Program) -> list[dict]:
    if summary.week < FIRST_SKILL_WEEK or summary.practice_days is None:
        return []
    out = [
        prompt("fb_practised"),
        prompt(program.practice_module(summary.week).prompt),
        prompt("fb_on"),
        number(summary.practice_days),
        prompt("fb_of_7_days"),
    ]
    if summary.practice_days == 0:
        out.append(prompt("fb_practice_none"))
    elif summary.practice_goal_met:
        out.append(prompt("fb_practice_goal_met"))
    else:
        out.append(prompt("fb_practice_some"))
    return out


def _next_week(summary: Summary, program: Program) -> list[dict]:
    if summary.next_module is None:
        return [prompt("fb_program_end")]
    module = program.module(summary.week + 1)
    out = [prompt("fb_next_skill"), prompt(module.prompt, end="."), prompt(module.about), prompt("fb_handbook")]
    goals = summary.next_goals
    if goals.practice_days:
        out += [prompt("fb_practice_goal_next"), number(goals.practice_days), prompt("fb_days_next_week")]
    if goals.steps is not None:
        out += [prompt("fb_steps_goal_next"), number(goals.steps), prompt("fb_steps_a_day")]
    if summary.week + 1 >= 2:
        out.append(prompt("fb_keep_earlier_skills"))
    return out


def prompt_ids() -> set[str]:
    """Every fixed prompt id the rules can use (each must exist in every language)."""
    return {
        "fb_welcome",
        "fb_welcome_back",
        "fb_checkins_done",
        "fb_checkins_done_end",
        "fb_missed_week",
        "fb_missed_weeks_team",
        "fb_closing",
        "fb_pain_was",
        "fb_pain_was_first",
        "fb_pain_skipped",
        "fb_handbook",
        "fb_out_of_10",
        "fb_down_from",
        "fb_up_from",
        "fb_last_week",
        "fb_same_as_last_week",
        "fb_baseline_was",
        "fb_pain_up",
        "fb_pain_much_better",
        "fb_pain_better",
        "fb_pain_steady",
        "fb_sleep_was",
        "fb_sleep_better",
        "fb_steps_were",
        "fb_steps_a_day",
        "fb_steps_goal_was",
        "fb_steps_goal_met",
        "fb_steps_goal_not_met",
        "fb_practised",
        "fb_on",
        "fb_of_7_days",
        "fb_practice_none",
        "fb_practice_goal_met",
        "fb_practice_some",
        "fb_program_end",
        "fb_next_skill",
        "fb_practice_goal_next",
        "fb_days_next_week",
        "fb_steps_goal_next",
        "fb_keep_earlier_skills",
    }
