"""The module schedule (program/modules.yaml): COPES weeks 0-7, ours 8-10, goals, and its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_cbt.feedback import rules
from ivr_cbt.feedback.program import DEFAULT_FILE, ProgramError, load_program
from ivr_cbt.prompts import Catalogue

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = load_program()

COPES_SKILLS = [
    "baseline",
    "pain_cycle",
    "stretching",
    "walking",
    "deep_breathing",
    "muscle_relaxation",
    "spotting_thoughts",
    "balancing_thoughts",
]


def test_weeks_0_to_7_follow_copes_and_8_to_10_are_ours_and_say_so():
    assert PROGRAM.weeks == 11
    assert [m.week for m in PROGRAM.modules] == list(range(11))
    assert [m.id for m in PROGRAM.modules[:8]] == COPES_SKILLS
    assert {m.source for m in PROGRAM.modules[:8]} == {"COPES"}
    assert {m.source for m in PROGRAM.modules[8:]} == {"ivr-cbt"}
    assert PROGRAM.module(0).practice_days_goal == 0  # the baseline sets no practice goal
    assert PROGRAM.module(13) == PROGRAM.after_program  # follow-up calls ask about every skill


@pytest.mark.parametrize(
    ("week", "daily_after_weekly_call", "asked_about"),
    [
        (0, False, "baseline"),  # the baseline: no skill yet
        (1, False, "baseline"),  # module 1 is introduced on this very call, after the check-in
        (2, False, "pain_cycle"),  # the past 7 days were module 1's
        (4, False, "walking"),
        (11, False, "flare_up_plan"),
        (13, False, "maintenance"),
        (1, True, "pain_cycle"),  # a daily call after week 1's weekly call: module 1 is being practised
        (1, False, "baseline"),
    ],
)
def test_the_practice_question_asks_about_the_skill_introduced_on_the_last_weekly_call(
    week, daily_after_weekly_call, asked_about
):
    assert PROGRAM.practice_module(week, weekly_call_done=daily_after_weekly_call).id == asked_about


@pytest.mark.parametrize(
    ("week", "last_week_steps", "goal"),
    [
        (2, 4000, None),  # before the walking module: no step goal
        (3, 4200, 4700),  # 4620 rounded up to the next 100
        (3, 4000, 4400),  # exactly 10% more is already a multiple of 100
        (5, 4545, 5000),  # 4999.5 -> 5000
        (9, 10_000, 11_000),
        (3, 0, 100),  # someone who did not walk gets a first small goal
        (4, None, None),  # nothing reported: no goal from this rule
    ],
)
def test_the_step_goal_is_last_weeks_average_plus_ten_percent_rounded_up(week, last_week_steps, goal):
    assert PROGRAM.step_goal(week, last_week_steps) == goal


def test_every_prompt_the_program_and_the_rules_speak_exists_in_every_language():
    catalogue = Catalogue.load(ROOT / "prompts")
    assert catalogue.missing(PROGRAM.prompt_ids() | rules.prompt_ids()) == []
    assert len(PROGRAM.prompt_ids()) == 2 * (PROGRAM.weeks + 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda text: text.replace("  - week: 3\n", "  - week: 4\n", 1), "in order from 0"),
        (lambda text: text.replace("practice_days_goal: 7 ", "practice_days_goal: 9 ", 1), "9 is greater than"),
        (lambda text: text.replace("source: COPES", "source: somewhere", 1), "'somewhere' is not one of"),
        (lambda text: text.replace("    title: Stretching\n", "    title: Stretching\n    colour: red\n"), "colour"),
        (lambda text: text.replace("step_goal_increase: 0.10", "step_goal_increase: 2"), "step_goal_increase"),
    ],
)
def test_a_broken_module_file_is_refused_with_where_and_why(tmp_path, change, message):
    path = tmp_path / "modules.yaml"
    path.write_text(change(DEFAULT_FILE.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ProgramError, match=message) as caught:
        load_program(path)
    assert str(path) in str(caught.value)


def test_a_module_file_that_is_not_yaml_is_refused(tmp_path):
    path = tmp_path / "modules.yaml"
    path.write_text("weeks: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProgramError, match="not valid YAML"):
        load_program(path)
