"""Server-side login sessions: the cookie carries a random token, the database says if it still counts.

Keeping the session on the server is what makes logout final (a copied cookie is dead after it)
and lets every gunicorn worker apply the same idle and absolute limits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy import orm

from ivr_cbt import audit
from ivr_cbt.dashboard import accounts, throttle
from ivr_cbt.models import LoginSession, User

# The idle clock is reset at most this often, so most page views do not write.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: orm.Session, user: User, now: datetime) -> str:
    """Open a login session for ``user``; return the token for the cookie."""
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(token_hash=_hash(token), user_id=user.id, created_at=now, last_seen_at=now))
    user.last_login_at = now
    return token


def resume(session: orm.Session, token: str, now: datetime, lifetimes: Lifetimes) -> tuple[User | None, str | None]:
    """Return the user a token signs in, or (None, why not): unknown, ended, idle, expired or inactive."""
    row = session.execute(
        sa.select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == _hash(token))
    ).one_or_none()
    if row is None:
        return None, "unknown"
    login, user = row
    if login.ended_at is not None:
        return None, "ended"
    reason = None
    if not user.active:
        reason = "inactive"
    elif now - login.created_at >= lifetimes.absolute:
        reason = "expired"
    elif now - login.last_seen_at >= lifetimes.idle:
        reason = "idle"
    if reason is not None:
        login.ended_at, login.end_reason = now, reason
        audit.record(session, now, f"user:{user.id}", "session_ended", reason=reason)
        return None, reason
    if now - login.last_seen_at >= TOUCH_EVERY:
        login.last_seen_at = now
    return user, None


def end(session: orm.Session, token: str, now: datetime, reason: str = "logout") -> None:
    session.execute(
        sa.update(LoginSession)
        .where(LoginSession.token_hash == _hash(token), LoginSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )


@dataclass(frozen=True)
class SignIn:
    user: User | None = None
    token: str | None = None
    retry_after: timedelta | None = None  # set when the throttle refused to even check


def account_key(secret: str, email: str) -> str:
    """What the throttle stores for an account: a keyed hash, never the typed text (which may be a password)."""
    return hmac.new(secret.encode(), accounts.normalise_email(email).encode(), hashlib.sha256).hexdigest()


def sign_in(
    session: orm.Session,
    *,
    email: str,
    password: str,
    client: str,
    hasher: PasswordHasher,
    secret: str,
    limits: throttle.Limits,
    now: datetime,
) -> SignIn:
    """Check credentials under the throttle; on success open a login session."""
    account = account_key(secret, email)
    wait = throttle.retry_after(session, account, client, now, limits)
    if wait is not None:
        audit.record(session, now, "anonymous", "login_throttled", client=client)
        return SignIn(retry_after=wait)
    user = accounts.authenticate(session, hasher, email, password)
    throttle.note(session, account, client, user is not None, now)
    if user is None:
        audit.record(session, now, "anonymous", "login_failed", client=client)
        return SignIn()
    token = start(session, user, now)
    audit.record(session, now, f"user:{user.id}", "login", client=client)
    return SignIn(user=user, token=token)
