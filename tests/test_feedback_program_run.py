"""A whole 10-week program, week by week under freezegun: the real scheduler places each weekly call, the
offline phone answers through the webhooks, the feedback job runs when each week closes. Modules
advance, goals follow the 10% rule, the messages reflect the answers, guided messages wait for approval."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from ivr_cbt.feedback.program import load_program
from ivr_cbt.models import FeedbackMessage, FeedbackStatus
from ivr_cbt.simulator.callees import CalleeBook, Pickup

from .helpers import rows

NEW_YORK = ZoneInfo("America/New_York")
START = date(2026, 3, 2)  # a Monday; the US changes to daylight saving time on March 8
PROGRAM = load_program()
PAIN = [7, 7, 6, 6, 5, 5, 5, 4, 4, 3, 3]
STEPS = [3000 + 350 * week for week in range(11)]
PRACTICE = [0, 2, 4, 5, 7, 6, 7, 5, 6, 7, 7]


def script(week: int) -> str:
    return f"1234,{PAIN[week]},6,{STEPS[week]}#,{PRACTICE[week]},2,silence"


def skill_words(app, week: int) -> str:
    """How the skill of module ``week`` is said in English."""
    return app.extensions["voice_settings"].renderer.catalogue.text(PROGRAM.module(week).prompt, "en")


@pytest.fixture
def program_app(make_app, telephony):
    app = make_app(CLOCK=None, DISPATCH_CPS=0)  # the system clock, moved by freezegun
    book = CalleeBook(app, {})
    telephony.answer = book
    return app, book


def enrol(runner, phone: str, mode: str) -> int:
    result = runner.invoke(
        args=["patients", "add", "--name", "Pat Program", "--phone", phone, "--pin", "1234"]
        + ["--timezone", "America/New_York", "--start", START.isoformat(), "--mode", mode]
        + ["--call-day", "mon", "--call-time", "10:00"]
    )
    assert result.exit_code == 0, result.output
    return int(result.output.strip().splitlines()[-1])


def at(week: int, clock: time) -> datetime:
    """Local wall time in New York on day 0 of ``week``."""
    return datetime.combine(START + timedelta(weeks=week), clock, NEW_YORK)


def test_ten_weeks_of_calls_and_messages_for_an_automated_and_a_guided_patient(program_app):
    app, book = program_app
    runner = app.test_cli_runner()
    with freeze_time(at(0, time(8, 0))) as frozen:
        automated = enrol(runner, "+12025550161", "automated")
        guided = enrol(runner, "+12025550162", "guided")
        book.add("+12025550161", *(Pickup("answer", script(w)) for w in range(11)))
        book.add("+12025550162", *(Pickup("answer", script(w)) for w in range(11)))
        heard: dict[int, list[str]] = {automated: [], guided: []}
        for week in range(11):
            frozen.move_to(at(week, time(10, 0)))
            assert runner.invoke(args=["scheduler", "run-once"]).exit_code == 0
            calls = {number: result for number, _, result in book.results[-2:]}
            for patient, number in ((automated, "+12025550161"), (guided, "+12025550162")):
                said = calls[number].said()
                # The practice question names the skill practised since the last call (the baseline's words first).
                assert f"did you practise {skill_words(app, max(week - 1, 0))}? Press" in said
                heard[patient].append(said)
            frozen.move_to(at(week + 1, time(0, 30)))  # the week has closed in New York
            assert "generated 2" in runner.invoke(args=["feedback", "generate"]).output
            if week in (2, 5):  # the therapist approves the guided patient's message only in some weeks
                message = latest(app, guided)
                assert message.status == FeedbackStatus.PENDING_REVIEW
                assert runner.invoke(args=["feedback", "approve", str(message.id)]).exit_code == 0

    # The automated patient hears every week's message on the next call, each reflecting that week.
    for week in range(1, 11):
        said = heard[automated][week]
        assert f"This week's skill is {skill_words(app, week)}." in said, week
        expected_pain = "In your first check-in" if week == 1 else "In last week's check-in"
        assert f"{expected_pain}, you rated your average pain {PAIN[week - 1]} out of 10." in said
    messages = {m.week: m for m in rows(app, FeedbackMessage, FeedbackMessage.patient_id == automated)}
    assert sorted(messages) == list(range(11))
    assert all(messages[w].status == FeedbackStatus.DELIVERED for w in range(10))
    assert messages[10].status == FeedbackStatus.READY  # the end-of-program message waits for the follow-up call
    for week in range(11):
        goals = messages[week].summary["next_goals"]
        if week + 1 >= PROGRAM.weeks:
            assert goals == {"steps": None, "practice_days": None}
        elif week + 1 >= 3:
            assert goals["steps"] == math.ceil(STEPS[week] * 1.1 / 100) * 100  # the 10% rule, rounded up
        else:
            assert goals["steps"] is None
    assert messages[4].summary["goals"]["steps"] == math.ceil(STEPS[2] * 1.1 / 100) * 100  # walking's goal
    assert messages[4].summary["steps_goal_met"] is True

    # The guided patient hears only what the therapist approved, each on the next call after approval.
    said = heard[guided]
    assert [w for w in range(11) if "This week's skill is" in said[w]] == [3, 6]
    assert f"This week's skill is {skill_words(app, 3)}." in said[3]
    guided_messages = {m.week: m for m in rows(app, FeedbackMessage, FeedbackMessage.patient_id == guided)}
    assert [w for w, m in guided_messages.items() if m.status == FeedbackStatus.DELIVERED] == [2, 5]
    assert guided_messages[1].status == FeedbackStatus.SUPERSEDED  # never approved, overtaken by week 2's
    assert json.dumps(guided_messages[5].segments).count("fb_next_skill") == 1


def latest(app, patient_id: int) -> FeedbackMessage:
    return max(rows(app, FeedbackMessage, FeedbackMessage.patient_id == patient_id), key=lambda m: m.week)
