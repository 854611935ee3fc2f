"""The feedback rules. The table below is the specification: a week's summary in, the message's segments out.

Notation: a string is a prompt id, a number is a spoken number, ``end(x)`` closes a sentence.
"""

from __future__ import annotations

import pytest

from ivr_cbt.feedback import rules
from ivr_cbt.feedback.program import load_program
from ivr_cbt.feedback.segments import estimated_seconds, number, prompt, script
from ivr_cbt.feedback.summary import Goals, History, WeekData, summarize
from ivr_cbt.prompts import Catalogue

from .test_feedback_program import ROOT

PROGRAM = load_program()
CATALOGUE = Catalogue.load(ROOT / "prompts")


class end:  # noqa: N801 (reads like the notation it is)
    def __init__(self, value):
        self.value = value


def expand(notation) -> list[dict]:
    out = []
    for item in notation:
        if isinstance(item, end):
            out.append(prompt(item.value, ".") if isinstance(item.value, str) else number(item.value, "."))
        elif isinstance(item, str):
            out.append(prompt(item))
        else:
            out.append(number(item))
    return out


def week(n, pain=None, sleep=None, steps=None, practice=None, status="complete"):
    answers = {"pain_avg": pain, "sleep_quality": sleep, "steps_avg": steps, "practice_days": practice}
    return WeekData(n, status, {} if status == "missed" else answers)


def summary_of(w, *weeks, **options):
    return summarize(History(week=w, weeks={d.week: d for d in weeks}, **options), PROGRAM)


NEXT_1 = ["fb_next_skill", end("skill_pain_cycle"), "skill_pain_cycle_about", "fb_handbook", "fb_practice_goal_next", 7]
NEXT_1 += ["fb_days_next_week"]
CLOSING = ["fb_closing"]

