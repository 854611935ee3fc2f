"""`make demo`, dashboard part: demo accounts, patients assigned to them, and weeks of calls.

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
from ivr_cbt.models import CareAssignment, Patient, User
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


def _week(pin: str, pain: int, sleep: int, steps: int, practice: int, safety: str = "2") -> str:
    return f"{pin},{pain}#,{sleep}#,{steps}#,{practice},{safety}"


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
    ),
    History(
        "Raj Demo",
        DEMO_PHONE_PREFIX + "6",
        "9753",
        "Europe/London",
        ACCOUNTS[0][0],
        tuple(_week("9753", pain, 6 + w % 2, 5000 + 600 * w, 5) for w, pain in enumerate((7, 6, 6, 5, 4))),
    ),
    History(
        "Lia Demo",
        DEMO_PHONE_PREFIX + "7",
        "1470",
        "America/Chicago",
        ACCOUNTS[1][0],
        tuple(_week("1470", 6, 5, 2800 + 300 * w, 3) for w in range(WEEKS)),
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
            new = NewPatient(history.name, history.phone, history.pin, history.timezone, "en", start)
            patient = enrol(
                session, new, pepper=app.config["PIN_PEPPER"], languages={"en", "es"}, now=now, actor="demo"
            )
            accounts.assign(session, patient.id, users[history.therapist], now=now, actor="demo")
            enrolled.append((history, patient.id, start))
    calls = 0
    for history, patient_id, start in enrolled:
        for week, script in enumerate(history.scripts):
            if script is not None:
                when = datetime.combine(start + timedelta(weeks=week), time(10), ZoneInfo(history.timezone))
                run_call(app, patient_id, ScriptedCaller.parse(script), now=when)
                calls += 1
    echo("")
    echo(f"Dashboard: {len(enrolled)} more demo patients with {calls} calls over program weeks 0-{WEEKS - 1}.")
    echo("Run `make serve` and open http://127.0.0.1:5000/login to sign in as:")
    for email, role, password in ACCOUNTS:
        echo(f"  {role:<9}  {email:<20}  password: {password}")
    echo("Tara's caseload shows Eve (safety answer, pain up) and Dev (missed weeks) first; the practice")
    echo("phone (Tara: Practice phone) takes a check-in call in the browser, e.g. for Raj Demo, PIN 9753.")
