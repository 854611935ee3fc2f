"""Fixtures: an app on a fresh database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set),
a simulated clock, the mock telephony adapter, and the offline phone."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr_cbt import create_app, db
from ivr_cbt.clock import SimulatedClock
from ivr_cbt.models import Base
from ivr_cbt.patients import NewPatient, enrol
from ivr_cbt.simulator import ScriptedCaller
from ivr_cbt.simulator.runner import make_phone, run_call
from ivr_cbt.telephony.mock import MockTelephony

PUBLIC_BASE_URL = "https://ivr.example.org"
AUTH_TOKEN = "test-auth-token"
PROGRAM_NUMBER = "+15005550006"
# A Monday morning in New York, in program week 1 for patients who started a week earlier.
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
START = date(2026, 2, 23)

PG_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


# --- databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite database, copied for each test (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    db.upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_schema_url():
    """A private schema on the PostgreSQL server, migrated once; fails loudly if unreachable."""
    if not PG_URL:
        pytest.fail("PostgreSQL tests were selected but TEST_DATABASE_URL is not set")
    schema = f"ivr_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}")
    url = (
        sa.engine.make_url(PG_URL)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    db.upgrade_database(url)
    yield url
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_schema_url")
    engine = sa.create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


# --- the app ----------------------------------------------------------------------------------


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def telephony() -> MockTelephony:
    return MockTelephony(seed=1)


@pytest.fixture
def make_app(database_url, clock, telephony, tmp_path):
    apps = []

    def factory(**overrides):
        config = {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": PROGRAM_NUMBER,
            "TELEPHONY": telephony,
            "CLOCK": clock,
            **overrides,
        }
        app = create_app(config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["db_engine"].dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session()


# --- patients and calls -----------------------------------------------------------------------------


@pytest.fixture
def add_patient(app, clock):
    counter = iter(range(100, 1000))

    def factory(
        *,
        pin="1234",
        language="en",
        timezone="America/New_York",
        start=START,
        phone=None,
        name="Test Patient",
        **schedule,
    ):
        with db.session_scope(app) as session:
            patient = enrol(
                session,
                NewPatient(name, phone or f"+1202555{next(counter):04d}", pin, timezone, language, start, **schedule),
                pepper=app.config["PIN_PEPPER"],
                languages={"en", "es"},
                now=clock.now(),
                actor="test",
                scheduling=app.extensions["voice_settings"].scheduling,
            )
            return patient.id

    return factory


@pytest.fixture
def patient_id(add_patient) -> int:
    return add_patient()


@pytest.fixture
def call(app, clock):
    """Play a call for a patient with a script such as "1234,5,7,4200#,3,2"."""

    def play(patient_id: int, script: str, *, now: datetime | None = None, **options):
        return run_call(app, patient_id, ScriptedCaller.parse(script), now=now or clock.now(), **options)

    return play


@pytest.fixture
def phone(app, clock):
    return make_phone(app, clock=clock)
