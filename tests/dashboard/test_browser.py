"""In a real browser (Debian's Chromium, headless, driven by Playwright): what a therapist does.

The app runs on a local server thread over the test database (``server_url``, shared with
test_http). The feedback-approval step of issue 5 waits for the feedback messages of issue 4.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest

from ..conftest import T0
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
