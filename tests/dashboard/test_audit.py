"""Every view and export of patient data leaves an audit row: who, what, when. Ids only."""

from __future__ import annotations

import json

import pytest

from ivr_cbt.models import AuditEvent

from ..conftest import T0
from ..helpers import rows
from .conftest import post_form


def dashboard_events(app) -> list[AuditEvent]:
    return [e for e in rows(app, AuditEvent) if e.actor.startswith("user:")]


@pytest.mark.parametrize(
    "path, action, per_patient",
    [
        ("/patients/{id}", "patient_viewed", True),
        ("/patients/{id}/export/csv", "export_weekly_log", True),
        ("/patients/{id}/export/json", "export_weekly_log", True),
        ("/patients/{id}/export/fhir", "export_weekly_log", True),
        ("/", "caseload_viewed", False),
        ("/alerts", "alerts_viewed", False),
        ("/caseload/export/csv", "export_weekly_log", False),
    ],
)
def test_each_view_and_export_writes_one_audit_row(
    app, signed_in, therapist, add_patient, assign, call, path, action, per_patient
):
    patient = add_patient(name="Audit Person", phone="+12025550199")
    assign(patient, therapist)
    call(patient, "1234,5,7,4200#,3,1,2", now=T0)
    before = len(dashboard_events(app))
    assert signed_in.get(path.format(id=patient)).status_code == 200
    new = dashboard_events(app)[before:]
    assert [(e.actor, e.action) for e in new] == [(f"user:{therapist.id}", action)]
    (event,) = new
    if per_patient:
        assert event.patient_id == patient
    else:
        assert event.patient_id is None and event.detail["patient_ids"] == [patient]
    text = json.dumps(event.detail)
    assert "Audit Person" not in text and "2025550199" not in text


def test_exports_record_their_format_and_size(app, signed_in, therapist, add_patient, assign):
    patient = add_patient()
    assign(patient, therapist)
    signed_in.get(f"/patients/{patient}/export/fhir")
    signed_in.get(f"/patients/{patient}/export/csv")
    exports = [e.detail for e in dashboard_events(app) if e.action == "export_weekly_log"]
    assert exports == [{"format": "fhir", "rows": 0}, {"format": "csv", "rows": 2}]


def test_acknowledging_an_alert_is_audited(app, signed_in, therapist, add_patient, assign, call):
    patient = add_patient()
    assign(patient, therapist)
    call(patient, "1234,5,7,4200#,3,1,2", now=T0)
    alert_id = next(e.detail["alert_id"] for e in rows(app, AuditEvent) if e.action == "alert_opened")
    post_form(signed_in, f"/alerts/{alert_id}/acknowledge", {"note": "ok"}, page="/alerts")
    (event,) = [e for e in dashboard_events(app) if e.action == "alert_acknowledged"]
    assert (event.patient_id, event.detail) == (patient, {"alert_id": alert_id})


def test_a_refused_look_at_another_patient_writes_no_patient_view(app, signed_in, add_patient):
    stranger = add_patient()
    assert signed_in.get(f"/patients/{stranger}").status_code == 404
    assert [e for e in rows(app, AuditEvent) if e.patient_id == stranger and e.action != "patient_enrolled"] == []


def test_admin_work_is_audited(app, admin_client, admin, therapist, add_patient):
    patient = add_patient()
    admin_client.get("/admin/assignments")
    post_form(admin_client, f"/admin/assignments/{patient}", {"therapist": str(therapist.id)}, page="/admin/users")
    actions = [(e.action, e.patient_id) for e in dashboard_events(app) if e.action != "login"]
    assert actions == [("assignments_viewed", None), ("patient_assigned", patient)]
