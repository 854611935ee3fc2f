"""`make demo`: a simulated week. Three fictional patients are called by the real scheduler at their
own local times; the offline phone answers for them through the real webhooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from ivr_cbt import audit, db
from ivr_cbt.calls import DEFAULT_FLOW
from ivr_cbt.feedback import generate
from ivr_cbt.feedback.segments import script
from ivr_cbt.models import CallAttempt, CheckIn, CheckinKind, FeedbackMessage, FeedbackMode, Patient
from ivr_cbt.patients import NewPatient, enrol
from ivr_cbt.simulator.callees import CalleeBook, Pickup
from ivr_cbt.simulator.runner import simulated_time
from ivr_cbt.simulator.schedule import advance
from ivr_cbt.telephony.mock import MockTelephony

# 555-0100 to 555-0199 are reserved for fiction; the demo owns these numbers and resets them.
DEMO_PHONE_PREFIX = "+1202555010"


@dataclass(frozen=True)
class DemoPatient:
    name: str
    phone: str
    pin: str
    timezone: str
    language: str
    call_day: int
    call_time: time
    story: str
    pickups: tuple[Pickup, ...]  # what happens on each call the scheduler places
    mode: FeedbackMode = FeedbackMode.AUTOMATED


DEMO_PATIENTS = (
    DemoPatient(
        "Ana Demo",
        DEMO_PHONE_PREFIX + "1",
        "1234",
        "America/New_York",
        "en",
        0,
        time(10, 0),
        "answers Monday 10:00 in New York and completes the check-in",
        (Pickup("answer", "1234,5,7,4200#,3,2"),),
    ),
    DemoPatient(
        "Ben Demo",
        DEMO_PHONE_PREFIX + "2",
        "2468",
        "America/Chicago",
        "en",
        1,
        time(18, 30),
        "misses Tuesday's 18:30 call, hangs up after the pain question on the retry, and resumes the next morning",
        (Pickup("no-answer"), Pickup("answer", "2468,6,hangup"), Pickup("answer", "2468,4,5200#,2,2")),
    ),
    DemoPatient(
        "Carmen Demo",
        DEMO_PHONE_PREFIX + "3",
        "1357",
        "America/Los_Angeles",
        "es",
        2,
        time(9, 15),
        "has an answering machine take Wednesday's call, then answers the retry in Spanish "
        "with invalid keys and speech",
        (Pickup("machine"), Pickup("answer", "1357,12,4,99,*,7,speech:tres mil quinientos@0.45,1,9,8,9,2")),
        FeedbackMode.GUIDED,
    ),
)


def demo_callees() -> dict[str, list[Pickup]]:
    """The demo patients' phones, for the mock adapter."""
    return {demo.phone: list(demo.pickups) for demo in DEMO_PATIENTS}


def reset(session) -> int:
    """Remove earlier demo patients (and, by cascade, their calls, attempts and answers)."""
    ids = list(session.scalars(sa.select(Patient.id).where(Patient.phone.like(DEMO_PHONE_PREFIX + "%"))))
    if ids:
        session.execute(sa.delete(Patient).where(Patient.id.in_(ids)))
    return len(ids)


def run_demo(app: Flask, echo: Callable[[str], None], now: datetime | None = None) -> list[int]:
    """Enrol the demo patients, run this week's schedule, print what happened; return their ids."""
    now = now or app.extensions["clock"].now()
    new_york = ZoneInfo("America/New_York")
    today = now.astimezone(new_york).date()
    monday = today - timedelta(days=today.weekday())
    week_start = datetime.combine(monday, time(0, 0), new_york)
    book = CalleeBook(app, demo_callees())
    saved = app.extensions["telephony"], app.extensions.pop("dispatcher", None)
    app.extensions["telephony"] = MockTelephony(answer=book)  # the demo never rings a real phone
    try:
        with simulated_time(app, week_start):
            ids = _enrol(app, monday, week_start)
            echo(
                f"Enrolled {len(ids)} demo patients, starting the program (week 0, the baseline). "
                f"Simulating the week of {monday:%d %b %Y}..."
            )
            reports = advance(app, week_start + timedelta(days=7))
    finally:
        app.extensions["telephony"] = saved[0]
        app.extensions.pop("dispatcher", None)
        if saved[1] is not None:
            app.extensions["dispatcher"] = saved[1]
    echo(
        f"The scheduler ran {len(reports)} dispatch ticks at the due times "
        f"and placed {sum(r.placed for r in reports)} calls."
    )
    for demo, patient_id in zip(DEMO_PATIENTS, ids, strict=True):
        echo(f"  patient {patient_id} ({demo.language}, {demo.timezone}) {demo.story}")
    echo("")
    echo(attempt_timeline(app, ids))
    for number, pickup, result in book.results:
        if pickup.kind in ("answer", "machine"):
            patient_id = ids[[d.phone for d in DEMO_PATIENTS].index(number)]
            echo("")
            echo(
                f"=== Patient {patient_id}: "
                + ("an answering machine picks up" if pickup.kind == "machine" else "answers")
            )
            echo(result.text())
            echo(f"--      {result.status}, {result.duration_s} s")
    echo("")
    echo(week_log(app, ids))
    with db.session_scope(app) as session:
        audit.record(session, now, "demo", "week_log_viewed", patient_ids=ids)
    echo("")
    _feedback_week(app, echo, ids, week_start + timedelta(days=7))
    from ivr_cbt.dashboard.demo import seed

    seed(app, echo, now)
    echo("")
    echo("Next: `make test` runs the test suite; `python manage.py export attempts --format json` lists these calls;")
    echo('`python manage.py simulate call --patient ID --keys "PIN,5,7,4200#,3,2"` plays another call.')
    return ids


