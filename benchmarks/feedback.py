"""Weekly feedback generation speed: enrolled patients with a week of data each, inserted in bulk, then
the scheduler's generation job run once the week has closed (and once more, when nothing is due).

    python benchmarks/feedback.py                        # SQLite, plus PostgreSQL if BENCH_DATABASE_URL
    python benchmarks/feedback.py --sizes 10000 100000   # (or TEST_DATABASE_URL) is set

Target (issue 4): 100,000 patients in under 60 s, with set-based queries (a fixed number per
batch of 5,000 patients, whatever their number), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.common import fresh  # noqa: E402
from ivr_cbt import db  # noqa: E402
from ivr_cbt.feedback.jobs import generate_due  # noqa: E402
from ivr_cbt.feedback.program import load_program  # noqa: E402
from tests.report_data import START, Virtual, Week, insert_cohort  # noqa: E402

SCHEMA = "ivr_bench_feedback"
# Week 0 closes at local midnight (New York) seven days after the start; run an hour later.
NOW = datetime.combine(START + timedelta(days=7), datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)


def cohort(n: int) -> list[Virtual]:
    """``n`` patients, half automated and half guided, each with a completed week-0 check-in."""
    return [Virtual("automated" if i % 2 else "guided", {0: Week(pain=3 + i % 7, calls=("human",))}) for i in range(n)]


def measure(url: str, n: int) -> tuple:
    fresh(url, SCHEMA)
    engine = db.make_engine(url)
    started = time.perf_counter()
    insert_cohort(engine, cohort(n))
    insert_s = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    program = load_program()
    statements = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(1))
    with engine.connect() as conn:
        started = time.perf_counter()
        report = generate_due(conn, program, NOW)
        generate_s = time.perf_counter() - started
        queries = len(statements)
        started = time.perf_counter()
        again = generate_due(conn, program, NOW + timedelta(minutes=15))
        idle_s = time.perf_counter() - started
        messages = conn.scalar(sa.text("SELECT count(*) FROM feedback_messages"))
    assert report.generated == messages == n and again.generated == 0
    engine.dispose()
    return n, insert_s, generate_s, n / generate_s, queries, idle_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    databases = common.databases("feedback", SCHEMA)
    print(f"Weekly feedback generation: one week of data per patient; {os.cpu_count()} cores")
    header = ("patients", 9), ("insert s", 9), ("generate s", 11), ("messages/s", 11), ("statements", 11)
    header += (("idle run s", 11),)
    print(f"{'database':<11}" + " ".join(f"{name:>{width}}" for name, width in header))
    for label, url_for in databases:
        for n in args.sizes:
            n, insert_s, generate_s, rate, queries, idle_s = measure(url_for(n), n)
            print(f"{label:<11}{n:>9} {insert_s:>9.1f} {generate_s:>11.2f} {rate:>11.0f} {queries:>11} {idle_s:>11.2f}")
    common.drop(SCHEMA)


if __name__ == "__main__":
    main()
