"""Admin pages: accounts (add, deactivate, set a password) and which therapist has which patient.

Admins see patients' names and program details, to assign them, but no clinical data.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from ivr_cbt import db
from ivr_cbt.dashboard import accounts
from ivr_cbt.dashboard.caseload import open_alert_counts
from ivr_cbt.dashboard.forms import AssignForm, ButtonForm, NewUserForm, PasswordForm
from ivr_cbt.dashboard.views import audited
from ivr_cbt.dashboard.web import now, role_required
from ivr_cbt.models import CareAssignment, Patient, User, UserRole

bp = Blueprint("admin", __name__, url_prefix="/admin")
admin_only = role_required(UserRole.ADMIN)
UNASSIGNED = ""


def _hasher():
    return current_app.extensions["dashboard"].hasher


def _user_or_404(user_id: int) -> User:
    user = db.session().get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/users")
@admin_only
def users():
    """Every account, and a form to add one."""
    listed = db.session().scalars(sa.select(User).order_by(User.role, User.email)).all()
    return render_template("dashboard/admin_users.html", users=listed, form=NewUserForm(), button=ButtonForm())


@bp.post("/users")
@admin_only
def add_user():
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(
                db.session(),
                email=form.email.data,
                role=form.role.data,
                password=form.password.data,
                hasher=_hasher(),
                now=now(),
                actor=current_user.actor,
            )
        except accounts.InvalidAccount as exc:
            flash(f"Account not added: {exc}.", "error")
        else:
            db.session().commit()
            flash(f"Added {user.email} ({user.role.value}).", "info")
    else:
        flash("Account not added: " + "; ".join(e for errors in form.errors.values() for e in errors), "error")
    return redirect(url_for("admin.users")), 303


@bp.post("/users/<int:user_id>/active")
@admin_only
def set_active(user_id: int):
    """Deactivate (signing the account out everywhere) or reactivate an account."""
    user = _user_or_404(user_id)
    active = request.form.get("active") == "1"
    if ButtonForm().validate_on_submit() and not (user.id == current_user.id and not active):
        accounts.set_active(db.session(), user, active, now=now(), actor=current_user.actor)
        db.session().commit()
        flash(f"{user.email} is now {'active' if active else 'deactivated'}.", "info")
    else:
        flash("You cannot deactivate your own account.", "error")
    return redirect(url_for("admin.users")), 303


@bp.post("/users/<int:user_id>/password")
@admin_only
def set_password(user_id: int):
    """Set a new password for an account (and sign it out everywhere)."""
    user = _user_or_404(user_id)
    form = PasswordForm()
    if form.validate_on_submit():
        accounts.set_password(
            db.session(), user, form.password.data, hasher=_hasher(), now=now(), actor=current_user.actor
        )
        db.session().commit()
        flash(f"New password set for {user.email}.", "info")
    else:
        flash("Password not set: " + "; ".join(e for errors in form.errors.values() for e in errors), "error")
    return redirect(url_for("admin.users")), 303


def _therapists() -> list[User]:
    query = sa.select(User).where(User.role == UserRole.THERAPIST, User.active.is_(True)).order_by(User.email)
    return list(db.session().scalars(query))


@bp.get("/assignments")
@admin_only
def assignments():
    """Every patient with their therapist; unassigned patients (whose alerts nobody sees) first."""
    rows = (
        db.session()
        .execute(
            sa.select(Patient, CareAssignment.user_id)
            .outerjoin(CareAssignment, CareAssignment.patient_id == Patient.id)
            .order_by(CareAssignment.user_id.is_not(None), Patient.id)
        )
        .all()
    )
    alerts = open_alert_counts(db.session(), sa.select(Patient.id))
    audited("assignments_viewed", patient_ids=[patient.id for patient, _ in rows])
    therapists = _therapists()
    return render_template(
        "dashboard/admin_assignments.html",
        rows=rows,
        therapists=therapists,
        by_id={t.id: t for t in therapists},
        open_alerts={pid: sum(kinds.values()) for pid, kinds in alerts.items()},
        form=AssignForm(),
    )


@bp.post("/assignments/<int:patient_id>")
@admin_only
def assign(patient_id: int):
    """Give a patient to a therapist, or leave them unassigned."""
    if db.session().get(Patient, patient_id) is None:
        abort(404)
    form = AssignForm()
    form.therapist.choices = [SelectChoice(UNASSIGNED, "unassigned")]
    form.therapist.choices += [SelectChoice(str(t.id), t.email) for t in _therapists()]
    if not form.validate_on_submit():
        abort(400)
    therapist = db.session().get(User, int(form.therapist.data)) if form.therapist.data else None
    accounts.assign(db.session(), patient_id, therapist, now=now(), actor=current_user.actor)
    db.session().commit()
    flash(f"Patient {patient_id} is now {'with ' + therapist.email if therapist else 'unassigned'}.", "info")
    return redirect(url_for("admin.assignments")), 303