CASES = {
    "baseline week: welcome, the numbers, this week's first skill": (
        summary_of(0, week(0, 6, 5, 4200, 3), checkins_completed=1),
        ["fb_welcome", "fb_pain_was_first", 6, "fb_out_of_10", "fb_sleep_was", 5, "fb_out_of_10"]
        + ["fb_steps_were", 4200, "fb_steps_a_day", *NEXT_1, *CLOSING],
    ),
    "better than the baseline by 30% or 2 points: praise, goals met, check-ins counted": (
        summary_of(
            4,
            week(0, 7, 4, 3000),
            week(3, 6, 5, 4000, 3),
            week(4, 4, 6, 4500, 7),
            announced=Goals(4400, 7),
            checkins_completed=5,
        ),
        ["fb_pain_was", 4, "fb_out_of_10", "fb_down_from", 6, "fb_last_week", "fb_baseline_was", end(7)]
        + ["fb_pain_much_better", "fb_sleep_was", 6, "fb_out_of_10", "fb_sleep_better"]
        + ["fb_steps_were", 4500, "fb_steps_a_day", "fb_steps_goal_was", end(4400), "fb_steps_goal_met"]
        + ["fb_practised", "skill_walking", "fb_on", 7, "fb_of_7_days", "fb_practice_goal_met"]
        + ["fb_checkins_done", 5, "fb_checkins_done_end"]
        + ["fb_next_skill", end("skill_muscle_relaxation"), "skill_muscle_relaxation_about", "fb_handbook"]
        + ["fb_practice_goal_next", 7, "fb_days_next_week", "fb_steps_goal_next", 5000, "fb_steps_a_day"]
        + ["fb_keep_earlier_skills", *CLOSING],
    ),
    "a little better than the baseline: keep going; some practice": (
        summary_of(3, week(0, 6), week(2, 6), week(3, 5, None, None, 3), announced=Goals(None, 7)),
        ["fb_pain_was", 5, "fb_out_of_10", "fb_down_from", 6, "fb_last_week", "fb_baseline_was", end(6)]
        + ["fb_pain_better", "fb_practised", "skill_stretching", "fb_on", 3, "fb_of_7_days", "fb_practice_some"]
        + ["fb_next_skill", end("skill_deep_breathing"), "skill_deep_breathing_about", "fb_handbook"]
        + ["fb_practice_goal_next", 7, "fb_days_next_week", "fb_keep_earlier_skills", *CLOSING],
    ),
    "pain up 2 over the baseline two weeks running: reassure; goal not met; no practice": (
        summary_of(
            6, week(0, 4), week(5, 6, 3, 3000, 2), week(6, 7, 3, 2500, 0), announced=Goals(3300, 7), missed_before=0
        ),
        ["fb_pain_was", 7, "fb_out_of_10", "fb_up_from", 6, "fb_last_week", "fb_baseline_was", end(4), "fb_pain_up"]
        + ["fb_sleep_was", 3, "fb_out_of_10"]
        + ["fb_steps_were", 2500, "fb_steps_a_day", "fb_steps_goal_was", end(3300), "fb_steps_goal_not_met"]
        + ["fb_practised", "skill_muscle_relaxation", "fb_on", 0, "fb_of_7_days", "fb_practice_none"]
        + ["fb_next_skill", end("skill_balancing_thoughts"), "skill_balancing_thoughts_about", "fb_handbook"]
        + ["fb_practice_goal_next", 5, "fb_days_next_week", "fb_steps_goal_next", 2800, "fb_steps_a_day"]
        + ["fb_keep_earlier_skills", *CLOSING],
    ),
    "same as last week, not better than the baseline: steady; back after a missed week": (
        summary_of(2, week(0, 5), week(1, 5), week(2, 5, None, None, None), missed_before=1),
        ["fb_welcome_back", "fb_pain_was", 5, "fb_out_of_10", "fb_same_as_last_week", "fb_baseline_was", end(5)]
        + ["fb_pain_steady", "fb_next_skill", end("skill_walking"), "skill_walking_about", "fb_handbook"]
        + ["fb_practice_goal_next", 7, "fb_days_next_week", "fb_keep_earlier_skills", *CLOSING],
    ),
    "a missed week: we missed you, then this week's skill": (
        summary_of(1, week(0, 5, 5, 3000), week(1, status="missed")),
        ["fb_missed_week", "fb_next_skill", end("skill_stretching"), "skill_stretching_about", "fb_handbook"]
        + ["fb_practice_goal_next", 7, "fb_days_next_week", "fb_keep_earlier_skills", *CLOSING],
    ),
    "two missed weeks in a row: the care team will be in touch": (
        summary_of(7, week(0, 5), week(7, status="missed"), missed_before=1, announced=Goals(5000, 5)),
        ["fb_missed_week", "fb_missed_weeks_team", "fb_next_skill", end("skill_pleasant_activities")]
        + ["skill_pleasant_activities_about", "fb_handbook", "fb_practice_goal_next", 5, "fb_days_next_week"]
        + ["fb_steps_goal_next", 5000, "fb_steps_a_day", "fb_keep_earlier_skills", *CLOSING],
    ),
    "the last week: the end of the program, nothing new": (
        summary_of(10, week(0, 7), week(9, 4), week(10, 4, 7, None, 5), announced=Goals(None, 7)),
        ["fb_pain_was", 4, "fb_out_of_10", "fb_same_as_last_week", "fb_baseline_was", end(7)]
        + ["fb_pain_much_better", "fb_sleep_was", 7, "fb_out_of_10"]
        + ["fb_practised", "skill_sleep_habits", "fb_on", 5, "fb_of_7_days", "fb_practice_some"]
        + ["fb_program_end", *CLOSING],
    ),
    "a skipped pain question: please answer every question": (
        summary_of(5, week(0, 6), week(5, None, 6, None, None)),
        ["fb_pain_skipped", "fb_sleep_was", 6, "fb_out_of_10", "fb_next_skill", end("skill_spotting_thoughts")]
        + ["skill_spotting_thoughts_about", "fb_handbook", "fb_practice_goal_next", 5, "fb_days_next_week"]
        + ["fb_keep_earlier_skills", *CLOSING],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_rules_turn_each_summary_into_its_segments(case):
    summary, expected = CASES[case]
    assert rules.message(summary, PROGRAM) == expand(expected)


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_message_takes_about_45_to_90_seconds_to_speak(case, language):
    summary, _ = CASES[case]
    segments = rules.message(summary, PROGRAM)
    seconds = estimated_seconds(segments, lambda pid: CATALOGUE.text(pid, language), language)
    assert 45 <= seconds <= 90, f"{seconds:.0f} s: {script(segments, lambda pid: CATALOGUE.text(pid, language))}"


def test_every_rule_prompt_is_used_by_some_case_and_no_case_uses_another():
    used = {s["prompt"] for summary, _ in CASES.values() for s in rules.message(summary, PROGRAM) if "prompt" in s}
    assert used - PROGRAM.prompt_ids() <= rules.prompt_ids()
    assert rules.prompt_ids() - used == set(), "a rule prompt no case exercises"


def test_the_script_reads_as_sentences_with_the_patients_numbers():
    summary, _ = CASES["better than the baseline by 30% or 2 points: praise, goals met, check-ins counted"]
    text = script(rules.message(summary, PROGRAM), lambda pid: CATALOGUE.text(pid, "en"))
    assert "In last week's check-in, you rated your average pain 4 out of 10." in text
    assert "That is down from 6 the week before." in text
    assert "When you started the program, it was 7." in text
    assert "You practised walking and good body mechanics on 7 of 7 days." in text
    assert "This week's skill is progressive muscle relaxation." in text
    assert "Your step goal for this week is 5000 steps a day." in text
