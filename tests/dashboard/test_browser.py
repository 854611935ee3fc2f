"""In a real browser (Debian's Chromium, headless, driven by Playwright): what a therapist does.

The app runs on a local server thread over the test database (``server_url``, shared with
test_http). Each test checks the database after the clicks, not only the page.
"""

from __future__ import annotations

import os
import shutil
from datetime import time, timedelta

import pytest
import sqlalchemy as sa

from ivr_cbt import db
from ivr_cbt.models import FeedbackMessage, FeedbackMode, FeedbackStatus, GoalOverride, Patient

from ..conftest import T0
from ..helpers import rows
from ..test_http import server_url  # noqa: F401 (the app on a local server thread: a fixture)
from .conftest import PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium at {CHROMIUM} (make test installs it as root)")
        pytest.skip(f"no Chromium at {CHROMIUM}: run `make test` as root, or apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(base_url=request.getfixturevalue("server_url"))
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def rows_of(app, model) -> list:
    """Every row of a table without an ``id`` column."""
    with app.app_context():
        return list(db.session().scalars(sa.select(model)))


def sign_in(page, email: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


@pytest.fixture
def caseload(add_patient, assign, therapist, call, clock):
    """Three patients of ``therapist``: steady, pain rising two weeks running, and one never called."""
    steady, rising, fresh = (add_patient(name=n) for n in ("Sam Steady", "Rita Rising", "Fay Fresh"))
    for patient in (steady, rising, fresh):
        assign(patient, therapist)
    for week, pain in ((0, 4), (1, 6), (2, 7)):
        when = T0 + timedelta(weeks=week - 1)
        call(rising, f"1234,{pain},6,3000#,2,2", now=when)
        call(steady, "1234,4,6,3000#,3,2", now=when)
    clock.set(T0 + timedelta(weeks=1, days=1))  # Tuesday of week 2
    return {"steady": steady, "rising": rising, "fresh": fresh}


def test_a_therapist_finds_the_flagged_patient_first_and_opens_the_chart(page, therapist, caseload):
    sign_in(page, therapist.email)
    first = page.locator("table.caseload tbody tr").first
    assert first.get_attribute("data-patient-id") == str(caseload["rising"])
    assert "up 2 or more two weeks running" in first.inner_text()
    first.get_by_role("link", name="Rita Rising").click()
    page.wait_for_url(f"**/patients/{caseload['rising']}")
    chart = page.locator("svg#chart-pain")
    assert chart.is_visible()
    assert chart.locator("circle").count() == 3
    assert page.locator("table.log tbody tr").count() == 3
    assert page.locator("table.log tbody tr").first.locator("td.warn").first.inner_text() == "7"


def test_another_therapists_patient_is_refused(page, other_therapist, caseload):
    sign_in(page, other_therapist.email)
    assert page.locator("table.caseload").count() == 0
    response = page.goto(f"/patients/{caseload['rising']}")
    assert response.status == 404
    assert "Rita Rising" not in page.content()


def test_a_call_is_completed_on_the_practice_phone(page, app, therapist, caseload):
    from ..helpers import checkins

    sign_in(page, therapist.email)
    page.get_by_role("link", name="Practice phone").click()
    page.select_option("#practice-patient", str(caseload["fresh"]))
    page.click("#call-button")
    page.wait_for_selector("#transcript li")
    assert "Please enter your four-digit PIN" in page.locator("#transcript").inner_text()

    def press(keys: str, expect: str) -> None:
        for key in keys:
            page.click(f".key[data-key='{key}']")
        page.wait_for_function(
            "expected => document.getElementById('transcript').innerText.includes(expected)", arg=expect
        )

    press("1234", "average pain")
    press("5#", "quality of your sleep")
    press("7#", "how many steps")
    press("4200#", "how many of the past 7 days")
    press("3", "better off dead")
    press("2", "If you would like us to stop calling you, press 8 now")
    page.click("#silence-button")  # declining the offer to stop the calls ends the call
    page.wait_for_function("() => document.getElementById('call-status').innerText.startsWith('Call ended')")
    assert page.locator("#call-status").inner_text().startswith("Call ended: completed")
    assert page.locator(".key").first.is_disabled()
    (checkin,) = checkins(app, caseload["fresh"])
    assert checkin["status"] == "complete" and checkin["answers"]["steps_avg"] == 4200


def test_signing_out_returns_to_the_login_form(page, therapist, caseload):
    sign_in(page, therapist.email)
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    assert "You are signed out." in page.content()
    page.goto("/")
    assert page.url.endswith("/login?next=/")


@pytest.fixture
def waiting_message(app, add_patient, assign, therapist, call, clock):
    """A guided patient of ``therapist`` whose week-1 message waits for review (pain 5, then 8); Tuesday of week 2."""
    from ivr_cbt.feedback import generate

    patient = add_patient(name="Gus Guided", feedback_mode=FeedbackMode.GUIDED)
    assign(patient, therapist)
    call(patient, "1234,5,6,3000#,0,2", now=T0 - timedelta(weeks=1))
    call(patient, "1234,8,6,3400#,2,2", now=T0)
    generate(app, T0 + timedelta(weeks=1))
    clock.set(T0 + timedelta(weeks=1, days=1))
    (message,) = rows(app, FeedbackMessage)
    assert message.status == FeedbackStatus.PENDING_REVIEW and message.week == 1
    return patient, message


def test_a_therapist_approves_a_waiting_feedback_message(page, app, therapist, waiting_message):
    patient, message = waiting_message
    sign_in(page, therapist.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Feedback").click()
    page.wait_for_url("**/feedback")
    card = page.locator(f"#message-{message.id}")
    summary = card.locator(".message-summary").inner_text()
    assert "Average pain (0-10)\n8" in summary and "+3 vs last week (5)" in summary  # the week's numbers beside it
    assert "you rated your average pain 8 out of 10" in card.locator("blockquote.script").inner_text()
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"**/feedback#message-{message.id}")
    assert "approved: it plays on the patient's next call" in page.locator(".flash").inner_text()
    (approved,) = rows(app, FeedbackMessage)
    assert (approved.status, approved.reviewed_by) == (FeedbackStatus.READY, f"user:{therapist.id}")
    assert page.locator(f"#message-{message.id}").get_attribute("data-status") == "ready"
    assert page.locator("#waiting").inner_text().strip() == "Nothing is waiting for your review."


def test_a_therapist_sets_next_weeks_practice_goal_and_moves_the_call(page, app, therapist, waiting_message):
    patient, message = waiting_message
    sign_in(page, therapist.email)
    page.goto(f"/patients/{patient}")
    row = page.locator("table.goals tbody tr[data-week='2']")  # this week: announced by the waiting message
    row.locator("input[name=practice_days]").fill("3")
    row.get_by_role("button", name="Save goals").click()
    page.wait_for_url(f"**/patients/{patient}#goals")
    (override,) = rows_of(app, GoalOverride)
    assert (override.week, override.practice_days_goal, override.steps_goal) == (2, 3, None)
    (rebuilt,) = rows(app, FeedbackMessage)
    assert rebuilt.summary["next_goals"]["practice_days"] == 3 and rebuilt.version == message.version + 1
    assert "3 practice days" in page.locator("table.goals tbody tr[data-week='2'] td.goal-effective").inner_text()
    page.fill("#call_time", "18:00")
    page.get_by_role("button", name="Save schedule and settings").click()
    page.wait_for_url(f"**/patients/{patient}#settings")
    assert "Saved (call time)" in page.locator(".flash").inner_text()
    (saved,) = rows(app, Patient, Patient.id == patient)
    assert saved.call_time == time(18, 0)
    page.fill("#call_time", "23:30")  # outside the hours calls may be placed
    page.get_by_role("button", name="Save schedule and settings").click()
    assert "the call time 23:30 is outside the call window" in page.locator("#settings .flash-error").inner_text()
    (kept,) = rows(app, Patient, Patient.id == patient)
    assert kept.call_time == time(18, 0)
