"""Run the real scheduler on a simulated clock: jump to each due time and tick, until a given moment.

A discrete-event loop: rather than ticking every 30 simulated seconds, it reads the earliest due
attempt from the database, moves the clock there, and runs the same dispatch tick the scheduler
process runs. Calls placed through the mock adapter are answered by the offline phone at once.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import Flask

from ivr_cbt.clock import SimulatedClock
from ivr_cbt.models import AttemptState, CallAttempt
from ivr_cbt.scheduling.dispatch import TickReport
from ivr_cbt.scheduling.process import tick

_attempts = CallAttempt.__table__
_NEXT_DUE = sa.select(sa.func.min(_attempts.c.due_at)).where(_attempts.c.state == AttemptState.PENDING.value)


def advance(app: Flask, until: datetime, *, max_ticks: int = 1_000_000) -> list[TickReport]:
    """Tick at every due time up to ``until``; leave the clock at ``until``; return the tick reports."""
    clock = app.extensions["clock"]
    if not isinstance(clock, SimulatedClock):
        raise TypeError("advance() needs the app to run on a SimulatedClock")
    reports = []
    engine = app.extensions["db_engine"]
    for _ in range(max_ticks):
        with engine.connect() as conn:
            due = conn.execute(_NEXT_DUE).scalar()
        if due is None or due > until:
            break
        clock.set(max(due, clock.now()))
        reports.append(tick(app, clock.now()))
    clock.set(max(until, clock.now()))
    return reports
