"""What every dashboard view shares: the signed-in user, the clock, access checks, response headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import wraps

from flask import abort, current_app, request
from flask_login import current_user, login_required

from ivr_cbt import db
from ivr_cbt.dashboard import accounts
from ivr_cbt.models import Patient, UserRole

# Pages show patient data: no caching anywhere, and nothing loaded or sent outside this origin.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",  # a therapist's recording, played back in the feedback queue
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)


@dataclass(frozen=True)
class SignedIn:
    """The user behind a request, as Flask-Login expects it. ``token`` names the login session."""

    id: int
    email: str
    role: UserRole
    token: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.token

    @property
    def actor(self) -> str:
        """How the audit trail names this user (an id, never a name)."""
        return f"user:{self.id}"

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN


def now() -> datetime:
    return current_app.extensions["clock"].now()


def item_keys() -> list[str]:
    from ivr_cbt.calls import DEFAULT_FLOW

    return current_app.extensions["voice_settings"].flows[DEFAULT_FLOW].item_keys()


def items() -> dict:
    from ivr_cbt.calls import DEFAULT_FLOW

    flow = current_app.extensions["voice_settings"].flows[DEFAULT_FLOW]
    return {key: flow.items[key] for key in flow.item_keys()}


def own_patient_ids():
    return accounts.own_patient_ids(current_user)


def patient_or_404(patient_id: int) -> Patient:
    """The patient if they are the signed-in therapist's own; 404 for every other id, existing or not."""
    patient = accounts.own_patient(db.session(), current_user, patient_id)
    if patient is None:
        abort(404)
    return patient


def role_required(role: UserRole):
    """Sign-in required, and this role: anyone else gets 403."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if current_user.role != role:
                abort(403)
            return view(*args, **kwargs)

        return login_required(wrapped)

    return decorate


def protect_headers(response):
    """Set no-store, the CSP and friends on every dashboard response but static files."""
    if request.endpoint and not request.endpoint.endswith(".static"):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
    return response


def local_time(value: datetime | None, zone: str, fmt: str = "%a %d %b %Y %H:%M %Z") -> str:
    """A UTC time as wall time in ``zone`` (a patient's), e.g. 'Mon 02 Mar 2026 10:05 EST'."""
    if value is None:
        return "-"
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone)).strftime(fmt)
