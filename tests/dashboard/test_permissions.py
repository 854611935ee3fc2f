"""Who may see and change what: a therapist their own patients only, an admin accounts and assignments only."""

from __future__ import annotations

import pytest
from flask import url_for
from itsdangerous import URLSafeTimedSerializer

from ivr_cbt.models import Alert

from ..helpers import alerts_for, rows
from .conftest import csrf_token, login, post_form

PATIENT_PAGES = [
    "/patients/{id}",
    "/patients/{id}/export/csv",
    "/patients/{id}/export/json",
    "/patients/{id}/export/fhir",
]
THERAPIST_PAGES = ["/", "/alerts", "/caseload/export/csv", "/practice/"]
ADMIN_PAGES = ["/admin/users", "/admin/assignments"]


@pytest.fixture
def patients(add_patient, assign, therapist, other_therapist):
    """Two patients: one of ``therapist``'s, one of ``other_therapist``'s."""
    mine, theirs = add_patient(name="Mine Patient"), add_patient(name="Theirs Patient")
    assign(mine, therapist)
    assign(theirs, other_therapist)
    return mine, theirs


@pytest.mark.parametrize("page", PATIENT_PAGES)
def test_a_therapist_sees_their_own_patient_and_gets_404_for_any_other_id(signed_in, patients, page):
    mine, theirs = patients
    assert signed_in.get(page.format(id=mine)).status_code == 200
    assert signed_in.get(page.format(id=theirs)).status_code == 404
    assert signed_in.get(page.format(id=99999)).status_code == 404  # the same answer: nothing is revealed


def test_an_unassigned_patient_is_nobodys_to_see(signed_in, add_patient):
    assert signed_in.get(f"/patients/{add_patient()}").status_code == 404


def test_the_caseload_and_its_export_hold_only_the_therapists_own_patients(signed_in, patients):
    mine, theirs = patients
    page = signed_in.get("/").get_data(as_text=True)
    assert "Mine Patient" in page and "Theirs Patient" not in page
    with signed_in.application.test_request_context():
        link = url_for("dashboard.patient", patient_id=mine)
    assert f'<a href="{link}">Mine Patient</a>' in page  # the caseload builds its links without url_for per row
    assert signed_in.get(link).status_code == 200
    export = signed_in.get("/caseload/export/json").get_json()
    assert {row["patient_id"] for row in export} == {mine}


def test_a_therapist_cannot_acknowledge_another_therapists_alert(app, signed_in, patients, call):
    mine, theirs = patients
    call(theirs, "1234,5,7,4200#,3,1,2")
    (alert,) = alerts_for(app, theirs)
    response = post_form(signed_in, f"/alerts/{alert.id}/acknowledge", {"note": "seen"}, page="/alerts")
    assert response.status_code == 404
    (alert,) = alerts_for(app, theirs)
    assert alert.acknowledged_at is None
    assert "Theirs Patient" not in signed_in.get("/alerts").get_data(as_text=True)


def test_reassigning_a_patient_moves_who_may_see_them(app, signed_in, patients, assign, therapist, other_therapist):
    mine, theirs = patients
    assign(theirs, therapist)
    assert signed_in.get(f"/patients/{theirs}").status_code == 200
    assign(mine, None)
    assert signed_in.get(f"/patients/{mine}").status_code == 404


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_therapists_cannot_use_the_admin_pages(signed_in, page):
    assert signed_in.get(page).status_code == 403


def test_therapists_cannot_post_to_the_admin_pages(app, signed_in, patients, therapist, other_therapist):
    mine, theirs = patients
    response = post_form(signed_in, f"/admin/assignments/{theirs}", {"therapist": str(therapist.id)})
    assert response.status_code == 403
    assert (
        post_form(
            signed_in, "/admin/users", {"email": "x@y.example", "role": "admin", "password": "p" * 12}
        ).status_code
        == 403
    )


@pytest.mark.parametrize("page", PATIENT_PAGES + THERAPIST_PAGES[1:])
def test_an_admin_sees_no_clinical_data(admin_client, patients, page):
    mine, _ = patients
    assert admin_client.get(page.format(id=mine)).status_code in (403, 404)


def test_an_admin_lands_on_the_accounts_page(admin_client):
    response = admin_client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/users"


@pytest.mark.parametrize("page", PATIENT_PAGES + THERAPIST_PAGES + ADMIN_PAGES)
def test_nothing_is_shown_to_someone_not_signed_in(client, patients, page):
    response = client.get(page.format(id=patients[0]))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_practice_phone_refuses_another_therapists_patient(app, signed_in, patients):
    mine, theirs = patients
    headers = {"X-CSRFToken": csrf_token(signed_in.get("/"))}
    assert signed_in.post("/practice/calls", json={"patient_id": theirs}, headers=headers).status_code == 404
    # Even a validly signed state naming someone else's patient is refused.
    signer = URLSafeTimedSerializer(app.secret_key, salt="ivr-cbt/practice-phone")
    state = signer.dumps({"patient_id": theirs})
    response = signed_in.post("/practice/calls/step", json={"state": state, "action": "5"}, headers=headers)
    assert response.status_code == 404
    assert rows(app, Alert) == []


def test_the_practice_phone_answers_json_callers_who_are_not_signed_in_with_401(client):
    headers = {"X-CSRFToken": csrf_token(client.get("/login"))}
    response = client.post("/practice/calls", json={"patient_id": 1}, headers=headers)
    assert response.status_code == 401 and response.get_json() == {"error": "not signed in"}


def test_the_practice_phone_does_not_exist_outside_development(make_app, therapist, patients):
    from .conftest import CHEAP_HASHER

    app = make_app(APP_ENV="production", SECRET_KEY="a real secret for this test", PASSWORD_HASHER=CHEAP_HASHER)
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    assert login(client, therapist.email).status_code == 302
    assert client.get("/practice/").status_code == 404
    assert "Practice phone" not in client.get("/").get_data(as_text=True)
