"""Dashboard accounts: users with Argon2id password hashes, and which therapist has which patient."""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import datetime
from functools import cache

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import orm

from ivr_cbt import audit
from ivr_cbt.models import CareAssignment, LoginSession, Patient, User, UserRole

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PASSWORD_MIN, PASSWORD_MAX = 12, 256


class InvalidAccount(ValueError):
    """A value an account cannot be created or changed with; the message says which and why."""


def default_hasher() -> PasswordHasher:
    """Argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile: t=3, 64 MiB, p=4)."""
    return PasswordHasher()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problems(password: str) -> list[str]:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return [f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"]
    return []


def create_user(
    session: orm.Session,
    *,
    email: str,
    role: str,
    password: str,
    hasher: PasswordHasher,
    now: datetime,
    actor: str,
) -> User:
    """Validate and add an account; raise InvalidAccount if refused."""
    email = normalise_email(email)
    problems = []
    if not EMAIL.match(email) or len(email) > 254:
        problems.append("email must look like name@example.org")
    if role not in {r.value for r in UserRole}:
        problems.append(f"role must be one of {', '.join(r.value for r in UserRole)}")
    problems += password_problems(password)
    if not problems and session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        problems.append("an account with this email already exists")
    if problems:
        raise InvalidAccount("; ".join(problems))
    user = User(email=email, password_hash=hasher.hash(password), role=UserRole(role), active=True, created_at=now)
    session.add(user)
    session.flush()
    audit.record(session, now, actor, "user_created", user_id=user.id, role=role)
    return user


def authenticate(session: orm.Session, hasher: PasswordHasher, email: str, password: str) -> User | None:
    """Return the active account these credentials prove, or None (the same work either way)."""
    user = session.scalar(sa.select(User).where(User.email == normalise_email(email)))
    if user is None or not user.active:
        _spend_a_verification(hasher)
        return None
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


@cache
def _throwaway_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    return PasswordHasher(time_cost, memory_cost, parallelism).hash("not a password anyone has")


def _spend_a_verification(hasher: PasswordHasher) -> None:
    """Verify against a throwaway hash, so an unknown email takes as long as a wrong password."""
    with suppress(VerificationError):
        hasher.verify(_throwaway_hash(hasher.time_cost, hasher.memory_cost, hasher.parallelism), "wrong")


def set_password(
    session: orm.Session, user: User, password: str, *, hasher: PasswordHasher, now: datetime, actor: str
) -> None:
    """Set a new password and sign the account out everywhere."""
    problems = password_problems(password)
    if problems:
        raise InvalidAccount("; ".join(problems))
    user.password_hash = hasher.hash(password)
    end_sessions(session, user.id, now, "password")
    audit.record(session, now, actor, "password_set", user_id=user.id)


def set_active(session: orm.Session, user: User, active: bool, *, now: datetime, actor: str) -> None:
    """Activate or deactivate an account; deactivating signs it out everywhere."""
    user.active = active
    if not active:
        end_sessions(session, user.id, now, "deactivated")
    audit.record(session, now, actor, "user_activated" if active else "user_deactivated", user_id=user.id)


def end_sessions(session: orm.Session, user_id: int, now: datetime, reason: str) -> None:
    session.execute(
        sa.update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )


# --- assignments ---------------------------------------------------------------------------


def therapist_by_email(session: orm.Session, email: str) -> User | None:
    """The active therapist account with this email, or None."""
    return session.scalar(
        sa.select(User).where(
            User.email == normalise_email(email), User.role == UserRole.THERAPIST, User.active.is_(True)
        )
    )


def assign(session: orm.Session, patient_id: int, therapist: User | None, *, now: datetime, actor: str) -> None:
    """Make ``therapist`` responsible for the patient (None: leave the patient unassigned)."""
    if therapist is not None and (therapist.role != UserRole.THERAPIST or not therapist.active):
        raise InvalidAccount("patients can only be assigned to an active therapist")
    current = session.get(CareAssignment, patient_id)
    if therapist is None:
        if current is not None:
            session.delete(current)
    elif current is None:
        session.add(CareAssignment(patient_id=patient_id, user_id=therapist.id, assigned_at=now))
    elif current.user_id != therapist.id:
        current.user_id, current.assigned_at = therapist.id, now
    else:
        return
    session.flush()
    audit.record(
        session, now, actor, "patient_assigned", patient_id=patient_id, user_id=therapist.id if therapist else None
    )


def own_patient_ids(user: User) -> sa.Select:
    """The ids of the patients ``user`` may see: their own, if they are a therapist; none otherwise."""
    query = sa.select(CareAssignment.patient_id).where(CareAssignment.user_id == user.id)
    return query if user.role == UserRole.THERAPIST else query.where(sa.false())


def own_patient(session: orm.Session, user: User, patient_id: int) -> Patient | None:
    """The patient if ``user`` may see them, else None (the caller answers 404 either way)."""
    return session.scalar(sa.select(Patient).where(Patient.id == patient_id, Patient.id.in_(own_patient_ids(user))))
