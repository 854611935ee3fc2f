"""Webhook speed: full check-in calls over HTTP against the app under gunicorn, beside a bare
Flask floor served and driven the same way in the same run; then complete calls per second
in-process.

    make bench                      # SQLite, plus PostgreSQL if BENCH_DATABASE_URL (or TEST_DATABASE_URL) is set
    python benchmarks/webhooks.py --calls 400 --concurrency 8

Targets (issue 2): median within 2x and p99 within 2.5x of the floor; >= 150 in-process calls/s
(printed for one process, and for two side by side on the same database: one per core).
Absolute times drift on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr_cbt import create_app, db  # noqa: E402
from ivr_cbt.patients import NewPatient, enrol  # noqa: E402
from ivr_cbt.simulator import HttpTransport, OfflinePhone, ScriptedCaller  # noqa: E402
from ivr_cbt.simulator.runner import run_call  # noqa: E402

TOKEN = "bench-token"
PUBLIC = "https://bench.invalid"
SCRIPT = "1234,5,7,4200#,3,2"
NOW = datetime(2026, 3, 2, 15, tzinfo=UTC)
GUNICORN = ["--workers", "2", "--worker-class", "gthread", "--threads", "4", "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(url: str) -> None:
    engine = db.make_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS ivr_bench CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA ivr_bench")
    engine.dispose()


def enrol_patients(app, n: int) -> list[tuple[int, str]]:
    """Enrol ``n`` patients with PIN 1234; return (id, phone)."""
    out = []
    with db.session_scope(app) as session:
        for i in range(n):
            phone = f"+1202{i:07d}"
            patient = enrol(
                session,
                NewPatient(f"Bench {i}", phone, "1234", "America/New_York", "en", date(2026, 2, 23)),
                pepper=app.config["PIN_PEPPER"],
                languages={"en", "es"},
                now=NOW,
                actor="bench",
            )
            out.append((patient.id, phone))
    return out


class TimedTransport(HttpTransport):
    def __init__(self, server_url: str, sink: list[float]):
        super().__init__(server_url)
        self.sink = sink

    def send(self, method, url, params, headers):
        started = time.perf_counter()
        response = super().send(method, url, params, headers)
        self.sink.append((time.perf_counter() - started) * 1000)
        if response.status >= 400:
            raise RuntimeError(f"HTTP {response.status} from {url}")
        return response


def serve(target: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *GUNICORN, "--bind", f"127.0.0.1:{port}", target],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gunicorn did not start for {target}")


def drive(url: str, phones: list[str], concurrency: int, public: str) -> tuple[list[float], float]:
    """Play one call per phone with ``concurrency`` at once; return per-request ms and wall seconds."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one(phone_number: str) -> None:
        sink: list[float] = []
        phone = OfflinePhone(
            TimedTransport(url, sink), auth_token=TOKEN, account_sid="AC" + "0" * 32, public_base_url=public
        )
        result = phone.call(ScriptedCaller.parse(SCRIPT), from_=phone_number, to="+15005550006")
        if result.status != "completed":
            raise RuntimeError(result.text())
        with lock:
            latencies.extend(sink)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, phones))
    return latencies, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def http_benchmark(database_url: str, calls: int, concurrency: int) -> list[tuple]:
    fresh_database(database_url)
    db.upgrade_database(database_url)
    app = create_app({"DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC})
    patients = enrol_patients(app, calls + 40)
    app.extensions["db_engine"].dispose()
    env = {"DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC, "LOG_LEVEL": "WARNING"}
    phones = [phone for _, phone in patients]
    rows = []
    for name, target, public in (
        ("bare Flask floor", "benchmarks.floor_app:app", "http://floor.invalid"),
        ("ivr-cbt webhooks", "ivr_cbt:create_app()", PUBLIC),
    ):
        process, url = serve(target, env)
        try:
            drive(url, phones[:40], concurrency, public)  # warm-up (and the floor's own phones)
            latencies, wall = drive(url, phones[40 : 40 + calls], concurrency, public)
        finally:
            process.terminate()
            process.wait(10)
        rows.append((name, len(latencies), statistics.median(latencies), pct(latencies, 0.99), calls / wall))
    return rows


def in_process_rate(database_url: str, calls: int, test_client: bool) -> tuple[float, float]:
    """Complete calls per second, and this process's CPU milliseconds per call (steadier than
    wall time on a shared machine)."""
    fresh_database(database_url)
    db.upgrade_database(database_url)
    app = create_app(
        {"DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC, "LOG_LEVEL": "WARNING"}
    )
    patients = enrol_patients(app, calls + 20)
    for patient_id, _ in patients[:20]:
        run_call(app, patient_id, ScriptedCaller.parse(SCRIPT), now=NOW, test_client=test_client)
    started, cpu_started = time.perf_counter(), time.process_time()
    for patient_id, _ in patients[20:]:
        result = run_call(app, patient_id, ScriptedCaller.parse(SCRIPT), now=NOW, test_client=test_client)
        assert result.status == "completed"
    rate = calls / (time.perf_counter() - started)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / calls
    with app.app_context():
        done = db.connection().execute(sa.text("select count(*) from checkins where status = 'complete'")).scalar()
    assert done == calls + 20, done
    app.extensions["db_engine"].dispose()
    return rate, cpu_ms


def _play_share(database_url: str, patient_ids: list[int], barrier, results) -> None:
    """One of several processes: its own app on the shared database, its share of the calls,
    started together with the others (the barrier), timed from the start to its last call."""
    app = create_app(
        {"DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC, "LOG_LEVEL": "WARNING"}
    )
    warm, calls = patient_ids[:10], patient_ids[10:]
    for patient_id in warm:
        run_call(app, patient_id, ScriptedCaller.parse(SCRIPT), now=NOW)
    barrier.wait()
    started, cpu_started = time.monotonic(), time.process_time()
    for patient_id in calls:
        result = run_call(app, patient_id, ScriptedCaller.parse(SCRIPT), now=NOW)
        assert result.status == "completed"
    results.put((started, time.monotonic(), time.process_time() - cpu_started, len(calls)))
    app.extensions["db_engine"].dispose()


def in_process_rate_parallel(database_url: str, calls: int, processes: int) -> tuple[float, float]:
    """Complete calls per second with ``processes`` processes side by side on one database (each
    in-process: phone -> app), from the first start to the last end; and CPU ms per call."""
    import multiprocessing

    fresh_database(database_url)
    db.upgrade_database(database_url)
    app = create_app({"DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC})
    patient_ids = [patient_id for patient_id, _ in enrol_patients(app, calls + 10 * processes)]
    app.extensions["db_engine"].dispose()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    shares = [patient_ids[k::processes] for k in range(processes)]
    workers = [context.Process(target=_play_share, args=(database_url, share, barrier, results)) for share in shares]
    for worker in workers:
        worker.start()
    done = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a benchmark process failed (exit {worker.exitcode})")
    played = sum(n for *_, n in done)
    wall = max(end for _, end, _, _ in done) - min(start for start, _, _, _ in done)
    return played / wall, sum(cpu for _, _, cpu, _ in done) * 1000 / played


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--inproc-calls", type=int, default=500)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    databases = [("SQLite", f"sqlite:///{tmp / 'bench.sqlite'}")]
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if pg:
        url = sa.engine.make_url(pg).update_query_dict({"options": "-csearch_path=ivr_bench"})
        databases.append(("PostgreSQL", url.render_as_string(hide_password=False)))

    print(
        f"Webhook turns, {args.calls} full check-in calls over HTTP, {args.concurrency} at once, "
        f"gunicorn {' '.join(GUNICORN[:6])}, loopback, {os.cpu_count()} cores"
    )
    columns = ("requests", 8), ("median ms", 10), ("p99 ms", 8), ("calls/s", 8), ("median x", 9), ("p99 x", 6)
    print(f"{'database':<11} {'server':<17} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for label, url in databases:
        if label == "SQLite":
            Path(tmp / "bench.sqlite").unlink(missing_ok=True)
        floor, ours = http_benchmark(url, args.calls, args.concurrency)
        for name, n, median, p99, rate in (floor, ours):
            ratio = (
                (f"{median / floor[2]:>9.2f} {p99 / floor[3]:>6.2f}")
                if name != floor[0]
                else f"{'1.00':>9} {'1.00':>6}"
            )
            print(f"{label:<11} {name:<17} {n:>8} {median:>10.2f} {p99:>8.2f} {rate:>8.1f} {ratio}")
    print()
    print(
        "In-process complete check-in calls: offline phone -> app -> engine -> database, "
        f"{args.inproc_calls} calls, one process"
    )
    print(f"{'database':<11} {'transport':<28} {'calls/s':>8} {'CPU ms/call':>12}")
    for label, url in databases:
        for transport, test_client in (
            ("direct WSGI call", False),
            ("Flask test client", True),
            ("direct WSGI, 2 processes", None),
        ):
            if label == "SQLite":
                Path(tmp / "bench.sqlite").unlink(missing_ok=True)
            if test_client is None:
                rate, cpu_ms = in_process_rate_parallel(url, args.inproc_calls, processes=2)
            else:
                rate, cpu_ms = in_process_rate(url, args.inproc_calls, test_client)
            print(f"{label:<11} {transport:<28} {rate:>8.1f} {cpu_ms:>12.2f}")


if __name__ == "__main__":
    main()
