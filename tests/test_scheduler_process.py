"""The real scheduler process: its job settings, a call placed once by `manage.py scheduler`, a clean stop,
and a scheduler killed in the middle of a tick whose successor places nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ivr_cbt.config import PROJECT_ROOT
from ivr_cbt.models import AttemptState, CallAttempt
from ivr_cbt.scheduling import process
from ivr_cbt.simulator.callees import attempt_of

from .conftest import AUTH_TOKEN, PUBLIC_BASE_URL

WAIT_S = 90  # upper bound of every wait below; each returns as soon as its condition holds


def test_the_jobs_run_with_the_settings_the_process_documents(app):
    scheduler = process.build_scheduler(app, BackgroundScheduler)
    scheduler.start(paused=True)  # jobs get their defaults when the scheduler starts; paused, none runs
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert sorted(jobs) == ["dispatch", "feedback", "reconcile"]
        for job in jobs.values():
            # Missed ticks run once, not in a burst; never two at once; a late tick still runs.
            assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)
            assert isinstance(job.trigger, IntervalTrigger) and job.trigger.timezone == UTC
        assert jobs["dispatch"].trigger.interval == timedelta(seconds=app.config["DISPATCH_INTERVAL_SECONDS"])
        assert jobs["reconcile"].trigger.interval == timedelta(hours=process.RECONCILE_HOURS)
        assert jobs["feedback"].trigger.interval == timedelta(minutes=app.config["FEEDBACK_INTERVAL_MINUTES"])
        assert scheduler.timezone == UTC
    finally:
        scheduler.shutdown(wait=False)


def test_the_dispatch_interval_comes_from_the_configuration(make_app):
    scheduler = process.build_scheduler(make_app(DISPATCH_INTERVAL_SECONDS=7), BackgroundScheduler)
    scheduler.start(paused=True)
    try:
        assert scheduler.get_job("dispatch").trigger.interval == timedelta(seconds=7)
    finally:
        scheduler.shutdown(wait=False)


# --- real processes ------------------------------------------------------------------------------------


def zone_near_midday(now: datetime) -> ZoneInfo:
    """A fixed-offset IANA zone where ``now`` is between 12:00 and 13:00, well inside any call window."""
    hours = (12 - now.hour) % 24
    if hours > 14:
        hours -= 24
    return ZoneInfo("Etc/GMT" if hours == 0 else f"Etc/GMT{-hours:+d}")  # Etc/GMT-3 is UTC+3


def enrol_due_now(add_patient, clock, count: int) -> list[int]:
    """``count`` patients whose call this week (09:00 today, local) is due now: it is past 12:00 locally."""
    now = datetime.now(UTC)
    clock.set(now)
    zone = zone_near_midday(now)
    today = now.astimezone(zone).date()
    return [
        add_patient(timezone=zone.key, start=today, call_day=today.weekday(), call_time=time_of_day(9, 0))
        for _ in range(count)
    ]


def scheduler_env(database_url: str, record: Path, **settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TELEPHONY_BACKEND")}
    env.update(
        DATABASE_URL=database_url,
        TELEPHONY_BACKEND="record",
        MOCK_RECORD_FILE=str(record),
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        DISPATCH_INTERVAL_SECONDS="1",
        DISPATCH_CPS="0",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in settings.items()})
    return env


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "scheduler"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def placements(record: Path) -> list[int]:
    """The attempt id of every call placed so far, one per line of the record file."""
    if not record.exists():
        return []
    return [attempt_of(json.loads(line)["answer_url"]) for line in record.read_text().splitlines() if line]


def wait_for(condition, what: str, process_: subprocess.Popen | None = None, log: Path | None = None):
    """Poll ``condition`` until it returns something true; fail after WAIT_S or if the process exits."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if value := condition():
            return value
        if process_ is not None and process_.poll() is not None:
            pytest.fail(f"the scheduler exited ({process_.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{log.read_text()}" if log else ""))


def set_due(app, attempt_id: int, when: datetime) -> None:
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(sa.update(CallAttempt).where(CallAttempt.id == attempt_id).values(due_at=when))


def states(app, ids: list[int]) -> dict[int, AttemptState]:
    with app.extensions["db_engine"].connect() as conn:
        rows = conn.execute(sa.select(CallAttempt.id, CallAttempt.state).where(CallAttempt.id.in_(ids))).all()
    return {row.id: row.state for row in rows}


