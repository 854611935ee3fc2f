"""When to call: slots as local wall time in the patient's zone, stored in UTC. Pure.

A *slot* is one scheduled call occasion: with the weekly cadence, one per program week on the
patient's call day; with the daily cadence, one a day, the call-day one running the weekly
flow. After the program weeks come follow-up weeks (COPES followed up at 3, 6 and 9 months).

Local times are computed per slot from the wall clock, never by adding 7 x 24 hours in UTC,
so a 10:00 call stays at 10:00 across daylight-saving changes in either direction and either
hemisphere. A wall time that does not exist (inside a spring-forward gap) moves forward by the
gap; a wall time that happens twice (fall back) takes the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKLY_FLOW = "weekly_checkin"
DAILY_FLOW = "daily_checkin"
FEEDBACK_FLOW = "feedback_call"  # a short call that plays the weekly message (FEEDBACK_DELIVERY=call)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# No call is ever placed outside these local hours, whatever a patient's window says.
EARLIEST, LATEST = time(8, 0), time(21, 0)
DEFAULT_WINDOW = (time(9, 0), time(20, 0))
DEFAULT_PROGRAM_WEEKS = 11  # weeks 0-10: the baseline week and COPES's ~10 program weeks (PROGRAM_WEEKS)


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message says why in plain words."""


@dataclass(frozen=True)
class Schedule:
    timezone: str
    start: date  # program week 0 begins on this local date
    call_day: int  # 0 = Monday
    call_time: time
    window_start: time = DEFAULT_WINDOW[0]
    window_end: time = DEFAULT_WINDOW[1]
    cadence: str = "weekly"
    program_weeks: int = DEFAULT_PROGRAM_WEEKS
    follow_up_weeks: tuple[int, ...] = (13, 26, 39)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Slot:
    at: datetime  # UTC
    local: datetime  # the same instant in the patient's zone
    week: int  # program week
    flow_id: str
    deadline: datetime  # UTC: the slot's retries must be due before this

    @property
    def day(self) -> date:
        return self.local.date()


@dataclass(frozen=True)
class RetryStep:
    """``+30m``/``+2h`` style delays, or ``next-day`` (the next day at the preferred time)."""

    delay: timedelta | None  # None means next-day

    @classmethod
    def parse(cls, text: str) -> RetryStep:
        text = text.strip().lower()
        if text == "next-day":
            return cls(None)
        match = re.fullmatch(r"\+?(\d+)\s*(m|min|h)", text)
        if not match:
            raise ScheduleError(f"not a retry step: {text!r} (use e.g. 30m, 2h, next-day)")
        amount = int(match.group(1))
        return cls(timedelta(hours=amount) if match.group(2) == "h" else timedelta(minutes=amount))


def parse_ladder(text: str) -> tuple[RetryStep, ...]:
    return tuple(RetryStep.parse(part) for part in text.split(",") if part.strip())


DEFAULT_LADDER = parse_ladder("30m,2h,next-day")


# --- validation ------------------------------------------------------------------------------


def parse_day(text: str) -> int:
    try:
        return DAYS.index(text.strip().lower()[:3])
    except ValueError:
        raise ScheduleError(f"call day must be one of {', '.join(DAYS)}, not {text!r}") from None


def parse_time(text: str) -> time:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not match:
        raise ScheduleError(f"{text!r} is not a time of day such as 10:30")
    return time(int(match.group(1)), int(match.group(2)))


def parse_window(text: str) -> tuple[time, time]:
    parts = text.split("-")
    if len(parts) != 2:
        raise ScheduleError(f"{text!r} is not a window such as 09:00-20:00")
    return parse_time(parts[0]), parse_time(parts[1])


def problems(schedule: Schedule) -> list[str]:
    """Every reason ``schedule`` cannot be used (empty if it is fine)."""
    found = []
    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        found.append(f"time zone {schedule.timezone!r} is not an IANA time zone such as America/New_York")
    start, end = schedule.window_start, schedule.window_end
    if start < EARLIEST or end > LATEST:
        found.append(f"the call window {start:%H:%M}-{end:%H:%M} must stay within {EARLIEST:%H:%M}-{LATEST:%H:%M}")
    if start >= end:
        found.append(f"the call window {start:%H:%M}-{end:%H:%M} must start before it ends")
    if not start <= schedule.call_time <= end:
        found.append(f"the call time {schedule.call_time:%H:%M} is outside the call window {start:%H:%M}-{end:%H:%M}")
    if not EARLIEST <= schedule.call_time <= LATEST:
        found.append(f"the call time {schedule.call_time:%H:%M} is outside {EARLIEST:%H:%M}-{LATEST:%H:%M}")
    if schedule.cadence not in ("weekly", "daily"):
        found.append(f"cadence must be weekly or daily, not {schedule.cadence!r}")
    if not 0 <= schedule.call_day <= 6:
        found.append("call day must be mon..sun")
    if schedule.program_weeks < 1:
        found.append("the program needs at least one week")
    return found


