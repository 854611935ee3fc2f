"""Several dispatcher processes on one PostgreSQL queue: every due attempt placed exactly once, none lost."""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ivr_cbt import db
from ivr_cbt.models import AttemptState, Call, CallAttempt, Patient
from ivr_cbt.scheduling import attempts as planning
from ivr_cbt.simulator.callees import attempt_of

from .conftest import AUTH_TOKEN, PG_URL, PUBLIC_BASE_URL, START, T0
from .dispatch_worker import dispatch_until_idle

PROCESSES = 4
DUE = 2000


def enrol_in_bulk(app, count: int) -> None:
    """``count`` patients called on Mondays at 10:00 in New York (T0), inserted in one statement,
    then given their first attempt by the real planner (``reconcile``), as after a restore."""
    patients = Patient.__table__
    rows = [
        {
            "code": f"{200000 + n}",
            "name": f"Process Test {n}",
            "phone": f"+1303{n:07d}",
            "pin_hash": "hmac-sha256$x$y",
            "timezone": "America/New_York",
            "language": "en",
            "program_start": START,
            "status": "active",
            "feedback_mode": "automated",
            "call_day": 0,
            "created_at": T0 - timedelta(days=8),
        }
        for n in range(count)
    ]
    with app.extensions["db_engine"].begin() as conn:
        conn.execute(patients.insert(), rows)
        planned = planning.reconcile(conn, app.extensions["voice_settings"].scheduling, T0 - timedelta(hours=1))
    assert planned == count


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="several dispatchers need PostgreSQL (TEST_DATABASE_URL); SQLite runs one")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_four_dispatcher_processes_place_each_of_2000_due_attempts_exactly_once(make_app, database_url, tmp_path):
    app = make_app()
    enrol_in_bulk(app, DUE)
    with app.extensions["db_engine"].connect() as conn:
        due = set(
            conn.execute(
                sa.select(CallAttempt.id).where(CallAttempt.state == AttemptState.PENDING, CallAttempt.due_at <= T0)
            ).scalars()
        )
    assert len(due) == DUE

    record = tmp_path / "placed.jsonl"
    config = {
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TELEPHONY_BACKEND": "record",  # calls are only recorded, one JSON line each, by every process
        "MOCK_RECORD_FILE": str(record),
        # Pacing off: at the default 1 call per second, 2,000 calls take 2,000 s by design (the shared
        # pacing row serialises all dispatchers). Nothing answers, so every placed call stays in flight:
        # the concurrency cap must exceed the total or the dispatchers would stop at the cap.
        "DISPATCH_CPS": 0,
        "MAX_CONCURRENT_CALLS": DUE * 2,
        # Small claims, so that the four processes claim in turn many times and contend for the same rows.
        "DISPATCH_BATCH": 25,
        "LOG_LEVEL": "WARNING",
    }
    context = multiprocessing.get_context("spawn")
    start, reports = context.Barrier(PROCESSES), context.Queue()
    workers = [
        context.Process(target=dispatch_until_idle, args=(config, T0.isoformat(), start, reports))
        for _ in range(PROCESSES)
    ]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    results = []
    try:
        for _ in workers:
            results.append(reports.get(timeout=300))
    except queue.Empty:
        pytest.fail(f"a dispatcher process did not finish; exit codes {[w.exitcode for w in workers]}")
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    elapsed = time.monotonic() - began
    assert [w.exitcode for w in workers] == [0] * PROCESSES

    lines = [json.loads(line) for line in record.read_text().splitlines()]
    placed = [attempt_of(line["answer_url"]) for line in lines]
    assert len(placed) == DUE  # 2,000 placements...
    assert set(placed) == due  # ...of 2,000 distinct attempts: each due attempt placed exactly once
    by_process = {pid: placed_count for pid, _ticks, _claimed, placed_count in results}
    assert sorted(by_process) == sorted({line["pid"] for line in lines})
    assert len(by_process) == PROCESSES and all(by_process.values())  # every process took its share
    assert sum(claimed for _pid, _ticks, claimed, _placed in results) == DUE  # no attempt claimed twice

    sid_of = {attempt_of(line["answer_url"]): line["sid"] for line in lines}
    with app.app_context():
        attempts = db.session().execute(sa.select(CallAttempt.id, CallAttempt.state, CallAttempt.call_sid)).all()
        calls = dict(db.session().execute(sa.select(Call.attempt_id, Call.call_sid)).all())
    # None lost: every attempt row ends placed, with the sid its placement got, and has its call row.
    assert {row.state for row in attempts} == {AttemptState.PLACED}
    assert {row.id: row.call_sid for row in attempts} == sid_of == calls
    print(
        f"\n{PROCESSES} dispatcher processes, {DUE} due attempts: placed {len(placed)} "
        f"({len(set(placed))} distinct) in {elapsed:.1f} s; per process "
        + ", ".join(f"{n} in {ticks} ticks" for _pid, ticks, _claimed, n in sorted(results))
    )
