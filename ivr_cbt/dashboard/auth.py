"""Signing in and out: the login form, Flask-Login wiring, and what happens when a session ends."""

from __future__ import annotations

import math

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user

from ivr_cbt import audit, db
from ivr_cbt.dashboard import logins
from ivr_cbt.dashboard.forms import ButtonForm, LoginForm
from ivr_cbt.dashboard.web import SignedIn, now

bp = Blueprint("auth", __name__)


def init_app(app: Flask) -> None:
    manager = LoginManager()
    manager.init_app(app)
    manager.user_loader(load_user)
    manager.unauthorized_handler(unauthorized)
    app.register_blueprint(bp)


def load_user(token: str) -> SignedIn | None:
    """Find the user of a login session; end the session if it has gone idle or expired."""
    db_session = db.session()
    user, reason = logins.resume(db_session, token, now(), current_app.extensions["dashboard"].lifetimes)
    signed_in = SignedIn(user.id, user.email, user.role, token) if user is not None else None
    db_session.commit()  # the idle clock, or the end of the session; and no transaction left open
    g.session_end_reason = reason
    return signed_in


def unauthorized():
    """Not signed in (or no longer): JSON callers get 401, pages go to the login form."""
    reason = g.get("session_end_reason")
    session.clear()  # drop the dead token with everything else
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return jsonify(error="not signed in"), 401
    if reason in ("idle", "expired"):
        flash("Your session has ended. Please sign in again.", "info")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target))


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("dashboard.caseload")


def client_address() -> str:
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with email and password."""
    form = LoginForm()
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    status = 200
    if form.validate_on_submit():
        app = current_app
        result = logins.sign_in(
            db.session(),
            email=form.email.data,
            password=form.password.data,
            client=client_address(),
            hasher=app.extensions["dashboard"].hasher,
            secret=app.config["SECRET_KEY"],
            limits=app.extensions["dashboard"].limits,
            now=now(),
        )
        db.session().commit()
        if result.token is not None:
            session.clear()  # a fresh session (and CSRF token) at every sign-in
            session.permanent = True
            login_user(SignedIn(result.user.id, result.user.email, result.user.role, result.token))
            return redirect(_safe_next(request.args.get("next")))
        if result.retry_after is not None:
            minutes = max(1, math.ceil(result.retry_after.total_seconds() / 60))
            flash(f"Too many attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.", "error")
            status = 429
        else:
            flash("That email and password do not match an active account.", "error")
            status = 401
    elif request.method == "POST":
        status = 400
    return render_template("dashboard/login.html", form=form), status


@bp.post("/logout")
def logout():
    """Sign out: the login session ends on the server, so the cookie is worthless from now on."""
    form = ButtonForm()
    if current_user.is_authenticated and form.validate_on_submit():
        logins.end(db.session(), current_user.token, now())
        audit.record(db.session(), now(), current_user.actor, "logout")
        db.session().commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
