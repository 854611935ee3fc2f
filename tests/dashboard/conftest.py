"""Dashboard fixtures: accounts (cheap Argon2 parameters), assignments, signed-in test clients."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from ivr_cbt import db
from ivr_cbt.dashboard import accounts
from ivr_cbt.models import CareAssignment

PASSWORD = "correct horse battery"
# Argon2id still, with test-sized costs: the suite signs in hundreds of times.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass(frozen=True)
class Account:
    id: int
    email: str


@pytest.fixture
def app(make_app):
    return make_app(PASSWORD_HASHER=CHEAP_HASHER)


@pytest.fixture
def add_user(app, clock):
    def factory(email: str, role: str = "therapist", password: str = PASSWORD) -> Account:
        with db.session_scope(app) as session:
            user = accounts.create_user(
                session, email=email, role=role, password=password, hasher=CHEAP_HASHER, now=clock.now(), actor="test"
            )
            return Account(user.id, user.email)

    return factory


@pytest.fixture
def assign(app, clock):
    def assign_(patient_id: int, account: Account | None) -> None:
        with db.session_scope(app) as session:
            user = session.get(accounts.User, account.id) if account else None
            accounts.assign(session, patient_id, user, now=clock.now(), actor="test")

    return assign_


@pytest.fixture
def therapist(add_user) -> Account:
    return add_user("tara@clinic.example")


@pytest.fixture
def other_therapist(add_user) -> Account:
    return add_user("otto@clinic.example")


@pytest.fixture
def admin(add_user) -> Account:
    return add_user("ada@clinic.example", "admin")


def assignments(app) -> list[tuple[int, int]]:
    """(patient_id, user_id) of every assignment."""
    with app.app_context():
        query = sa.select(CareAssignment.patient_id, CareAssignment.user_id).order_by(CareAssignment.patient_id)
        return [tuple(row) for row in db.session().execute(query)]


def csrf_token(response) -> str:
    match = _CSRF.search(response.get_data(as_text=True))
    assert match, "the page should carry a CSRF token"
    return match.group(1) or match.group(2)


def login(client, email: str, password: str = PASSWORD, **extra):
    token = csrf_token(client.get("/login"))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, **extra})


def post_form(client, path: str, data: dict | None = None, *, page: str = "/"):
    """POST a form with the CSRF token of the signed-in session (read from ``page``)."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client.get(page))})


@pytest.fixture
def sign_in(app):
    """Sign in as an account now (after a test has moved the clock): return the test client."""

    def sign_in_(account: Account):
        client = app.test_client()
        response = login(client, account.email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return sign_in_


@pytest.fixture
def signed_in(sign_in, therapist):
    """A test client signed in as ``therapist``."""
    return sign_in(therapist)


@pytest.fixture
def admin_client(app, admin):
    client = app.test_client()
    assert login(client, admin.email).status_code == 302
    return client
