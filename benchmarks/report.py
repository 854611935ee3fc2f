"""Outcome report speed: synthetic cohorts of 500, 2,331 and 10,000 patients inserted in bulk, then
`report outcomes` computed from them (queries + statistics) and rendered (Markdown + SVG plots).

    python benchmarks/report.py                         # SQLite, plus PostgreSQL if BENCH_DATABASE_URL
    python benchmarks/report.py --sizes 500 2331        # (or TEST_DATABASE_URL) is set

Each patient has check-ins for weeks 0-13 plus follow-ups at weeks 26 and 39 (fewer as adherence
decays), five answers per check-in, and one call per check-in plus unanswered attempts. Times are
the median of --repeat runs; the data are generated from a fixed seed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks.common import fresh  # noqa: E402
from ivr_cbt import db  # noqa: E402
from ivr_cbt.report import Options, outcome_report  # noqa: E402
from ivr_cbt.report.extract import extract  # noqa: E402
from ivr_cbt.report.render import render  # noqa: E402
from tests.report_data import ITEM_KEYS, START, Virtual, Week, insert_cohort  # noqa: E402

WEEKS = (*range(14), 26, 39)
ARMS = ("monitoring", "automated", "guided")
EFFECT = {"monitoring": 0.4, "automated": 0.9, "guided": 1.2}  # mean pain reduction by week 13
NOW = datetime.combine(START, datetime.min.time(), tzinfo=UTC) + timedelta(weeks=40)
SCHEMA = "ivr_bench_report"


def cohort(n: int, seed: int = 1) -> list[Virtual]:
    """``n`` virtual patients, arms in rotation, with decaying adherence and some partial check-ins."""
    rng = np.random.default_rng(seed)
    patients = []
    for i in range(n):
        arm = ARMS[i % 3]
        baseline = rng.integers(4, 10)
        noise = rng.normal(0, 1.2, len(WEEKS))
        answered = rng.random(len(WEEKS)) > np.array([0.05 + 0.015 * min(w, 20) for w in WEEKS])
        partial = rng.random(len(WEEKS)) < 0.05
        weeks = {}
        for j, week in enumerate(WEEKS):
            if not answered[j]:
                continue
            pain = int(np.clip(round(baseline - EFFECT[arm] * min(week, 13) / 13 + noise[j]), 0, 10))
            calls = ("no-answer", "human") if rng.random() < 0.2 else ("human",)
            weeks[week] = Week(pain=pain, stop_at="steps_avg" if partial[j] else None, calls=calls)
        patients.append(Virtual(arm, weeks))
    return patients


def measure(url: str, n: int, repeat: int) -> tuple:
    fresh(url, SCHEMA)
    engine = db.make_engine(url)
    patients = cohort(n)
    started = time.perf_counter()
    insert_cohort(engine, patients)
    insert_s = time.perf_counter() - started
    with engine.connect() as conn:
        checkins, answers = (conn.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in ("checkins", "answers"))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    options = Options()
    totals, sql, rendering = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        report = outcome_report(engine, options, now=NOW, actor="bench", items=ITEM_KEYS)
        totals.append(time.perf_counter() - started)
        with engine.connect() as conn:
            started = time.perf_counter()
            extract(conn, options.timepoints(), window=options.window)
            sql.append(time.perf_counter() - started)
        started = time.perf_counter()
        render(report, "md", "svg")
        rendering.append(time.perf_counter() - started)
    assert sum(a["n_enrolled"] for a in report["arms"]) == n
    engine.dispose()
    return n, checkins, answers, insert_s, *(statistics.median(x) for x in (totals, sql, rendering))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2331, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    databases = common.databases("report", SCHEMA)
    print(f"Outcome report: weeks {WEEKS[0]}-13, 26, 39; median of {args.repeat} runs; {os.cpu_count()} cores")
    header = ("patients", 9), ("check-ins", 10), ("answers", 9), ("insert s", 9), ("report s", 9)
    header += ("of which SQL s", 15), ("render md+svg s", 16)
    print(f"{'database':<11}" + " ".join(f"{name:>{width}}" for name, width in header))
    for label, url_for in databases:
        for n in args.sizes:
            n, checkins, answers, insert_s, total, sql, rendering = measure(url_for(n), n, args.repeat)
            print(
                f"{label:<11}{n:>9} {checkins:>10} {answers:>9} {insert_s:>9.2f} {total:>9.3f} "
                f"{sql:>15.3f} {rendering:>16.3f}"
            )
    common.drop(SCHEMA)


if __name__ == "__main__":
    main()
