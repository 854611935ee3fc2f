"""`make demo`, dashboard part: demo accounts, patients assigned to them, weeks of calls and feedback.

The weeks are played in order: at the start of each week the real generation job makes the
weekly messages of the week that has just closed; a guided patient's message is approved (one
is rewritten) by the demo before that week's call, which then plays it; the latest week's
guided messages are left waiting in the feedback queue.

The accounts have published passwords, so they are made only in development (APP_ENV), and
every run replaces the previous demo's accounts and patients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from ivr_cbt import db
from ivr_cbt.dashboard import accounts
from ivr_cbt.demo import DEMO_PHONE_PREFIX
from ivr_cbt.feedback import generate, review
from ivr_cbt.models import CareAssignment, FeedbackMessage, FeedbackMode, FeedbackStatus, Patient, User
from ivr_cbt.patients import NewPatient, enrol, local_date
from ivr_cbt.simulator.callers import ScriptedCaller
from ivr_cbt.simulator.runner import run_call

DEMO_DOMAIN = "@demo.invalid"
ACCOUNTS = (
    ("tara" + DEMO_DOMAIN, "therapist", "demo-password-tara"),
    ("theo" + DEMO_DOMAIN, "therapist", "demo-password-theo"),
    ("ada" + DEMO_DOMAIN, "admin", "demo-password-ada"),
)
WEEKS = 5  # the extra demo patients are in program week 5, with weeks 0-4 behind them


@dataclass(frozen=True)
class History:
    name: str
    phone: str
    pin: str
    timezone: str
    therapist: str
    scripts: tuple[str | None, ...]  # one per past week; None: no call that week
    mode: FeedbackMode = FeedbackMode.AUTOMATED
    rewrite: dict[int, str] | None = None  # week -> the therapist's own words for that week's message


def _week(pin: str, pain: int, sleep: int, steps: int, practice: int, safety: str = "2") -> str:
    # After the safety question comes last week's message, if one is ready: listen to its end.
    return f"{pin},{pain}#,{sleep}#,{steps}#,{practice},{safety},silence"


HISTORIES = (
    History(
        "Dev Demo",
        DEMO_PHONE_PREFIX + "4",
        "4321",
        "America/Denver",
        ACCOUNTS[0][0],
        (_week("4321", 5, 5, 3000, 0), _week("4321", 5, 6, 3400, 4), _week("4321", 4, 6, 3900, 5), None, None),
    ),
    History(
        "Eve Demo",
        DEMO_PHONE_PREFIX + "5",
        "8642",
        "America/New_York",
        ACCOUNTS[0][0],
        (
            _week("8642", 4, 6, 4200, 0),
            _week("8642", 5, 5, 4000, 3),
            _week("8642", 6, 4, 3600, 2),
            _week("8642", 7, 3, 3100, 1),
            _week("8642", 8, 3, 2500, 0, "1,2"),  # pain up, no practice, and "yes" to the safety question
        ),
        FeedbackMode.GUIDED,
        {2: "Eve, this is Tara. Your pain is up since you started: I will call you on Thursday to talk it over."},
    ),
    History(
        "Raj Demo",
        DEMO_PHONE_PREFIX + "6",
        "9753",
        "Europe/London",
        ACCOUNTS[0][0],
        tuple(_week("9753", pain, 6 + w % 2, 5000 + 600 * w, 5) for w, pain in enumerate((7, 6, 6, 5, 4))),
        FeedbackMode.GUIDED,
    ),
    History(
        "Lia Demo",
        DEMO_PHONE_PREFIX + "7",
        "1470",
        "America/Chicago",
        ACCOUNTS[1][0],
        tuple(_week("1470", 6, 5, 2800 + 300 * w, 3) for w in range(WEEKS)),
        FeedbackMode.GUIDED,
    ),
)
# Who looks after the three patients of the check-in demo (by their phone number).
ASSIGN_FIRST_DEMO = {DEMO_PHONE_PREFIX + "1": 0, DEMO_PHONE_PREFIX + "2": 0, DEMO_PHONE_PREFIX + "3": 1}


def seed(app: Flask, echo: Callable[[str], None], now: datetime) -> None:
    """Create the demo accounts and patients with weeks of calls; print how to sign in."""
    if app.config["APP_ENV"] != "development":
        echo("Dashboard demo accounts are made only with APP_ENV=development (they have published passwords).")
        return
    hasher = app.extensions["dashboard"].hasher
    with db.session_scope(app) as session:
        demo_users = sa.select(User.id).where(User.email.like("%" + DEMO_DOMAIN))
        session.execute(sa.delete(CareAssignment).where(CareAssignment.user_id.in_(demo_users)))
        session.execute(sa.delete(User).where(User.email.like("%" + DEMO_DOMAIN)))
        users = {
            email: accounts.create_user(
                session, email=email, role=role, password=password, hasher=hasher, now=now, actor="demo"
            )
            for email, role, password in ACCOUNTS
        }
        for phone, which in ASSIGN_FIRST_DEMO.items():
            patient_id = session.scalar(sa.select(Patient.id).where(Patient.phone == phone))
            if patient_id is not None:
                accounts.assign(session, patient_id, users[ACCOUNTS[which][0]], now=now, actor="demo")
        enrolled = []
        for history in HISTORIES:
            start = local_date(history.timezone, now) - timedelta(weeks=WEEKS)
            new = NewPatient(
                history.name, history.phone, history.pin, history.timezone, "en", start, feedback_mode=history.mode
            )
            patient = enrol(
                session,
                new,
                pepper=app.config["PIN_PEPPER"],
                languages={"en", "es"},
                now=now,
                actor="demo",
                scheduling=app.extensions["voice_settings"].scheduling,
            )
            accounts.assign(session, patient.id, users[history.therapist], now=now, actor="demo")
            enrolled.append((history, patient.id, start))
    calls = 0
    for week in range(WEEKS):
        # The week in time order across the patients' zones: when the week before has closed its messages are
        # made (06:00 local) and a guided one reviewed (08:00), then the week's call is played (10:00).
        events = []
        for history, patient_id, start in enrolled:
            day, zone = start + timedelta(weeks=week), ZoneInfo(history.timezone)
            if week > 0:
                events.append((datetime.combine(day, time(6), zone), "generate", history, patient_id))
                events.append((datetime.combine(day, time(8), zone), "review", history, patient_id))
            if history.scripts[week] is not None:
                events.append((datetime.combine(day, time(10), zone), "call", history, patient_id))
        for when, kind, history, patient_id in sorted(events, key=lambda e: e[0]):
            if kind == "generate":
                generate(app, when)
            elif kind == "review":
                _review(app, history, patient_id, week - 1, when)
            else:
                run_call(app, patient_id, ScriptedCaller.parse(history.scripts[week]), now=when)
                calls += 1
    generate(app, now)  # the last week (WEEKS - 1) closed at midnight: its messages wait for review or to be heard
    echo("")
    echo(f"Dashboard: {len(enrolled)} more demo patients with {calls} calls over program weeks 0-{WEEKS - 1}.")
    echo("Run `make serve` and open http://127.0.0.1:5000/login to sign in as:")
    for email, role, password in ACCOUNTS:
        echo(f"  {role:<9}  {email:<20}  password: {password}")
    echo("Tara's caseload shows Eve (safety answer, pain up) and Dev (missed weeks) first; the practice")
    echo("phone (Tara: Practice phone) takes a check-in call in the browser, e.g. for Raj Demo, PIN 9753.")
    waiting, heard = _feedback_counts(app, [patient_id for _, patient_id, _ in enrolled])
    echo(f"Weekly feedback: {heard} messages were heard on these calls; {waiting} guided messages wait for review.")
    echo("Sign in as Tara (Eve, Raj) or Theo (Lia) and open Feedback (http://127.0.0.1:5000/feedback) to approve,")
    echo("edit, rewrite or record them; a patient's page also has their messages, module and goals, and schedule.")


def _review(app: Flask, history: History, patient_id: int, week: int, now: datetime) -> None:
    """What the demo therapist did with a guided patient's message before the next call: approve it, or rewrite it."""
    if history.mode != FeedbackMode.GUIDED:
        return
    with app.app_context():
        conn = db.connection()
        message_id = conn.execute(
            sa.select(FeedbackMessage.id).where(
                FeedbackMessage.patient_id == patient_id,
                FeedbackMessage.week == week,
                FeedbackMessage.status == FeedbackStatus.PENDING_REVIEW,
            )
        ).scalar()
        if message_id is None:
            return
        words = (history.rewrite or {}).get(week)
        if words:
            review.write_text(conn, message_id, words, actor="demo", now=now)
        else:
            review.approve(conn, message_id, actor="demo", now=now)
        conn.commit()


def _feedback_counts(app: Flask, patient_ids: list[int]) -> tuple[int, int]:
    """(messages waiting for review, messages delivered) of these patients."""
    with app.app_context():
        query = (
            sa.select(FeedbackMessage.status, sa.func.count())
            .where(FeedbackMessage.patient_id.in_(patient_ids))
            .group_by(FeedbackMessage.status)
        )
        counts = {status: count for status, count in db.connection().execute(query)}
    return counts.get(FeedbackStatus.PENDING_REVIEW, 0), counts.get(FeedbackStatus.DELIVERED, 0)
