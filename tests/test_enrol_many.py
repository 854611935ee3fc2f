"""Bulk enrolment (the cohort simulator's, and any import): the same checks as one at a time, all or nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ivr_cbt import db
from ivr_cbt.models import AuditEvent, CallAttempt, Patient
from ivr_cbt.patients import Enrolment, InvalidPatient, NewPatient, enrol_many
from ivr_cbt.security import verify_pin

from .conftest import START, T0


def new(n: int, **changes) -> NewPatient:
    values = {
        "name": f"Bulk Patient {n}",
        "phone": f"+1202555{n:04d}",
        "pin": f"{n % 10000:04d}",
        "timezone": "America/Chicago",
        "language": "en",
        "start": START,
        **changes,
    }
    return NewPatient(**values)


def run(app, enrolments, **options):
    with app.extensions["db_engine"].connect() as conn:
        ids = enrol_many(
            conn,
            enrolments,
            pepper=app.config["PIN_PEPPER"],
            languages={"en", "es"},
            now=T0,
            actor="test",
            scheduling=app.extensions["voice_settings"].scheduling,
            **options,
        )
        conn.commit()
    return ids


def count(app, model, *where) -> int:
    with app.extensions["db_engine"].connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(model.__table__).where(*where)).scalar()


def test_enrols_in_order_with_codes_salts_audit_rows_and_first_calls(app):
    enrolments = [Enrolment(new(n), code=f"{700000 + n}", pin_salt=f"{n:032x}") for n in range(1, 8)]
    ids = run(app, enrolments, chunk=3)  # several chunks
    assert len(ids) == 7 and ids == sorted(ids)
    with app.app_context():
        patients = {p.id: p for p in db.session().scalars(sa.select(Patient))}
    for n, patient_id in zip(range(1, 8), ids, strict=True):
        patient = patients[patient_id]
        assert (patient.phone, patient.code, patient.program_weeks) == (f"+1202555{n:04d}", f"{700000 + n}", 11)
        assert patient.pin_hash.split("$")[1] == f"{n:032x}"
        assert verify_pin(f"{n:04d}", patient.pin_hash, app.config["PIN_PEPPER"])
    assert count(app, AuditEvent, AuditEvent.action == "patient_enrolled") == 7
    assert count(app, CallAttempt) == 7  # each patient's first call is planned


def test_random_codes_and_salts_when_none_are_given(app):
    ids = run(app, [Enrolment(new(1)), Enrolment(new(2))])
    with app.app_context():
        patients = db.session().scalars(sa.select(Patient).where(Patient.id.in_(ids))).all()
    assert len({p.code for p in patients}) == 2 and all(len(p.code) == 6 for p in patients)
    assert len({p.pin_hash.split("$")[1] for p in patients}) == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (new(3, timezone="Mars/Olympus"), "patient 3: time zone 'Mars/Olympus' is not an IANA time zone"),
        (new(3, pin="12"), "patient 3: PIN must be exactly 4 digits"),
        (new(1), "patient 3: the phone number appears twice in this enrolment"),
    ],
)
def test_one_bad_patient_refuses_them_all(app, bad, message):
    with pytest.raises(InvalidPatient) as refused:
        run(app, [Enrolment(new(1)), Enrolment(new(2)), Enrolment(bad)])
    assert message in str(refused.value)
    assert "Bulk Patient" not in str(refused.value) and "+1202555" not in str(refused.value)  # no PHI
    assert count(app, Patient) == 0 and count(app, AuditEvent) == 0


def test_a_number_already_enrolled_is_refused(app, add_patient):
    add_patient(phone="+12025550002")
    with pytest.raises(InvalidPatient, match="patient 2: a patient with this phone number is already enrolled"):
        run(app, [Enrolment(new(1)), Enrolment(new(2))])
    assert count(app, Patient) == 1
