"""Patients: validated enrolment, identity lookups, and where a patient is in the program."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt import audit
from ivr_cbt.models import Cadence, FeedbackMode, Patient, PatientStatus
from ivr_cbt.scheduling.attempts import SchedulingSettings, patient_row, plan_first
from ivr_cbt.scheduling.slots import DEFAULT_PROGRAM_WEEKS, DEFAULT_WINDOW, Schedule
from ivr_cbt.scheduling.slots import problems as schedule_problems
from ivr_cbt.security import hash_pin

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
PIN = re.compile(r"^[0-9]{4}$")
CODE_DIGITS = 6


class InvalidPatient(ValueError):
    """A value a patient cannot be enrolled with; the message says which and why."""


@dataclass(frozen=True)
class NewPatient:
    name: str
    phone: str
    pin: str
    timezone: str
    language: str
    start: date
    feedback_mode: FeedbackMode = FeedbackMode.AUTOMATED
    call_day: int | None = None  # default: the weekday of the start date
    call_time: time = time(10, 0)
    window_start: time = DEFAULT_WINDOW[0]
    window_end: time = DEFAULT_WINDOW[1]
    cadence: Cadence = Cadence.WEEKLY
    program_weeks: int | None = None  # default: the program's PROGRAM_WEEKS (SchedulingSettings)

    def schedule(self, follow_up_weeks: tuple[int, ...] = ()) -> Schedule:
        return Schedule(
            timezone=self.timezone,
            start=self.start,
            call_day=self.start.weekday() if self.call_day is None else self.call_day,
            call_time=self.call_time,
            window_start=self.window_start,
            window_end=self.window_end,
            cadence=str(self.cadence),
            program_weeks=DEFAULT_PROGRAM_WEEKS if self.program_weeks is None else self.program_weeks,
            follow_up_weeks=follow_up_weeks,
        )


def validate(new: NewPatient, languages: set[str]) -> list[str]:
    """Return every problem with ``new``, in plain words (empty if it is fine)."""
    problems = []
    if not new.name.strip() or len(new.name) > 200:
        problems.append("name must be 1 to 200 characters")
    if not E164.match(new.phone):
        problems.append(f"phone must be in E.164 form, like +15551234567 (got {len(new.phone)} characters)")
    if not PIN.match(new.pin):
        problems.append("PIN must be exactly 4 digits")
    if not is_time_zone(new.timezone):
        problems.append(f"time zone {new.timezone!r} is not an IANA time zone such as America/New_York")
    if new.language not in languages:
        problems.append(f"language must be one of {', '.join(sorted(languages))}")
    if is_time_zone(new.timezone):
        problems.extend(schedule_problems(new.schedule()))
    return problems


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def time_zones() -> list[str]:
    """Every IANA time zone name, sorted (for the dashboard's time-zone field)."""
    return sorted(name for name in _zone_names() if "/" in name and not name.startswith(("Etc/", "SystemV/")))


def is_time_zone(name: str) -> bool:
    if name not in _zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def enrol(
    session: orm.Session,
    new: NewPatient,
    *,
    pepper: str,
    languages: set[str],
    now: datetime,
    actor: str,
    scheduling: SchedulingSettings | None = None,
) -> Patient:
    """Validate and add a patient with a fresh patient code, and plan their first call if
    ``scheduling`` is given; raise InvalidPatient if refused."""
    if new.program_weeks is None and scheduling is not None:
        new = replace(new, program_weeks=scheduling.program_weeks)
    problems = validate(new, languages)
    if not problems and session.scalar(sa.select(Patient.id).where(Patient.phone == new.phone)):
        problems.append("a patient with this phone number is already enrolled")
    if problems:
        raise InvalidPatient("; ".join(problems))
    schedule = new.schedule()
    patient = Patient(
        code=_unused_code(session),
        name=new.name.strip(),
        phone=new.phone,
        pin_hash=hash_pin(new.pin, pepper),
        timezone=new.timezone,
        language=new.language,
        program_start=new.start,
        status=PatientStatus.ACTIVE,
        feedback_mode=new.feedback_mode,
        call_day=schedule.call_day,
        call_time=schedule.call_time,
        window_start=schedule.window_start,
        window_end=schedule.window_end,
        cadence=Cadence(schedule.cadence),
        program_weeks=schedule.program_weeks,
        created_at=now,
    )
    session.add(patient)
    session.flush()
    audit.record(session, now, actor, "patient_enrolled", patient_id=patient.id)
    if scheduling is not None:
        conn = session.connection()
        plan_first(conn, patient_row(conn, patient.id), scheduling, now)
    return patient


@dataclass(frozen=True)
class Enrolment:
    """One patient of a bulk enrolment, with the patient code and PIN salt to use (None: random)."""

    new: NewPatient
    code: str | None = None
    pin_salt: str | None = None


def enrol_many(
    conn: sa.Connection,
    enrolments: list[Enrolment],
    *,
    pepper: str,
    languages: set[str],
    now: datetime,
    actor: str,
    scheduling: SchedulingSettings,
    chunk: int = 1000,
) -> list[int]:
    """Enrol many patients at once (a cohort simulation; an import): the same checks as ``enrol``,
    a few statements per ``chunk`` patients, one audit row and a first planned call each.

    All or nothing: raise InvalidPatient naming the first refused patient (by position, never by
    name or number) and add nobody. The caller commits. Return the new ids in the given order.
    """
    table = Patient.__table__
    rows = []
    phones: set[str] = set()
    for position, enrolment in enumerate(enrolments):
        new = enrolment.new
        if new.program_weeks is None:
            new = replace(new, program_weeks=scheduling.program_weeks)
        problems = validate(new, languages)
        if new.phone in phones:
            problems.append("the phone number appears twice in this enrolment")
        phones.add(new.phone)
        if problems:
            raise InvalidPatient(f"patient {position + 1}: " + "; ".join(problems))
        schedule = new.schedule()
        rows.append(
            {
                "code": enrolment.code,
                "name": new.name.strip(),
                "phone": new.phone,
                "pin_hash": hash_pin(new.pin, pepper, enrolment.pin_salt),
                "timezone": new.timezone,
                "language": new.language,
                "program_start": new.start,
                "status": PatientStatus.ACTIVE,
                "feedback_mode": FeedbackMode(new.feedback_mode),
                "call_day": schedule.call_day,
                "call_time": schedule.call_time,
                "window_start": schedule.window_start,
                "window_end": schedule.window_end,
                "cadence": Cadence(schedule.cadence),
                "program_weeks": schedule.program_weeks,
                "created_at": now,
            }
        )
    ids: list[int] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        wanted_phones = [row["phone"] for row in part]
        taken = conn.execute(sa.select(table.c.phone).where(table.c.phone.in_(wanted_phones))).scalars().first()
        if taken is not None:
            position = start + wanted_phones.index(taken) + 1
            raise InvalidPatient(f"patient {position}: a patient with this phone number is already enrolled")
        wanted_codes = [row["code"] for row in part if row["code"]]
        if conn.execute(sa.select(table.c.id).where(table.c.code.in_(wanted_codes))).first() is not None:
            raise InvalidPatient("a given patient code is already in use")
        for row in part:
            row["code"] = row["code"] or _unused_code_in(conn)
        ids.extend(conn.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), part).scalars())
    audit.record_many(conn, now, actor, "patient_enrolled", [{"patient_id": pid} for pid in ids])
    for patient_id in ids:
        plan_first(conn, patient_row(conn, patient_id), scheduling, now)
    return ids