def first_attempts(app, patients: list[int]) -> list[int]:
    with app.extensions["db_engine"].connect() as conn:
        return list(
            conn.execute(
                sa.select(CallAttempt.id).where(CallAttempt.patient_id.in_(patients)).order_by(CallAttempt.id)
            ).scalars()
        )


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_scheduler_process_places_a_due_call_once_and_stops_cleanly(
    app, add_patient, clock, database_url, tmp_path, stop
):
    now_patient, later_patient = enrol_due_now(add_patient, clock, 2)
    now_attempt, later_attempt = first_attempts(app, [now_patient, later_patient])
    set_due(app, later_attempt, datetime.now(UTC) + timedelta(days=1))
    record, log = tmp_path / "placed.jsonl", tmp_path / "scheduler.log"
    scheduler = start_scheduler(scheduler_env(database_url, record), log)
    try:
        wait_for(lambda: now_attempt in placements(record), "the due call was placed", scheduler, log)
        # Another call falls due two seconds later: placing it takes further ticks, which must not
        # place the first call again.
        set_due(app, later_attempt, datetime.now(UTC) + timedelta(seconds=2))
        wait_for(lambda: later_attempt in placements(record), "the later call was placed", scheduler, log)
        assert placements(record) == [now_attempt, later_attempt]
        assert set(states(app, [now_attempt, later_attempt]).values()) == {AttemptState.PLACED}
    finally:
        scheduler.send_signal(stop)
        try:
            returncode = scheduler.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            raise
    assert returncode == 0, log.read_text()
    output = log.read_text()
    assert "scheduler stopped" in output and "Traceback" not in output


@pytest.mark.slow
def test_a_scheduler_killed_mid_tick_leaves_nothing_to_redial_and_its_successor_places_nothing_twice(
    app, add_patient, clock, database_url, tmp_path
):
    *patients, extra_patient = enrol_due_now(add_patient, clock, 11)
    attempts, (extra,) = first_attempts(app, patients), first_attempts(app, [extra_patient])
    set_due(app, extra, datetime.now(UTC) + timedelta(days=1))
    record, log = tmp_path / "placed.jsonl", tmp_path / "scheduler.log"
    # Two calls a second and a tick every 5 s: one tick takes all ten due calls and lasts about 4.5 s,
    # long enough to be killed in. A 1 s lease: the claims expire 6 s after the tick began
    # (the lease plus 10 calls at 2 a second).
    env = scheduler_env(database_url, record, DISPATCH_CPS=2, DISPATCH_INTERVAL_SECONDS=5, ATTEMPT_LEASE_SECONDS=1)
    first = start_scheduler(env, log)
    try:
        wait_for(lambda: len(placements(record)) >= 3, "three calls were placed", first, log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=WAIT_S)
    before = placements(record)
    killed = states(app, attempts)
    assert set(killed.values()) <= {AttemptState.PLACING, AttemptState.PLACED}  # all claimed and recorded first
    assert AttemptState.PLACING in killed.values()  # killed mid-tick: some were never placed
    assert {i for i, state in killed.items() if state == AttemptState.PLACED} <= set(before)
    with app.extensions["db_engine"].connect() as conn:
        expiry = conn.execute(sa.select(sa.func.max(CallAttempt.lease_until))).scalar()
    # Another call falls due after the leases expire: placing it proves the successor ran a tick
    # after they expired (each tick recovers expired leases before it claims anything).
    set_due(app, extra, expiry + timedelta(seconds=1))

    second = start_scheduler(env, log)
    try:
        wait_for(lambda: extra in placements(record), "the successor placed the later call", second, log)
        recovered = states(app, attempts)
    finally:
        second.send_signal(signal.SIGTERM)
        returncode = second.wait(timeout=WAIT_S)
    assert returncode == 0, log.read_text()
    # Every attempt the killed process had in hand is placed or ambiguous; none was dialled again.
    assert {i: s for i, s in recovered.items() if s != AttemptState.AMBIGUOUS} == {
        i: s for i, s in killed.items() if s == AttemptState.PLACED
    }
    assert AttemptState.AMBIGUOUS in recovered.values()
    after = placements(record)
    assert after == [*before, extra]