# --- wall time ----------------------------------------------------------------------------------


def to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of local wall time ``day at`` in ``zone``.

    With fold=0, a wall time that happens twice takes the first instant, and one inside a
    spring-forward gap is converted with the pre-gap offset, which lands it the length of the
    gap later on the wall clock: both what a patient would expect.
    """
    return datetime.combine(day, at, zone).astimezone(UTC)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return to_utc(day, time(0, 0), zone)


def in_window(schedule: Schedule, instant: datetime) -> bool:
    local = instant.astimezone(schedule.zone).time()
    return schedule.window_start <= local <= schedule.window_end


def into_window(schedule: Schedule, instant: datetime) -> datetime:
    """The earliest instant at or after ``instant`` inside the patient's call window."""
    zone = schedule.zone
    local = instant.astimezone(zone)
    if local.time() < schedule.window_start:
        return to_utc(local.date(), schedule.window_start, zone)
    if local.time() > schedule.window_end:
        return to_utc(local.date() + timedelta(days=1), schedule.window_start, zone)
    return instant


# --- slots -----------------------------------------------------------------------------------------


def weekly_call_date(start: date, call_day: int, week: int) -> date:
    """The local date of program week ``week``'s weekly call: its first ``call_day`` (0 = Monday)."""
    week_start = start + timedelta(weeks=week)
    return week_start + timedelta(days=(call_day - week_start.weekday()) % 7)


def _weekly_day(schedule: Schedule, week: int) -> date:
    return weekly_call_date(schedule.start, schedule.call_day, week)


def _program_days(schedule: Schedule) -> Iterator[tuple[date, int, str]]:
    """(local day, program week, flow) of every slot, in order."""
    for week in range(schedule.program_weeks):
        if schedule.cadence == "daily":
            week_start = schedule.start + timedelta(weeks=week)
            weekly_day = _weekly_day(schedule, week)
            for offset in range(7):
                day = week_start + timedelta(days=offset)
                yield day, week, WEEKLY_FLOW if day == weekly_day else DAILY_FLOW
        else:
            yield _weekly_day(schedule, week), week, WEEKLY_FLOW
    for week in schedule.follow_up_weeks:
        if week >= schedule.program_weeks:
            yield _weekly_day(schedule, week), week, WEEKLY_FLOW


def slots(schedule: Schedule) -> Iterator[Slot]:
    """Every slot of the program, in time order."""
    zone = schedule.zone
    for day, week, flow_id in _program_days(schedule):
        at = to_utc(day, schedule.call_time, zone)
        if flow_id == DAILY_FLOW:
            deadline = local_midnight(day + timedelta(days=1), zone)
        else:
            # A weekly call may be retried until the end of its program week.
            deadline = local_midnight(schedule.start + timedelta(weeks=week + 1), zone)
        yield Slot(at=at, local=at.astimezone(zone), week=week, flow_id=flow_id, deadline=deadline)


def next_slot(schedule: Schedule, after: datetime) -> Slot | None:
    """The first slot strictly after ``after`` (None when the program is over)."""
    return next((slot for slot in slots(schedule) if slot.at > after), None)


def first_slot(schedule: Schedule, now: datetime) -> Slot | None:
    """The first slot at or after ``now`` (for a new, resumed or rescheduled patient)."""
    return next((slot for slot in slots(schedule) if slot.at >= now), None)


def retry_due(
    schedule: Schedule,
    deadline: datetime,
    retries_done: int,
    ended_at: datetime,
    ladder: tuple[RetryStep, ...] = DEFAULT_LADDER,
) -> datetime | None:
    """When to try again after ``retries_done`` retries: inside the window and before the deadline, or None."""
    if retries_done >= len(ladder):
        return None
    step = ladder[retries_done]
    if step.delay is None:
        next_day = ended_at.astimezone(schedule.zone).date() + timedelta(days=1)
        due = to_utc(next_day, schedule.call_time, schedule.zone)
    else:
        due = ended_at + step.delay
    due = into_window(schedule, due)
    return due if due < deadline else None
