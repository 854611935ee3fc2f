"""Slots in local wall time across daylight-saving changes, call windows and the retry ladder (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr_cbt.scheduling.slots import (
    DAILY_FLOW,
    WEEKLY_FLOW,
    Schedule,
    ScheduleError,
    into_window,
    next_slot,
    parse_day,
    parse_ladder,
    parse_time,
    parse_window,
    problems,
    retry_due,
    slots,
    to_utc,
)


def weekly(zone: str, start: date, day: int = 0, at: time = time(10, 0), **kw) -> Schedule:
    return Schedule(timezone=zone, start=start, call_day=day, call_time=at, **kw)


@pytest.mark.parametrize(
    "zone, before_change, after_change, offsets",
    [
        # US: clocks go forward on Sunday 8 March and back on Sunday 1 November 2026.
        ("America/New_York", date(2026, 3, 2), date(2026, 3, 9), (-5, -4)),
        ("America/New_York", date(2026, 10, 26), date(2026, 11, 2), (-4, -5)),
        # EU: forward on 29 March, back on 25 October 2026.
        ("Europe/Berlin", date(2026, 3, 23), date(2026, 3, 30), (1, 2)),
        ("Europe/Berlin", date(2026, 10, 19), date(2026, 10, 26), (2, 1)),
        # Southern hemisphere: Sydney leaves daylight saving on 5 April and enters it on 4 October 2026.
        ("Australia/Sydney", date(2026, 3, 30), date(2026, 4, 6), (11, 10)),
        ("Australia/Sydney", date(2026, 9, 28), date(2026, 10, 5), (10, 11)),
    ],
)
def test_a_weekly_call_stays_at_the_same_local_time_across_a_daylight_saving_change(
    zone, before_change, after_change, offsets
):
    schedule = weekly(zone, before_change, day=before_change.weekday())
    first, second = list(slots(schedule))[:2]
    assert (first.local.date(), second.local.date()) == (before_change, after_change)
    assert first.local.time() == second.local.time() == time(10, 0)
    assert [s.local.utcoffset() for s in (first, second)] == [timedelta(hours=h) for h in offsets]
    assert second.at - first.at == timedelta(days=7) - timedelta(hours=offsets[1] - offsets[0])


def test_a_wall_time_in_a_spring_forward_gap_moves_forward_and_a_repeated_one_takes_the_first():
    new_york = ZoneInfo("America/New_York")
    assert to_utc(date(2026, 3, 8), time(2, 30), new_york).astimezone(new_york).time() == time(3, 30)
    repeated = to_utc(date(2026, 11, 1), time(1, 30), new_york)
    assert repeated == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, the first of the two


def test_week_zero_calls_on_the_first_call_day_on_or_after_the_start():
    schedule = weekly("Europe/Paris", date(2026, 3, 4), day=0)  # starts on a Wednesday, calls on Mondays
    first = next(slots(schedule))
    assert (first.local.date(), first.week) == (date(2026, 3, 9), 0)
    assert first.deadline == to_utc(date(2026, 3, 11), time(0, 0), ZoneInfo("Europe/Paris"))


def test_the_program_ends_after_its_weeks_then_the_follow_ups():
    schedule = weekly("UTC", date(2026, 1, 5), program_weeks=3, follow_up_weeks=(13, 26))
    assert [s.week for s in slots(schedule)] == [0, 1, 2, 13, 26]
    assert next_slot(schedule, datetime(2026, 12, 1, tzinfo=UTC)) is None


def test_daily_cadence_calls_every_day_with_the_weekly_flow_on_the_call_day():
    schedule = weekly("America/Chicago", date(2026, 3, 2), day=2, cadence="daily", program_weeks=1, follow_up_weeks=())
    week = list(slots(schedule))
    assert [s.local.date() for s in week] == [date(2026, 3, 2) + timedelta(days=n) for n in range(7)]
    assert [s.flow_id for s in week] == [DAILY_FLOW, DAILY_FLOW, WEEKLY_FLOW] + [DAILY_FLOW] * 4
    assert all(s.local.time() == time(10, 0) for s in week)  # including across 8 March
    assert week[0].deadline == to_utc(date(2026, 3, 3), time(0, 0), ZoneInfo("America/Chicago"))


@pytest.mark.parametrize(
    "local, expected",
    [
        (datetime(2026, 3, 2, 8, 59, 59), datetime(2026, 3, 2, 9, 0)),
        (datetime(2026, 3, 2, 9, 0), datetime(2026, 3, 2, 9, 0)),
        (datetime(2026, 3, 2, 20, 0), datetime(2026, 3, 2, 20, 0)),
        (datetime(2026, 3, 2, 20, 0, 1), datetime(2026, 3, 3, 9, 0)),
        (datetime(2026, 3, 7, 23, 30), datetime(2026, 3, 8, 9, 0)),  # across the spring-forward night
    ],
)
def test_window_edges(local, expected):
    zone = ZoneInfo("America/New_York")
    schedule = weekly("America/New_York", date(2026, 3, 2))
    assert into_window(schedule, local.replace(tzinfo=zone)).astimezone(zone).replace(tzinfo=None) == expected


def test_the_default_ladder_retries_after_30_minutes_2_hours_then_the_next_day():
    zone = ZoneInfo("America/New_York")
    schedule = weekly("America/New_York", date(2026, 3, 2))
    deadline = to_utc(date(2026, 3, 9), time(0, 0), zone)
    ended = datetime(2026, 3, 2, 10, 1, tzinfo=zone)
    due = [retry_due(schedule, deadline, n, ended) for n in range(4)]
    assert [d.astimezone(zone).replace(tzinfo=None) if d else None for d in due] == [
        datetime(2026, 3, 2, 10, 31),
        datetime(2026, 3, 2, 12, 1),
        datetime(2026, 3, 3, 10, 0),
        None,
    ]


def test_a_retry_never_falls_outside_the_window_or_after_the_deadline():
    zone = ZoneInfo("America/New_York")
    schedule = weekly("America/New_York", date(2026, 3, 2), window_start=time(9), window_end=time(20), at=time(19, 30))
    late = datetime(2026, 3, 2, 19, 45, tzinfo=zone)
    assert retry_due(schedule, to_utc(date(2026, 3, 9), time(0), zone), 0, late).astimezone(zone) == datetime(
        2026, 3, 3, 9, 0, tzinfo=zone
    )
    sunday_night = datetime(2026, 3, 8, 19, 50, tzinfo=zone)
    assert retry_due(schedule, to_utc(date(2026, 3, 9), time(0), zone), 0, sunday_night) is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"call_time": time(8, 30)}, "the call time 08:30 is outside the call window 09:00-20:00"),
        ({"call_time": time(21, 30), "window_end": time(21, 0)}, "is outside 08:00-21:00"),
        ({"window_start": time(7, 0), "call_time": time(7, 30)}, "must stay within 08:00-21:00"),
        ({"window_start": time(12, 0), "window_end": time(11, 0)}, "must start before it ends"),
        ({"timezone": "Mars/Base"}, "is not an IANA time zone"),
        ({"cadence": "hourly"}, "cadence must be weekly or daily"),
    ],
)
def test_unusable_schedules_are_refused_with_the_reason(change, message):
    schedule = Schedule(**{**weekly("America/New_York", date(2026, 3, 2)).__dict__, **change})
    assert any(message in problem for problem in problems(schedule)), problems(schedule)


def test_parsing_days_times_windows_and_ladders():
    assert parse_day("Thu") == 3 and parse_day("sunday") == 6
    assert parse_time("9:05") == time(9, 5)
    assert parse_window("08:00-20:30") == (time(8), time(20, 30))
    assert [s.delay for s in parse_ladder("15m,1h,next-day")] == [timedelta(minutes=15), timedelta(hours=1), None]
    for bad in (
        lambda: parse_day("someday"),
        lambda: parse_time("25:00"),
        lambda: parse_window("9-5-1"),
        lambda: parse_ladder("soon"),
    ):
        with pytest.raises(ScheduleError):
            bad()
