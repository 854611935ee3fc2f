"""The scheduler process: APScheduler 3.11 running thin, idempotent jobs against the database.

Run it with ``python manage.py scheduler`` (production: one or more such processes beside the
web workers; several are safe on PostgreSQL). Jobs: the dispatch tick (every
DISPATCH_INTERVAL_SECONDS), reconcile (hourly), weekly feedback generation (every
FEEDBACK_INTERVAL_MINUTES; idempotent per patient and week). Job settings, chosen deliberately:

- ``coalesce=True``: ticks missed while the process was busy or asleep run once, not in a burst;
  a tick dispatches everything due, so one run catches up.
- ``max_instances=1``: a slow tick (pacing at 1 call per second) is never overlapped by the next.
- ``misfire_grace_time=None``: a late tick still runs, however late: the database, not the
  timer, says what is due, and skipping a tick would only delay calls.

SIGTERM (systemd's stop) or SIGINT (Ctrl-C) stops it cleanly: a tick in progress is let finish,
so the calls it placed are written down, then the process exits with status 0. A process killed
outright (SIGKILL, a crash) leaves leases that expire; see ivr_cbt/scheduling/dispatch.py.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from ivr_cbt.clock import SimulatedClock
from ivr_cbt.scheduling import attempts as queue
from ivr_cbt.scheduling.dispatch import Dispatcher, TickReport

log = logging.getLogger(__name__)
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
RECONCILE_HOURS = 1


def dispatcher(app: Flask) -> Dispatcher:
    """The app's dispatcher (one per process)."""
    if "dispatcher" not in app.extensions:
        clock = app.extensions["clock"]
        app.extensions["dispatcher"] = Dispatcher(
            # On a simulated clock, pacing waits move the clock instead of the process.
            sleep=clock.advance if isinstance(clock, SimulatedClock) else time.sleep,
            engine=app.extensions["db_engine"],
            telephony=app.extensions["telephony"],
            voice=app.extensions["voice_settings"],
            settings=app.extensions["voice_settings"].scheduling,
            from_number=app.config["TWILIO_FROM_NUMBER"],
            interval_seconds=app.config["DISPATCH_INTERVAL_SECONDS"],
        )
    return app.extensions["dispatcher"]


def tick(app: Flask, now: datetime | None = None) -> TickReport:
    """Run one dispatch tick (the scheduler's job, and ``scheduler run-once``)."""
    return dispatcher(app).tick(now or app.extensions["clock"].now())


def reconcile(app: Flask, now: datetime | None = None) -> int:
    """Give every active patient without a planned call their next one."""
    now = now or app.extensions["clock"].now()
    with app.extensions["db_engine"].connect() as conn:
        planned = queue.reconcile(conn, app.extensions["voice_settings"].scheduling, now)
        conn.commit()
    if planned:
        log.info("reconcile: planned %s patients' next calls", planned)
    return planned


def feedback(app: Flask, now: datetime | None = None):
    """Generate the weekly feedback messages that are due (weeks that closed in each patient's zone)."""
    from ivr_cbt.feedback import generate

    return generate(app, now or app.extensions["clock"].now())


def build_scheduler(app: Flask, scheduler_class: type[BaseScheduler] = BlockingScheduler) -> BaseScheduler:
    """A scheduler (UTC, the job defaults above) holding the dispatch tick, the hourly reconcile and the
    feedback job; not started."""
    scheduler = scheduler_class(timezone=UTC, job_defaults=JOB_DEFAULTS)
    now = datetime.now(UTC)  # APScheduler's own timer: the first tick runs at once
    scheduler.add_job(
        tick,
        IntervalTrigger(seconds=app.config["DISPATCH_INTERVAL_SECONDS"], timezone=UTC),
        args=[app],
        id="dispatch",
        next_run_time=now,
    )
    scheduler.add_job(
        reconcile, IntervalTrigger(hours=RECONCILE_HOURS, timezone=UTC), args=[app], id="reconcile", next_run_time=now
    )
    scheduler.add_job(
        feedback,
        IntervalTrigger(minutes=app.config["FEEDBACK_INTERVAL_MINUTES"], timezone=UTC),
        args=[app],
        id="feedback",
        next_run_time=now,
    )
    return scheduler


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _stop(signum, _frame):
    raise _Stop(signal.Signals(signum).name)


def run_forever(app: Flask) -> None:
    """Run the scheduler in this process until SIGTERM or SIGINT; a tick that is running is let finish."""
    scheduler = build_scheduler(app, BlockingScheduler)
    log.info("scheduler %s: dispatching every %ss", dispatcher(app).worker, app.config["DISPATCH_INTERVAL_SECONDS"])
    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.start()
    except (_Stop, KeyboardInterrupt) as stopped:
        log.info("scheduler stopping (%s)", stopped or "interrupted")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if scheduler.running:
            scheduler.shutdown(wait=True)  # waits for a tick in progress: its calls are recorded
    log.info("scheduler stopped")


def start_in_background(app: Flask) -> BackgroundScheduler:
    """Development only: run the jobs in a thread of the web process (``serve --with-scheduler``)."""
    scheduler = build_scheduler(app, BackgroundScheduler)
    scheduler.start()
    return scheduler
