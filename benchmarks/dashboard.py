"""Dashboard speed: the caseload page for 500 patients, a patient page with 52 weeks of data, and the
feedback queue of that caseload.

    make bench                          # SQLite, plus PostgreSQL if BENCH_DATABASE_URL (or TEST_DATABASE_URL) is set
    python benchmarks/dashboard.py --patients 500 --weeks 12 --requests 40

Target (issue 5): under 150 ms median each for the caseload and the patient page, server side.
Timed in-process around the full request (routing, sign-in check, queries, template, audit row
and commit), through Flask's test client. Data is generated in bulk with Core inserts; the
caseload's patients are 12 weeks into the program, with five answers a week, a call per week,
some open alerts, and a weekly message for every program week (assembled by the real rules):
the earlier ones delivered, the latest waiting for review (guided arm, a third of the patients)
or ready to play.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from argon2 import PasswordHasher  # noqa: E402

from ivr_cbt import create_app, db  # noqa: E402
from ivr_cbt.dashboard import accounts  # noqa: E402
from ivr_cbt.feedback import rules  # noqa: E402
from ivr_cbt.feedback.program import load_program  # noqa: E402
from ivr_cbt.feedback.summary import History, WeekData, summarize  # noqa: E402
from ivr_cbt.models import Alert, Answer, Call, CareAssignment, CheckIn, FeedbackMessage, Patient  # noqa: E402

NOW = datetime(2026, 3, 2, 15, tzinfo=UTC)
PASSWORD = "benchmark password"
HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
SCHEMA = "ivr_bench_dashboard"
ITEMS = (
    ("pain_avg", 0, 10),
    ("sleep_quality", 0, 10),
    ("steps_avg", 0, 99999),
    ("practice_days", 0, 7),
    ("safety", 1, 2),
)


class _Clock:
    def now(self) -> datetime:
        return NOW


def fresh_database(url: str) -> str:
    """Migrate an empty database; on PostgreSQL a private schema. Return the URL to use."""
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
        admin.dispose()
        url = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
        url = url.render_as_string(hide_password=False)
    db.upgrade_database(url)
    return url


PROGRAM = load_program()


def message(pid: int, week: int, by_week: dict[int, dict], guided: bool, latest: bool, at: datetime) -> dict:
    """A weekly message row as the generation job would store it (the real summary and rules)."""
    history = History(
        week=week,
        weeks={w: WeekData(w, "complete", by_week[w]) for w in (0, week - 2, week - 1, week) if w in by_week},
        checkins_completed=sum(1 for w in by_week if w <= week),
    )
    summary = summarize(history, PROGRAM)
    segments = rules.message(summary, PROGRAM)
    status = ("pending-review" if guided else "ready") if latest else "delivered"
    return {
        "patient_id": pid,
        "week": week,
        "mode": "guided" if guided else "automated",
        "language": "en",
        "status": status,
        "segments": segments,
        "generated_segments": segments,
        "summary": summary.to_json(),
        "version": 1,
        "source_stamp": at,
        "edited": False,
        "source_changed": False,
        "generated_at": at,
        "updated_at": at,
        "reviewed_at": at if guided and not latest else None,
        "reviewed_by": "user:1" if guided and not latest else None,
        "delivered_at": None if latest else at + timedelta(days=7),
        "plays": 0 if latest else 1,
    }


def generate(conn: sa.Connection, therapist_id: int, patients: int, weeks: int) -> tuple[int, int]:
    """Bulk-insert the caseload and one 52-week patient; return (answers inserted, the 52-week patient's id)."""
    rows, checkins, answers, calls, alerts, assignments, messages = [], [], [], [], [], [], []
    long_id = patients + 1
    for pid in range(1, patients + 2):
        span = 52 if pid == long_id else weeks
        start = (NOW - timedelta(weeks=span)).date() + timedelta(days=1)
        rows.append(
            {
                "id": pid,
                "code": f"{100000 + pid}",
                "name": f"Bench Patient {pid}",
                "phone": f"+1202{pid:07d}",
                "pin_hash": "hmac-sha256$x$y",
                "timezone": "America/New_York",
                "language": "en",
                "program_start": start,
                "status": "active",
                "feedback_mode": "guided" if pid % 3 == 0 else "automated",
                "created_at": NOW,
            }
        )
        by_week: dict[int, dict] = {}
        assignments.append({"patient_id": pid, "user_id": therapist_id, "assigned_at": NOW})
        for week in range(span):
            if (pid + week) % 11 == 0:
                continue  # a missed week now and then
            cid = len(checkins) + 1
            at = datetime.combine(start + timedelta(weeks=week), datetime.min.time(), UTC) + timedelta(hours=15)
            checkins.append(
                {
                    "id": cid,
                    "patient_id": pid,
                    "week": week,
                    "status": "complete",
                    "next_item": None,
                    "started_at": at,
                    "updated_at": at,
                    "completed_at": at,
                }
            )
            sid = f"CA{pid:016x}{week:016x}"
            calls.append(
                {
                    "call_sid": sid,
                    "patient_id": pid,
                    "checkin_id": cid,
                    "direction": "outbound-api",
                    "status": "completed",
                    "answered_by": "human",
                    "language": "en",
                    "flow_id": "weekly_checkin",
                    "flow_state": None,
                    "step": 9,
                    "created_at": at,
                    "answered_at": at,
                    "ended_at": at,
                    "duration_s": 90,
                }
            )
            values = (3 + (pid + week) % 6, 5, 3000 + 100 * week, (pid * week) % 8, 2 if (pid + week) % 97 else 1)
            by_week[week] = {key: value for (key, _, _), value in zip(ITEMS, values, strict=True)}
            for (key, low, high), value in zip(ITEMS, values, strict=True):
                answers.append(
                    {
                        "checkin_id": cid,
                        "item_key": key,
                        "value": value,
                        "skipped": False,
                        "raw_input": str(value),
                        "input_mode": "dtmf",
                        "confidence": None,
                        "scale_min": low,
                        "scale_max": high,
                        "scale_anchors": {},
                        "scale_direction": "higher_is_worse",
                        "call_sid": sid,
                        "answered_at": at,
                    }
                )
            if values[-1] == 1:
                alerts.append(
                    {"patient_id": pid, "kind": "safety", "checkin_id": cid, "call_sid": sid, "created_at": at}
                )
        closed = min(span - 1, PROGRAM.weeks)  # a message per program week that has closed
        for week in range(closed):
            at = datetime.combine(start + timedelta(weeks=week + 1), datetime.min.time(), UTC) + timedelta(hours=6)
            messages.append(message(pid, week, by_week, pid % 3 == 0, week == closed - 1, at))
    for table, data in (
        (Patient, rows),
        (CareAssignment, assignments),
        (CheckIn, checkins),
        (Call, calls),
        (Answer, answers),
        (Alert, alerts),
        (FeedbackMessage, messages),
    ):
        for i in range(0, len(data), 5000):
            conn.execute(sa.insert(table.__table__), data[i : i + 5000])
    if conn.dialect.name == "postgresql":
        for table in ("patients", "checkins", "calls", "answers", "alerts", "feedback_messages"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        conn.exec_driver_sql("ANALYZE")
    return len(answers), long_id


def measure(pages: list[tuple[object, str]], requests: int) -> list[tuple[list[float], list[float]]]:
    """Wall-clock and CPU milliseconds of each request to each (client, path), the pages taken in turn
    (so that a change in the machine's load falls on all of them alike). CPU: this process only, so
    not PostgreSQL's."""
    for client, path in pages:
        for _ in range(3):
            assert client.get(path).status_code == 200  # warm up: templates compiled, pool filled
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in pages]
    for _ in range(requests):
        for (client, path), (wall, cpu) in zip(pages, times, strict=True):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(path)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200
    return times


def run(label: str, url: str, args) -> list[tuple]:
    url = fresh_database(url)
    app = create_app({"DATABASE_URL": url, "CLOCK": _Clock(), "PASSWORD_HASHER": HASHER, "LOG_LEVEL": "WARNING"})
    with db.session_scope(app) as session:
        therapist = accounts.create_user(
            session,
            email="bench@clinic.example",
            role="therapist",
            password=PASSWORD,
            hasher=HASHER,
            now=NOW,
            actor="bench",
        )
        therapist_id = therapist.id
    engine = app.extensions["db_engine"]
    with engine.begin() as conn:
        answers, long_id = generate(conn, therapist_id, args.patients, args.weeks)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    client.post("/login", data={"email": "bench@clinic.example", "password": PASSWORD, "csrf_token": token})
    pages = [
        ("sign-in form (floor)", app.test_client(), "/login"),  # a dashboard page without patient data
        (f"caseload, {args.patients + 1} patients", client, "/"),
        ("patient page, 52 weeks", client, f"/patients/{long_id}"),
        ("feedback queue", client, "/feedback"),
    ]
    timed = measure([(c, path) for _, c, path in pages], args.requests)
    floor = statistics.median(timed[0][0])
    results = []
    for (name, c, path), (wall, cpu) in zip(pages, timed, strict=True):
        size = len(c.get(path).data) // 1024
        median = statistics.median(wall)
        p95 = statistics.quantiles(wall, n=20)[-1]
        results.append((label, name, answers, size, median, p95, statistics.median(cpu), median / floor))
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += run("SQLite", f"sqlite:///{tmp}/bench.sqlite", args)
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if pg:
        results += run("PostgreSQL", pg, args)
    print(f"\nDashboard pages, in-process, {args.requests} requests each, taken in turn (target: median under 150 ms)")
    print("(CPU: this process's CPU time per request, not PostgreSQL's; x floor: median over the sign-in form's)")
    columns = f"{'answers in db':>13} {'page KB':>8} {'median ms':>10} {'p95 ms':>8} {'CPU ms':>7} {'x floor':>8}"
    print(f"{'database':<11} {'page':<26} {columns}")
    for label, name, answers, size, median, p95, cpu, ratio in results:
        print(f"{label:<11} {name:<26} {answers:>13} {size:>8} {median:>10.1f} {p95:>8.1f} {cpu:>7.1f} {ratio:>8.1f}")


if __name__ == "__main__":
    main()
