"""`make demo` leaves demo accounts, assigned patients and weeks of calls; a rerun replaces them."""

from __future__ import annotations

import re

from ivr_cbt.demo import run_demo
from ivr_cbt.models import User

from ..conftest import T0
from ..helpers import rows
from .conftest import login


def test_the_demo_leaves_accounts_and_a_caseload_worth_looking_at(app, clock):
    printed: list[str] = []
    run_demo(app, printed.append, now=T0)
    run_demo(app, printed.append, now=T0)  # a rerun replaces the first run's accounts and patients
    clock.set(T0)  # the simulated calls moved the test's clock
    assert sorted(u.email for u in rows(app, User)) == ["ada@demo.invalid", "tara@demo.invalid", "theo@demo.invalid"]
    text = "\n".join(printed)
    assert "therapist  tara@demo.invalid     password: demo-password-tara" in text
    client = app.test_client()
    assert login(client, "tara@demo.invalid", "demo-password-tara").status_code == 302
    page = client.get("/").get_data(as_text=True)
    names = re.findall(r'<a href="/patients/\d+">([^<]+)</a>', page)
    assert names[:2] == ["Eve Demo", "Dev Demo"] and len(names) == 5
    assert "missed 2 weeks running (weeks 3-4)" in page and "safety answer: an open safety alert" in page


def test_the_demo_makes_no_accounts_outside_development(make_app):
    from .conftest import CHEAP_HASHER

    app = make_app(APP_ENV="production", SECRET_KEY="a real secret for this test", PASSWORD_HASHER=CHEAP_HASHER)
    printed: list[str] = []
    run_demo(app, printed.append, now=T0)
    assert rows(app, User) == [] and "made only with APP_ENV=development" in "\n".join(printed)


def test_the_demo_leaves_guided_messages_waiting_for_review_and_earlier_ones_heard(app, clock):
    from ivr_cbt.models import FeedbackMessage, FeedbackStatus

    printed: list[str] = []
    call_demo = run_demo(app, printed.append, now=T0)  # its guided patient's message waits too (no therapist)
    clock.set(T0)
    statuses = [m.status for m in rows(app, FeedbackMessage) if m.patient_id not in call_demo]
    assert statuses.count(FeedbackStatus.PENDING_REVIEW) == 3 and statuses.count(FeedbackStatus.DELIVERED) >= 10
    assert "3 guided messages wait for review" in "\n".join(printed)
    client = app.test_client()
    assert login(client, "tara@demo.invalid", "demo-password-tara").status_code == 302
    page = client.get("/feedback").get_data(as_text=True)
    waiting = re.findall(r'data-status="pending-review"', page)
    assert len(waiting) == 2 and "Eve Demo" in page and "Raj Demo" in page and "Lia Demo" not in page
    heard = page[page.index('id="delivered"') :]
    assert "Eve Demo" in heard and "I will call you on Thursday" in heard  # her week 2, rewritten by Tara, was heard
