"""`make demo`: three fictional patients, their calls through the real webhooks, and the week's log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from ivr_cbt import audit, db
from ivr_cbt.calls import DEFAULT_FLOW
from ivr_cbt.models import Call, CheckIn, Patient
from ivr_cbt.patients import NewPatient, enrol, local_date
from ivr_cbt.simulator.callers import ScriptedCaller
from ivr_cbt.simulator.runner import run_call

# 555-0100 to 555-0199 are reserved for fiction; the demo owns these numbers and resets them.
DEMO_PHONE_PREFIX = "+1202555010"


@dataclass(frozen=True)
class DemoPatient:
    name: str
    phone: str
    pin: str
    timezone: str
    language: str
    calls: tuple[tuple[str, str], ...]  # (what happens, caller script)


DEMO_PATIENTS = (
    DemoPatient(
        "Ana Demo",
        DEMO_PHONE_PREFIX + "1",
        "1234",
        "America/New_York",
        "en",
        (("completes the check-in", "1234,5,7,4200#,3,2"),),
    ),
    DemoPatient(
        "Ben Demo",
        DEMO_PHONE_PREFIX + "2",
        "2468",
        "America/Chicago",
        "en",
        (
            ("hangs up after the pain question", "2468,6,hangup"),
            ("is called again and resumes at sleep", "2468,4,5200#,2,2"),
        ),
    ),
    DemoPatient(
        "Carmen Demo",
        DEMO_PHONE_PREFIX + "3",
        "1357",
        "America/Los_Angeles",
        "es",
        (
            (
                "presses invalid keys, repeats a question, answers by voice",
                "1357,12,4,99,*,7,speech:tres mil quinientos@0.45,1,9,8,9,2",
            ),
        ),
    ),
)


def reset(session) -> int:
    """Remove earlier demo patients (and, by cascade, their calls and answers)."""
    ids = list(session.scalars(sa.select(Patient.id).where(Patient.phone.like(DEMO_PHONE_PREFIX + "%"))))
    if ids:
        session.execute(sa.delete(Patient).where(Patient.id.in_(ids)))
    return len(ids)


def run_demo(app: Flask, echo: Callable[[str], None], now: datetime | None = None) -> list[int]:
    """Enrol the demo patients, play their calls, print transcripts and the log; return their ids."""
    now = now or app.extensions["clock"].now()
    catalogue = app.extensions["voice_settings"].renderer.catalogue
    ids: list[int] = []
    with db.session_scope(app) as session:
        removed = reset(session)
        for demo in DEMO_PATIENTS:
            start = local_date(demo.timezone, now) - timedelta(days=7)  # the demo runs in program week 1
            patient = enrol(
                session,
                NewPatient(demo.name, demo.phone, demo.pin, demo.timezone, demo.language, start),
                pepper=app.config["PIN_PEPPER"],
                languages=set(catalogue.languages),
                now=now,
                actor="demo",
            )
            ids.append(patient.id)
    echo(f"Enrolled {len(ids)} demo patients" + (f" (replacing {removed} from an earlier demo)." if removed else "."))

    for demo, patient_id in zip(DEMO_PATIENTS, ids, strict=True):
        zone = ZoneInfo(demo.timezone)
        call_at = datetime.combine(local_date(demo.timezone, now), time(10, 0), zone)
        for what, script in demo.calls:
            result = run_call(app, patient_id, ScriptedCaller.parse(script), now=call_at)
            echo("")
            echo(f"=== Patient {patient_id} ({demo.language}) {what}: call at {call_at:%a %H:%M %Z}, keys {script!r}")
            echo(result.text())
            echo(f"--      {result.status}, {result.duration_s} s")
            call_at += timedelta(hours=2)

    echo("")
    echo(week_log(app, ids))
    with db.session_scope(app) as session:
        audit.record(session, now, "demo", "week_log_viewed", patient_ids=ids)
    echo("")
    echo("Next: `make test` runs the test suite; `python manage.py export checkins --format json` exports this log;")
    echo('`python manage.py simulate call --patient ID --keys "PIN,5,7,4200#,3,2"` plays another call.')
    return ids


def week_log(app: Flask, patient_ids: list[int]) -> str:
    """The current program week's check-ins for these patients, as a text table."""
    items = app.extensions["voice_settings"].flows[DEFAULT_FLOW].item_keys()
    headers = ["patient", "week", "status", *items, "calls"]
    rows = []
    with db.session_scope(app) as session:
        for patient_id in patient_ids:
            for checkin in session.scalars(
                sa.select(CheckIn).where(CheckIn.patient_id == patient_id).order_by(CheckIn.week)
            ):
                values = {a.item_key: ("skipped" if a.skipped else str(a.value)) for a in checkin.answers}
                calls = session.scalar(
                    sa.select(sa.func.count()).select_from(Call).where(Call.checkin_id == checkin.id)
                )
                rows.append(
                    [
                        str(patient_id),
                        str(checkin.week),
                        checkin.status.value,
                        *(values.get(k, "-") for k in items),
                        str(calls),
                    ]
                )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "Week log (safety: 1 = yes, 2 = no)\n" + "\n".join(lines)
