"""The weekly summary: numbers, trends, goals (announced, from the module file, or the therapist's), flags."""

from __future__ import annotations

import pytest

from ivr_cbt.feedback.program import load_program
from ivr_cbt.feedback.summary import (
    MISSED_THIS_WEEK,
    MISSED_WEEKS,
    NO_PRACTICE,
    PAIN_UP,
    Goals,
    History,
    WeekData,
    goals_from_json,
    summarize,
)

PROGRAM = load_program()


def week(n, pain=None, sleep=None, steps=None, practice=None, status="complete", **more):
    answers = {"pain_avg": pain, "sleep_quality": sleep, "steps_avg": steps, "practice_days": practice}
    return WeekData(n, status, {k: v for k, v in answers.items() if v is not None or status != "missed"}, **more)


def history(w, *weeks, **options):
    return History(week=w, weeks={data.week: data for data in weeks}, **options)


def test_a_week_is_summarised_against_last_week_and_the_baseline():
    summary = summarize(
        history(4, week(0, 7, 4, 3000, 1), week(3, 6, 5, 4000, 3), week(4, 5, 6, 4500, 5), checkins_completed=5),
        PROGRAM,
    )
    assert (summary.pain, summary.pain_last_week, summary.pain_baseline) == (5, 6, 7)
    assert (summary.pain_change_last_week, summary.pain_change_baseline) == (-1, -2)
    assert (summary.sleep, summary.sleep_last_week, summary.steps, summary.practice_days) == (6, 5, 4500, 5)
    assert summary.practised == "walking" and summary.next_module == "muscle_relaxation"
    assert summary.checkins_completed == 5 and summary.flags == ()


def test_the_weeks_goals_are_those_announced_with_the_module_practised():
    announced = Goals(steps=4400, practice_days=7)
    summary = summarize(history(5, week(0, 6), week(5, 5, 6, 4500, 6), announced=announced), PROGRAM)
    assert summary.goals == announced
    assert summary.steps_goal_met is True and summary.practice_goal_met is False


def test_without_an_announcement_the_goals_come_from_the_module_file_and_the_10_percent_rule():
    summary = summarize(history(4, week(0, 6), week(2, 6, 5, 4000, 2), week(4, 5, 5, 4300, 7)), PROGRAM)
    assert summary.goals == Goals(steps=4400, practice_days=7)  # module 3 (walking): 4000 x 1.1
    assert summary.steps_goal_met is False and summary.practice_goal_met is True


def test_the_therapists_goals_win_for_the_module_they_were_set_for():
    overrides = {3: Goals(steps=3000), 5: Goals(practice_days=3)}
    summary = summarize(
        history(4, week(0, 6), week(4, 5, 5, 4300, 7), announced=Goals(4400, 7), overrides=overrides), PROGRAM
    )
    assert summary.goals == Goals(steps=3000, practice_days=7)  # only the step goal was overridden
    assert summary.next_goals == Goals(steps=4800, practice_days=3)  # 4300 x 1.1 = 4730 -> 4800


@pytest.mark.parametrize(
    ("w", "steps", "next_goals"),
    [
        (0, 4000, Goals(None, 7)),  # module 1: a practice goal, no step goal yet
        (1, 4000, Goals(None, 7)),
        (2, 4200, Goals(4700, 7)),  # module 3 (walking) brings the first step goal
        (9, 8000, Goals(8800, 5)),
    ],
)
def test_the_next_modules_goals(w, steps, next_goals):
    summary = summarize(history(w, week(0, 6, 5, 3000), week(w, 5, 5, steps, 3)), PROGRAM)
    assert summary.next_goals == next_goals


def test_a_week_without_steps_keeps_the_step_goal_where_it_was():
    summary = summarize(history(5, week(0, 6), week(5, 5, 5, None, 4), announced=Goals(5000, 7)), PROGRAM)
    assert summary.steps is None and summary.next_goals.steps == 5000


def test_the_last_week_introduces_nothing():
    summary = summarize(history(10, week(0, 6), week(10, 4, 7, 6000, 5)), PROGRAM)
    assert summary.next_module is None and summary.next_goals == Goals()


def test_pain_up_two_from_baseline_two_weeks_running_is_flagged():
    rising = summarize(history(5, week(0, 4), week(4, 6), week(5, 7)), PROGRAM)
    assert PAIN_UP in rising.flags
    once = summarize(history(5, week(0, 4), week(4, 5), week(5, 7)), PROGRAM)
    assert PAIN_UP not in once.flags


def test_no_practice_is_flagged_from_the_first_week_that_asks_about_a_skill():
    assert NO_PRACTICE in summarize(history(2, week(0, 5), week(2, 5, practice=0)), PROGRAM).flags
    assert NO_PRACTICE not in summarize(history(1, week(0, 5), week(1, 5, practice=0)), PROGRAM).flags


def test_a_missed_week_and_missed_weeks_in_a_row_are_flagged():
    one = summarize(history(3, week(0, 5), week(3, status="missed")), PROGRAM)
    assert one.flags == (MISSED_THIS_WEEK,) and not one.reported
    two = summarize(history(4, week(0, 5), week(4, status="missed"), missed_before=1), PROGRAM)
    assert set(two.flags) == {MISSED_THIS_WEEK, MISSED_WEEKS}
    back = summarize(history(5, week(0, 5), week(5, 5), missed_before=2), PROGRAM)
    assert MISSED_WEEKS in back.flags and back.reported


def test_a_daily_cadence_week_fills_in_from_its_daily_calls():
    daily = [
        {"pain_today": 4, "steps_yesterday": 5000, "practiced_today": 1},
        {"pain_today": 5, "steps_yesterday": 6000, "practiced_today": 2},
        {"pain_today": 6, "steps_yesterday": None, "practiced_today": 1},
    ]
    data = WeekData(3, "partial", {"sleep_quality": 6}, daily=daily, daily_completed=3)
    summary = summarize(history(3, week(0, 6), data, daily_cadence=True), PROGRAM)
    assert (summary.pain, summary.steps, summary.practice_days, summary.sleep) == (5, 5500, 2, 6)
    assert summary.daily_completed == 3


def test_the_weekly_answer_wins_over_the_daily_calls():
    data = WeekData(3, "complete", {"pain_avg": 7}, daily=[{"pain_today": 2}])
    assert summarize(history(3, week(0, 6), data), PROGRAM).pain == 7


def test_a_mean_of_daily_pain_keeps_one_decimal():
    data = WeekData(3, None, {}, daily=[{"pain_today": 4}, {"pain_today": 5}])
    assert summarize(history(3, week(0, 6), data), PROGRAM).pain == 4.5


def test_the_summary_round_trips_through_json_for_the_next_messages_goals():
    summary = summarize(history(2, week(0, 6, 5, 3000), week(2, 5, 5, 4200, 3)), PROGRAM)
    data = summary.to_json()
    assert data["next_goals"] == {"steps": 4700, "practice_days": 7}
    assert goals_from_json(data["next_goals"]) == Goals(4700, 7)
    assert data["pain_change_baseline"] == -1 and data["flags"] == []
