"""At the edges, with the real clock frozen (freezegun): `patients add` and `scheduler run-once` without --now
place a weekly call at its local wall time on both sides of a daylight-saving change, never an hour early or late.

The command line reads the time through the app's clock (SystemClock, which freezegun freezes); the
pure core under it takes ``now`` and is tested with explicit times in test_slots.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time

from ivr_cbt.clock import SystemClock
from ivr_cbt.simulator.callees import CalleeBook, Pickup

COMPLETE = "1234,5,7,4200#,3,2"

# Sunday 10:00 local, the week before a change and on the day of the change itself.
CHANGES = [
    # US: second Sunday of March (forward), first Sunday of November (back).
    ("America/New_York", "2026-03-01", "-05:00", "2026-03-08", "-04:00"),
    ("America/New_York", "2026-10-25", "-04:00", "2026-11-01", "-05:00"),
    # EU: last Sunday of March (forward), last Sunday of October (back).
    ("Europe/Berlin", "2026-03-22", "+01:00", "2026-03-29", "+02:00"),
    ("Europe/Berlin", "2026-10-18", "+02:00", "2026-10-25", "+01:00"),
    # Southern hemisphere: first Sunday of April (back), first Sunday of October (forward).
    ("Australia/Sydney", "2026-03-29", "+11:00", "2026-04-05", "+10:00"),
    ("Australia/Sydney", "2026-09-27", "+10:00", "2026-10-04", "+11:00"),
]


@pytest.fixture
def app(make_app, telephony):
    app = make_app(CLOCK=SystemClock(), DISPATCH_CPS=0)
    telephony.answer = CalleeBook(app, {}, default=Pickup("answer", COMPLETE))  # every call is answered
    return app


def run_once(runner, when: datetime) -> str:
    with freeze_time(when):
        result = runner.invoke(args=["scheduler", "run-once"])
    assert result.exit_code == 0, result.output
    return result.output


def placed_attempt(runner, telephony) -> dict:
    """The export row of the attempt behind the latest placed call."""
    sid = telephony.placed_calls[-1][1].sid
    exported = json.loads(runner.invoke(args=["export", "attempts", "--format", "json"]).output)
    (row,) = [row for row in exported if row["call_sid"] == sid]
    return row


@pytest.mark.parametrize(
    "zone, before, before_offset, change_day, after_offset", CHANGES, ids=[f"{c[0]}-{c[3]}" for c in CHANGES]
)
def test_a_weekly_call_is_placed_at_10_local_on_both_sides_of_a_dst_change(
    app, runner, telephony, zone, before, before_offset, change_day, after_offset
):
    enrolled_at = datetime.fromisoformat(f"{before}T12:00:00+00:00") - timedelta(days=3)
    with freeze_time(enrolled_at):
        result = runner.invoke(
            args=[
                "patients",
                "add",
                "--name",
                "Dana Clock",
                "--phone",
                "+12025550177",
                "--pin",
                "1234",
                "--timezone",
                zone,
                "--start",
                before,
                "--call-day",
                "sun",
                "--call-time",
                "10:00",
            ]  # fmt: skip
        )
    assert result.exit_code == 0, result.output
    first_call = datetime.fromisoformat(before).strftime("%a %d %b %Y")
    assert f"First call: {first_call} 10:00" in result.output

    for week, (day, offset) in enumerate([(before, before_offset), (change_day, after_offset)]):
        slot = datetime.fromisoformat(f"{day}T10:00:00{offset}")
        for early in (timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1)):
            assert "placed 0" in run_once(runner, slot - early)  # not at 09:00, 09:59 or 09:59:59
        assert "placed 1" in run_once(runner, slot)  # at 10:00 local, not an hour later either
        attempt = placed_attempt(runner, telephony)
        assert (attempt["week"], attempt["slot_local"]) == (week, f"{day}T10:00:00{offset}")
        assert datetime.fromisoformat(attempt["due_at"]) == slot
        assert "placed 0" in run_once(runner, slot + timedelta(hours=1))  # answered and complete: no retry
    assert len(telephony.placed_calls) == 2
    assert [call.status for _, _, call in telephony.answer.results] == ["completed"] * 2
