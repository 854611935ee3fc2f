"""Patients: validated enrolment, identity lookups, and where a patient is in the program."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt import audit
from ivr_cbt.models import FeedbackMode, Patient, PatientStatus
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
    return problems


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def is_time_zone(name: str) -> bool:
    if name not in _zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def enrol(
    session: orm.Session, new: NewPatient, *, pepper: str, languages: set[str], now: datetime, actor: str
) -> Patient:
    """Validate and add a patient with a fresh patient code; raise InvalidPatient if refused."""
    problems = validate(new, languages)
    if not problems and session.scalar(sa.select(Patient.id).where(Patient.phone == new.phone)):
        problems.append("a patient with this phone number is already enrolled")
    if problems:
        raise InvalidPatient("; ".join(problems))
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
        created_at=now,
    )
    session.add(patient)
    session.flush()
    audit.record(session, now, actor, "patient_enrolled", patient_id=patient.id)
    return patient


def _unused_code(session: orm.Session) -> str:
    while True:
        code = f"{secrets.randbelow(9 * 10 ** (CODE_DIGITS - 1)) + 10 ** (CODE_DIGITS - 1)}"
        if session.scalar(sa.select(Patient.id).where(Patient.code == code)) is None:
            return code


def local_date(timezone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def program_week(start: date, timezone: str, now: datetime) -> int:
    """The program week at ``now`` in the patient's zone: week 0 starts on ``start``.

    A call before the start date counts toward week 0 (the baseline).
    """
    return max(0, (local_date(timezone, now) - start).days // 7)
