"""Dispatch speed: one tick with 1,000 due attempts when 10,000 and when 100,000 patients are enrolled.

    make bench                                   # SQLite, plus PostgreSQL if BENCH_DATABASE_URL
    python benchmarks/dispatch.py --sizes 10000 100000 --due 1000 --repeat 7    # (or TEST_DATABASE_URL) is set

Target (issue 3): under 0.5 s per tick, and the 100,000-patient tick within 1.5x of the
10,000-patient tick: the cost must grow with what is due, not with who is enrolled.

The data are inserted in bulk (PostgreSQL's COPY, SQLite multi-row executemany; no ORM enrolment). Every patient is five
weeks into the program: weeks 0-4 each have a finished attempt, its call and a complete check-in;
week 5 has one pending attempt. For ``--due`` of them (spread evenly over the ids, in New York,
called on Mondays at 10:00) that attempt is due now, Monday 10:00 in New York; the others are due
later in the week in their own zones.

The tick is the real one (``Dispatcher.tick`` of an app built by ``create_app``) with the mock
adapter in record-only mode (nobody answers), DISPATCH_BATCH = the due count so that one tick
takes them all, MAX_CONCURRENT_CALLS above it, and pacing off (DISPATCH_CPS=0): at the default
1 call per second a tick of 1,000 calls would take 1,000 s of sleeping, which measures Twilio's
account limit, not our cost. Between runs the due attempts are put back as they were and the
calls the tick created are deleted. After one warm-up tick each, the databases and sizes are
ticked in turn, round after round, so that load from elsewhere on the machine falls on all of
them alike; times are the median and the maximum of ``--repeat`` ticks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr_cbt import create_app, db  # noqa: E402
from ivr_cbt.models import Call, CallAttempt, CheckIn, Patient  # noqa: E402
from ivr_cbt.scheduling import process  # noqa: E402
from ivr_cbt.scheduling.slots import to_utc  # noqa: E402
from ivr_cbt.telephony.mock import MockTelephony  # noqa: E402

NOW = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # Monday 10:00 in New York (EDT)
START = date(2026, 4, 27)  # a Monday: NOW is in program week 5
PAST_WEEKS = 5
ZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/Berlin", "Australia/Sydney")
SCHEMA = f"ivr_bench_dispatch_{os.getpid()}"  # unique to this benchmark (and this run)
CHUNK = 5000


class _Clock:
    def now(self) -> datetime:
        return NOW


def fresh_database(url: str, schema: str) -> str:
    """Migrate an empty database; on PostgreSQL a private schema. Return the URL to use."""
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        admin.dispose()
        url = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        url = url.render_as_string(hide_password=False)
    db.upgrade_database(url)
    return url


def rows_for(patients: int, due: int) -> dict[str, list[dict]]:
    """Every row to insert, generated in Python with explicit ids."""
    every = patients // due
    out: dict[str, list[dict]] = {"patients": [], "call_attempts": [], "calls": [], "checkins": []}
    attempt_id = call_id = checkin_id = 0
    created = datetime.combine(START, time_of_day(0), UTC)
    for pid in range(1, patients + 1):
        is_due = (pid - 1) % every == 0 and (pid - 1) // every < due
        zone_name = "America/New_York" if is_due else ZONES[pid % len(ZONES)]
        zone = ZoneInfo(zone_name)
        call_day = 0 if is_due else 1 + pid % 6
        call_time = time_of_day(10, 0) if is_due else time_of_day(9 + pid % 10, 15)
        out["patients"].append(
            {
                "id": pid,
                "code": f"{100000 + pid}",
                "name": f"Bench Patient {pid}",
                "phone": f"+1202{pid:07d}",
                "pin_hash": "hmac-sha256$x$y",
                "timezone": zone_name,
                "language": "en",
                "program_start": START,
                "status": "active",
                "feedback_mode": "automated",
                "call_day": call_day,
                "call_time": call_time,
                "window_start": time_of_day(9, 0),
                "window_end": time_of_day(20, 0),
                "cadence": "weekly",
                "program_weeks": 11,
                "created_at": created,
            }
        )
        for week in range(PAST_WEEKS + 1):
            day = START + timedelta(weeks=week, days=call_day)
            slot_at = to_utc(day, call_time, zone)
            attempt_id += 1
            finished = week < PAST_WEEKS
            sid = f"CA{attempt_id:032x}" if finished else None
            out["call_attempts"].append(
                {
                    "id": attempt_id,
                    "patient_id": pid,
                    "flow_id": "weekly_checkin",
                    "week": week,
                    "slot_at": slot_at,
                    "slot_local": slot_at.astimezone(zone).isoformat(),
                    "slot_deadline": to_utc(START + timedelta(weeks=week + 1), time_of_day(0), zone),
                    "attempt": 0,
                    "due_at": slot_at,
                    "state": "done" if finished else "pending",
                    "claimed_by": None,
                    "lease_until": None,
                    "call_sid": sid,
                    "outcome": "completed" if finished else None,
                    "created_at": created,
                    "updated_at": slot_at if finished else created,
                }
            )
            if finished:
                call_id += 1
                checkin_id += 1
                out["checkins"].append(
                    {
                        "id": checkin_id,
                        "patient_id": pid,
                        "kind": "weekly",
                        "week": week,
                        "day": None,
                        "status": "complete",
                        "next_item": None,
                        "started_at": slot_at,
                        "updated_at": slot_at,
                        "completed_at": slot_at + timedelta(minutes=2),
                    }
                )
                out["calls"].append(
                    {
                        "id": call_id,
                        "call_sid": sid,
                        "patient_id": pid,
                        "checkin_id": checkin_id,
                        "attempt_id": attempt_id,
                        "direction": "outbound-api",
                        "status": "completed",
                        "answered_by": "human",
                        "language": "en",
                        "flow_id": "weekly_checkin",
                        "flow_state": None,
                        "step": 9,
                        "last_twiml": None,
                        "created_at": slot_at,
                        "answered_at": slot_at,
                        "ended_at": slot_at + timedelta(minutes=2),
                        "duration_s": 120,
                    }
                )
    return out


def _plain(value):
    """A value as the columns store it: aware datetimes as naive UTC (see ivr_cbt.db.UTCDateTime)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def insert(engine: sa.Engine, rows: dict[str, list[dict]]) -> None:
    """Set-based: PostgreSQL's COPY; on SQLite, multi-row executemany in chunks."""
    tables = {"patients": Patient, "call_attempts": CallAttempt, "checkins": CheckIn, "calls": Call}
    with engine.begin() as conn:
        for name, model in tables.items():
            table = model.__table__
            if conn.dialect.name == "postgresql":
                columns = list(rows[name][0])
                cursor = conn.connection.driver_connection.cursor()
                with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows[name]:
                        copy.write_row([_plain(row[c]) for c in columns])
                continue
            for i in range(0, len(rows[name]), CHUNK):
                conn.execute(table.insert(), rows[name][i : i + CHUNK])
        if conn.dialect.name == "postgresql":
            for name in tables:  # ids were given explicitly: move the sequences past them
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"
                )
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def reset(engine: sa.Engine, due_ids: list[int]) -> None:
    """Put the due attempts back as they were before the tick; drop the calls it created."""
    attempts, calls = CallAttempt.__table__, Call.__table__
    with engine.begin() as conn:
        conn.execute(sa.delete(calls).where(calls.c.attempt_id.in_(due_ids)))
        conn.execute(
            sa.update(attempts)
            .where(attempts.c.id.in_(due_ids))
            .values(state="pending", claimed_by=None, lease_until=None, call_sid=None, outcome=None, updated_at=NOW)
        )
        conn.exec_driver_sql("DELETE FROM dispatch_pacing")