def _feedback_week(app: Flask, echo: Callable[[str], None], ids: list[int], next_monday: datetime) -> None:
    """The week closes: the feedback job builds each patient's message; Ana hears hers on Monday's call."""
    book = CalleeBook(app, {DEMO_PATIENTS[0].phone: [Pickup("answer", "1234,4,7,4600#,4,2,1")]})
    saved = app.extensions["telephony"], app.extensions.pop("dispatcher", None)
    app.extensions["telephony"] = MockTelephony(answer=book)
    try:
        with simulated_time(app, next_monday + timedelta(hours=4)):  # past midnight in every demo zone
            report = generate(app, app.extensions["clock"].now())
            echo(f"Sunday midnight, in each patient's own time zone, week 0 closed: the feedback job {report}.")
            with db.session_scope(app) as session:
                messages = session.scalars(
                    sa.select(FeedbackMessage).where(FeedbackMessage.patient_id.in_(ids)).order_by(FeedbackMessage.id)
                ).all()
                catalogue = app.extensions["voice_settings"].renderer.catalogue
                for message in messages:
                    mode = "guided: waits for the therapist" if message.mode == "guided" else message.mode.value
                    echo(f"  patient {message.patient_id} ({mode}): {message.status.value}")
                audit.record(session, next_monday, "demo", "feedback_previewed", patient_ids=ids)
            first = messages[0]
            echo("")
            echo(f"Patient {first.patient_id}'s message, as assembled from recorded segments and her numbers:")
            echo("  " + script(first.segments, lambda pid: catalogue.text(pid, first.language)))
            advance(app, next_monday + timedelta(hours=16))  # Monday 10:00 in New York, and the morning after
    finally:
        app.extensions["telephony"] = saved[0]
        app.extensions.pop("dispatcher", None)
        if saved[1] is not None:
            app.extensions["dispatcher"] = saved[1]
    for number, _, result in book.results:
        if number == DEMO_PATIENTS[0].phone:
            echo("")
            echo(f"=== Patient {ids[0]}, the next Monday: the check-in, then her message (1 = hear it again)")
            echo(result.text())
            echo(f"--      {result.status}, {result.duration_s} s")


def _enrol(app: Flask, monday, week_start: datetime) -> list[int]:
    catalogue = app.extensions["voice_settings"].renderer.catalogue
    ids = []
    with db.session_scope(app) as session:
        reset(session)
        for demo in DEMO_PATIENTS:
            patient = enrol(
                session,
                NewPatient(
                    demo.name,
                    demo.phone,
                    demo.pin,
                    demo.timezone,
                    demo.language,
                    monday,
                    feedback_mode=demo.mode,
                    call_day=demo.call_day,
                    call_time=demo.call_time,
                ),
                pepper=app.config["PIN_PEPPER"],
                languages=set(catalogue.languages),
                now=week_start,
                actor="demo",
                scheduling=app.extensions["voice_settings"].scheduling,
            )
            ids.append(patient.id)
    return ids


def attempt_timeline(app: Flask, patient_ids: list[int]) -> str:
    """Every scheduled attempt of these patients, in time order, in each patient's local time."""
    lines = [
        "Calls the scheduler placed (local time of each patient)",
        "patient  attempt  due (local)           outcome",
    ]
    with db.session_scope(app) as session:
        rows = session.execute(
            sa.select(CallAttempt, Patient.timezone)
            .join(Patient, Patient.id == CallAttempt.patient_id)
            .where(CallAttempt.patient_id.in_(patient_ids), CallAttempt.outcome.is_not(None))
            .order_by(CallAttempt.due_at)
        ).all()
        for attempt, timezone in rows:
            due = attempt.due_at.astimezone(ZoneInfo(timezone))
            lines.append(f"{attempt.patient_id:<8} {attempt.attempt:<8} {due:%a %d %b %H:%M %Z}   {attempt.outcome}")
    return "\n".join(lines)


def week_log(app: Flask, patient_ids: list[int]) -> str:
    """The weekly check-ins of these patients, as a text table."""
    items = app.extensions["voice_settings"].flows[DEFAULT_FLOW].item_keys()
    headers = ["patient", "week", "status", *items]
    rows = []
    with db.session_scope(app) as session:
        checkins = session.scalars(
            sa.select(CheckIn)
            .where(CheckIn.patient_id.in_(patient_ids), CheckIn.kind == CheckinKind.WEEKLY)
            .order_by(CheckIn.patient_id, CheckIn.week)
        )
        for checkin in checkins:
            values = {a.item_key: ("skipped" if a.skipped else str(a.value)) for a in checkin.answers}
            rows.append(
                [str(checkin.patient_id), str(checkin.week), checkin.status.value, *(values.get(k, "-") for k in items)]
            )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "Week log (safety: 1 = yes, 2 = no)\n" + "\n".join(lines)
