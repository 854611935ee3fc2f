"""The login throttle, kept in the database so that every gunicorn worker counts the same attempts.

A per-process limiter (in memory) would let each worker allow its own quota, and one in Redis
would add a service to run. Logins are rare, so one indexed insert and two counts per attempt
cost nothing, and the rows double as a record of who tried what from where.

Two limits: failures per account (a guessed password for one person) and failures per client
address (one machine trying many accounts). A success clears the account's count. Refused
attempts are not counted, so an attacker cannot extend a lock forever; the window is short
enough that a locked-out colleague waits minutes, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.models import LoginAttempt

KEEP = timedelta(days=30)


@dataclass(frozen=True)
class Limits:
    account_failures: int = 5
    client_failures: int = 20
    window: timedelta = timedelta(minutes=15)


def retry_after(session: orm.Session, account: str, client: str, now: datetime, limits: Limits) -> timedelta | None:
    """How long until this account and client may try again, or None if they may try now."""
    since = now - limits.window
    last_success = sa.select(sa.func.max(LoginAttempt.at)).where(
        LoginAttempt.account == account, LoginAttempt.succeeded.is_(True)
    )
    waits = []
    for where, limit in (
        (
            (
                LoginAttempt.account == account,
                LoginAttempt.at > sa.func.coalesce(last_success.scalar_subquery(), since),
            ),
            limits.account_failures,
        ),
        ((LoginAttempt.client == client,), limits.client_failures),
    ):
        failures = list(
            session.scalars(
                sa.select(LoginAttempt.at)
                .where(*where, LoginAttempt.at > since, LoginAttempt.succeeded.is_(False))
                .order_by(LoginAttempt.at.desc())
                .limit(limit)
            )
        )
        if len(failures) >= limit:
            waits.append(failures[-1] + limits.window - now)  # when the oldest counted failure leaves
    return max(waits) if waits else None


def note(session: orm.Session, account: str, client: str, succeeded: bool, now: datetime) -> None:
    """Record an attempt (and forget attempts older than a month)."""
    session.add(LoginAttempt(at=now, account=account[:254], client=client[:64], succeeded=succeeded))
    session.execute(sa.delete(LoginAttempt).where(LoginAttempt.at < now - KEEP))