@dataclass
class Setup:
    database: str
    patients: int
    due: int
    dispatcher: object
    engine: sa.Engine
    due_ids: list[int]
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def prepare(database: str, url: str, patients: int, due: int) -> Setup:
    """A migrated database holding ``patients`` with ``due`` attempts due at NOW, and its app's dispatcher."""
    app = create_app(
        {
            "DATABASE_URL": url,
            "TELEPHONY": MockTelephony(seed=1),  # records only: nobody answers
            "CLOCK": _Clock(),
            "DISPATCH_CPS": 0,  # pacing off: measure our cost, not the sleeps
            "DISPATCH_BATCH": due,  # one tick takes every due attempt
            "MAX_CONCURRENT_CALLS": due * 10,
            "LOG_LEVEL": "WARNING",
        }
    )
    engine = app.extensions["db_engine"]
    insert(engine, rows_for(patients, due))
    attempts = CallAttempt.__table__
    with engine.connect() as conn:
        due_ids = list(
            conn.execute(sa.select(attempts.c.id).where(attempts.c.state == "pending", attempts.c.due_at <= NOW))
            .scalars()
            .all()
        )
    assert len(due_ids) == due, (len(due_ids), due)
    return Setup(database, patients, due, process.dispatcher(app), engine, due_ids)


