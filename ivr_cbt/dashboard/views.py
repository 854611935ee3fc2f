"""The therapist's pages: caseload, patient, alerts, exports. Each parses, calls a service, audits, renders."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ivr_cbt import audit, db, exports
from ivr_cbt.dashboard import alert_queue, fhir, weekly
from ivr_cbt.dashboard.caseload import caseload as caseload_rows
from ivr_cbt.dashboard.forms import AcknowledgeForm
from ivr_cbt.dashboard.record import patient_record
from ivr_cbt.dashboard.web import item_keys, items, now, own_patient_ids, patient_or_404
from ivr_cbt.models import Patient, UserRole

bp = Blueprint(
    "dashboard", __name__, template_folder="templates", static_folder="static", static_url_path="/dashboard/static"
)
EXPORT_FORMATS = ("csv", "json", "fhir")


def audited(action: str, *, patient_id: int | None = None, **detail) -> None:
    """Write the audit row for a view or export of patient data, and commit it."""
    audit.record(db.session(), now(), current_user.actor, action, patient_id=patient_id, **detail)
    db.session().commit()


def therapist_only() -> None:
    """Clinical pages are for therapists; an admin is sent to the pages an admin has."""
    if current_user.role != UserRole.THERAPIST:
        abort(403)


@bp.get("/")
@login_required
def caseload():
    """The signed-in therapist's patients, the most urgent first."""
    if current_user.is_admin:
        return redirect(url_for("admin.users"))
    rows = caseload_rows(db.session(), own_patient_ids(), now())
    audited("caseload_viewed", patient_ids=[row.patient.id for row in rows])
    # Built once, not per row: "/patients/" + id is what url_for gives for each (tested).
    patients_url = url_for("dashboard.patient", patient_id=0).removesuffix("0")
    return render_template(
        "dashboard/caseload.html", rows=rows, patients_url=patients_url, alerts_url=url_for("dashboard.alerts")
    )


@bp.get("/patients/<int:patient_id>")
@login_required
def patient(patient_id: int):
    """One patient: the weekly log and its charts, call history and alerts."""
    return render_patient(patient_or_404(patient_id))


def render_patient(patient: Patient, *, problems: dict | None = None, status: int = 200):
    """The patient page (audited); ``problems`` maps a section id to why a change there was refused."""
    record = patient_record(db.session(), patient, now())
    sections = current_app.extensions["dashboard"].patient_sections
    extra = {s.id: s.load(db.session(), patient, now(), record) for s in sections if s.load is not None}
    audited("patient_viewed", patient_id=patient.id)
    page = render_template(
        "dashboard/patient.html",
        record=record,
        items=items(),
        sections=sections,
        extra=extra,
        problems=problems or {},
    )
    return page, status


@bp.get("/alerts")
@login_required
def alerts():
    """Open alerts to acknowledge, and the history of acknowledged ones."""
    therapist_only()
    open_alerts, history = alert_queue.alert_queue(db.session(), own_patient_ids())
    shown = sorted({entry.patient.id for entry in open_alerts + history})
    audited("alerts_viewed", patient_ids=shown)
    return render_template("dashboard/alerts.html", open_alerts=open_alerts, history=history, form=AcknowledgeForm())


@bp.post("/alerts/<int:alert_id>/acknowledge")
@login_required
def acknowledge(alert_id: int):
    """Acknowledge an alert of one's own patient, with a note."""
    therapist_only()
    form = AcknowledgeForm()
    if not form.validate_on_submit():
        flash("Write a note to acknowledge an alert.", "error")
        return redirect(url_for("dashboard.alerts")), 303
    alert = alert_queue.acknowledge(
        db.session(),
        own_patient_ids(),
        alert_id,
        note=form.note.data,
        by=current_user.email,
        actor=current_user.actor,
        now=now(),
    )
    if alert is None:
        abort(404)
    db.session().commit()
    flash(f"Alert #{alert.id} acknowledged.", "info")
    return redirect(url_for("dashboard.alerts")), 303


@bp.get("/patients/<int:patient_id>/export/<fmt>")
@login_required
def export_patient(patient_id: int, fmt: str):
    """A patient's weekly log as CSV, JSON or a FHIR R4 Bundle."""
    patient = patient_or_404(patient_id)
    return _export([patient], fmt, f"patient-{patient_id}-weekly-log", patient_id=patient_id)


@bp.get("/caseload/export/<fmt>")
@login_required
def export_caseload(fmt: str):
    """The whole caseload's weekly log as CSV, JSON or a FHIR R4 Bundle."""
    therapist_only()
    patients = db.session().scalars(sa.select(Patient).where(Patient.id.in_(own_patient_ids())).order_by(Patient.id))
    return _export(list(patients), fmt, "caseload-weekly-log")


def _export(patients: list[Patient], fmt: str, name: str, *, patient_id: int | None = None) -> Response:
    if fmt not in EXPORT_FORMATS:
        abort(404)
    logs = weekly.load(db.session(), patients, now())
    keys = item_keys()
    if fmt == "fhir":
        body = fhir.bundle(logs, items(), base_url=current_app.config["PUBLIC_BASE_URL"], now=now())
        text, mimetype, rows = exports.to_json(body), "application/fhir+json", len(body["entry"])
        filename = f"{name}.fhir.json"
    else:
        export = weekly.export_rows(logs, keys)
        rows = len(export)
        if fmt == "csv":
            text, mimetype, filename = weekly.to_csv(export, keys), "text/csv", f"{name}.csv"
        else:
            text, mimetype, filename = exports.to_json(export), "application/json", f"{name}.json"
    audited(
        "export_weekly_log",
        patient_id=patient_id,
        format=fmt,
        rows=rows,
        **({} if patient_id is not None else {"patient_ids": [p.id for p in patients]}),
    )
    return Response(text, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