def _unused_code_in(conn: sa.Connection) -> str:
    table = Patient.__table__
    while True:
        code = f"{secrets.randbelow(9 * 10 ** (CODE_DIGITS - 1)) + 10 ** (CODE_DIGITS - 1)}"
        if conn.execute(sa.select(table.c.id).where(table.c.code == code)).first() is None:
            return code


def _unused_code(session: orm.Session) -> str:
    return _unused_code_in(session.connection())


def local_date(timezone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def program_week(start: date, timezone: str, now: datetime) -> int:
    """The program week at ``now`` in the patient's zone: week 0 starts on ``start``.

    A call before the start date counts toward week 0 (the baseline).
    """
    return max(0, (local_date(timezone, now) - start).days // 7)


def change_settings(
    conn: sa.Connection,
    patient_id: int,
    *,
    languages: set[str],
    now: datetime,
    actor: str,
    language: str | None = None,
    feedback_mode: str | None = None,
) -> list[str]:
    """Change a patient's prompt language or program arm (None: leave it); return the fields that changed.

    Raise InvalidPatient (changing nothing) for a value the program does not have. Both apply
    from the next call and the next weekly message on: a message already made keeps the
    language and arm it was made for. Audited with the old and new values (no PHI in either).
    """
    problems = []
    if language is not None and language not in languages:
        problems.append(f"language must be one of {', '.join(sorted(languages))}")
    if feedback_mode is not None and feedback_mode not in {m.value for m in FeedbackMode}:
        problems.append(f"feedback mode must be one of {', '.join(m.value for m in FeedbackMode)}")
    if problems:
        raise InvalidPatient("; ".join(problems))
    table = Patient.__table__
    current = conn.execute(
        sa.select(table.c.language, table.c.feedback_mode).where(table.c.id == patient_id)
    ).one_or_none()
    if current is None:
        raise LookupError(f"no patient {patient_id}")
    wanted = {"language": language, "feedback_mode": feedback_mode}
    changes = {k: v for k, v in wanted.items() if v is not None and v != str(getattr(current, k))}
    if not changes:
        return []
    conn.execute(sa.update(table).where(table.c.id == patient_id).values(**changes))
    audit.record(
        conn,
        now,
        actor,
        "settings_changed",
        patient_id=patient_id,
        fields=sorted(changes),
        previous={k: str(getattr(current, k)) for k in changes},
        new=changes,
    )
    return sorted(changes)
