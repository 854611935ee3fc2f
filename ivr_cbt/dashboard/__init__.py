"""The therapist dashboard: sign-in, caseload, patient pages, alerts, exports, admin, practice phone.

Later features plug in without touching these pages: a patient-page section (``PatientSection``:
e.g. the schedule or the goals) or a navigation link (``NavLink``: e.g. the feedback queue) is
appended to ``app.extensions["dashboard"]`` by the feature's own ``init_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from ivr_cbt.dashboard import accounts, admin, auth, care, feedback_queue, logins, practice, throttle, views, web
from ivr_cbt.feedback.review import MAX_RECORDING_BYTES
from ivr_cbt.models import UserRole

BLUEPRINTS = (auth.bp, views.bp, admin.bp, practice.bp, feedback_queue.bp, care.bp)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The largest request a dashboard page takes: a recording and its form (checked before the body is read).
MAX_REQUEST_BYTES = MAX_RECORDING_BYTES + 64 * 1024


@dataclass(frozen=True)
class PatientSection:
    """A section of the patient page: its template is included with ``record`` and ``extra[id]``."""

    id: str
    title: str
    template: str
    load: Callable[..., Any] | None = None  # (session, patient, now, record) -> what the template needs


@dataclass(frozen=True)
class NavLink:
    endpoint: str
    label: str
    role: UserRole


@dataclass
class Dashboard:
    hasher: PasswordHasher
    limits: throttle.Limits
    lifetimes: logins.Lifetimes
    patient_sections: list[PatientSection] = field(default_factory=list)
    nav: list[NavLink] = field(default_factory=list)


def init_app(app: Flask) -> None:
    lifetimes = app.config.get("SESSION_LIFETIMES") or logins.Lifetimes()
    app.config.update(
        SESSION_COOKIE_SECURE=app.config["APP_ENV"] == "production",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=lifetimes.absolute,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked for the dashboard's blueprints only: webhooks are signed instead
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session, which has its own limits
    )
    app.extensions["dashboard"] = Dashboard(
        hasher=app.config.get("PASSWORD_HASHER") or accounts.default_hasher(),
        limits=app.config.get("LOGIN_LIMITS") or throttle.Limits(),
        lifetimes=lifetimes,
        patient_sections=[
            PatientSection("log", "Weekly log", "dashboard/section_log.html"),
            PatientSection("feedback", "Feedback", "dashboard/section_feedback.html", care.feedback_section),
            PatientSection("goals", "Module and goals", "dashboard/section_goals.html", care.goals_section),
            PatientSection("calls", "Calls", "dashboard/section_calls.html"),
            PatientSection("alerts", "Alerts", "dashboard/section_alerts.html"),
            PatientSection(
                "settings", "Schedule and settings", "dashboard/section_settings.html", care.settings_section
            ),
        ],
        nav=[
            NavLink("dashboard.caseload", "Caseload", UserRole.THERAPIST),
            NavLink("feedback.queue", "Feedback", UserRole.THERAPIST),
            NavLink("dashboard.alerts", "Alerts", UserRole.THERAPIST),
            NavLink("admin.users", "Accounts", UserRole.ADMIN),
            NavLink("admin.assignments", "Assignments", UserRole.ADMIN),
        ],
    )
    if app.config["APP_ENV"] == "development":
        app.extensions["dashboard"].nav.append(NavLink("practice.page", "Practice phone", UserRole.THERAPIST))
    if app.config["TRUSTED_PROXY_COUNT"]:
        # The client address (for the login throttle) comes from X-Forwarded-For set by exactly these proxies.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXY_COUNT"])
    csrf = CSRFProtect(app)
    auth.init_app(app)
    for blueprint in BLUEPRINTS[1:]:
        app.register_blueprint(blueprint)
    names = frozenset(b.name for b in BLUEPRINTS)

    @app.before_request
    def check_csrf():
        if request.method in UNSAFE_METHODS and request.blueprint in names:
            request.max_content_length = MAX_REQUEST_BYTES  # before the form is parsed (for the token)
            csrf.protect()

    @app.after_request
    def headers(response):
        return web.protect_headers(response) if request.blueprint in names else response

    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.add_template_filter(web.local_time, "local")
    app.add_template_global(lambda: app.extensions["dashboard"].nav, "config_nav")


def _too_large(error: RequestEntityTooLarge):
    if request.blueprint not in {b.name for b in BLUEPRINTS}:
        return error
    mb = MAX_RECORDING_BYTES // (1024 * 1024)
    message = f"That upload is too large: a recording may be at most {mb} MB. Go back and choose a smaller file."
    return render_template("dashboard/error.html", message=message), 413


def _csrf_error(error: CSRFError):
    return render_template("dashboard/error.html", message="This form has expired. Go back, reload and try again."), 400
