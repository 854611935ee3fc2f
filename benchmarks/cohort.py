"""Cohort simulator speed and faithfulness: the RESOLVE-like preset (weekly calls, 12 weeks) through
the full webhook path, at several cohort sizes, and what the outcome report recovers.

    python benchmarks/cohort.py                          # 500, 2,331 and 10,000 patients on SQLite
    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test python benchmarks/cohort.py --sizes 2331

Target (issue 6): 2,331 patients x 12 weeks in under 5 minutes on the 2-core machine. Each run is
process doing what a deployment's scheduler does (ticks, feedback job) plus the simulated therapist,
and ``--workers`` processes playing the calls: the virtual patients' side and the app's webhooks.
CPU s is the main process's own (workers' time is not in it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import databases, drop, fresh  # noqa: E402
from ivr_cbt.simulator.behaviour import load_cohort  # noqa: E402
from ivr_cbt.simulator.cohort import simulate_cohort, write_report  # noqa: E402

SCHEMA = "ivr_cohort_bench"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="resolve")
    parser.add_argument("--sizes", default="500,2331,10000")
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2331)
    parser.add_argument("--workers", default="2", help="processes playing the calls, e.g. 1,2 to compare")
    args = parser.parse_args()
    cohort = load_cohort(args.preset)
    sizes = [int(s) for s in args.sizes.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="ivr-cohort-bench-"))
    print(
        f"Cohort simulator: preset {args.preset} (synthetic), {args.weeks} weeks, seed {args.seed}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; x first = wall time over the first size's"
    )
    print(
        f"{'database':<11}{'workers':>8}{'patients':>9}{'calls':>8}{'answered':>9}{'requests':>9}{'wall s':>8}"
        f"{'cpu s':>8}{'calls/s':>8}{'ms/call':>8}{'x first':>8}"
    )
    reports = {}
    for (label, url_for), workers in ((db, w) for db in databases("cohort", SCHEMA) for w in worker_counts):
        first = None
        for size in sizes:
            url = url_for(f"{size}-w{workers}")  # a new SQLite file each run (PostgreSQL: a new schema)
            fresh(url, SCHEMA)
            before = cpu()
            result = simulate_cohort(cohort, url, patients=size, weeks=args.weeks, seed=args.seed, workers=workers)
            used = cpu() - before
            progress = result.progress
            first = first or progress.wall_seconds
            print(
                f"{label:<11}{workers:>8}{size:>9}{progress.calls:>8}{progress.pickups['answer']:>9}{progress.requests:>9}"
                f"{progress.wall_seconds:>8.1f}{used:>8.1f}{progress.calls / progress.wall_seconds:>8.1f}"
                f"{progress.wall_seconds * 1000 / max(progress.calls, 1):>8.2f}{progress.wall_seconds / first:>8.2f}",
                flush=True,
            )
            out = workdir / f"report-{label}-{size}"
            write_report(result, out)
            reports[(label, workers, size)] = (result, json.loads((out / "outcomes.json").read_text()))
        drop(SCHEMA)
    print("\nWhat the report recovers: the model's true change, the estimate with its 95% CI, responders (>= 30%)")
    print(
        f"{'database':<11}{'patients':>9}  {'arm':<11}{'true':>7}{'n':>6}{'estimate':>10}  {'95% CI':<16}{'resp.':>7}"
    )
    for (label, workers, size), (result, report) in reports.items():
        if workers != worker_counts[0]:
            continue  # the same outcomes whatever the number of workers
        for arm in report["arms"]:
            if arm["pain_change_ci"] is None:
                print(f"{label:<11}{size:>9}  {arm['name']:<11} no 3-month data (run 12 weeks or more)")
                continue
            low, high = arm["pain_change_ci"]
            print(
                f"{label:<11}{size:>9}  {arm['name']:<11}{result.true_change[arm['name']]:>7.2f}{arm['n']:>6}"
                f"{arm['pain_change_mean']:>10.2f}  [{low:5.2f}, {high:5.2f}]{arm['responders_30pct']:>8.1%}"
            )
        for comparison in report["comparisons"]:
            a, b = comparison["arms"]
            if comparison["ci"] is None:
                continue
            low, high = comparison["ci"]
            truth = result.true_change[a] - result.true_change[b]
            print(
                f"{label:<11}{size:>9}  {a} - {b}: true {truth:+.2f}, estimate {comparison['difference']:+.2f} "
                f"[{low:.2f}, {high:.2f}] {'covers' if low <= truth <= high else 'MISSES'} the truth; "
                f"Hedges' g {comparison['hedges_g']:.2f}"
            )


if __name__ == "__main__":
    main()