def run_tick(setup: Setup) -> None:
    reset(setup.engine, setup.due_ids)
    started, cpu = time.perf_counter(), time.process_time()
    report = setup.dispatcher.tick(NOW)
    setup.times.append(time.perf_counter() - started)
    setup.cpu.append(time.process_time() - cpu)
    assert (report.claimed, report.placed) == (setup.due, setup.due), str(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ivr-bench-dispatch-"))
    databases = [("SQLite", lambda n: f"sqlite:///{tmp / f'dispatch-{n}.sqlite'}")]
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if pg:
        databases.append(("PostgreSQL", lambda _n: pg))

    print(
        f"Dispatch tick: {args.due} due attempts, mock adapter (record only), pacing off; "
        f"median and max of {args.repeat} ticks; {os.cpu_count()} cores"
    )
    setups: list[Setup] = []
    try:
        for label, url_for in databases:
            for n in args.sizes:
                url = fresh_database(url_for(n), f"{SCHEMA}_{n}")
                started = time.perf_counter()
                setups.append(prepare(label, url, n, args.due))
                print(f"  {label}: {n} patients inserted in {time.perf_counter() - started:.0f} s", flush=True)
        for setup in setups:  # one tick each to warm caches, not counted
            run_tick(setup)
            setup.times.clear()
            setup.cpu.clear()
        for _ in range(args.repeat):  # side by side: each round ticks every database and size once
            for setup in setups:
                run_tick(setup)
    finally:
        for setup in setups:
            setup.engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)  # the 100,000-patient SQLite file is about 0.5 GB
        if pg:
            admin = sa.create_engine(pg)
            with admin.begin() as conn:
                for n in args.sizes:
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA}_{n} CASCADE")
            admin.dispose()

    print(
        f"{'database':<11}{'patients':>9} {'attempts':>9} {'due':>6} {'median s':>9} {'max s':>7} {'ratio':>6}"
        f" {'cpu s':>6}"
    )
    for setup in setups:
        first = next(s for s in setups if s.database == setup.database)
        median = statistics.median(setup.times)
        print(
            f"{setup.database:<11}{setup.patients:>9} {setup.patients * (PAST_WEEKS + 1):>9} {setup.due:>6} "
            f"{median:>9.3f} {max(setup.times):>7.3f} {median / statistics.median(first.times):>6.2f}"
            f" {statistics.median(setup.cpu):>6.3f}"
        )
    print(f"ratio: median tick over the {args.sizes[0]}-patient median tick on the same database (target: <= 1.5)")
    print("cpu s: median CPU time of the dispatching process per tick (PostgreSQL's own work is not in it)")
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
