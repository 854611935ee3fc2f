"""Who answers the scheduler's calls: TELEPHONY_BACKEND=record (status callbacks decide), =mock (scripted
callees, MOCK_CALLEES_FILE), the scheduler running inside the web process, and the demo week."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest

from ivr_cbt import create_app, db, exports
from ivr_cbt.demo import run_demo
from ivr_cbt.scheduling import process
from ivr_cbt.telephony.mock import MockTelephony

from .conftest import AUTH_TOKEN, PUBLIC_BASE_URL, T0
from .helpers import signed_post


def attempts(app, patient_id=None) -> list[dict]:
    with app.app_context():
        return exports.attempts(db.session(), patient_id)


@pytest.fixture
def backend_app(database_url, clock):
    """An app over the test database whose adapter TELEPHONY_BACKEND chooses (no test double passed in)."""
    apps = []

    def factory(**config):
        apps.append(
            create_app(
                {
                    "TESTING": True,
                    "DATABASE_URL": database_url,
                    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "CLOCK": clock,
                    "DISPATCH_CPS": 0,
                    **config,
                }
            )
        )
        return apps[-1]

    yield factory
    for app in apps:
        app.extensions["db_engine"].dispose()


def test_the_record_backend_only_records_and_status_callbacks_decide(backend_app, add_patient):
    app = backend_app(TELEPHONY_BACKEND="record")
    adapter = app.extensions["telephony"]
    assert isinstance(adapter, MockTelephony) and adapter.answer is None
    patient = add_patient()
    assert process.tick(app, T0).placed == 1
    (placed,) = attempts(app, patient)
    assert placed["state"] == "placed"  # nobody answered: the call is in flight until Twilio would report
    request, call = adapter.placed_calls[0]
    params = {"CallSid": call.sid, "CallStatus": "busy", "Direction": "outbound-api"}
    path = request.status_callback_url.removeprefix(app.config["PUBLIC_BASE_URL"])
    assert signed_post(app.test_client(), path, params).status_code == 204
    assert [(a["attempt"], a["outcome"]) for a in attempts(app, patient)] == [(0, "busy"), (1, None)]


def test_the_mock_backend_has_the_callees_in_mock_callees_file_answer(backend_app, add_patient, tmp_path, clock):
    callees = tmp_path / "callees.yaml"
    callees.write_text(
        '"+12025550100":\n  - no-answer\n  - answer: "1234,5,7,4200#,3,2"\ndefault: busy\n', encoding="utf-8"
    )
    app = backend_app(TELEPHONY_BACKEND="mock", MOCK_CALLEES_FILE=str(callees))
    listed, other = add_patient(phone="+12025550100"), add_patient(phone="+12025550111")
    process.tick(app, T0)
    assert [a["outcome"] for a in attempts(app, listed)] == ["no-answer", None]
    assert [a["outcome"] for a in attempts(app, other)] == ["busy", None]
    retry = attempts(app, listed)[1]
    clock.set(T0 + timedelta(minutes=31))
    process.tick(app, clock.now())
    assert retry["attempt"] == 1 and [a["outcome"] for a in attempts(app, listed)][:2] == ["no-answer", "completed"]


def test_serve_with_scheduler_runs_the_dispatch_tick_in_a_background_thread(make_app, add_patient, telephony):
    app = make_app(DISPATCH_CPS=0)
    patient = add_patient()
    scheduler = process.start_in_background(app)  # what `serve --with-scheduler` starts
    try:
        deadline = time.monotonic() + 30
        while attempts(app, patient)[0]["state"] != "placed" and time.monotonic() < deadline:
            time.sleep(0.02)  # polls the condition; the first tick runs at once
        assert attempts(app, patient)[0]["state"] == "placed"
        assert len(telephony.placed_calls) == 1
        assert sorted(job.id for job in scheduler.get_jobs()) == ["dispatch", "feedback", "reconcile"]
    finally:
        scheduler.shutdown(wait=True)


def test_the_demo_week_has_a_no_answer_retried_and_an_answering_machine(app, clock):
    printed: list[str] = []
    run_demo(app, printed.append, now=T0)
    text = "\n".join(printed)
    timeline = re.findall(r"^(\d+)\s+(\d)\s+(\w{3} \d\d \w{3} \d\d:\d\d \w+)\s+(\S+)$", text, flags=re.M)
    by_patient: dict[str, list[tuple[str, str, str]]] = {}
    for patient, attempt, due, outcome in timeline:
        by_patient.setdefault(patient, []).append((attempt, due, outcome))
    ana, ben, carmen = by_patient.values()
    assert ana == [("0", "Mon 02 Mar 10:00 EST", "completed")]
    # Ben misses 18:30, is retried 30 minutes later and stops after one answer, then resumes the next morning.
    assert ben == [
        ("0", "Tue 03 Mar 18:30 CST", "no-answer"),
        ("1", "Tue 03 Mar 19:00 CST", "partial"),
        ("2", "Wed 04 Mar 09:00 CST", "completed"),
    ]
    assert carmen == [("0", "Wed 04 Mar 09:15 PST", "machine"), ("1", "Wed 04 Mar 09:45 PST", "completed")]
    assert "an answering machine picks up" in text and "continue your check-in where we left off" in text
