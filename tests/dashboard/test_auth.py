"""Signing in and out: sessions on the server, idle and absolute expiry, throttling, CSRF, cookies, headers."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from ivr_cbt import db
from ivr_cbt.models import LoginAttempt, LoginSession

from ..helpers import audit_actions, rows
from .conftest import CHEAP_HASHER, PASSWORD, csrf_token, login, post_form


def session_cookie(response) -> str:
    """The Set-Cookie header of the session cookie."""
    (cookie,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return cookie


def test_signing_in_opens_a_session_on_the_server_and_lands_on_the_caseload(app, therapist):
    client = app.test_client()
    response = login(client, therapist.email.upper())  # emails are matched case-insensitively
    assert response.status_code == 302 and response.headers["Location"] == "/"
    (login_session,) = rows(app, LoginSession)
    assert login_session.user_id == therapist.id and login_session.ended_at is None
    assert client.get("/").status_code == 200
    assert "login" in audit_actions(app)


@pytest.mark.parametrize(
    "email, password",
    [("tara@clinic.example", "wrong password!"), ("nobody@clinic.example", PASSWORD), ("", PASSWORD)],
)
def test_wrong_credentials_are_refused_with_one_message(app, therapist, email, password):
    client = app.test_client()
    response = login(client, email, password)
    assert response.status_code in (400, 401)
    assert client.get("/").status_code == 302  # still signed out
    if email:
        assert "do not match an active account" in response.get_data(as_text=True)
    assert rows(app, LoginSession) == []


def test_a_deactivated_account_cannot_sign_in(app, therapist):
    with db.session_scope(app) as session:
        session.get(db_user(), therapist.id).active = False
    assert login(app.test_client(), therapist.email).status_code == 401


def db_user():
    from ivr_cbt.models import User

    return User


def test_the_session_is_renewed_at_sign_in(app, therapist):
    client = app.test_client()
    before = csrf_token(client.get("/login"))
    login(client, therapist.email)
    assert csrf_token(client.get("/")) != before  # a fresh session: nothing carried over from before sign-in
    login(app.test_client(), therapist.email)  # a second browser gets a session of its own
    first, second = rows(app, LoginSession)
    assert first.token_hash != second.token_hash and first.ended_at is None and second.ended_at is None


def test_signing_out_ends_the_session_for_good_even_for_a_copied_cookie(app, signed_in):
    cookie = signed_in.get_cookie("session").value
    response = post_form(signed_in, "/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    (login_session,) = rows(app, LoginSession)
    assert login_session.ended_at is not None and login_session.end_reason == "logout"
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/").status_code == 302
    assert "logout" in audit_actions(app)


def test_a_redirect_after_sign_in_stays_on_this_site(app, therapist):
    client = app.test_client()
    token = csrf_token(client.get("/login"))
    data = {"email": therapist.email, "password": PASSWORD, "csrf_token": token}
    response = client.post("/login?next=//evil.example/x", data=data)
    assert response.headers["Location"] == "/"
    client2 = app.test_client()
    data["csrf_token"] = csrf_token(client2.get("/login"))
    assert client2.post("/login?next=/alerts", data=data).headers["Location"] == "/alerts"


def test_pages_send_the_signed_out_to_the_login_form(client):
    response = client.get("/alerts")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/alerts"


# --- expiry -----------------------------------------------------------------------------------


@pytest.fixture
def system_clock_app(make_app):
    """The app on the system clock, so that freezegun moves it."""
    return make_app(CLOCK=None, PASSWORD_HASHER=CHEAP_HASHER)


def test_a_session_ends_after_30_idle_minutes(system_clock_app, therapist):
    client = system_clock_app.test_client()
    with freeze_time("2026-03-02 09:00:00") as frozen:
        assert login(client, therapist.email).status_code == 302
        frozen.tick(timedelta(minutes=29))
        assert client.get("/").status_code == 200  # activity resets the idle clock
        frozen.tick(timedelta(minutes=29))
        assert client.get("/").status_code == 200
        frozen.tick(timedelta(minutes=30, seconds=1))
        response = client.get("/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
        assert "Your session has ended" in client.get("/login").get_data(as_text=True)
    (login_session,) = rows(system_clock_app, LoginSession)
    assert login_session.end_reason == "idle"
    assert "session_ended" in audit_actions(system_clock_app)


def test_a_busy_session_still_ends_after_12_hours(system_clock_app, therapist):
    client = system_clock_app.test_client()
    with freeze_time("2026-03-02 07:00:00") as frozen:
        assert login(client, therapist.email).status_code == 302
        for _ in range(35):  # a page every 20 minutes: 11 h 40 min
            frozen.tick(timedelta(minutes=20))
            assert client.get("/").status_code == 200
        frozen.tick(timedelta(minutes=20))  # 12 h
        assert client.get("/").status_code == 302
    (login_session,) = rows(system_clock_app, LoginSession)
    assert login_session.end_reason == "expired"


# --- throttle ----------------------------------------------------------------------------------


def fail(client, email: str, times: int) -> list[int]:
    return [login(client, email, "not the password").status_code for _ in range(times)]


def test_five_failures_lock_the_account_for_15_minutes_even_with_the_right_password(system_clock_app, therapist):
    client = system_clock_app.test_client()
    with freeze_time("2026-03-02 09:00:00") as frozen:
        assert fail(client, therapist.email, 5) == [401] * 5
        locked = login(client, therapist.email)
        assert locked.status_code == 429 and "Try again in 15 minutes" in locked.get_data(as_text=True)
        frozen.tick(timedelta(minutes=14, seconds=59))
        assert login(client, therapist.email).status_code == 429
        frozen.tick(timedelta(seconds=2))
        assert login(client, therapist.email).status_code == 302
    assert audit_actions(system_clock_app).count("login_throttled") == 2


def test_a_success_clears_the_accounts_failures(app, therapist):
    client = app.test_client()
    assert fail(client, therapist.email, 4) == [401] * 4
    assert login(client, therapist.email).status_code == 302
    assert fail(app.test_client(), therapist.email, 4) == [401] * 4  # four more are allowed again


def test_one_address_trying_many_accounts_is_stopped_after_20_failures(app, add_user):
    client = app.test_client()
    codes = [login(client, f"guess{n}@clinic.example", "not the password").status_code for n in range(21)]
    assert codes == [401] * 20 + [429]
    other_address = app.test_client()
    token = csrf_token(other_address.get("/login"))
    response = other_address.post(
        "/login",
        data={"email": "guess0@clinic.example", "password": "x", "csrf_token": token},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 401


def test_the_throttle_is_shared_by_every_worker(make_app, therapist, database_url):
    worker_a, worker_b = make_app(PASSWORD_HASHER=CHEAP_HASHER), make_app(PASSWORD_HASHER=CHEAP_HASHER)
    assert (
        fail(worker_a.test_client(), therapist.email, 3) + fail(worker_b.test_client(), therapist.email, 2) == [401] * 5
    )
    assert login(worker_a.test_client(), therapist.email).status_code == 429
    assert login(worker_b.test_client(), therapist.email).status_code == 429


def test_the_throttle_keeps_a_keyed_hash_of_the_typed_email_never_the_text(app):
    login(app.test_client(), "my secret password typed in the wrong box", "x")
    (attempt,) = rows(app, LoginAttempt)
    assert len(attempt.account) == 64 and "secret" not in attempt.account
    assert attempt.client == "127.0.0.1" and attempt.succeeded is False


# --- CSRF, cookies, headers -----------------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused(app, signed_in, therapist):
    assert app.test_client().post("/login", data={"email": therapist.email, "password": PASSWORD}).status_code == 400
    assert signed_in.post("/logout").status_code == 400
    assert signed_in.get("/").status_code == 200  # still signed in
    wrong = signed_in.post("/logout", data={"csrf_token": "forged"})
    assert wrong.status_code == 400 and "This form has expired" in wrong.get_data(as_text=True)
    with app.app_context():
        assert db.session().scalar(sa.select(sa.func.count()).select_from(LoginSession)) == 1


def test_webhooks_need_no_csrf_token_and_get_no_cookie(app, client):
    from ..helpers import answer_params, sid, signed_post

    response = signed_post(client, "/voice/answer", answer_params(sid(1), from_="+12025550100"))
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


def test_the_session_cookie_is_httponly_samesite_lax_and_not_secure_in_development(app, therapist):
    cookie = session_cookie(login(app.test_client(), therapist.email))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_outside_development_the_session_cookie_is_secure(make_app, therapist):
    app = make_app(APP_ENV="production", SECRET_KEY="a real secret for this test", PASSWORD_HASHER=CHEAP_HASHER)
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    cookie = session_cookie(login(client, therapist.email))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_refuses_the_development_secret(make_app):
    with pytest.raises(ValueError, match="APP_ENV=production needs a real SECRET_KEY"):
        make_app(APP_ENV="production")


@pytest.mark.parametrize("path", ["/", "/alerts", "/patients/{id}", "/patients/{id}/export/csv", "/practice/"])
def test_pages_are_never_cached_and_carry_a_content_security_policy(signed_in, therapist, add_patient, assign, path):
    patient = add_patient()
    assign(patient, therapist)
    response = signed_in.get(path.format(id=patient))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


def test_the_login_form_is_never_cached_either(client):
    response = client.get("/login")
    assert response.headers["Cache-Control"] == "no-store" and "Content-Security-Policy" in response.headers


def test_static_files_may_be_cached(signed_in):
    with signed_in.get("/dashboard/static/dashboard.css") as response:
        assert response.status_code == 200 and "no-store" not in response.headers.get("Cache-Control", "")
